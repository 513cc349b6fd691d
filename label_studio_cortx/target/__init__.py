"""The target side: annotations written back to a bucket.

- ``export``: one JSON object per annotation (save-time export and delete, and the target sync).
- ``snapshots``: a whole project converted by Label Studio's exporter (JSON, CSV, COCO, VOC, YOLO ...),
  uploaded all-or-nothing with a manifest (format: ``pull.manifest``).

May import ``connection``, ``conf``, ``rows``, ``pull.manifest`` and Label Studio's export machinery; never the
models (jobs get the storage class from their caller), the source sync or the API layer.
"""
