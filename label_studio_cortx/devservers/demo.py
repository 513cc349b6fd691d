"""``label-studio-cortx demo``: the plugin working end to end on one machine, with nothing else set up.

It starts, on 127.0.0.1:

1. a local S3-compatible endpoint (moto's standalone server, the ``demo`` extra) holding a bucket with a few
   dozen small generated images and a JSON task file;
2. Label Studio with the plugin on SQLite, with a demo user;

then creates (or, on a re-run, reuses) a project with a CORTX S3 source storage on that bucket (synced; media is
proxied through Label Studio) and a CORTX S3 target storage (annotations are written to ``annotations/``), prints
the URL and the login, and keeps running until Ctrl-C, which stops both servers.

moto keeps its data in memory, so every run seeds a fresh bucket; the Label Studio data (project, tasks,
annotations) stays in ``--data-dir``: a re-run points the storages at the new endpoint, syncs them again (no
duplicate tasks; existing annotations are written to the new bucket) and ``--reset`` starts over.

One module: the demo is one command-line program (arguments, steps, progress, banner) read top to bottom.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import sample_data

DEMO_USER = "demo@example.com"
PROJECT_TITLE = "CORTX S3 demo"
BUCKET = "cortx-demo"
ANNOTATIONS_PREFIX = "annotations"
DEFAULT_PORT = 8080
READY_MARK = "Ready:"
STEPS = 5


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "label-studio-cortx-demo"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="label-studio-cortx demo",
        description=(
            "Start a local S3 endpoint with sample images and Label Studio with the CORTX S3 storage type, "
            "with a project whose source and target storages point at that endpoint. Ctrl-C stops both."
        ),
    )
    parser.add_argument(
        "-p", "--port", type=int, default=DEFAULT_PORT, help=f"Label Studio's port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the demo keeps Label Studio's database and its login (default: %(default)s)",
    )
    parser.add_argument("--reset", action="store_true", help="delete the demo's Label Studio data first")
    parser.add_argument(
        "--images", type=int, default=sample_data.DEFAULT_COUNT, help="number of sample images (default %(default)s)"
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="serve the bucket over HTTPS with a private CA (its certificate goes into the storages' CA bundle)",
    )
    parser.add_argument("--open", action="store_true", help="open the project in a web browser when ready")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 1000:
        parser.error("--images must be between 1 and 1000")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


# --- output --------------------------------------------------------------------------------------------------
class Progress:
    """Numbered steps; a live timer on a terminal, a line every ten seconds otherwise (logs, CI)."""

    _ERASE_LINE = "\x1b[K"

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.step = 0
        self.label = ""
        self.started = 0.0
        self._last_line = 0.0
        self._open = False

    def note(self, text: str) -> None:
        self._write(f"      {text}")

    def begin(self, label: str) -> None:
        self.step += 1
        self.label = label
        self.started = time.monotonic()
        self._last_line = self.started
        self._open = self.tty
        self._write(f"[{self.step}/{STEPS}] {label} ...", end="" if self.tty else "\n")

    def tick(self, detail: str = "") -> None:
        elapsed = time.monotonic() - self.started
        if self.tty:
            # One terminal line, rewritten in place: cut to the width so that it never wraps.
            text = f"[{self.step}/{STEPS}] {self.label} ... {elapsed:.0f} s {detail}".rstrip()
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self._write("\r" + text[:width] + self._ERASE_LINE, end="")
        elif time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            self._write(f"      ... {elapsed:.0f} s {detail}".rstrip())

    def done(self, result: str = "done") -> None:
        elapsed = time.monotonic() - self.started
        suffix = f"{result} ({elapsed:.1f} s)"
        if self.tty:
            self._write(f"\r[{self.step}/{STEPS}] {self.label} ... {suffix}{self._ERASE_LINE}")
        else:
            self._write(f"      {suffix}")
        self._open = False

    def fail(self) -> None:
        """End a step's line that was left open by an interruption or an error."""
        if self._open:
            self._write("")
            self._open = False

    def _write(self, text: str, end: str = "\n") -> None:
        self.stream.write(text + end)
        self.stream.flush()


