"""Pull side of annotation snapshots (label_studio_cortx.pull) against a real S3 endpoint over HTTP.

Snapshots are produced the way the server side produces them: Label Studio's converter
(``label_studio_sdk.converter.Converter``) runs on a small Label Studio JSON export, directory formats are zipped
like Label Studio's export download does (``shutil.make_archive``), and everything is uploaded with a manifest
to moto's standalone S3 server (a subprocess with SigV4 authentication enforced).

These tests need no database and no Django settings: ``pytest -p no:django tests/test_pull.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest

from label_studio_cortx import __version__ as plugin_version
from label_studio_cortx.pull import (
    ChecksumMismatch,
    SnapshotError,
    list_snapshots,
    load,
    load_coco,
    load_csv,
    load_json,
    load_voc,
    load_yolo,
    main_pull,
    make_client,
    pull,
    read_manifest,
)
from label_studio_cortx.pull import manifest as mf
from label_studio_cortx.pull.manifest import ManifestFile, ManifestProject, SnapshotManifest
from tests.annotation_helpers import box

REPO_ROOT = Path(__file__).resolve().parents[1]
BUCKET = "annotation-snapshots"

# --------------------------------------------------------------------------------------------------------------------
# A small image project: RectangleLabels boxes plus a Choices classification
# --------------------------------------------------------------------------------------------------------------------

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/>
    <Label value="Dog"/>
  </RectangleLabels>
  <Choices name="quality" toName="image">
    <Choice value="good"/>
    <Choice value="blurry"/>
  </Choices>
</View>"""


def _choice(value: str) -> dict:
    return {
        "id": f"c-{value}",
        "from_name": "quality",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": [value]},
    }


def _annotation(annotation_id: int, result: list[dict]) -> dict:
    return {
        "id": annotation_id,
        "completed_by": 1,
        "result": result,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-11-27T10:00:00.000000Z",
        "updated_at": "2026-11-27T10:05:00.000000Z",
        "lead_time": 4.5,
    }


# Image URLs of the three kinds a project has; none is downloadable here (see _convert).
TASKS = [
    {
        "id": 1,
        "data": {"image": "/data/upload/7/cat1.jpg"},
        "annotations": [_annotation(11, [box("r1", 10, 20, 30, 40, "Cat", 640, 480), _choice("good")])],
    },
    {
        "id": 2,
        "data": {"image": "s3://raw-images/dog2.png"},
        "annotations": [
            _annotation(
                12,
                [
                    box("r2", 50, 50, 25, 25, "Dog", 800, 600),
                    box("r3", 0, 0, 10, 10, "Cat", 800, 600),
                    _choice("blurry"),
                ],
            )
        ],
    },
    {"id": 3, "data": {"image": "https://example.invalid/unlabeled3.jpg"}, "annotations": []},
]
TASK_COUNT = 3
ANNOTATION_COUNT = 2

ARCHIVE_FORMATS = ("COCO", "VOC", "YOLO")


def _convert(fmt: str, work: Path, tasks: list[dict]) -> Path:
    """Run Label Studio's converter exactly as its export does (data_export/mixins.py ``convert_file``).

    ``download_resources=False`` keeps it offline: COCO/YOLO force it off themselves (only the *_WITH_IMAGES
    variants download), but VOC uses the constructor value, which defaults to True. With it off and no
    LABEL_STUDIO_URL, /data/upload/... and s3:// images fail to resolve and are recorded by their URL;
    http(s) URLs map to a not-downloaded cache name in images/.
    """
    from label_studio_sdk.converter import Converter  # only the tests need the converter

    work.mkdir(parents=True, exist_ok=True)
    input_json = work / "export.json"
    input_json.write_text(json.dumps(tasks), encoding="utf-8")
    out_dir = work / "out"
    out_dir.mkdir()
    converter = Converter(config=LABEL_CONFIG, project_dir=None, upload_dir=str(out_dir), download_resources=False)
    converter.convert(str(input_json), str(out_dir), fmt, is_dir=False)
    return out_dir


