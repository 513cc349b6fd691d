"""Snapshot target storages (issue #4): Label Studio's exporter -> CORTX bucket -> ``label-studio-cortx pull``.

Everything runs against the CORTX-profile endpoint (moto behind the filter that refuses checksum headers,
virtual-host addressing and DeleteObjects without MD5); annotations are created through the REST API.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from label_studio_cortx.pull import load_coco, load_csv, load_json, load_voc, load_yolo, main_pull
from tests.annotation_helpers import box
from tests.storage_helpers import (
    error_text,
    keys,
    new_bucket,
    payload,
    read_json,
    read_only_key,
    write_check_only_key,
)

# Two annotated images and one without annotations (left out of snapshots, as in Label Studio's export).
IMAGES = [("cat1.jpg", 640, 480), ("dog2.jpg", 800, 600), ("empty3.jpg", 320, 240)]
BOXES = {
    # percent x, y, w, h as Label Studio stores them
    "cat1.jpg": [("Cat", 10, 20, 30, 40)],
    "dog2.jpg": [("Dog", 50, 50, 25, 25), ("Cat", 0, 0, 10, 10)],
}
CHOICES = {"cat1.jpg": "good", "dog2.jpg": "bad"}

TEXT_CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="positive"/><Choice value="negative"/></Choices>
</View>
"""


@pytest.fixture
def trusted(settings, cortx_s3):
    settings.CORTX_TRUSTED_ENDPOINTS = [cortx_s3.url]
    return cortx_s3


def _result(name: str, width: int, height: int) -> list[dict]:
    result = [box(f"{name}-{i}", x, y, w, h, label, width, height) for i, (label, x, y, w, h) in enumerate(BOXES[name])]
    result.append(
        {"from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": [CHOICES[name]]}}
    )
    return result


@pytest.fixture
def annotated(api, project):
    """The project with its tasks, annotated through the REST API like the labeling UI does."""
    from tasks.models import Task

    for name, width, height in IMAGES:
        task = Task.objects.create(project=project, data={"image": f"s3://raw-images/{name}"})
        if name in BOXES:
            response = api.post(
                f"/api/tasks/{task.id}/annotations/", {"result": _result(name, width, height)}, format="json"
            )
            assert response.status_code == 201, response.content
    return project