def say(text: str = "") -> None:
    print(text, flush=True)


# --- persistent demo state -------------------------------------------------------------------------------------
def load_login(data_dir: Path, ls_dir: Path) -> dict[str, str]:
    """The demo user's password and API token, made once and kept (0600) next to Label Studio's data."""
    path = data_dir / "demo-login.json"
    try:
        login = json.loads(path.read_text())
        if login.get("password") and login.get("token"):
            return login
    except (OSError, ValueError):
        pass
    if ls_dir.exists():
        # A database whose login we do not know cannot be used: start it over.
        shutil.rmtree(ls_dir)
    login = {"email": DEMO_USER, "password": secrets.token_urlsafe(9), "token": secrets.token_hex(20)}
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(login, fh, indent=2)
    return login


@contextlib.contextmanager
def single_instance(data_dir: Path):
    """Refuse a second demo on the same data directory (one SQLite database, one set of storages)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "demo.lock"
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DemoError(
                f"Another demo is already running with {data_dir}. Stop it, or pass another --data-dir."
            ) from None
        lock.write(str(os.getpid()))
        lock.flush()
        yield


class DemoError(Exception):
    """A problem the person running the demo can fix; shown without a traceback."""


# --- the S3 side ---------------------------------------------------------------------------------------------
def start_endpoint(https: bool):
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise DemoError(
            "The demo needs moto's S3 server, an optional extra: pip install 'label-studio-cortx[demo]'"
        ) from None
    # Imported once the [demo] extra is known to be there: moto_server needs it.
    from .moto_server import start_moto

    return start_moto(https=https, user_name="label-studio-cortx-demo")


def seed_bucket(endpoint, objects: list[tuple[str, bytes, str]]) -> None:
    client = endpoint.client()
    client.create_bucket(Bucket=BUCKET)
    for key, body, content_type in objects:
        client.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)


# --- the Label Studio side -------------------------------------------------------------------------------------
def storage_payload(endpoint, project_id: int, *, target: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "project": project_id,
        "bucket": BUCKET,
        "s3_endpoint": endpoint.url,
        "region_name": endpoint.region,
        "aws_access_key_id": endpoint.access_key,
        "aws_secret_access_key": endpoint.secret_key,
        "force_path_style": True,
        "ca_bundle": endpoint.ca_pem or "",
    }
    if target:
        payload.update(title="Demo annotations", prefix=ANNOTATIONS_PREFIX, can_delete_objects=True)
    else:
        payload.update(
            title="Demo tasks and images",
            prefix=sample_data.TASKS_KEY.rsplit("/", 1)[0],
            regex_filter=r".*\.json$",
            use_blob_urls=False,  # the bucket's JSON task file lists the tasks; images are resolved from s3:// URLs
            presign=False,  # proxy: the browser never talks to the S3 endpoint
        )
    return payload


def find_or_create_project(api) -> tuple[dict, bool]:
    projects = api.get("/api/projects", params={"page_size": 1000}).json()
    for project in projects.get("results", projects) if isinstance(projects, dict) else projects:
        if project.get("title") == PROJECT_TITLE:
            return project, False
    project = api.post(
        "/api/projects",
        json={
            "title": PROJECT_TITLE,
            "description": (
                f"Images and tasks from bucket '{BUCKET}' of a local S3 endpoint (CORTX S3 source storage); "
                f"annotations are written to '{ANNOTATIONS_PREFIX}/' (CORTX S3 target storage)."
            ),
            "label_config": sample_data.LABEL_CONFIG,
        },
    ).json()
    return project, True


def upsert_storage(api, endpoint, project_id: int, *, target: bool) -> dict:
    base = "/api/storages/export/cortx" if target else "/api/storages/cortx"
    payload = storage_payload(endpoint, project_id, target=target)
    existing = api.get(base, params={"project": project_id}).json()
    mine = [s for s in existing if s.get("title") == payload["title"]]
    if mine:
        return api.patch(f"{base}/{mine[0]['id']}", json=payload).json()
    return api.post(base, json=payload).json()


def sync_storage(api, storage: dict, *, target: bool, timeout: float = 600) -> dict:
    """Sync and wait for the final status (a large sync may go on in the background after the request)."""
    base = "/api/storages/export/cortx" if target else "/api/storages/cortx"
    result = api.post(f"{base}/{storage['id']}/sync", json={}).json()
    deadline = time.monotonic() + timeout
    while result.get("status") in ("initialized", "queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.5)
        result = api.get(f"{base}/{storage['id']}").json()
    if result.get("status") not in ("completed", "completed_with_errors"):
        raise DemoError(
            f"Syncing storage '{storage['title']}' ended with status {result.get('status')}:\n"
            f"{result.get('traceback') or ''}"
        )
    return result


def set_up_project(api, endpoint) -> dict[str, Any]:
    project, created = find_or_create_project(api)
    source = upsert_storage(api, endpoint, project["id"], target=False)
    source = sync_storage(api, source, target=False)
    target = upsert_storage(api, endpoint, project["id"], target=True)
    # A new target storage syncs when it is created; an existing one is synced so that the annotations made in
    # earlier runs are written to this run's (fresh, in-memory) bucket.
    if not created:
        target = sync_storage(api, target, target=True)
    tasks = api.get("/api/tasks", params={"project": project["id"], "page_size": 1}).json()
    total = tasks.get("total", 0) if isinstance(tasks, dict) else len(tasks)
    return {"project": project, "created": created, "source": source, "target": target, "tasks": total}


class AnnotationWatcher:
    """Prints each new object under ``annotations/``: what a submitted annotation looks like in the bucket."""

    def __init__(self, endpoint, interval: float = 2.0) -> None:
        self.client = endpoint.client()
        self.interval = interval
        self.seen: set[str] = set()
        self._next = 0.0

    def poll(self, announce: bool = True) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=ANNOTATIONS_PREFIX + "/"
            )
            current = {obj["Key"]: obj["Size"] for page in pages for obj in page.get("Contents", [])}
        except Exception:  # the endpoint is going away (Ctrl-C): nothing to report
            return
        for key in sorted(set(current) - self.seen):
            if announce:
                say(f"New annotation in the bucket: s3://{BUCKET}/{key} ({current[key]} bytes)")
        for key in sorted(self.seen - set(current)):
            say(f"Annotation deleted from the bucket: s3://{BUCKET}/{key}")
        self.seen = set(current)


# --- main --------------------------------------------------------------------------------------------------------
def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main_demo(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    data_dir: Path = args.data_dir.expanduser().absolute()
    # Ctrl-C stops the demo cleanly even when a shell started it in the background (which ignores SIGINT),
    # and so does SIGTERM (e.g. from a process manager).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with single_instance(data_dir):
            return _run(args, data_dir)
    except DemoError as exc:
        say(f"Error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    # Imported after main_demo has checked the [demo] extra (ls_server needs requests).
    from .ls_server import ApiError, LabelStudioStartError, start_label_studio

    ls_dir = data_dir / "label-studio"
    if args.reset and ls_dir.exists():
        shutil.rmtree(ls_dir)
        say(f"Reset: removed {ls_dir}")
    login = load_login(data_dir, ls_dir)
    first_run = not (ls_dir / "label_studio.sqlite3").exists()
    progress = Progress()
    endpoint = server = None
    stopping = False
    try:
        progress.begin(f"Drawing {args.images} sample images and a JSON task file")
        objects = sample_data.sample_objects(BUCKET, args.images)
        progress.done(f"{sum(len(body) for _, body, _ in objects) // 1024} KiB")

        progress.begin("Starting a local S3 endpoint (moto)")
        endpoint = start_endpoint(args.https)
        progress.done(endpoint.url)

        progress.begin(f"Filling bucket '{BUCKET}'")
        seed_bucket(endpoint, objects)
        progress.done(f"{len(objects) - 1} images + {sample_data.TASKS_KEY}")

        if first_run:
            progress.note("First run: Label Studio creates its database, which takes about a minute.")
        progress.begin("Starting Label Studio with the CORTX plugin")
        try:
            server = start_label_studio(
                port=args.port,
                data_dir=ls_dir,
                username=login["email"],
                password=login["password"],
                token=login["token"],
                trusted_endpoints=[endpoint.url],
                progress=lambda elapsed, line: progress.tick(_short_status(line)),
            )
        except LabelStudioStartError as exc:
            raise DemoError(str(exc)) from None
        progress.done(server.url)
        if server.port != args.port:
            say(f"      Port {args.port} is busy: Label Studio took port {server.port} instead.")

        progress.begin(f"Setting up project '{PROJECT_TITLE}' and its CORTX S3 storages")
        api = server.api()
        try:
            state = set_up_project(api, endpoint)
        except ApiError as exc:
            raise DemoError(f"Label Studio refused the demo set-up: {exc}\nLog: {server.log_path}") from None
        finally:
            api.close()
        source = state["source"]
        new = source.get("last_sync_count") or 0
        progress.done(f"{state['tasks']} tasks ({new} new)")

        project_url = f"{server.url}/projects/{state['project']['id']}/data"
        watcher = AnnotationWatcher(endpoint)
        watcher.poll(announce=False)
        state["exported"] = len(watcher.seen)
        _banner(server, endpoint, login, project_url, state, data_dir)
        if args.open:
            import webbrowser

            webbrowser.open(project_url)
        while server.running():
            time.sleep(1.0)
            watcher.poll()
        say(f"\nLabel Studio stopped unexpectedly (exit code {server.process.returncode}); log tail:")
        say(server.log_tail(20))
        return 1
    except KeyboardInterrupt:
        stopping = True
        progress.fail()
        say("\nStopping ...")
        return 0
    except BaseException:
        progress.fail()
        raise
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave a server behind (each stop is bounded).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if server is not None:
            server.stop()
        if endpoint is not None:
            endpoint.stop()
        if stopping:
            say(
                f"Stopped Label Studio and the S3 endpoint. Your project is kept in {data_dir}: run the demo "
                "again to continue, or add --reset to start over."
            )


def _short_status(line: str) -> str:
    if "Initializing database" in line:
        return "(applying database migrations)"
    if "Starting development server" in line or "Quit the server" in line:
        return "(starting the web server)"
    return ""


def _banner(server, endpoint, login, project_url: str, state: dict, data_dir: Path) -> None:
    source, target = state["source"], state["target"]
    verb = "Created" if state["created"] else "Reused"
    say("")
    say("=" * 78)
    say(f"{READY_MARK} Label Studio with CORTX S3 at {server.url}")
    say(f"  Log in:         {login['email']}  /  {login['password']}")
    say(f"  Project:        {project_url}  ({verb.lower()}, {state['tasks']} tasks)")
    say(f"  Source storage: '{source['title']}'  s3://{BUCKET}/{source.get('prefix')}/ (status {source['status']})")
    say(f"  Target storage: '{target['title']}'  s3://{BUCKET}/{ANNOTATIONS_PREFIX}/ - submitted annotations go here")
    if state.get("exported"):
        say(f"                  ({state['exported']} annotation(s) from earlier runs written to this run's bucket)")
    say(f"  S3 endpoint:    {endpoint.url}  (moto, in memory, reseeded on every run)")
    say(f"  Access key:     {endpoint.access_key}")
    say(f"  Secret key:     {endpoint.secret_key}")
    if endpoint.ca_path:
        say(f"  CA bundle:      {endpoint.ca_path}")
    say(f"  Data:           {data_dir}  (Label Studio log: {server.log_path})")
    say("")
    say("  Open the project, click a task, draw a box, choose the background, press Submit: the annotation")
    say(f"  appears in s3://{BUCKET}/{ANNOTATIONS_PREFIX}/ and is listed below (or use any S3 client).")
    say("Press Ctrl-C to stop.")
    say("=" * 78)
