"""The real-store daemons leave nothing behind when the process that started them is interrupted or killed.

A test run that is stopped with Ctrl-C (SIGINT), SIGTERM (CI cancelling a job) or SIGKILL must not leave
``weed``, ``ceph-mon``, ``ceph-osd``, ``radosgw`` or a moto server running, nor (for the first two signals) the
real stores' work directories. Each case starts a server in a child Python process, as a test session would,
signals that process once the server answers, and looks for every process whose command line names the server
(its work directory; for moto, its port).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from label_studio_cortx.devservers import daemons as daemons_module
from label_studio_cortx.devservers.ceph_rgw import ceph_available
from label_studio_cortx.devservers.daemons import remove_work_dir
from label_studio_cortx.devservers.seaweedfs import weed_binary

from .endpoint_fixtures import _require

CHILD = textwrap.dedent(
    """
    import sys, time
    from label_studio_cortx.devservers.ceph_rgw import start_ceph_rgw
    from label_studio_cortx.devservers.moto_server import start_moto
    from label_studio_cortx.devservers.seaweedfs import start_seaweedfs

    start = {"seaweedfs": start_seaweedfs, "ceph": start_ceph_rgw, "moto": start_moto}[sys.argv[1]]
    with start() as endpoint:
        endpoint.client().create_bucket(Bucket="alive")
        # What names the server's processes: its work directory, or (moto) its command line.
        names = getattr(endpoint, "work_dir", None) or f"moto.server -H 127.0.0.1 -p {endpoint.port}"
        print("READY", names, flush=True)
        time.sleep(600)
    """
)


def _processes_naming(text: str) -> list[str]:
    """Command lines of live (not zombie) processes that contain ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def _start_child(server: str) -> tuple[subprocess.Popen[str], str]:
    # Ctrl-C must reach the child as it reaches pytest in a terminal, even where this run ignores SIGINT (a
    # background job of a non-interactive shell).
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, server],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("READY "):
            return child, line.split(" ", 1)[1].strip()
    child.wait(timeout=30)
    pytest.fail(f"{server} did not start in the child process (exit {child.returncode})")


@pytest.mark.parametrize(
    "server, sig",
    [
        ("seaweedfs", signal.SIGINT),
        ("seaweedfs", signal.SIGTERM),
        ("seaweedfs", signal.SIGKILL),
        ("ceph", signal.SIGINT),
        ("ceph", signal.SIGKILL),
        ("moto", signal.SIGTERM),
        ("moto", signal.SIGKILL),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_an_interrupted_run_leaves_no_daemon_and_no_work_dir(server, sig):
    if server == "ceph":
        _require(ceph_available(), "Ceph (ceph-mon, ceph-osd, radosgw)")
    elif server == "seaweedfs":
        _require(weed_binary() is not None, "SeaweedFS (weed)")
    child, work_dir = _start_child(server)
    try:
        daemons = _processes_naming(work_dir)
        assert daemons, f"no {server} daemon runs with {work_dir}"
        child.send_signal(sig)
        child.wait(timeout=60)
        deadline = time.monotonic() + 20
        while _processes_naming(work_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_naming(work_dir) == [], f"left running after {sig.name}"
        if server == "moto":
            return
        if sig != signal.SIGKILL:
            assert not Path(work_dir).exists(), f"{work_dir} left after {sig.name}"
        else:
            # A killed process cannot clean up: the next server started removes what it left.
            fresh = daemons_module.work_dir("next-run")
            remove_work_dir(fresh)
            assert not Path(work_dir).exists(), f"{work_dir} of a killed run was not removed by the next run"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
