"""Ceph's RADOS Gateway (the S3 engine of CORTX 2.x) as a test endpoint, on a throw-away one-node cluster.

The cluster: one monitor and one OSD on ``memstore`` (objects in RAM, so every start is a fresh, empty store),
pools of size 1, ``auth none`` everywhere (with ``ms mon client mode = crc secure``: without it radosgw fails
with "get_initial_auth_request returned -13"), every daemon bound to 127.0.0.1, and radosgw with its beast
frontend on a free port. S3 users are made by ``radosgw-admin``: an admin user (the endpoint's key) and a reader
that owns nothing and is granted read access per bucket by a bucket policy (:meth:`RealS3Endpoint.read_only_key`),
which is RGW's own permission machinery, not a test double.

The daemons run in the foreground as children of the test process (see :func:`.daemons.spawn`): stop() sends
SIGTERM to radosgw, the OSD and the monitor in turn; atexit and SIGTERM/SIGHUP handlers do the same for
interrupted runs, and the kernel's parent-death signal (SIGKILL) covers a test process that is killed outright.
Binaries come from Debian 12's ``ceph-mon ceph-osd radosgw ceph-common`` packages (Ceph 16.2), installed by
``scripts/install-real-stores.sh``; no chroot and no mounts are needed with them.
"""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path

from ..connection.config import DEFAULT_REGION
from .daemons import RealS3Endpoint, register_cleanup, run_tool, spawn, stop_in_order, wait_until, work_dir
from .moto_server import free_port

TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "ceph-authtool")

_CONF = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind ipv4 = true
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 0
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
log to stderr = false
keyring = {root}/keyring

[mon]
mon data = {root}/mon/$cluster-$id
# The cluster and audit logs, by default in /var/log/ceph.
mon cluster log file = {root}/log/$cluster.$channel.log

