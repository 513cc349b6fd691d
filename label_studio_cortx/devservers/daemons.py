"""Running real S3 servers (SeaweedFS, Ceph) as test daemons: process lifetime, readiness, leftovers.

This module owns what :mod:`.seaweedfs` and :mod:`.ceph_rgw` share:

- :class:`RealS3Endpoint`, an :class:`~.moto_server.S3Endpoint` that also names its server and version and hands
  out a read-only key pair made by the server's own user/policy machinery (:meth:`RealS3Endpoint.read_only_key`);
- :func:`spawn`: daemons in their own process group whose kernel-side parent-death signal is SIGKILL, so even a
  SIGKILLed test run does not leave ``weed`` or ``ceph-osd`` behind (their stores are throw-away, and a radosgw
  SIGTERMed together with its monitor hangs in its shutdown for good);
- :func:`stop_in_order`: SIGTERM one daemon after the other (Ceph wants rgw, osd, mon in that order), SIGKILL
  only after a grace period, always reaped;
- :func:`register_cleanup`: ``atexit`` plus SIGTERM/SIGHUP handlers that stop every running server before the
  signal takes its default effect (``pytest``'s own teardown covers Ctrl-C);
- :func:`work_dir`: per-server temporary directories under one root, with stale ones of dead test runs removed
  (with the sockets a server left outside its directory, :func:`note_outside_files`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .moto_server import S3Endpoint
from .processes import die_with_parent

# All real-server work directories live below this root so that a later run can find and remove the ones an
# interrupted run left behind (see work_dir).
WORK_ROOT = Path(tempfile.gettempdir()) / "label-studio-cortx-stores"
_OWNER_FILE = "owner.pid"


@dataclass
class RealS3Endpoint(S3Endpoint):
    """An S3 endpoint served by a real object store running on 127.0.0.1."""

    server: str = "real"
    """Short server name used in test ids and skip reasons ("SeaweedFS", "Ceph RGW")."""
    version: str = ""
    work_dir: str | None = None
    _read_only: Callable[[str | None], tuple[str, str]] | None = field(default=None, repr=False, compare=False)

    def read_only_key(self, bucket: str | None = None) -> tuple[str, str]:
        """An access key pair that may list and read ``bucket`` (or every bucket) but not write."""
        if self._read_only is None:
            raise NotImplementedError(f"{self.server} has no read-only identity")
        return self._read_only(bucket)

    def __enter__(self) -> RealS3Endpoint:
        return self


# ---- processes ------------------------------------------------------------------------------------------------


def spawn(argv: Sequence[str], log_path: Path, *, cwd: str | Path | None = None, env: dict[str, str] | None = None):
    """Start ``argv`` with output to ``log_path``, in a new session, SIGKILLed by the kernel if we die.

    A new session keeps a terminal's Ctrl-C away from the daemons: pytest gets it, and its fixture teardown stops
    them in the right order. The parent-death signal is tied to the spawning thread; the session fixtures that
    call this run in pytest's main thread, which lives as long as the run.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


