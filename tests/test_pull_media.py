"""Pulls that are ready to train on (issue 13): ``pull --with-media`` against the real test stores.

Images are uploaded to a bucket, tasks reference them as ``s3://bucket/raw/<name>`` (what a source storage gives
them), annotations with boxes and choices are saved through Label Studio's REST API, and COCO / VOC / YOLO
snapshots are written by the plugin's target storage. The pull then fetches the images from the same store, and
the result is loaded with pycocotools and Hugging Face ``datasets`` (the ``[ml]`` extra) and compared box by box
with what was annotated.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from PIL import Image

from label_studio_cortx.devservers.moto_server import unique_bucket_name
from label_studio_cortx.pull import assign_split, main_pull, open_dataset
from label_studio_cortx.pull.imageinfo import NotAnImage, image_size
from label_studio_cortx.pull.media import MEDIA_MANIFEST_NAME
from label_studio_cortx.pull.sources import Source, parse_reference
from tests.annotation_helpers import box
from tests.storage_helpers import annotate, new_bucket
from tests.test_api import create_target, trust  # noqa: F401 - `trust` is a fixture

# name, width, height, boxes (label, x%, y%, w%, h%), choice
IMAGES = [
    ("cat1.jpg", 640, 480, [("Cat", 10, 20, 30, 40)], "good"),
    ("dog2.png", 800, 600, [("Dog", 50, 50, 25, 25), ("Cat", 0, 0, 10, 10)], "bad"),
    ("pair3.jpg", 320, 240, [("Dog", 5, 5, 50, 50), ("Dog", 60, 10, 20, 30)], None),
    ("cat4.png", 500, 400, [("Cat", 25, 25, 50, 50)], "good"),
]
FORMATS = ("COCO", "VOC", "YOLO")


def image_bytes(name: str, width: int, height: int, noise: bool = False) -> bytes:
    """A real image file; ``noise`` makes it large (random pixels do not compress)."""
    if noise:
        image = Image.frombytes("RGB", (width, height), random.Random(name).randbytes(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (len(name) * 10 % 255, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG" if name.endswith(".png") else "JPEG")
    return out.getvalue()


def expected_pixels(name: str) -> list[tuple[str, float, float, float, float]]:
    _, width, height, boxes, _ = next(i for i in IMAGES if i[0] == name)
    return sorted(
        (lbl, x * width / 100, y * height / 100, w * width / 100, h * height / 100) for lbl, x, y, w, h in boxes
    )


def rounded(boxes) -> list[tuple]:
    return sorted((b[0], *(round(float(v), 3) for v in b[1:])) for b in boxes)


@pytest.fixture
def s3(store, trust):  # noqa: F811 - `trust` is the imported fixture
    trust(store.endpoint)
    return store.endpoint


@pytest.fixture
def images_project(api, project, s3):
    """Images in ``<bucket>/raw/``, one task each, annotated (boxes and choices) through the REST API."""
    from tasks.models import Task

    bucket = new_bucket(s3)
    client = s3.client()
    for name, width, height, boxes, choice in IMAGES:
        client.put_object(Bucket=bucket, Key=f"raw/{name}", Body=image_bytes(name, width, height))
        task = Task.objects.create(project=project, data={"image": f"s3://{bucket}/raw/{name}"})
        result = [box(f"{name}-{i}", x, y, w, h, lbl, width, height) for i, (lbl, x, y, w, h) in enumerate(boxes)]
        if choice:
            result.append(
                {"from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}
            )
        annotate(api, task, result)
    return project, bucket


def snapshot(api, s3, bucket, project, fmt: str) -> str:
    """A snapshot target of ``fmt`` under ``snap/<fmt>`` (creating it writes the first snapshot); its prefix."""
    prefix = f"snap/{fmt.lower()}"
    create_target(api, s3, bucket, project, prefix=prefix, export_format=fmt)
    return prefix


def pull_media(s3, bucket, prefix, dest: Path, *extra: str) -> int:
    argv = [str(dest), "--endpoint", s3.url, "--bucket", bucket, "--prefix", prefix, "--no-progress", "--with-media"]
    argv += ["--access-key", s3.access_key, f"--secret-key={s3.secret_key}"]
    if s3.ca_path:
        argv += ["--ca-bundle", s3.ca_path]
    return main_pull([*argv, *extra])


def only_folder(dest: Path) -> Path:
    (folder,) = [p for p in dest.iterdir() if not p.name.startswith(".")]
    return folder


def media(folder: Path) -> dict:
    return json.loads((folder / MEDIA_MANIFEST_NAME).read_text())


# --- the round trip --------------------------------------------------------------------------------------------------
def test_coco_voc_yolo_with_media_load_and_match_the_annotations(api, images_project, s3, tmp_path, capsys):
    from datasets import load_dataset
    from pycocotools.coco import COCO

    project, bucket = images_project
    source = f"s3://{bucket}/raw"
    folders = {}
    for fmt in FORMATS:
        prefix = snapshot(api, s3, bucket, project, fmt)
        args = ("--media-source", source, "--split", "0.5,0.5", "--seed", "7", "--layout", "imagefolder")
        assert pull_media(s3, bucket, prefix, tmp_path / fmt, *args, "--workers", "3") == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert f"media: {len(IMAGES)} images ({len(IMAGES)} downloaded, 0 already verified" in out, out
        folders[fmt] = only_folder(tmp_path / fmt)

    # Every object verified and recorded: size, ETag, SHA-256, pixel size, where it came from.
    client = s3.client()
    for fmt, folder in folders.items():
        recorded = media(folder)["objects"]
        assert sorted(o["uri"] for o in recorded) == sorted(f"{source}/{n}" for n, *_ in IMAGES), fmt
        for obj in recorded:
            local = folder / obj["path"]
            head = client.head_object(Bucket=bucket, Key=parse_reference(obj["uri"]).key)
            assert obj["status"] == "ok" and obj["size"] == local.stat().st_size == head["ContentLength"]
            assert obj["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
            assert obj["etag"] == head["ETag"].strip('"')
            assert (obj["width"], obj["height"]) == next((w, h) for n, w, h, *_ in IMAGES if obj["uri"].endswith(n))

    # COCO: pycocotools loads it, every file name resolves under images/, every box is the annotated one.
    coco = COCO(str(folders["COCO"] / "result.json"))
    seen = set()
    for image in coco.loadImgs(coco.getImgIds()):
        name = Path(image["file_name"]).name
        assert (folders["COCO"] / "images" / image["file_name"]).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        got = [(coco.loadCats(a["category_id"])[0]["name"], *a["bbox"]) for a in anns]
        assert rounded(got) == rounded(expected_pixels(name)), name
        seen.add(name)
    assert seen == {n for n, *_ in IMAGES}
    for split_file in (folders["COCO"] / "annotations").glob("*.json"):
        COCO(str(split_file))  # per-split annotation files load too

    # VOC: one XML per image, its image under images/ as <folder>/<filename> says, boxes as annotated.
    xmls = sorted((folders["VOC"] / "Annotations").glob("*.xml"))
    assert len(xmls) == len(IMAGES)
    for xml in xmls:
        root = ET.parse(xml).getroot()
        image = folders["VOC"] / root.findtext("folder") / root.findtext("filename")
        assert image.is_file() and image_size(image)[1:] == (
            int(root.findtext("size/width")),
            int(root.findtext("size/height")),
        )
        got = []
        for obj in root.findall("object"):
            x0, y0, x1, y1 = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            got.append((obj.findtext("name"), x0, y0, x1 - x0, y1 - y0))
        assert rounded(got) == rounded(expected_pixels(image.name)), xml.name

    # YOLO: data.yaml as Ultralytics reads it, label files next to images/ under labels/, boxes normalized.
    yolo = folders["YOLO"]
    data = yaml.safe_load((yolo / "data.yaml").read_text())
    classes = (yolo / ".source" / "classes.txt").read_text().split()
    assert data["names"] == dict(enumerate(classes)) and data["nc"] == len(classes) and data["path"] == str(yolo)
    listed = []
    for split in ("train", "val"):
        for line in (yolo / data[split]).read_text().split():
            image = yolo / line
            label = yolo / "labels" / (image.relative_to(yolo / "images").with_suffix(".txt"))
            _, width, height = image_size(image)
            got = []
            for row in label.read_text().splitlines():
                cls, xc, yc, w, h = row.split()
                w, h = float(w) * width, float(h) * height
                got.append((classes[int(cls)], float(xc) * width - w / 2, float(yc) * height - h / 2, w, h))
            assert rounded(got) == rounded(expected_pixels(image.name)), image.name
            listed.append(image.name)
    assert sorted(listed) == sorted(n for n, *_ in IMAGES)

    # The split: stored in media.json, the same for every format (it follows the source object, not the format).
    splits = {fmt: media(folder)["split"] for fmt, folder in folders.items()}
    assert splits["COCO"] == splits["VOC"] == splits["YOLO"]
    assert splits["COCO"]["assignment"] == assign_split([f"{source}/{n}" for n, *_ in IMAGES], (0.5, 0.5), seed=7)
    yolo_val = sorted(Path(p).name for p in (yolo / "val.txt").read_text().split())
    assert yolo_val == sorted(u.rsplit("/", 1)[1] for u, s in splits["COCO"]["assignment"].items() if s == "val")

    # A second pull of the same snapshot: nothing downloaded again, same split, same files.
    before = (yolo / "train.txt").read_text()
    args = ("--media-source", source, "--split", "0.5,0.5", "--seed", "7")
    assert pull_media(s3, bucket, "snap/yolo", tmp_path / "YOLO", *args) == 0
    assert f"media: {len(IMAGES)} images (0 downloaded, {len(IMAGES)} already verified" in capsys.readouterr().out
    assert media(yolo)["split"] == splits["YOLO"] and (yolo / "train.txt").read_text() == before

    # Hugging Face imagefolder layout: loads with `datasets`, boxes and labels as annotated.
    loaded = load_dataset("imagefolder", data_dir=str(folders["COCO"] / "imagefolder"))
    rows = 0
    for part in loaded.values():
        for row in part:
            name = Path(row["image"].filename).name
            got = [(lbl, *b) for lbl, b in zip(row["objects"]["labels"], row["objects"]["bbox"], strict=True)]
            assert rounded(got) == rounded(expected_pixels(name)), name
            assert row["image"].size == (row["width"], row["height"])
            rows += 1
    assert rows == len(IMAGES)

    # The Python API: summary and samples, no ML library involved.
    dataset = open_dataset(folders["VOC"])
    summary = dataset.summary()
    assert summary["images"] == len(IMAGES) and summary["annotations"] == sum(len(i[3]) for i in IMAGES)
    assert sum(summary["splits"].values()) == len(IMAGES) and summary["problems"] == []
    for sample in dataset.samples():
        assert sample.image.is_file() and sample.split in ("train", "val")
        assert rounded((b.label, b.x, b.y, b.w, b.h) for b in sample.boxes) == rounded(
            expected_pixels(sample.image.name)
        )


# --- missing and corrupt images ----------------------------------------------------------------------------------
def test_deleted_and_corrupted_images_are_reported_by_key(api, images_project, s3, tmp_path, capsys):
    project, bucket = images_project
    prefix = snapshot(api, s3, bucket, project, "COCO")
    client = s3.client()
    deleted, garbage, resized = (f"raw/{IMAGES[i][0]}" for i in range(3))
    client.delete_object(Bucket=bucket, Key=deleted)
    client.put_object(Bucket=bucket, Key=garbage, Body=b"<html>not an image</html>")
    client.put_object(Bucket=bucket, Key=resized, Body=image_bytes(IMAGES[2][0], 100, 100))

    assert pull_media(s3, bucket, prefix, tmp_path) == 1
    captured = capsys.readouterr()
    assert "3 image(s) of the snapshot could not be fetched" in captured.err
    assert f"missing: s3://{bucket}/{deleted} does not exist" in captured.err
    assert f"unreadable: s3://{bucket}/{garbage} is not a readable image" in captured.err
    assert (
        f"unreadable: s3://{bucket}/{resized} is 100x100 pixels but the annotations were made on a 320x240"
        in captured.err
    )
    assert "--allow-missing" in captured.err and "3 missing or unreadable" in captured.out
    folder = only_folder(tmp_path)
    statuses = {o["uri"].rsplit("/", 1)[1]: o["status"] for o in media(folder)["objects"]}
    assert statuses == {"cat1.jpg": "missing", "dog2.png": "unreadable", "pair3.jpg": "unreadable", "cat4.png": "ok"}
    # Nothing half-written is left: only the good image is in images/.
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["cat4.png"]

    # --allow-missing: exit 0, the images are left out of the annotation file (with their boxes) and still named.
    assert pull_media(s3, bucket, prefix, tmp_path, "--allow-missing") == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning: left out:") == 3 and f"s3://{bucket}/{deleted}" in captured.err
    coco = json.loads((folder / "result.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["cat4.png"] and len(coco["annotations"]) == 1
    assert "media: 1 images (0 downloaded, 1 already verified" in captured.out

    # Fixed in the bucket: the next pull fetches exactly those three and keeps the verified one.
    for name, width, height, *_ in IMAGES[:3]:
        client.put_object(Bucket=bucket, Key=f"raw/{name}", Body=image_bytes(name, width, height))
    assert pull_media(s3, bucket, prefix, tmp_path) == 0
    assert "media: 4 images (3 downloaded, 1 already verified" in capsys.readouterr().out
    assert len(json.loads((folder / "result.json").read_text())["images"]) == 4

    # A local file damaged after the pull is noticed (SHA-256) and fetched again.
    (folder / "images" / "cat4.png").write_bytes(b"bit rot")
    assert pull_media(s3, bucket, prefix, tmp_path) == 0
    assert "media: 4 images (1 downloaded, 3 already verified" in capsys.readouterr().out
    assert image_size(folder / "images" / "cat4.png")[1:] == (500, 400)


def test_voc_needs_a_media_source_and_says_so(api, images_project, s3, tmp_path, capsys):
    project, bucket = images_project
    prefix = snapshot(api, s3, bucket, project, "VOC")
    assert pull_media(s3, bucket, prefix, tmp_path) == 1
    err = capsys.readouterr().err
    assert "'cat1.jpg' is a bare file name" in err and "--media-source s3://bucket/prefix" in err
    assert pull_media(s3, bucket, prefix, tmp_path / "wrong", "--media-source", f"s3://{bucket}/elsewhere") == 1
    assert f"no object named 'dog2.png' under s3://{bucket}/elsewhere" in capsys.readouterr().err
    # Two objects with the same name: an error naming both, never a guess.
    s3.client().put_object(Bucket=bucket, Key="raw/copy/cat1.jpg", Body=image_bytes("cat1.jpg", 640, 480))
    assert pull_media(s3, bucket, prefix, tmp_path / "twice", "--media-source", f"s3://{bucket}/raw") == 1
    err = capsys.readouterr().err
    assert f"'cat1.jpg' is ambiguous: 2 objects carry that name (s3://{bucket}/raw/cat1.jpg, " in err
    # A media source bucket the snapshot's server does not have: named, with the way to point it elsewhere.
    missing = unique_bucket_name("absent")
    assert pull_media(s3, bucket, prefix, tmp_path / "far", "--media-source", f"s3://{missing}/raw") == 2
    err = capsys.readouterr().err
    assert f"media source s3://{missing}/raw: bucket '{missing}' does not exist" in err
    assert f"--media-endpoint {missing}=URL" in err and "check --bucket" not in err


# --- resume ----------------------------------------------------------------------------------------------------------
def test_an_interrupted_media_download_resumes(api, project, s3, tmp_path, capsys):
    """What an interruption leaves (a .part file and the ETag it belongs to) is resumed with a Range request."""
    from tasks.models import Task

    bucket = new_bucket(s3)
    client = s3.client()
    body = image_bytes("big.png", 1200, 1000, noise=True)  # ~3.5 MiB
    client.put_object(Bucket=bucket, Key="raw/big.png", Body=body)
    task = Task.objects.create(project=project, data={"image": f"s3://{bucket}/raw/big.png"})
    annotate(api, task, [box("b", 10, 10, 20, 20, "Cat", 1200, 1000)])
    prefix = snapshot(api, s3, bucket, project, "COCO")
    assert (
        main_pull(
            [
                str(tmp_path),
                "--endpoint",
                s3.url,
                "--bucket",
                bucket,
                "--prefix",
                prefix,
                "--no-progress",
                "--access-key",
                s3.access_key,
                "--secret-key",
                s3.secret_key,
            ]
        )
        == 0
    )
    folder = only_folder(tmp_path)
    etag = client.head_object(Bucket=bucket, Key="raw/big.png")["ETag"]
    half = len(body) // 2
    (folder / "images").mkdir(exist_ok=True)  # the converter's COCO archive has an empty images/
    (folder / "images" / "big.png.part").write_bytes(body[:half])
    (folder / "images" / "big.png.part.json").write_text(
        json.dumps({"uri": f"s3://{bucket}/raw/big.png", "etag": etag})
    )
    capsys.readouterr()
    assert pull_media(s3, bucket, prefix, tmp_path) == 0
    out = capsys.readouterr().out
    assert "1 downloaded, 0 already verified, 1 resumed" in out
    assert (folder / "images" / "big.png").read_bytes() == body
    assert not list((folder / "images").glob("*.part*"))
    summary = open_dataset(folder).summary()
    assert summary["images"] == 1 and summary["annotations"] == 1

    # A partial file of an object replaced since: the ETag no longer matches, it is fetched whole.
    new_body = image_bytes("big.png", 1200, 1000, noise=False)
    client.put_object(Bucket=bucket, Key="raw/big.png", Body=new_body)
    (folder / "images" / "big.png").unlink()
    (folder / "images" / "big.png.part").write_bytes(body[:half])
    (folder / "images" / "big.png.part.json").write_text(
        json.dumps({"uri": f"s3://{bucket}/raw/big.png", "etag": etag})
    )
    assert pull_media(s3, bucket, prefix, tmp_path) == 0
    assert "1 downloaded, 0 already verified, 0 resumed" in capsys.readouterr().out
    assert (folder / "images" / "big.png").read_bytes() == new_body


# --- no server: split, references, image headers ----------------------------------------------------------------------
def test_split_is_per_image_stable_and_follows_the_ratios():
    uris = [f"s3://b/img{i}.jpg" for i in range(2000)]
    split = assign_split(uris, (0.8, 0.2), seed=1)
    assert split == assign_split(list(reversed(uris)), (0.8, 0.2), seed=1)
    assert assign_split(uris[:100], (0.8, 0.2), seed=1) == {u: split[u] for u in uris[:100]}  # others do not matter
    assert 1500 < sum(s == "train" for s in split.values()) < 1700
    assert split != assign_split(uris, (0.8, 0.2), seed=2)
    three = assign_split(uris, (0.7, 0.2, 0.1), seed=1)
    assert {"train", "val", "test"} == set(three.values())


def test_references_the_converter_writes():
    assert parse_reference("s3://raw/a b/c?.jpg") == Source("raw", "a b/c?.jpg")
    encoded = base64.urlsafe_b64encode(b"s3://raw/dir/x.png").decode().rstrip("=")
    assert parse_reference(f"/tasks/5/presign/?fileuri={encoded}") == Source("raw", "dir/x.png")
    assert parse_reference(f"https://ls.example.com/tasks/5/resolve/?fileuri={encoded}") == Source("raw", "dir/x.png")
    assert parse_reference("images/x.png") is None and parse_reference("/data/upload/1/x.png") is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_image_size_reads_headers_and_refuses_damage(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    out = io.BytesIO()
    Image.new("RGB", (123, 45), (1, 2, 3)).save(out, format=fmt)
    path.write_bytes(out.getvalue())
    assert image_size(path)[1:] == (123, 45)
    if fmt in ("PNG", "JPEG"):
        path.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
        with pytest.raises(NotAnImage, match="truncated"):
            image_size(path)
    path.write_bytes(b"<html>")
    with pytest.raises(NotAnImage):
        image_size(path)


def test_a_connection_lost_mid_download_is_resumed_by_the_next_pull(s3_http, tmp_path):
    """A real interruption: the fault proxy drops the connection mid-body and refuses new ones; the .part stays."""
    import threading

    from label_studio_cortx.devservers.fault_proxy import start_fault_proxy
    from label_studio_cortx.pull import fetch_media, make_client
    from label_studio_cortx.pull.manifest import ManifestProject, SnapshotManifest

    bucket = new_bucket(s3_http)
    out = io.BytesIO()  # a large image that needs no compressing: ~40 MiB of BMP
    Image.frombytes("RGB", (4000, 3500), random.Random(1).randbytes(4000 * 3500 * 3)).save(out, format="BMP")
    body = out.getvalue()
    s3_http.client().put_object(Bucket=bucket, Key="raw/big.bmp", Body=body)
    # A pulled COCO snapshot folder (as pull() leaves it) whose one image is that object.
    folder = tmp_path / "20261203T000000Z"
    folder.mkdir()
    manifest = SnapshotManifest("20261203T000000Z", "2026-12-03T00:00:00Z", "COCO", ManifestProject(1), "", "", 1, 1)
    (folder / "manifest.json").write_text(manifest.to_json())
    coco = {
        "images": [{"id": 0, "width": 4000, "height": 3500, "file_name": f"s3://{bucket}/raw/big.bmp"}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}],
        "categories": [{"id": 0, "name": "Cat"}],
    }
    (folder / "result.json").write_text(json.dumps(coco))
    part = folder / "images" / "big.bmp.part"

    with start_fault_proxy(s3_http.host, s3_http.port) as proxy:
        client = make_client(
            proxy.url, access_key=s3_http.access_key, secret_key=s3_http.secret_key, max_attempts=1, read_timeout=5
        )
        outcome = {}
        worker = threading.Thread(
            target=lambda: outcome.update(data=fetch_media(folder, client, progress=False, allow_missing=True))
        )
        worker.start()
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.001)
        proxy.mode = "refuse"  # closes the open connection mid-body; reconnecting fails
        worker.join(60)
        (problem,) = outcome["data"].problems
        assert problem.uri == f"s3://{bucket}/raw/big.bmp" and problem.status == "unreadable", problem
        kept = part.stat().st_size
        assert 0 < kept < len(body)

        proxy.mode = "pass"
        data = fetch_media(folder, client, progress=False)
    assert (data.stats.downloaded, data.stats.resumed, data.stats.bytes) == (1, 1, len(body) - kept)
    assert (folder / "images" / "big.bmp").read_bytes() == body and not part.exists()
    assert json.loads((folder / "result.json").read_text())["images"][0]["file_name"] == "big.bmp"


# --- images on a second S3 server: per-bucket endpoint, credentials and CA -------------------------------------------
# The snapshot lives on ``s3_http`` (moto, HTTP); some images in a bucket there, the others in a bucket on a second,
# independent moto over HTTPS with its own private CA and its own IAM key. No credentials are shared between them.
LOCAL_IMAGES = [("here1.png", 320, 240)]
REMOTE_IMAGES = [("far1.jpg", 640, 480), ("far2.png", 400, 300)]


@pytest.fixture(scope="module")
def second_s3():
    from label_studio_cortx.devservers.moto_server import start_moto

    with start_moto(https=True) as endpoint:
        yield endpoint


@pytest.fixture
def clean_env(monkeypatch):
    """No ambient credentials, endpoint or per-bucket media settings leak into the code under test."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "CORTX_MEDIA_")) or name in ("CORTX_ENDPOINT", "LABEL_STUDIO_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def publish_snapshot(client, bucket: str, prefix: str, fmt: str, tasks: list[dict], work: Path) -> None:
    """A snapshot as the target storage writes it: Label Studio's converter, the archive, manifest, latest.json."""
    import shutil
    from importlib.metadata import version as dist_version

    from label_studio_cortx import __version__ as plugin_version
    from label_studio_cortx.pull import manifest as mf
    from label_studio_cortx.pull.manifest import ManifestFile, ManifestProject, SnapshotManifest
    from tests.test_pull import _convert

    ts = mf.new_snapshot_id()
    out_dir = _convert(fmt, work / f"{fmt}-{ts}", tasks)
    archive = Path(shutil.make_archive(str(work / f"{fmt}-{ts}" / "pkg" / fmt), "zip", str(out_dir)))
    entry = ManifestFile.for_file(archive, prefix, ts, name=mf.archive_name(fmt), archive=True)
    client.put_object(Bucket=bucket, Key=entry.key, Body=archive.read_bytes())
    manifest = SnapshotManifest(
        snapshot=ts,
        created_at=mf.utc_isoformat(),
        format=fmt,
        project=ManifestProject(id=7, title="Two servers"),
        label_studio_version=dist_version("label-studio"),
        plugin_version=plugin_version,
        task_count=len(tasks),
        annotation_count=len(tasks),
        files=[entry],
    )
    client.put_object(Bucket=bucket, Key=mf.manifest_key(prefix, ts), Body=manifest.to_json().encode())
    client.put_object(Bucket=bucket, Key=mf.latest_key(prefix), Body=manifest.to_json().encode())