[osd]
osd data = {root}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
# On SIGTERM an OSD first tells the monitor it is going down; when the monitor is already gone (it died, or was
# stopped by hand) it would wait 5 s for an answer.
osd mon shutdown timeout = 1

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
"""


def ceph_available() -> bool:
    """True if every Ceph tool this module runs is on ``PATH``."""
    return all(shutil.which(tool) for tool in TOOLS)


def ceph_version() -> str:
    """E.g. ``"16.2.15"``, from ``radosgw --version``."""
    try:
        out = subprocess.run(["radosgw", "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    words = out.split()
    return words[2] if len(words) > 2 and words[:2] == ["ceph", "version"] else out.strip()[:40]


def _http_up(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _reader_policy(bucket: str, uid: str) -> str:
    principal = {"AWS": [f"arn:aws:iam:::user/{uid}"]}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": [f"arn:aws:s3:::{bucket}"],
                },
                {
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                },
            ],
        }
    )


def start_ceph_rgw(
    *, startup_timeout: float = 180.0, memstore_bytes: int = 1 << 30, region: str = DEFAULT_REGION
) -> RealS3Endpoint:
    """Create and start the one-node cluster and radosgw; return the endpoint once S3 answers.

    Raises ``RuntimeError`` naming the step that failed, with the tails of the daemons' logs. ``stop()`` stops
    the daemons (rgw, osd, mon) and removes the work directory.
    """
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        raise RuntimeError(f"Ceph tools missing ({', '.join(missing)}): run scripts/install-real-stores.sh")
    root = work_dir("ceph")
    for sub in ("run", "log", "mon/ceph-a", "osd/ceph-0", "rgw"):
        (root / sub).mkdir(parents=True)
    conf = root / "ceph.conf"
    fsid = str(uuid.uuid4())
    mon_port, rgw_port = free_port(), free_port()
    conf.write_text(
        _CONF.format(fsid=fsid, mon_port=mon_port, rgw_port=rgw_port, root=root, memstore_bytes=memstore_bytes)
    )
    c = ["-c", str(conf)]
    logs = [root / "log" / name for name in ("mon.a.log", "osd.0.log", "client.rgw.a.log", "daemons.log")]
    daemon_log = root / "log" / "daemons.log"
    processes: list[subprocess.Popen[bytes]] = []

    def cleanup() -> None:
        try:
            # rgw, then osd, then mon. Each stops in well under a second; the short grace bounds a daemon that
            # hangs in its shutdown (radosgw does once its monitor is gone), and memstore loses nothing to SIGKILL.
            stop_in_order(reversed(processes), grace=5.0)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    unregister = register_cleanup(cleanup)
    # Hex secrets: a secret that starts with "-" cannot follow a command-line option as its own argument.
    admin = (f"RGWADMIN{secrets.token_hex(6).upper()}", secrets.token_hex(20))
    reader_uid = "reader"
    reader = (f"RGWREAD{secrets.token_hex(6).upper()}", secrets.token_hex(20))
    endpoint = RealS3Endpoint(
        url=f"http://127.0.0.1:{rgw_port}",
        access_key=admin[0],
        secret_key=admin[1],
        region=region,
        log_path=str(root / "log" / "client.rgw.a.log"),
        server="Ceph RGW",
        version=ceph_version(),
        work_dir=str(root),
    )
    endpoint._cleanups.append(cleanup)
    endpoint._cleanups.append(unregister)

    def read_only_key(bucket: str | None) -> tuple[str, str]:
        # An RGW user sees only its own buckets: the reader gets each bucket through that bucket's policy.
        if bucket is None:
            raise ValueError("Ceph RGW: a read-only key is granted per bucket (pass the bucket)")
        endpoint.client().put_bucket_policy(Bucket=bucket, Policy=_reader_policy(bucket, reader_uid))
        return reader

    endpoint._read_only = read_only_key
    try:
        keyring = str(root / "keyring")
        run_tool(["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"],
                 what="Ceph keyring")  # fmt: skip
        monmap = str(root / "monmap")
        run_tool(["monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", "--fsid", fsid, monmap],
                 what="Ceph monmap")  # fmt: skip
        run_tool(["ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring],
                 what="ceph-mon --mkfs", logs=logs)  # fmt: skip
        processes.append(spawn(["ceph-mon", *c, "-i", "a", "-f"], daemon_log))
        # `ceph osd new` waits for the monitor itself; the timeout bounds a monitor that never forms a quorum.
        osd_uuid = str(uuid.uuid4())
        osd_id = run_tool(["ceph", *c, "--connect-timeout", "60", "osd", "new", osd_uuid],
                          what="ceph osd new", logs=logs, timeout=90).strip()  # fmt: skip
        run_tool(["ceph-osd", *c, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid], what="ceph-osd --mkfs", logs=logs)
        processes.append(spawn(["ceph-osd", *c, "-i", osd_id, "-f"], daemon_log))

        def osd_up() -> bool:
            out = run_tool(["ceph", *c, "osd", "stat", "-f", "json"], what="ceph osd stat", logs=logs)
            return json.loads(out).get("num_up_osds", 0) >= 1

        wait_until(osd_up, timeout=startup_timeout, what="Ceph OSD", logs=logs, processes=processes, interval=0.5)
        # The first radosgw-admin call creates RGW's pools (a few seconds on one OSD).
        for uid, (key, secret) in (("admin", admin), (reader_uid, reader)):
            run_tool(["radosgw-admin", *c, "user", "create", f"--uid={uid}", f"--display-name={uid}",
                      f"--access-key={key}", f"--secret-key={secret}"],
                     what=f"radosgw-admin user create {uid}", logs=logs, timeout=startup_timeout)  # fmt: skip
        processes.append(spawn(["radosgw", *c, "-n", "client.rgw.a", "-f"], daemon_log))
        wait_until(lambda: _http_up(rgw_port), timeout=startup_timeout, what="radosgw", logs=logs, processes=processes)
        endpoint.process = processes[-1]
    except BaseException:
        endpoint.stop()
        raise
    return endpoint


def _main() -> None:  # pragma: no cover - a manual smoke test: python -m label_studio_cortx.devservers.ceph_rgw
    import time

    started = time.monotonic()
    with start_ceph_rgw() as endpoint:
        print(f"Ceph RGW {endpoint.version} at {endpoint.url} in {time.monotonic() - started:.1f}s")
        print(Path(endpoint.work_dir or "").exists())


if __name__ == "__main__":  # pragma: no cover
    _main()