def create_target(api, endpoint, bucket, project, **extra) -> dict:
    response = api.post("/api/storages/export/cortx", payload(endpoint, bucket, project, **extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def sync(api, storage_id) -> dict:
    response = api.post(f"/api/storages/export/cortx/{storage_id}/sync")
    assert response.status_code == 200, response.content
    return response.json()


def pull(endpoint, bucket, prefix, dest: Path, *extra: str) -> int:
    argv = [str(dest), "--endpoint", endpoint.url, "--bucket", bucket, "--prefix", prefix, "--no-progress"]
    argv += ["--access-key", endpoint.access_key, f"--secret-key={endpoint.secret_key}", *extra]
    return main_pull(argv)


def latest(endpoint, bucket, prefix) -> dict:
    return read_json(endpoint, bucket, f"{prefix}/snapshots/latest.json")


def _pixels(name: str) -> dict[str, list[tuple[str, float, float, float, float]]]:
    """Expected boxes of an image in pixels: label, x, y, w, h."""
    _, width, height = next(i for i in IMAGES if i[0] == name)
    return sorted(
        (label, x * width / 100, y * height / 100, w * width / 100, h * height / 100)
        for label, x, y, w, h in BOXES[name]
    )


# --- the round trip --------------------------------------------------------------------------------------------------
def test_sync_writes_snapshots_that_pull_back_as_the_annotations(api, annotated, trusted, settings, tmp_path, capsys):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False  # the Sync button writes them here
    bucket = new_bucket(trusted)
    pulled = {}
    for fmt in ("COCO", "VOC", "YOLO", "CSV"):
        prefix = f"projects/{fmt.lower()}"
        target = create_target(api, trusted, bucket, annotated, prefix=prefix, export_format=fmt)
        assert target["export_format"] == fmt
        status = sync(api, target["id"])
        assert status["status"] == "completed", status
        manifest = latest(trusted, bucket, prefix)
        assert status["meta"]["snapshot"] == manifest["snapshot"] and status["last_sync_count"] == 2
        assert (manifest["format"], manifest["task_count"], manifest["annotation_count"]) == (fmt, 2, 2)
        assert manifest["project"] == {"id": annotated.id, "title": annotated.title}
        assert manifest["label_studio_version"] == "1.23.2"
        assert pull(trusted, bucket, prefix, tmp_path / fmt) == 0, capsys.readouterr().err
        pulled[fmt] = tmp_path / fmt / manifest["snapshot"]
        assert json.loads((pulled[fmt] / "manifest.json").read_text()) == manifest

    # COCO: pixel boxes [x, y, w, h] under the right category, one image per annotated task.
    coco = load_coco(pulled["COCO"])
    categories = {c["id"]: c["name"] for c in coco["categories"]}
    images = {i["id"]: Path(i["file_name"]).name for i in coco["images"]}
    assert sorted(images.values()) == ["cat1.jpg", "dog2.jpg"]
    for name in ("cat1.jpg", "dog2.jpg"):
        boxes = sorted(
            (categories[a["category_id"]], *a["bbox"]) for a in coco["annotations"] if images[a["image_id"]] == name
        )
        assert _close(boxes, _pixels(name))

    # VOC: one XML per image with corner coordinates.
    voc = {Path(item["filename"]).name: item for item in load_voc(pulled["VOC"])}
    assert sorted(voc) == ["cat1.jpg", "dog2.jpg"]
    assert voc["dog2.jpg"]["size"]["width"] == 800
    for name, item in voc.items():
        boxes = sorted(
            (o["name"], o["bbox"]["xmin"], o["bbox"]["ymin"], o["bbox"]["xmax"] - o["bbox"]["xmin"],
             o["bbox"]["ymax"] - o["bbox"]["ymin"])
            for o in item["objects"]
        )  # fmt: skip
        assert _close(boxes, _pixels(name), tolerance=1)  # VOC stores whole pixels

    # YOLO: class index into classes.txt, normalized centre and size.
    yolo = load_yolo(pulled["YOLO"])
    assert {"Cat", "Dog"} <= set(yolo["classes"])  # the converter lists the Choices values too
    assert sorted(yolo["labels"]) == ["cat1", "dog2"]
    for stem, rows in yolo["labels"].items():
        expected = sorted(
            (label, (x + w / 2) / 100, (y + h / 2) / 100, w / 100, h / 100)
            for label, x, y, w, h in BOXES[f"{stem}.jpg"]
        )
        assert _close(sorted((yolo["classes"][row[0]], *row[1:]) for row in rows), expected)

    # CSV: one row per annotated task, Choices as plain values and boxes as JSON.
    rows = {Path(row["image"]).name: row for row in load_csv(pulled["CSV"])}
    assert sorted(rows) == ["cat1.jpg", "dog2.jpg"]
    for name, row in rows.items():
        assert row["quality"] == CHOICES[name]
        labels = sorted(box["rectanglelabels"][0] for box in json.loads(row["label"]))
        assert labels == sorted(label for label, *_ in BOXES[name])


def _close(actual, expected, tolerance: float = 1e-6) -> bool:
    assert len(actual) == len(expected), (actual, expected)
    for got, want in zip(actual, expected, strict=True):
        assert got[0] == want[0], (actual, expected)
        assert all(abs(a - b) <= tolerance for a, b in zip(got[1:], want[1:], strict=True)), (actual, expected)
    return True


def test_corrupted_object_fails_the_sha256_check(api, annotated, trusted, tmp_path, capsys):
    bucket = new_bucket(trusted)
    create_target(api, trusted, bucket, annotated, prefix="p", export_format="COCO")  # creation syncs at once
    manifest = latest(trusted, bucket, "p")
    key = manifest["files"][0]["key"]
    trusted.client().put_object(Bucket=bucket, Key=key, Body=b"not the snapshot")
    assert pull(trusted, bucket, "p", tmp_path) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and key in err and manifest["files"][0]["sha256"] in err
    assert not (tmp_path / manifest["snapshot"]).exists()


def test_manifest_is_never_visible_before_its_files_even_multipart(api, project, trusted, settings, tmp_path):
    """latest.json is the last write, after every listed file was completely written (multipart included)."""
    from tasks.models import Task

    settings.CORTX_MULTIPART_THRESHOLD = 5 * 1024 * 1024  # S3's minimum part size
    big = "x" * (6 * 1024 * 1024)  # the JSON snapshot is then > 6 MiB: two parts
    task = Task.objects.create(project=project, data={"image": "s3://raw-images/big.jpg", "notes": big})
    result = [{"from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": ["good"]}}]
    assert api.post(f"/api/tasks/{task.id}/annotations/", {"result": result}, format="json").status_code == 201
    bucket = new_bucket(trusted)
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    target = create_target(api, trusted, bucket, project, prefix="big", export_format="JSON")

    mark = trusted.mark()
    assert sync(api, target["id"])["status"] == "completed"
    requests = trusted.requests_since(mark)
    assert not [r for r in requests if r.rejected], [(r.method, r.path, r.rule) for r in requests if r.rejected]
    assert not [r for r in requests if r.checksum_headers]
    writes = [r for r in requests if r.method in ("PUT", "POST", "DELETE")]
    assert writes[-1].method == "PUT" and writes[-1].path == f"/{bucket}/big/snapshots/latest.json"
    assert writes[-1].status == 200

    manifest = latest(trusted, bucket, "big")
    done = {}  # key -> index of the request that completed it
    for index, r in enumerate(writes[:-1]):
        key = r.path.removeprefix(f"/{bucket}/")
        if r.status == 200 and (
            (r.method == "PUT" and "partNumber" not in r.params) or (r.method == "POST" and "uploadId" in r.params)
        ):
            done[key] = index
    parts = [r for r in writes if r.method == "PUT" and "partNumber" in r.params]
    assert len(parts) == 2, "the snapshot file was not uploaded in parts"
    for entry in manifest["files"]:
        assert entry["key"] in done, f"{entry['key']} was not completely written before latest.json"
    assert f"big/snapshots/{manifest['snapshot']}/manifest.json" in done

    assert pull(trusted, bucket, "big", tmp_path) == 0
    (task_out,) = load_json(tmp_path / manifest["snapshot"])
    assert task_out["data"]["notes"] == big and task_out["annotations"][0]["result"] == result


# --- formats ---------------------------------------------------------------------------------------------------------
def test_a_format_that_does_not_fit_the_config_is_refused_at_save(api, user, trusted):
    from projects.models import Project

    text_project = Project.objects.create(
        title="Reviews", created_by=user, organization=user.active_organization, label_config=TEXT_CONFIG
    )
    bucket = new_bucket(trusted)
    response = api.post(
        "/api/storages/export/cortx", payload(trusted, bucket, text_project, export_format="COCO"), format="json"
    )
    assert response.status_code == 400
    message = error_text(response)
    assert "COCO" in message and "labeling config" in message
    assert "JSON_MIN" in message and "CSV" in message and "ANNOTATION_JSON" in message and "YOLO" not in message

    target = create_target(api, trusted, bucket, text_project, export_format="csv")  # names are case-insensitive
    assert target["export_format"] == "CSV"
    response = api.patch(f"/api/storages/export/cortx/{target['id']}", {"export_format": "VOC"}, format="json")
    assert response.status_code == 400 and "VOC" in error_text(response)


def test_form_offers_every_format_with_per_annotation_json_by_default(api):
    layout = api.get("/api/storages/export/cortx/form").json()
    (field,) = [f for row in layout for f in row.get("fields") or [] if f and f["name"] == "export_format"]
    assert field["type"] == "select" and field["value"] == "ANNOTATION_JSON"
    values = [option["value"] for option in field["options"]]
    assert values[0] == "ANNOTATION_JSON"
    assert {"JSON", "JSON_MIN", "CSV", "TSV", "COCO", "VOC", "YOLO"} <= set(values)
    assert all(isinstance(value, str) for value in values)


# --- API call and management command ---------------------------------------------------------------------------------
def test_snapshot_api_call_queues_a_snapshot_and_the_storage_names_its_manifest(api, annotated, trusted):
    bucket = new_bucket(trusted)
    target = create_target(api, trusted, bucket, annotated, prefix="api")  # per-annotation JSON
    assert keys(trusted, bucket, "api/snapshots/") == []

    response = api.post(f"/api/storages/export/cortx/{target['id']}/snapshot", {"export_format": "YOLO"}, format="json")
    # Answered with the storage's status; these tests run background jobs inline, so it is already done.
    assert response.status_code == 202, response.content
    assert response.json()["id"] == target["id"] and response.json()["status"] == "completed"
    manifest = latest(trusted, bucket, "api")
    assert manifest["format"] == "YOLO" and manifest["files"][0]["name"] == "YOLO.zip"
    stored = api.get(f"/api/storages/export/cortx/{target['id']}").json()
    assert stored["status"] == "completed" and stored["meta"]["snapshot"] == manifest["snapshot"]
    assert stored["meta"]["snapshot_manifest"] == "api/snapshots/latest.json"
    assert stored["export_format"] == "ANNOTATION_JSON"  # the override was for this call only

    response = api.post(f"/api/storages/export/cortx/{target['id']}/snapshot", {"export_format": "CONLL2003"})
    assert response.status_code == 400 and "CONLL2003" in error_text(response)
    response = api.post(f"/api/storages/export/cortx/{target['id']}/snapshot")  # no format at all
    assert response.status_code == 400 and "choose a format" in error_text(response)
    assert latest(trusted, bucket, "api") == manifest


def test_management_command_writes_snapshots_and_fails_loudly(api, annotated, trusted, settings, capsys):
    settings.SYNC_ON_TARGET_STORAGE_CREATION = False
    bucket = new_bucket(trusted)
    coco = create_target(api, trusted, bucket, annotated, prefix="cron/coco", export_format="COCO")
    voc = create_target(api, trusted, bucket, annotated, prefix="cron/voc", export_format="VOC")
    plain = create_target(api, trusted, bucket, annotated, prefix="cron/plain")

    call_command("cortx_snapshot", "--project", str(annotated.id))
    out = capsys.readouterr().out
    assert f"storage {coco['id']}: COCO snapshot" in out and f"storage {voc['id']}: VOC snapshot" in out
    assert f"storage {plain['id']}:" not in out
    assert latest(trusted, bucket, "cron/coco")["format"] == "COCO"
    assert latest(trusted, bucket, "cron/voc")["annotation_count"] == 2

    call_command("cortx_snapshot", "--storage", str(plain["id"]), "--format", "TSV")
    assert latest(trusted, bucket, "cron/plain")["files"][0]["name"] == "result.csv"  # the converter's name

    from label_studio_cortx.models import CortxExportStorage

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    CortxExportStorage.objects.filter(pk=coco["id"]).update(s3_endpoint=dead)
    with override_settings(CORTX_TRUSTED_ENDPOINTS=[trusted.url, dead], CORTX_MAX_ATTEMPTS=1):
        with pytest.raises(CommandError, match=f"storage {coco['id']}: .*refused"):
            call_command("cortx_snapshot", "--storage", str(coco["id"]))
    assert CortxExportStorage.objects.get(pk=coco["id"]).status == "failed"
    with pytest.raises(CommandError, match="no CORTX target storage with id 999999"):
        call_command("cortx_snapshot", "--storage", "999999")


# --- failures, and per-annotation behaviour --------------------------------------------------------------------------
def test_failed_snapshot_keeps_latest_and_annotations_and_can_be_rerun(api, annotated, trusted, monkeypatch):
    from data_export.models import Export
    from tasks.models import Annotation

    from label_studio_cortx.models import CortxExportStorage

    bucket = new_bucket(trusted)
    target = create_target(api, trusted, bucket, annotated, prefix="f", export_format="COCO")
    before_latest = latest(trusted, bucket, "f")
    before_keys = keys(trusted, bucket)
    annotations = list(Annotation.objects.values("id", "updated_at", "result").order_by("id"))

    # A key that may not write is refused before anything is tried.
    key_id, secret = read_only_key(trusted)
    CortxExportStorage.objects.filter(pk=target["id"]).update(aws_access_key_id=key_id, aws_secret_access_key=secret)
    refused = api.post(f"/api/storages/export/cortx/{target['id']}/sync")
    assert refused.status_code == 400 and "may not write" in error_text(refused)
    # The store refuses the snapshot's writes (the key passes the write check, then may write nothing).
    key_id, secret = write_check_only_key(trusted, bucket)
    CortxExportStorage.objects.filter(pk=target["id"]).update(aws_access_key_id=key_id, aws_secret_access_key=secret)
    status = sync(api, target["id"])
    assert status["status"] == "failed" and "denied" in status["traceback"]
    assert secret not in status["traceback"]
    assert keys(trusted, bucket) == before_keys and latest(trusted, bucket, "f") == before_latest

    # The converter fails.
    CortxExportStorage.objects.filter(pk=target["id"]).update(
        aws_access_key_id=trusted.access_key, aws_secret_access_key=trusted.secret_key
    )

    def broken(self, *args, **kwargs):
        raise ValueError("converter exploded")

    with monkeypatch.context() as patch:
        patch.setattr(Export, "convert_file", broken)
        status = sync(api, target["id"])
    assert status["status"] == "failed" and "converter exploded" in status["traceback"]
    assert keys(trusted, bucket) == before_keys and latest(trusted, bucket, "f") == before_latest

    # Nothing happened to the annotations, and a rerun works.
    assert list(Annotation.objects.values("id", "updated_at", "result").order_by("id")) == annotations
    assert sync(api, target["id"])["status"] == "completed"
    assert latest(trusted, bucket, "f")["snapshot"] > before_latest["snapshot"]


def test_snapshot_targets_do_not_write_or_delete_per_annotation(api, annotated, trusted):
    bucket = new_bucket(trusted)
    target = create_target(
        api, trusted, bucket, annotated, prefix="s", export_format="JSON_MIN", can_delete_objects=True
    )
    assert latest(trusted, bucket, "s")["annotation_count"] == 2  # creating the target synced it
    written = keys(trusted, bucket)
    assert all(key.startswith("s/snapshots/") for key in written)

    task = annotated.tasks.get(data__image="s3://raw-images/empty3.jpg")
    result = [{"from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": ["bad"]}}]
    response = api.post(f"/api/tasks/{task.id}/annotations/", {"result": result}, format="json")
    assert response.status_code == 201
    assert api.delete(f"/api/annotations/{response.json()['id']}/").status_code == 204
    assert keys(trusted, bucket) == written

    # Switching back to per-annotation JSON restores Label Studio's behaviour.
    response = api.patch(
        f"/api/storages/export/cortx/{target['id']}", {"export_format": "ANNOTATION_JSON"}, format="json"
    )
    assert response.status_code == 200, response.content
    response = api.post(f"/api/tasks/{task.id}/annotations/", {"result": result}, format="json")
    assert f"s/{response.json()['id']}" in keys(trusted, bucket)