def box_tasks(uris: list[tuple[str, int, int]]) -> list[dict]:
    from tests.test_pull import _annotation

    return [
        {
            "id": i + 1,
            "data": {"image": uri},
            "annotations": [_annotation(100 + i, [box(f"r{i}", 10, 10, 30, 30, "Cat", w, h)])],
        }
        for i, (uri, w, h) in enumerate(uris)
    ]


@pytest.fixture
def two_servers(s3_http, second_s3, clean_env, tmp_path):
    """A COCO and a VOC snapshot on ``s3_http`` whose images are split between a bucket there and one on
    ``second_s3``; returns the endpoints, bucket names and the bytes of every image by URI."""
    from label_studio_cortx.devservers.moto_server import unique_bucket_name
    from label_studio_cortx.pull import make_client

    primary, other = s3_http, second_s3
    # The premise: the second server refuses the main credentials (and the main server the second's).
    for url, key, ca in ((other.url, primary, other.ca_path), (primary.url, other, None)):
        refused = make_client(url, key.access_key, key.secret_key, ca_bundle=ca, max_attempts=1)
        with pytest.raises(Exception, match="InvalidAccessKeyId"):
            refused.list_buckets()
    snapshots, local = new_bucket(primary, "snap"), new_bucket(primary, "here")
    remote = unique_bucket_name("far-away.images")  # a dot and dashes: see the CORTX_MEDIA_<BUCKET>_* names
    other.client().create_bucket(Bucket=remote)
    bodies = {}
    for endpoint, bucket, images in ((primary, local, LOCAL_IMAGES), (other, remote, REMOTE_IMAGES)):
        for name, width, height in images:
            body = bodies[f"s3://{bucket}/raw/{name}"] = image_bytes(name, width, height, noise=True)
            endpoint.client().put_object(Bucket=bucket, Key=f"raw/{name}", Body=body)
    uris = [(f"s3://{local}/raw/{n}", w, h) for n, w, h in LOCAL_IMAGES]
    uris += [(f"s3://{remote}/raw/{n}", w, h) for n, w, h in REMOTE_IMAGES]
    for fmt in ("COCO", "VOC"):
        publish_snapshot(primary.client(), snapshots, f"snap/{fmt.lower()}", fmt, box_tasks(uris), tmp_path / "work")
    return primary, other, snapshots, local, remote, bodies


