"""Small helpers shared by the storage tests: payloads, seeding buckets, reading API errors."""

from __future__ import annotations

import json
import uuid

import pytest


def new_bucket(endpoint, prefix: str = "cortx") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    endpoint.client().create_bucket(Bucket=name)
    return name


def put(endpoint, bucket: str, key: str, body: bytes | str, content_type: str | None = None) -> None:
    kwargs = {"ContentType": content_type} if content_type else {}
    endpoint.client().put_object(
        Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body, **kwargs
    )


def keys(endpoint, bucket: str, prefix: str = "") -> list[str]:
    pages = endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def read_json(endpoint, bucket: str, key: str):
    return json.loads(endpoint.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def payload(endpoint, bucket: str, project=None, **extra) -> dict:
    data = {
        "title": "CORTX",
        "bucket": bucket,
        "s3_endpoint": endpoint.url,
        "aws_access_key_id": endpoint.access_key,
        "aws_secret_access_key": endpoint.secret_key,
        "region_name": "us-east-1",
        "force_path_style": True,
    }
    if endpoint.ca_pem:
        data["ca_bundle"] = endpoint.ca_pem
    if project is not None:
        data["project"] = project.id
    data.update(extra)
    return data


def create_storage(model, project, endpoint, bucket: str, **fields):
    """A CORTX source or target on ``endpoint``, created through the ORM (the API is tested elsewhere)."""
    return model.objects.create(
        project=project,
        bucket=bucket,
        s3_endpoint=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        ca_bundle=endpoint.ca_pem,
        **fields,
    )


def annotate(api, task, result: list[dict]) -> int:
    """Save an annotation through the REST API as the labeling UI does; its id."""
    response = api.post(f"/api/tasks/{task.id}/annotations/", {"result": result}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def error_text(response) -> str:
    """Every human message of an error response, flattened (Label Studio nests validation errors)."""
    return json.dumps(response.json())


def read_only_key(endpoint, bucket: str | None = None) -> tuple[str, str]:
    """A key that may list and read (``bucket``) but not write, as a mis-provisioned target key.

    Real servers use their own machinery (``endpoint.read_only_key``: a SeaweedFS identity with Read and List,
    an RGW user granted by bucket policy), also behind the CORTX-profile proxy; moto gets a second IAM user.
    """
    server = getattr(endpoint, "upstream", None) or endpoint
    own = getattr(server, "read_only_key", None)
    if own is not None:
        return own(bucket)
    return _iam_key(
        endpoint, "reader", [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}]
    )


def write_check_only_key(endpoint, bucket: str) -> tuple[str, str]:
    """A key that passes a target's write check but may write nothing else: every upload fails."""
    from label_studio_cortx.connection.check import WRITE_PROBE_NAME

    return _iam_key(
        endpoint,
        "prober",
        [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": f"arn:aws:s3:::{bucket}/*{WRITE_PROBE_NAME}",
            },
        ],
    )


def _iam_key(endpoint, role: str, statements: list[dict]) -> tuple[str, str]:
    iam = endpoint.client("iam")
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_user_policy(UserName=name, PolicyName=role, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def seed_objects(endpoint, bucket: str, count: int, prefix: str = "") -> None:
    """``count`` small objects named <prefix>00000.jpg, ... written concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    client = endpoint.client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"{prefix}{i:05d}.jpg", Body=b"x"), range(count)))


def plugin_env(settings, **extra: str) -> dict:
    """The environment an admin gives a worker or a management command: the plugin's settings module, this
    test's database (SQLite file or PostgreSQL), and ``extra``."""
    import os

    database = settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "label_studio_cortx.settings", "SENTRY_DSN": "", **extra}
    if database["ENGINE"].endswith("sqlite3"):
        env.update(DJANGO_DB="sqlite", DATABASE_NAME=database["NAME"])
    else:
        env.update(
            DJANGO_DB="postgresql",
            POSTGRE_NAME=database["NAME"],
            POSTGRE_HOST=database["HOST"] or "127.0.0.1",
            POSTGRE_PORT=str(database["PORT"] or 5432),
            POSTGRE_USER=database["USER"],
            POSTGRE_PASSWORD=database["PASSWORD"],
        )
    return env


def quick_acks(monkeypatch) -> list[tuple[type, int]]:
    """For each response a plugin connection waits for: its socket's type and whether it is in quick-ACK mode."""
    import socket

    from label_studio_cortx.connection import config

    if not hasattr(socket, "TCP_QUICKACK"):
        pytest.skip("TCP_QUICKACK is Linux's")
    seen = []
    real = config.ack_at_once

    def record(sock) -> None:
        real(sock)
        seen.append((type(sock), sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)))

    monkeypatch.setattr(config, "ack_at_once", record)
    return seen
