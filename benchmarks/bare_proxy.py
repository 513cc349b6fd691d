"""The floor of any Python media proxy: a WSGI app that only GETs the object with boto3 and streams it.

No Django, no authentication, no database: ``bench_media.py`` serves it with gunicorn exactly as it serves Label
Studio (same workers and threads), so the difference between this row and the CORTX rows is what Label Studio and
the plugin add per image, and the difference between this row and the bare GET is what a second HTTP hop through
Python costs on the machine. Configured from the environment (``BARE_PROXY_ENDPOINT``, ``..._ACCESS_KEY``,
``..._SECRET_KEY``, ``..._BUCKET``); the path is the object key. A benchmark aid, never installed with the plugin.
"""

from __future__ import annotations

import os

import boto3
from botocore.config import Config

_client = boto3.client(
    "s3",
    endpoint_url=os.environ["BARE_PROXY_ENDPOINT"],
    aws_access_key_id=os.environ["BARE_PROXY_ACCESS_KEY"],
    aws_secret_access_key=os.environ["BARE_PROXY_SECRET_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
)
_bucket = os.environ["BARE_PROXY_BUCKET"]
_chunk = 512 * 1024  # Label Studio's RESOLVER_PROXY_BUFFER_SIZE


def application(environ, start_response):
    response = _client.get_object(Bucket=_bucket, Key=environ["PATH_INFO"].lstrip("/"))
    headers = [("Content-Type", response.get("ContentType", "image/jpeg"))]
    start_response("200 OK", [*headers, ("Content-Length", str(response["ContentLength"]))])
    body = response["Body"]
    return iter(lambda: body.read(_chunk), b"")