def test_cli_media_endpoint_reads_a_second_server_with_its_own_credentials_and_ca(
    two_servers, tmp_path, capsys, monkeypatch
):
    from label_studio_cortx.devservers.moto_server import free_port
    from label_studio_cortx.pull.cli import media_env_name

    primary, other, snapshots, local, remote, bodies = two_servers
    env = {field: media_env_name(remote, field) for field in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "CA_BUNDLE")}
    assert (
        env["ACCESS_KEY_ID"] == "CORTX_MEDIA_" + remote.upper().replace("-", "_").replace(".", "_") + "_ACCESS_KEY_ID"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", primary.access_key)  # the main credentials, from the environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", primary.secret_key)
    dest = tmp_path / "dest"
    far1, far2 = (f"s3://{remote}/raw/{n}" for n, *_ in REMOTE_IMAGES)
    secrets = (primary.secret_key, other.secret_key)

    def run(*extra: str) -> tuple[int, str, str]:
        argv = [str(dest), "--endpoint", primary.url, "--bucket", snapshots, "--prefix", "snap/coco", "--no-progress"]
        code = main_pull([*argv, "--with-media", *extra])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and not any(s in out + err for s in secrets)
        return code, out, err

    # No override: the bucket is looked for on the main server; the error names each object and the option.
    code, out, err = run()
    assert code == 1, err
    for uri in (far1, far2):
        assert f"{uri}: bucket '{remote}' does not exist at {primary.url}; if it lives on another S3 server, " in err
    assert f"pass --media-endpoint {remote}=URL" in err
    assert "media: 1 images (1 downloaded" in out and "2 missing or unreadable" in out

    # The override alone reuses the main CA and credentials: the second server's certificate is not trusted ...
    code, out, err = run("--media-endpoint", f"{remote}={other.url}")
    assert code == 1, err
    assert f"TLS connection to {other.url} failed, its certificate is not trusted" in err
    assert f"while reading {far1}" in err and f"while reading {far2}" in err
    assert (
        f"hint: s3://{remote} was read with the --ca-bundle CA; give it its own with the environment variable "
        f"{env['CA_BUNDLE']}" in err
    )

    # ... and with its CA, the main credentials are refused there (named by object and endpoint, with the way out).
    monkeypatch.setenv(env["CA_BUNDLE"], other.ca_path)
    code, out, err = run("--media-endpoint", f"{remote}={other.url}")
    assert code == 1, err
    assert f"access denied (InvalidAccessKeyId) to {far1} at {other.url}" in err
    assert f"access denied (InvalidAccessKeyId) to {far2} at {other.url}" in err
    assert f"variables {env['ACCESS_KEY_ID']} and {env['SECRET_ACCESS_KEY']}" in err

    # A wrong URL (nothing listening): every object of that bucket named, no traceback.
    code, out, err = run("--media-endpoint", f"{remote}=http://127.0.0.1:{free_port()}")
    assert code == 1, err
    assert f"unreadable: {far1}: cannot connect to endpoint http://127.0.0.1:" in err and f"unreadable: {far2}: " in err

    # Half of the credentials: refused before anything is downloaded, naming the missing variable.
    monkeypatch.setenv(env["ACCESS_KEY_ID"], other.access_key)
    code, out, err = run("--media-endpoint", f"{remote}={other.url}")
    assert code == 2 and out == ""
    assert f"{env['ACCESS_KEY_ID']} is set but {env['SECRET_ACCESS_KEY']} is not" in err
    code, out, err = run("--media-endpoint", f"{remote}")
    assert code == 2 and f"--media-endpoint '{remote}': expected BUCKET=URL" in err

    # --help documents the variables.
    assert main_pull(["--help"]) == 0
    assert "CORTX_MEDIA_<BUCKET>_ACCESS_KEY_ID" in capsys.readouterr().out

    # Its own credentials and CA: everything fetched, the main server's image kept (already verified).
    monkeypatch.setenv(env["SECRET_ACCESS_KEY"], other.secret_key)
    code, out, err = run("--media-endpoint", f"{remote}={other.url}")
    assert code == 0, err
    assert "media: 3 images (2 downloaded, 1 already verified, 0 resumed" in out
    folder = only_folder(dest)
    recorded = {o["uri"]: o for o in media(folder)["objects"]}
    assert set(recorded) == set(bodies)
    for uri, body in bodies.items():
        assert recorded[uri]["status"] == "ok" and (folder / recorded[uri]["path"]).read_bytes() == body
    coco = json.loads((folder / "result.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == sorted(n for n, *_ in LOCAL_IMAGES + REMOTE_IMAGES)


def test_python_api_clients_per_bucket_read_a_second_server(two_servers, tmp_path):
    from label_studio_cortx.pull import MediaIncomplete, SnapshotError, fetch_media, make_client, pull, pull_dataset

    primary, other, snapshots, local, remote, bodies = two_servers
    main = make_client(primary.url, access_key=primary.access_key, secret_key=primary.secret_key)
    far = make_client(other.url, access_key=other.access_key, secret_key=other.secret_key, ca_bundle=other.ca_path)
    far_with_main_key = make_client(
        other.url, access_key=primary.access_key, secret_key=primary.secret_key, ca_bundle=other.ca_path
    )
    remote_uris = sorted(u for u in bodies if u.startswith(f"s3://{remote}/"))

    folder = pull(main, snapshots, "snap/coco", tmp_path / "coco", progress=False)
    with pytest.raises(MediaIncomplete) as missing:
        fetch_media(folder, main, progress=False)
    assert sorted(p.uri for p in missing.value.problems) == remote_uris
    for uri in remote_uris:
        assert f"{uri}: bucket '{remote}' does not exist at {primary.url}" in str(missing.value)
        assert f"clients={{'{remote}': make_client(URL, ...)}}" in str(missing.value)

    with pytest.raises(MediaIncomplete) as refused:
        fetch_media(folder, main, clients={remote: far_with_main_key}, progress=False)
    for uri in remote_uris:
        assert f"access denied (InvalidAccessKeyId) to {uri} at {other.url}" in str(refused.value)
    assert primary.secret_key not in str(refused.value)

    data = fetch_media(folder, main, clients={remote: far}, progress=False)
    assert (data.stats.downloaded, data.stats.skipped, data.problems) == (2, 1, [])
    assert {s.source: s.image.read_bytes() for s in data.samples()} == bodies

    # VOC names images by file name only: the media source on the second server is listed through its client.
    sources = [f"s3://{local}/raw", f"s3://{remote}/raw"]
    with pytest.raises(SnapshotError, match=f"bucket '{remote}' does not exist at {primary.url}"):
        pull_dataset(main, snapshots, "snap/voc", tmp_path / "voc", media_sources=sources, progress=False)
    data = pull_dataset(
        main, snapshots, "snap/voc", tmp_path / "voc", media_sources=sources, clients={remote: far}, progress=False
    )
    assert data.format == "VOC" and data.summary()["images"] == 3 and data.problems == []
    assert {s.source: s.image.read_bytes() for s in data.samples()} == bodies
    assert all(len(s.boxes) == 1 and s.boxes[0].label == "Cat" for s in data.samples())


# --- progress ---------------------------------------------------------------------------------------------------------
def run_on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m label_studio_cortx.pull ARGV`` with stderr on a pseudo-terminal (tqdm draws bars only on a
    terminal); returns the exit code, stdout and everything written to the terminal."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    repo = Path(__file__).resolve().parents[1]
    try:
        process = subprocess.run(
            [sys.executable, "-m", "label_studio_cortx.pull", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            cwd=repo,
            timeout=120,
        )
    finally:
        os.close(slave)
    reader.join(10)
    os.close(master)
    return process.returncode, process.stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_with_media_shows_file_and_byte_progress_and_none_with_no_progress(s3_http, clean_env, tmp_path):
    import os

    from tqdm import tqdm

    from label_studio_cortx.pull.cli import _human_size

    bucket = new_bucket(s3_http, "progress")
    uris, total = [], 0
    for i in range(5):
        name = f"noise{i}.png"
        body = image_bytes(name, 300, 300, noise=True)  # ~270 KB each: the byte bar has something to count
        s3_http.client().put_object(Bucket=bucket, Key=f"raw/{name}", Body=body)
        uris.append((f"s3://{bucket}/raw/{name}", 300, 300))
        total += len(body)
    publish_snapshot(s3_http.client(), bucket, "snap/coco", "COCO", box_tasks(uris), tmp_path / "work")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_http.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_http.secret_key,
        "CORTX_ENDPOINT": s3_http.url,
    }
    argv = ["--bucket", bucket, "--prefix", "snap/coco", "--with-media", "--workers", "2"]
    summary = f"media: 5 images (5 downloaded, 0 already verified, 0 resumed, {_human_size(total)}), 5 boxes"

    code, out, err = run_on_a_terminal([str(tmp_path / "bars"), *argv], env)
    assert code == 0, err
    assert summary in out
    # The last state of each bar (tqdm redraws with \r and cursor moves): every file and every byte counted.
    states = [s.strip() for s in err.replace("\n", "\r").split("\r")]
    files = [s for s in states if s.startswith("files:")]
    size = tqdm.format_sizeof(total, divisor=1024)  # unit_scale: "1.29M/1.29M", the unit only in the rate
    assert any(s.startswith("files: 100%") and "5/5" in s for s in files), err
    assert any("media: 100%" in s and f"{size}/{size}" in s for s in states), err
    assert len(files) >= 2, err  # drawn at 0/5 and redrawn as files completed, not just printed at the end
    assert s3_http.secret_key not in err + out

    code, out, err = run_on_a_terminal([str(tmp_path / "quiet"), *argv, "--no-progress"], env)
    assert code == 0, err
    assert summary in out
    assert "files:" not in err and "%|" not in err and "\r" not in err.replace("\r\n", "\n"), err
