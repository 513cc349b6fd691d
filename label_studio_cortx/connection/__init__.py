"""The connection: how the plugin talks to an S3 store, and what it says when that fails.

- ``config``: the one botocore configuration and its named limits (Django-free: the pull side uses it).
- ``ca_bundle``: pasted CA bundles repaired, validated and written to files (Django-free).
- ``endpoints``: endpoint parsing, SSRF decisions (the same parser the connection uses), socket pinning.
- ``client``: the server-side client factory (``ConnectionConfig`` -> cached boto3 clients), and the media
  proxy's GET and the export's PUT over a client's own signer and pool (``stream_object``, ``put_bytes``).
- ``errors``: the domain errors, the one translation of store failures into messages, the error-list cap.
- ``check``: 'Check connection' (list, and write for targets).
- ``secrets``: storage credentials encrypted at rest.

May import botocore/boto3, cryptography, urllib3, Django settings and ``label_studio_cortx.conf``; never
the sync, target, pull or Django-facing modules.
"""
