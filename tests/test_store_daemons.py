"""The real-store daemons leave nothing behind when the process that started them is interrupted or killed.

A test run that is stopped with Ctrl-C (SIGINT), SIGTERM (CI cancelling a job) or SIGKILL must not leave
``weed``, ``ceph-mon``, ``ceph-osd`` or ``radosgw`` running, nor (for the first two signals) their work
directories. Each case starts a server in a child Python process, as a test session would, signals that process
once the server answers, and looks for every process whose command line names the server's work directory.
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

from label_studio_cortx.testing import daemons as daemons_module
from label_studio_cortx.testing.ceph_rgw import ceph_available
from label_studio_cortx.testing.daemons import remove_work_dir
from label_studio_cortx.testing.seaweedfs import weed_binary

from .endpoint_fixtures import _require

CHILD = textwrap.dedent(
    """
    import sys, time
    from label_studio_cortx.testing.ceph_rgw import start_ceph_rgw
    from label_studio_cortx.testing.seaweedfs import start_seaweedfs

    start = start_seaweedfs if sys.argv[1] == "seaweedfs" else start_ceph_rgw
    with start() as endpoint:
        endpoint.client().create_bucket(Bucket="alive")
        print("READY", endpoint.work_dir, flush=True)
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
    ],
    ids=["seaweedfs-SIGINT", "seaweedfs-SIGTERM", "seaweedfs-SIGKILL", "ceph-SIGINT", "ceph-SIGKILL"],
)
def test_an_interrupted_run_leaves_no_daemon_and_no_work_dir(server, sig):
    if server == "ceph":
        _require(ceph_available(), "Ceph (ceph-mon, ceph-osd, radosgw)")
    else:
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