# --------------------------------------------------------------------------------------------------------------------
# moto's standalone S3 server (local fixture; SigV4 enforced after a 3-request IAM bootstrap)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    url: str
    access_key: str
    secret_key: str

    def client(self, **kwargs):
        params = {"access_key": self.access_key, "secret_key": self.secret_key, "max_attempts": 2, **kwargs}
        return make_client(self.url, **params)

    def cli(self, *args: str) -> list[str]:
        return [
            "--endpoint",
            self.url,
            "--access-key",
            self.access_key,
            "--secret-key",
            self.secret_key,
            "--no-progress",
            *args,
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(log_path: Path, extra_args: list[str], env_extra: dict[str, str], scheme: str, ssl_ctx=None):
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    env.pop("TEST_SERVER_MODE", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port), *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl_ctx))
    deadline = time.monotonic() + 30
    while True:
        try:
            opener.open(f"{url}/moto-api/config", timeout=2).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"moto server did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[Endpoint]:
    """moto over HTTP on 127.0.0.1 with authentication: only the bootstrapped IAM key is accepted."""
    import boto3

    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc, url = _start_moto(log, [], {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}, "http")
    try:
        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=url,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
            region_name="us-east-1",
        )
        iam.create_user(UserName="trainer")
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        iam.put_user_policy(
            UserName="trainer",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        endpoint = Endpoint(url, key["AccessKeyId"], key["SecretAccessKey"])
        endpoint.client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        _stop(proc)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No ambient credentials/endpoint/Label Studio host may leak into the code under test."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "CORTX_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "LABEL_STUDIO_URL",
        "LABEL_STUDIO_HOST",
        "LABEL_STUDIO_API_KEY",
        "LABEL_STUDIO_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --------------------------------------------------------------------------------------------------------------------
# Publishing snapshots the way the writer does
# --------------------------------------------------------------------------------------------------------------------


def publish(
    client,
    prefix: str,
    fmt: str,
    ts: str,
    work: Path,
    tasks: list[dict] = TASKS,
    latest: bool = True,
    archive_override: Path | None = None,
) -> SnapshotManifest:
    """Convert, package, upload the files, then the manifest, then (last) latest.json."""
    out_dir = _convert(fmt, work / f"{fmt}-{ts}", tasks)
    if fmt in ARCHIVE_FORMATS:
        base = work / f"{fmt}-{ts}" / "pkg" / fmt
        archive = Path(shutil.make_archive(str(base), "zip", str(out_dir)))  # what Label Studio's export does
        local = [(mf.archive_name(fmt), archive_override or archive, True)]
    else:
        (single,) = os.listdir(out_dir)  # single-file formats: exactly one file, no folder
        local = [(single, out_dir / single, False)]
    files = []
    for name, path, is_archive in local:
        entry = ManifestFile.for_file(path, prefix, ts, name=name, archive=is_archive)
        assert entry.key == mf.file_key(prefix, ts, name) and entry.size == path.stat().st_size
        client.put_object(Bucket=BUCKET, Key=entry.key, Body=path.read_bytes())
        files.append(entry)
    manifest = SnapshotManifest(
        snapshot=ts,
        created_at=mf.utc_isoformat(),
        format=fmt,
        project=ManifestProject(id=7, title="Pets"),
        label_studio_version=dist_version("label-studio"),
        plugin_version=plugin_version,
        task_count=len(tasks),
        annotation_count=sum(len(t["annotations"]) for t in tasks),
        files=files,
    )
    body = manifest.to_json().encode()
    client.put_object(Bucket=BUCKET, Key=mf.manifest_key(prefix, ts), Body=body)
    if latest:
        client.put_object(Bucket=BUCKET, Key=mf.latest_key(prefix), Body=body)
    return manifest


@pytest.fixture(scope="module")
def published(s3, tmp_path_factory) -> dict[str, tuple[str, SnapshotManifest]]:
    """One snapshot per format, each under its own storage prefix."""
    client = s3.client()
    work = tmp_path_factory.mktemp("publish")
    result = {}
    for i, fmt in enumerate(("COCO", "VOC", "YOLO", "CSV", "TSV", "JSON_MIN")):
        prefix = f"projects/pets/{fmt.lower()}"
        ts = mf.new_snapshot_id(datetime(2026, 11, 27, 20, 30, i, tzinfo=timezone.utc))
        result[fmt] = (prefix, publish(client, prefix, fmt, ts, work))
    return result


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main_pull(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ====================================================================================================================
# manifest.py
# ====================================================================================================================


def _sample_manifest() -> SnapshotManifest:
    return SnapshotManifest(
        snapshot="20261127T203015Z",
        created_at="2026-11-27T20:30:15Z",
        format="COCO",
        project=ManifestProject(id=3, title="Cats"),
        label_studio_version="1.23.2",
        plugin_version="0.1.0",
        task_count=3,
        annotation_count=2,
        files=[ManifestFile("COCO.zip", "p/snapshots/20261127T203015Z/COCO.zip", 10, "ab" * 32, True)],
    )


def test_manifest_roundtrip_and_schema():
    manifest = _sample_manifest()
    data = json.loads(manifest.to_json())
    assert data == {
        "manifest_version": 1,
        "snapshot": "20261127T203015Z",
        "created_at": "2026-11-27T20:30:15Z",
        "format": "COCO",
        "project": {"id": 3, "title": "Cats"},
        "label_studio_version": "1.23.2",
        "plugin_version": "0.1.0",
        "task_count": 3,
        "annotation_count": 2,
        "files": [
            {
                "name": "COCO.zip",
                "key": "p/snapshots/20261127T203015Z/COCO.zip",
                "size": 10,
                "sha256": "ab" * 32,
                "archive": True,
            }
        ],
    }
    assert SnapshotManifest.from_json(manifest.to_json()) == manifest
    assert manifest.total_size == 10 and manifest.archives == manifest.files


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("files"), "missing required field(s): files"),
        (lambda d: d.update(task_count="3"), "manifest.task_count: expected an integer"),
        (lambda d: d.update(snapshot="latest"), "manifest.snapshot"),
        (lambda d: d.update(manifest_version=2), "newer than the supported version 1"),
        (lambda d: d.update(created_at="yesterday"), "not an ISO 8601 timestamp"),
        (lambda d: d["files"][0].update(sha256="xyz"), "manifest.files[0].sha256"),
        (lambda d: d["files"][0].update(name="../evil.zip"), "manifest.files[0].name"),
        (lambda d: d["files"][0].update(name="manifest.json"), "reserved"),
        (lambda d: d["files"][0].pop("key"), "manifest.files[0]: missing required field(s): key"),
        (lambda d: d["project"].pop("id"), "manifest.project: missing required field(s): id"),
    ],
)
def test_manifest_validation_errors(mutate, message):
    data = _sample_manifest().to_dict()
    mutate(data)
    with pytest.raises(ValueError) as info:
        SnapshotManifest.from_json(json.dumps(data))
    assert message in str(info.value)


