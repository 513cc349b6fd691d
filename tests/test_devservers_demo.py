"""``label-studio-cortx demo`` as a newcomer runs it: twice on the same data directory, stopped with Ctrl-C.

The demo runs as a subprocess on a free port; everything is checked over HTTP (Label Studio's API with the
demo's token, the S3 endpoint with the keys it prints), never through Django in this process.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import requests
from botocore.config import Config

from label_studio_cortx.devservers import demo, sample_data
from label_studio_cortx.devservers.ls_server import free_port, port_is_open

READY_TIMEOUT = 420  # the first run applies every migration (about a minute here, more on a busy machine)


class DemoRun:
    """One ``label-studio-cortx demo`` process; ``lines`` is everything it printed so far."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)  # the demo must work without pytest's settings module
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "label_studio_cortx.cli", "demo", "--port", str(port), "--data-dir", str(data_dir)]
            + list(extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"demo never printed {pattern!r}; output:\n" + "\n".join(self.lines))

    def drain(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    return
                continue
            if line is None:
                return
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def field(self, label: str) -> str:
        for line in self.lines:
            match = re.match(rf"\s*{re.escape(label)}:\s+(.*)$", line)
            if match:
                return match.group(1).strip()
        raise AssertionError(f"no '{label}:' line in the demo output:\n{self.output}")

    def children(self) -> list[int]:
        """PIDs whose parent is the demo (moto's server and Label Studio)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid:
                pids.append(int(entry.name))
        return pids

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _api(base_url: str, token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    session.base = base_url  # type: ignore[attr-defined]
    return session


def _get(session, path, **kwargs):
    response = session.get(session.base + path, timeout=60, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    return response.json()


def _s3(run: DemoRun):
    return boto3.client(
        "s3",
        endpoint_url=run.field("S3 endpoint").split()[0],
        aws_access_key_id=run.field("Access key"),
        aws_secret_access_key=run.field("Secret key"),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def _annotation_keys(s3) -> list[str]:
    listing = s3.list_objects_v2(Bucket=demo.BUCKET, Prefix=demo.ANNOTATIONS_PREFIX + "/")
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def _stop_and_check(run: DemoRun, ls_port: int, s3_port: int) -> None:
    children = run.children()
    assert len(children) >= 2, f"expected moto and Label Studio as children, got {children}"
    run.process.send_signal(signal.SIGINT)  # what Ctrl-C does
    assert run.process.wait(timeout=90) == 0
    run.drain()
    assert "Stopped Label Studio and the S3 endpoint" in run.output
    assert "Traceback" not in run.output, run.output
    for pid in children:
        assert not _alive(pid), f"child {pid} survived the demo"
    assert not port_is_open("127.0.0.1", ls_port) and not port_is_open("127.0.0.1", s3_port)


def _check_running_demo(run: DemoRun, port: int, data_dir: Path, *, first: bool) -> tuple[int, int]:
    ready = run.wait_for(rf"^{demo.READY_MARK}", READY_TIMEOUT)
    run.wait_for(r"Press Ctrl-C to stop", 10)
    base_url = re.search(r"(http://127\.0\.0\.1:\d+)", ready).group(1)
    assert base_url == f"http://127.0.0.1:{port}"
    for step in range(1, demo.STEPS + 1):
        assert f"[{step}/{demo.STEPS}]" in run.output  # progress was shown
    email, password = (part.strip() for part in run.field("Log in").split("/", 1))
    assert email == demo.DEMO_USER and password
    login = json.loads((data_dir / "demo-login.json").read_text())
    assert login["password"] == password
    s3_url = run.field("S3 endpoint").split()[0]
    assert s3_url.startswith("http://127.0.0.1:")

    # The login works for a person (session login page), not only for the API token.
    browser = requests.Session()
    page = browser.get(f"{base_url}/user/login/", timeout=60)
    csrf = browser.cookies.get("csrftoken") or re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    signed_in = browser.post(
        f"{base_url}/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base_url}/user/login/"},
        timeout=60,
    )
    assert signed_in.status_code == 200 and "/user/login" not in signed_in.url, signed_in.url

    api = _api(base_url, login["token"])
    projects = [p for p in _get(api, "/api/projects")["results"] if p["title"] == demo.PROJECT_TITLE]
    assert len(projects) == 1
    project = projects[0]
    sources = _get(api, "/api/storages/cortx", params={"project": project["id"]})
    targets = _get(api, "/api/storages/export/cortx", params={"project": project["id"]})
    assert len(sources) == 1 and len(targets) == 1
    assert sources[0]["type"] == "cortx" and sources[0]["status"] == "completed"
    assert sources[0]["s3_endpoint"] == s3_url and targets[0]["s3_endpoint"] == s3_url
    assert sources[0]["presign"] is False  # proxy mode
    assert sources[0]["last_sync_count"] == (sample_data.DEFAULT_COUNT if first else 0)

    tasks = _get(api, "/api/tasks", params={"project": project["id"], "page_size": 100})
    assert tasks["total"] == sample_data.DEFAULT_COUNT  # a re-run adds no duplicates
    task = _get(api, f"/api/tasks/{tasks['tasks'][0]['id']}")
    image_url = task["data"]["image"]
    assert image_url.startswith(f"/tasks/{task['id']}/resolve/?fileuri=") and s3_url not in image_url
    image = api.get(base_url + image_url, timeout=60)
    assert image.status_code == 200 and image.headers["Content-Type"].startswith("image/")
    from PIL import Image

    assert Image.open(io.BytesIO(image.content)).size == sample_data.SIZE
    return project["id"], task["id"]


def test_demo_first_run_rerun_and_ctrl_c(tmp_path):
    data_dir = tmp_path / "demo-data"

    # --- first run: everything is created ---
    port = free_port()
    run = DemoRun(data_dir, port)
    try:
        project_id, task_id = _check_running_demo(run, port, data_dir, first=True)
        assert "(created, 36 tasks)" in run.output
        s3 = _s3(run)
        assert len(s3.list_objects_v2(Bucket=demo.BUCKET, Prefix=sample_data.IMAGE_PREFIX)["Contents"]) == 36
        assert _annotation_keys(s3) == []

        # An annotation submitted in Label Studio lands in the bucket (and the demo says so).
        login = json.loads((data_dir / "demo-login.json").read_text())
        api = _api(f"http://127.0.0.1:{port}", login["token"])
        result = [
            {
                "from_name": "shape",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": 320,
                "original_height": 240,
                "value": {"x": 10, "y": 10, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Circle"]},
            },
            {"from_name": "background", "to_name": "image", "type": "choices", "value": {"choices": ["Light"]}},
        ]
        created = api.post(
            f"http://127.0.0.1:{port}/api/tasks/{task_id}/annotations/", json={"result": result}, timeout=60
        )
        assert created.status_code == 201, created.text
        annotation_id = created.json()["id"]
        key = f"{demo.ANNOTATIONS_PREFIX}/{annotation_id}"
        # The save answers before the export (it runs off the request), so wait for the demo's report.
        run.wait_for(rf"New annotation in the bucket: s3://{demo.BUCKET}/{re.escape(key)}", 30)
        assert _annotation_keys(s3) == [key]
        exported = json.loads(s3.get_object(Bucket=demo.BUCKET, Key=key)["Body"].read())
        assert exported["result"][0]["value"]["rectanglelabels"] == ["Circle"]
        s3_port = int(run.field("S3 endpoint").split()[0].rsplit(":", 1)[1])
        _stop_and_check(run, port, s3_port)
    finally:
        run.kill()

    # --- second run on the same data: the project is reused, the new bucket gets the old annotation ---
    port = free_port()
    run = DemoRun(data_dir, port)
    try:
        project_id_again, _ = _check_running_demo(run, port, data_dir, first=False)
        assert project_id_again == project_id
        assert "(reused, 36 tasks)" in run.output
        assert "(1 annotation(s) from earlier runs written to this run's bucket)" in run.output
        assert _annotation_keys(_s3(run)) == [key]
        s3_port = int(run.field("S3 endpoint").split()[0].rsplit(":", 1)[1])
        _stop_and_check(run, port, s3_port)
    finally:
        run.kill()


def test_second_demo_on_the_same_data_dir_is_refused(tmp_path):
    """The lock is taken before anything starts, so this needs no running servers."""
    data_dir = tmp_path / "demo-data"
    with demo.single_instance(data_dir):
        result = subprocess.run(
            [sys.executable, "-m", "label_studio_cortx.cli", "demo", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert "Another demo is already running" in result.stdout


def test_demo_defaults_follow_label_studio(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    args = demo.parse_args([])
    assert args.port == 8080 and not args.reset and not args.https
    assert args.data_dir == tmp_path / "label-studio-cortx-demo"
    assert demo.parse_args(["--port", "9001", "--reset"]).port == 9001


def test_sample_data_is_real_distinct_images_and_a_task_file():
    from PIL import Image

    objects = sample_data.sample_objects("bucket-x")
    images, (tasks_key, tasks_body, tasks_type) = objects[:-1], objects[-1]
    assert len(images) == sample_data.DEFAULT_COUNT and tasks_key == sample_data.TASKS_KEY
    assert len({body for _, body, _ in images}) == len(images)  # all different
    for key, body, content_type in images:
        picture = Image.open(io.BytesIO(body))
        assert picture.size == sample_data.SIZE
        assert picture.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[content_type]
        assert key.startswith(sample_data.IMAGE_PREFIX) and len(body) < 20_000
    assert {ct for _, _, ct in images} == {"image/png", "image/jpeg"}
    tasks = json.loads(tasks_body)
    assert tasks_type == "application/json"
    assert [t["data"]["image"] for t in tasks] == [f"s3://bucket-x/{key}" for key, _, _ in images]
    assert sample_data.sample_objects("bucket-x") == objects  # deterministic: re-runs seed the same bytes
