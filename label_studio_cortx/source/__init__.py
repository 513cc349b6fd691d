"""The source sync: a bucket's objects become Label Studio tasks, and media reaches the labeling UI.

- ``listing``: ListObjects parameters, pages (V1 fallback), regex filter, read-ahead of the next page.
- ``patterns``: user regex filters, compiled with RE2 (linear time) and bounded.
- ``task_files``: what one object holds (files mode, or the tasks of a streamed JSON/JSONL file).
- ``tasks``: tasks and links created in bulk (as plain rows through ``rows``).
- ``sync``: the import sync itself, page by page.
- ``reconcile``: optional removal of tasks whose objects are gone, and updates of changed task files.
- ``media``: the media proxy stream (Range, ETag/304, headers) and presigned links.
- ``media_links``: signed per-user links to proxied media (made here, served by the Django layer's ``media_gateway``).

May import ``connection``, ``conf``, ``rows`` and Label Studio's task/project/webhook modules; never the models
(it gets the storage and its link class from the caller), the target side or the API layer.
"""