def test_manifest_rejects_non_json():
    with pytest.raises(ValueError, match="not valid JSON"):
        SnapshotManifest.from_json("{nope")


def test_key_helpers_and_ids():
    assert mf.snapshots_root("") == "snapshots/"
    assert mf.snapshots_root("a/b/") == "a/b/snapshots/"
    assert mf.snapshot_folder("a/b", "20261127T203015Z") == "a/b/snapshots/20261127T203015Z/"
    assert mf.manifest_key("a", "20261127T203015Z") == "a/snapshots/20261127T203015Z/manifest.json"
    assert mf.latest_key(None) == "snapshots/latest.json"
    assert mf.file_key("a", "20261127T203015Z", "COCO.zip") == "a/snapshots/20261127T203015Z/COCO.zip"
    with pytest.raises(ValueError):
        mf.snapshot_folder("a", "latest")
    cet = timezone(timedelta(hours=1))
    assert mf.new_snapshot_id(datetime(2026, 11, 27, 21, 30, 15, tzinfo=cet)) == "20261127T203015Z"
    assert mf.new_snapshot_id(datetime(2026, 11, 27, 20, 30, 15)) == "20261127T203015Z"
    assert mf.is_snapshot_id(mf.new_snapshot_id())
    assert mf.utc_isoformat(datetime(2026, 11, 27, 21, 30, 15, 999, tzinfo=cet)) == "2026-11-27T20:30:15Z"