def stop_in_order(processes: Iterable[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    """SIGTERM each process in turn and wait for it; SIGKILL (its whole group) only after ``grace`` seconds."""
    for process in processes:
        if process.poll() is None:
            try:
                process.terminate()
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.wait(timeout=grace)
        else:
            process.wait()
        # Anything the daemon forked itself shares its process group: do not let it outlive the daemon.
        _kill_group(process, only_if_alive=True)


def _kill_group(process: subprocess.Popen[bytes], only_if_alive: bool = False) -> None:
    try:
        if only_if_alive:
            os.killpg(process.pid, 0)
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(paths: Iterable[Path | str], lines: int = 30) -> str:
    """The last ``lines`` lines of each existing log, headed by its name (for start-up error messages)."""
    parts = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        tail = "\n".join(text.splitlines()[-lines:]) or "<empty>"
        parts.append(f"--- {Path(path).name} ---\n{tail}")
    return "\n".join(parts) or "<no logs>"


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    logs: Iterable[Path | str],
    processes: Sequence[subprocess.Popen[bytes]] = (),
    interval: float = 0.2,
) -> None:
    """Poll ``ready()`` until it is true; raise ``RuntimeError`` with the logs' tails on timeout or a daemon exit."""
    deadline = time.monotonic() + timeout
    logs = list(logs)
    while True:
        if ready():
            return
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            names = ", ".join(f"{Path(str(p.args[0])).name} (exit {p.returncode})" for p in dead)  # type: ignore[index]
            raise RuntimeError(f"{what}: {names} exited during start-up; log tail:\n{log_tail(logs)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {timeout:g}s; log tail:\n{log_tail(logs)}")
        time.sleep(interval)


def run_tool(argv: Sequence[str], *, timeout: float = 60.0, what: str, logs: Iterable[Path | str] = ()) -> str:
    """Run an admin command to completion; its stdout, or ``RuntimeError`` with its output and the logs."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),  # e.g. radosgw-admin waiting for a monitor must not outlive us
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"{what}: {argv[0]} did not finish within {timeout:g}s; log tail:\n{log_tail(logs)}"
        ) from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"{what}: {' '.join(argv[:3])} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}\n"
            f"log tail:\n{log_tail(logs)}"
        )
    return done.stdout


# ---- cleanup at exit and on signals ---------------------------------------------------------------------------

_CLEANUPS: dict[int, Callable[[], Any]] = {}
_CLEANUPS_LOCK = threading.Lock()
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_previous_handlers: dict[int, Any] = {}
_installed: list[bool] = []  # non-empty once the atexit hook and signal handlers are in place


def _run_cleanups() -> None:
    with _CLEANUPS_LOCK:
        pending = list(_CLEANUPS.items())
        _CLEANUPS.clear()
    for _, cleanup in reversed(pending):
        try:
            cleanup()
        except Exception:  # at exit every server must get its chance to stop
            pass


def _on_signal(signum: int, frame: Any) -> None:
    _run_cleanups()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    # Dying by the signal skips atexit: run its hooks now (the run's other servers and temporary directories,
    # e.g. moto's and Label Studio's data directory), then give the signal its default effect (terminate).
    run_exit_hooks = getattr(atexit, "_run_exitfuncs", None)  # CPython's; atexit has no public "run now"
    if run_exit_hooks is not None:
        try:
            run_exit_hooks()
        except Exception:
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def register_cleanup(cleanup: Callable[[], Any]) -> Callable[[], None]:
    """Run ``cleanup`` at interpreter exit or on SIGTERM/SIGHUP; the returned callable unregisters it."""
    token = id(cleanup)
    with _CLEANUPS_LOCK:
        first = not _installed
        if first:
            _installed.append(True)
        _CLEANUPS[token] = cleanup
    if first:
        atexit.register(_run_cleanups)
        if threading.current_thread() is threading.main_thread():
            for signum in _HANDLED_SIGNALS:
                if signal.getsignal(signum) is signal.SIG_IGN:
                    continue  # e.g. SIGHUP under nohup: the run is meant to survive it, and so are its servers
                _previous_handlers[signum] = signal.signal(signum, _on_signal)

    def unregister() -> None:
        with _CLEANUPS_LOCK:
            _CLEANUPS.pop(token, None)

    return unregister


# ---- work directories -----------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


_OUTSIDE_FILE = "outside.txt"


def note_outside_files(root: Path, paths: Iterable[str | Path]) -> None:
    """Record sockets a server creates outside its work directory ``root``, for :func:`remove_work_dir`.

    SeaweedFS puts its gRPC sockets at fixed ``/tmp/seaweedfs-<service>-grpc-<port>.sock`` paths (not under
    ``$TMPDIR``, and without a flag to move them) and leaves some behind even on a clean stop.
    """
    with open(root / _OUTSIDE_FILE, "a") as listing:
        listing.writelines(f"{path}\n" for path in paths)


def remove_work_dir(root: Path) -> None:
    """Remove ``root`` and the sockets recorded by :func:`note_outside_files` (only sockets are removed)."""
    try:
        outside = (root / _OUTSIDE_FILE).read_text().splitlines()
    except OSError:
        outside = []
    for line in outside:
        try:
            if line and stat.S_ISSOCK(os.lstat(line).st_mode):
                os.unlink(line)
        except OSError:
            pass
    shutil.rmtree(root, ignore_errors=True)


def _remove_stale_dirs() -> None:
    """Remove work directories whose owning test process is gone (a SIGKILLed or crashed run)."""
    if not WORK_ROOT.is_dir():
        return
    for entry in WORK_ROOT.iterdir():
        try:
            owner = int((entry / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            owner = 0
        if owner and _pid_alive(owner):
            continue
        if not owner and _younger_than(entry, 60):
            continue  # another run is between creating it and writing its owner file
        # The daemons of a dead owner got SIGKILL from the kernel (parent-death signal); their files can go.
        remove_work_dir(entry)


def work_dir(prefix: str) -> Path:
    """A fresh directory for one server under :data:`WORK_ROOT`, marked with this process as its owner."""
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    _remove_stale_dirs()
    # Short names: Unix socket paths (Ceph's admin sockets) are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=WORK_ROOT))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    return path