# ====================================================================================================================
# Pulling each format through the CLI and checking the content via the loaders
# ====================================================================================================================


def test_pull_coco(s3, published, tmp_path, capsys):
    prefix, manifest = published["COCO"]
    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, str(tmp_path)))
    assert code == 0, err
    folder = tmp_path / manifest.snapshot
    lines = out.splitlines()
    assert lines[0] == str(folder)
    assert lines[1].startswith(f"COCO snapshot {manifest.snapshot} of project 7 'Pets': 1 file(s)")
    assert lines[1].endswith("3 tasks, 2 annotations")

    # The archive was verified, unpacked (COCO: result.json + images/) and removed; the manifest copied.
    assert sorted(p.name for p in folder.iterdir()) == ["images", "manifest.json", "result.json"]
    assert SnapshotManifest.from_json((folder / "manifest.json").read_text()) == manifest

    coco = load(folder)
    assert coco == load_coco(folder)
    categories = {c["name"]: c["id"] for c in coco["categories"]}
    assert {"Cat", "Dog"} <= set(categories)
    by_image = {img["file_name"]: img for img in coco["images"]}
    assert by_image["/data/upload/7/cat1.jpg"]["width"] == 640
    assert by_image["s3://raw-images/dog2.png"]["height"] == 600
    boxes = sorted(
        (by_id["file_name"], name, a["bbox"])
        for a in coco["annotations"]
        for by_id in [next(i for i in coco["images"] if i["id"] == a["image_id"])]
        for name in [next(n for n, i in categories.items() if i == a["category_id"])]
    )
    assert boxes == [
        ("/data/upload/7/cat1.jpg", "Cat", [64.0, 96.0, 192.0, 192.0]),
        ("s3://raw-images/dog2.png", "Cat", [0.0, 0.0, 80.0, 60.0]),
        ("s3://raw-images/dog2.png", "Dog", [400.0, 300.0, 200.0, 150.0]),
    ]
    assert len(coco["images"]) == TASK_COUNT  # the unlabeled task is listed too


def test_pull_voc(s3, published, tmp_path, capsys):
    prefix, manifest = published["VOC"]
    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, str(tmp_path)))
    assert code == 0, err
    folder = Path(out.splitlines()[0])
    assert folder == tmp_path / manifest.snapshot
    assert (folder / "Annotations").is_dir() and (folder / "images").is_dir()
    assert not (folder / "VOC.zip").exists()

    voc = load(folder)
    assert voc == load_voc(folder)
    assert [d["filename"] for d in voc] == ["cat1.jpg", "dog2.png"]  # the unlabeled task has no XML
    cat1, dog2 = voc
    assert cat1["annotation_file"] == "Annotations/cat1.xml"
    assert cat1["size"] == {"width": 640, "height": 480, "depth": 3}
    assert cat1["objects"] == [
        {
            "name": "Cat",
            "bbox": {"xmin": 64, "ymin": 96, "xmax": 256, "ymax": 288},
            "pose": "Unspecified",
            "truncated": 0,
            "difficult": 0,
        }
    ]
    assert dog2["size"]["width"] == 800
    assert [(o["name"], o["bbox"]) for o in dog2["objects"]] == [
        ("Dog", {"xmin": 400, "ymin": 300, "xmax": 600, "ymax": 450}),
        ("Cat", {"xmin": 0, "ymin": 0, "xmax": 80, "ymax": 60}),
    ]


def test_pull_yolo_keep_archives(s3, published, tmp_path, capsys):
    prefix, manifest = published["YOLO"]
    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, "--keep-archives", str(tmp_path)))
    assert code == 0, err
    folder = tmp_path / manifest.snapshot
    assert sorted(p.name for p in folder.iterdir()) == [
        "YOLO.zip",
        "classes.txt",
        "images",
        "labels",
        "manifest.json",
        "notes.json",
    ]
    assert mf.sha256_file(folder / "YOLO.zip") == manifest.files[0].sha256

    yolo = load(folder)
    assert yolo == load_yolo(folder)
    classes = yolo["classes"]
    assert classes[:2] == ["Cat", "Dog"]  # note: the converter also lists the Choices values as classes
    cat, dog = classes.index("Cat"), classes.index("Dog")
    labels = yolo["labels"]
    assert labels["cat1"] == [pytest.approx((cat, 0.25, 0.4, 0.3, 0.4))]
    assert labels["dog2"] == [
        pytest.approx((dog, 0.625, 0.625, 0.25, 0.25)),
        pytest.approx((cat, 0.05, 0.05, 0.1, 0.1)),
    ]
    # The unlabeled https image gets an empty label file named after the converter's cache name.
    empty = [stem for stem, rows in labels.items() if not rows]
    assert len(empty) == 1 and empty[0].endswith("unlabeled3")
    assert yolo["notes"]["categories"][cat] == {"id": cat, "name": "Cat"}


@pytest.mark.parametrize("fmt", ["CSV", "TSV"])
def test_pull_csv_and_tsv(s3, published, tmp_path, capsys, fmt):
    prefix, manifest = published[fmt]
    assert [f.name for f in manifest.files] == ["result.csv"]  # the converter names the TSV file result.csv too
    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, str(tmp_path)))
    assert code == 0, err
    assert f"{fmt} snapshot" in out
    folder = tmp_path / manifest.snapshot
    rows = load(folder)
    assert rows == load_csv(folder)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert [r["quality"] for r in rows] == ["good", "blurry", ""]
    boxes = json.loads(rows[1]["label"])
    assert [(b["rectanglelabels"], b["x"], b["width"]) for b in boxes] == [(["Dog"], 50, 25), (["Cat"], 0, 10)]
    assert rows[0]["image"] == "/data/upload/7/cat1.jpg"


def test_pull_json_min_python_api(s3, published, tmp_path):
    prefix, manifest = published["JSON_MIN"]
    client = s3.client()
    assert read_manifest(client, BUCKET, prefix) == manifest
    folder = pull(client, BUCKET, prefix, tmp_path, progress=False)
    assert folder == tmp_path / manifest.snapshot
    records = load(folder)
    assert records == load_json(folder)
    assert [r["id"] for r in records] == [1, 2, 3]
    assert records[0]["quality"] == "good"
    assert records[1]["label"][0]["rectanglelabels"] == ["Dog"]

    # Pulling the same snapshot again is a no-op; a folder holding something else is not overwritten silently.
    marker = folder / "result.json"
    mtime = marker.stat().st_mtime_ns
    assert pull(client, BUCKET, prefix, tmp_path, progress=False) == folder
    assert marker.stat().st_mtime_ns == mtime
    (folder / "manifest.json").unlink()
    with pytest.raises(SnapshotError, match="already exists.*--force"):
        pull(client, BUCKET, prefix, tmp_path, progress=False)
    assert pull(client, BUCKET, prefix, tmp_path, progress=False, force=True) == folder
    assert (folder / "manifest.json").is_file()


# ====================================================================================================================
# Snapshot selection and listing
# ====================================================================================================================


def test_list_and_pick_older_snapshot(s3, tmp_path, capsys):
    client = s3.client()
    prefix = "history"
    older, newer, half = "20261101T080000Z", "20261127T203015Z", "20261128T000000Z"
    publish(client, prefix, "JSON_MIN", older, tmp_path / "w", tasks=TASKS[:2])
    publish(client, prefix, "COCO", newer, tmp_path / "w")
    # A snapshot whose writer died before the manifest: files only. It must not be listed.
    client.put_object(Bucket=BUCKET, Key=mf.file_key(prefix, half, "result.csv"), Body=b"x")

    assert list_snapshots(client, BUCKET, prefix) == [older, newer]
    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, "--list"))
    assert (code, out.split()) == (0, [older, newer])

    code, out, err = run_cli(
        capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, "--snapshot", older, str(tmp_path / "dest"))
    )
    assert code == 0, err
    assert out.splitlines()[0] == str(tmp_path / "dest" / older)
    assert "JSON_MIN snapshot 20261101T080000Z" in out and "2 tasks, 2 annotations" in out
    assert [r["id"] for r in load(tmp_path / "dest" / older)] == [1, 2]

    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, str(tmp_path / "dest")))
    assert code == 0 and out.splitlines()[0] == str(tmp_path / "dest" / newer)

    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, "--snapshot", half, "x"))
    assert code == 2 and f"snapshot {half} not found" in err and "--list" in err
    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, "--snapshot", "yesterday", "x"))
    assert code == 2 and "invalid snapshot 'yesterday'" in err


# ====================================================================================================================
# Failures
# ====================================================================================================================


def test_corrupted_object_is_rejected(s3, tmp_path, capsys):
    client = s3.client()
    prefix = "corrupt"
    manifest = publish(client, prefix, "COCO", "20261127T120000Z", tmp_path / "w")
    key = manifest.files[0].key
    client.put_object(Bucket=BUCKET, Key=key, Body=b"not the archive that was snapshotted")
    dest = tmp_path / "dest"

    with pytest.raises(ChecksumMismatch) as info:
        pull(client, BUCKET, prefix, dest, progress=False)
    exc = info.value
    message = str(exc)
    assert isinstance(exc, SnapshotError)
    assert f"s3://{BUCKET}/{key}" in message
    assert manifest.files[0].sha256 in message and exc.actual_sha256 in message
    assert exc.actual_sha256 != exc.expected_sha256
    assert "corrupt or was overwritten" in message and "re-run the snapshot" in message
    assert list(dest.iterdir()) == []  # no partial file, no staging folder, no snapshot folder

    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", prefix, str(dest)))
    assert code == 2 and out == ""
    assert err.startswith("error: checksum mismatch for s3://")
    assert s3.secret_key not in err

    client.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(SnapshotError) as info:
        pull(client, BUCKET, prefix, dest, progress=False)
    assert str(info.value) == (
        f"snapshot file s3://{BUCKET}/{key} listed in the manifest of snapshot {manifest.snapshot} does not exist "
        f"at {s3.url}: the snapshot was deleted or is incomplete; re-run the snapshot"
    )
    assert list(dest.iterdir()) == []


def test_missing_bucket_and_missing_snapshot(s3, tmp_path, capsys):
    code, out, err = run_cli(capsys, s3.cli("--bucket", "no-such-bucket", str(tmp_path)))
    assert code == 2
    assert err == f"error: bucket 'no-such-bucket' does not exist at {s3.url} (check --bucket and --endpoint)\n"

    code, out, err = run_cli(capsys, s3.cli("--bucket", "no-such-bucket", "--list"))
    assert code == 2 and "'no-such-bucket' does not exist" in err

    code, out, err = run_cli(capsys, s3.cli("--bucket", BUCKET, "--prefix", "nothing/here", str(tmp_path)))
    assert code == 2
    assert f"no snapshot found: s3://{BUCKET}/nothing/here/snapshots/latest.json does not exist at {s3.url}" in err
    assert "'nothing/here'" in err
    assert list(tmp_path.iterdir()) == []


def test_access_denied_never_shows_secrets(s3, tmp_path, capsys):
    wrong = "WRONG-secret-value-1234567890"
    code, out, err = run_cli(
        capsys,
        [
            "--endpoint",
            s3.url,
            "--bucket",
            BUCKET,
            "--prefix",
            "projects/pets/coco",
            "--access-key",
            s3.access_key,
            "--secret-key",
            wrong,
            str(tmp_path),
        ],
    )
    assert code == 2
    assert "access denied (SignatureDoesNotMatch)" in err and "secret key is wrong" in err
    assert BUCKET in err and s3.url in err
    assert wrong not in err and s3.secret_key not in err

    code, out, err = run_cli(
        capsys,
        [
            "--endpoint",
            s3.url,
            "--bucket",
            BUCKET,
            "--access-key",
            "AKIAUNKNOWN000000000",
            "--secret-key",
            wrong,
            "--list",
        ],
    )
    assert code == 2 and "access denied (InvalidAccessKeyId)" in err and wrong not in err

    code, out, err = run_cli(capsys, ["--bucket", BUCKET, "--list"])
    assert code == 2 and "no endpoint" in err


def test_cli_reads_credentials_and_endpoint_from_env(s3, published, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CORTX_ENDPOINT", s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    prefix, manifest = published["COCO"]
    code, out, err = run_cli(capsys, ["--bucket", BUCKET, "--prefix", prefix, "--list"])
    assert (code, out.split()) == (0, [manifest.snapshot])


def test_path_traversal_in_archive_is_rejected(s3, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("result.json", "{}")
        zf.writestr("../../escaped.txt", "gotcha")
    client = s3.client()
    publish(client, "evil", "COCO", "20261127T130000Z", tmp_path / "w", archive_override=evil)
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(SnapshotError, match=r"unsafe path '\.\./\.\./escaped\.txt'"):
        pull(client, BUCKET, "evil", dest, progress=False)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert list(dest.iterdir()) == []


# ====================================================================================================================
# TLS: an HTTPS endpoint signed by a private CA
# ====================================================================================================================


@pytest.fixture(scope="module")
def https_s3(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """moto over HTTPS with a certificate from a throw-away CA (no auth: only TLS is under test here)."""
    trustme = pytest.importorskip("trustme")
    import ssl

    work = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(work / "server.pem"))
    cert.private_key_pem.write_to_path(str(work / "key.pem"))
    with open(work / "cert.pem", "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    proc, url = _start_moto(
        work / "moto.log",
        ["--ssl-cert", str(work / "cert.pem"), "--ssl-key", str(work / "key.pem")],
        {},
        "https",
        ssl_ctx=ctx,
    )
    try:
        yield url, ca.cert_pem.bytes().decode()
    finally:
        _stop(proc)


def test_untrusted_tls_and_ca_bundle_pem_text(https_s3, tmp_path, capsys):
    url, ca_pem = https_s3
    untrusted = make_client(url, access_key="k", secret_key="s", max_attempts=1)
    with pytest.raises(SnapshotError) as info:
        list_snapshots(untrusted, "tls-bucket", "p")
    message = str(info.value)
    assert f"TLS connection to {url} failed, its certificate is not trusted" in message
    assert "--ca-bundle" in message and "s3://tls-bucket/p" in message

    trusted = make_client(url, access_key="k", secret_key="s", ca_bundle=ca_pem, max_attempts=1)
    trusted.create_bucket(Bucket="tls-bucket")
    assert list_snapshots(trusted, "tls-bucket", "p") == []

    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca_pem)
    code, out, err = run_cli(
        capsys,
        [
            "--endpoint",
            url,
            "--bucket",
            "tls-bucket",
            "--access-key",
            "k",
            "--secret-key",
            "s",
            "--ca-bundle",
            str(ca_file),
            "--list",
        ],
    )
    assert code == 0 and "no snapshots under s3://tls-bucket/snapshots/" in err
    code, out, err = run_cli(
        capsys,
        [
            "--endpoint",
            url,
            "--bucket",
            "tls-bucket",
            "--access-key",
            "k",
            "--secret-key",
            "s",
            "--no-verify-tls",
            "--list",
        ],
    )
    assert code == 0, err


# ====================================================================================================================
# Training-job environment: no Django, no Label Studio
# ====================================================================================================================


def test_works_without_django_or_label_studio(s3, published, tmp_path):
    prefix, manifest = published["VOC"]
    script = f"""
import sys
sys.modules['django'] = None
sys.modules['label_studio'] = None
sys.modules['label_studio_sdk'] = None
from label_studio_cortx.pull import make_client, pull, load
client = make_client({s3.url!r})
folder = pull(client, {BUCKET!r}, {prefix!r}, {str(tmp_path)!r}, progress=False)
objects = sum(len(d['objects']) for d in load(folder))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'label_studio', 'label_studio_sdk'))
print(folder.name, objects, loaded)
"""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [manifest.snapshot, "3", "['django',", "'label_studio',", "'label_studio_sdk']"]

    # `python -m label_studio_cortx.pull [pull] ...` is the same CLI.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "label_studio_cortx.pull",
            "pull",
            "--endpoint",
            s3.url,
            "--bucket",
            BUCKET,
            "--prefix",
            prefix,
            "--list",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (done.returncode, done.stdout.split()) == (0, [manifest.snapshot]), done.stderr


# ====================================================================================================================
# Interrupted downloads are resumed with a Range request pinned to the ETag
# ====================================================================================================================


class _FlakyBody:
    def __init__(self, data: bytes, fail_after: int | None):
        self.data, self.fail_after = data, fail_after

    def iter_chunks(self, size):
        from botocore.exceptions import ResponseStreamingError

        if self.fail_after is None:
            yield self.data
            return
        yield self.data[: self.fail_after]
        raise ResponseStreamingError(error="connection reset by peer")

    def read(self, size=-1):
        return self.data

    def close(self):
        pass


class _FlakyClient:
    """get_object drops the connection mid-body on the first call; later calls honour (or ignore) Range."""

    class meta:  # noqa: N801 - mimics botocore's client.meta
        endpoint_url = "http://flaky.invalid"

    def __init__(self, objects: dict[str, bytes], honour_range: bool):
        self.objects, self.honour_range, self.calls = objects, honour_range, []

    def get_object(self, Bucket, Key, **kwargs):  # noqa: N803 - boto3 parameter names
        self.calls.append(kwargs)
        data = self.objects[Key]
        if Key.endswith(mf.LATEST_NAME):
            return {"Body": _FlakyBody(data, None), "ResponseMetadata": {"HTTPStatusCode": 200}}
        first = len(self.calls) == 2  # call 1 read the manifest
        if "Range" in kwargs and self.honour_range:
            start = int(kwargs["Range"].removeprefix("bytes=").rstrip("-"))
            return {"Body": _FlakyBody(data[start:], None), "ETag": '"e"', "ResponseMetadata": {"HTTPStatusCode": 206}}
        return {
            "Body": _FlakyBody(data, 5 if first else None),
            "ETag": '"e"',
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }


@pytest.mark.parametrize("honour_range", [True, False])
def test_interrupted_download_is_resumed(tmp_path, honour_range):
    payload = json.dumps([{"id": 1, "label": "Cat"}]).encode()
    ts = "20261127T140000Z"
    entry = ManifestFile(
        "result.json",
        mf.file_key("p", ts, "result.json"),
        len(payload),
        __import__("hashlib").sha256(payload).hexdigest(),
    )
    manifest = SnapshotManifest(
        snapshot=ts,
        created_at="2026-11-27T14:00:00Z",
        format="JSON_MIN",
        project=ManifestProject(1, "t"),
        label_studio_version="",
        plugin_version="",
        task_count=1,
        annotation_count=1,
        files=[entry],
    )
    client = _FlakyClient({mf.latest_key("p"): manifest.to_json().encode(), entry.key: payload}, honour_range)
    folder = pull(client, "b", "p", tmp_path, progress=False)
    assert load(folder) == [{"id": 1, "label": "Cat"}]
    assert client.calls[2] == {"Range": "bytes=5-", "IfMatch": '"e"'}


# ====================================================================================================================
# --with-media: bad input is refused with a clear message (the media pull itself: tests/test_pull_media.py)
# ====================================================================================================================


def test_with_media_refuses_a_bad_split_and_formats_without_images(s3, published, tmp_path, capsys):
    code, _, err = run_cli(capsys, [str(tmp_path), *s3.cli("--bucket", BUCKET, "--with-media", "--split", "0.5,0.4")])
    assert code == 2 and "invalid split '0.5,0.4'" in err and not any(tmp_path.iterdir())
    prefix, manifest = published["JSON_MIN"]
    code, _, err = run_cli(capsys, [str(tmp_path), *s3.cli("--bucket", BUCKET, "--prefix", prefix, "--with-media")])
    assert code == 2 and "--with-media needs a COCO, VOC or YOLO snapshot; this one is JSON_MIN" in err


def test_a_secret_key_that_starts_with_a_dash_is_given_with_an_equals_sign():
    """argparse takes "-..." after an option for another option; the help says to write --secret-key=KEY."""
    from label_studio_cortx.pull.cli import build_pull_parser

    parser = build_pull_parser()
    assert parser.parse_args(["--bucket", "b", "--secret-key=-Ab_9"]).secret_key == "-Ab_9"
    assert "--secret-key=KEY" in parser.format_help().replace("\n", " ").replace("  ", " ")
