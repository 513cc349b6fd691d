"""The bulk import sync: correctness at page scale, query budget, reconciliation, V1 fallback."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.storage_helpers import create_storage, new_bucket, put, seed_objects

PAGE = 1000


@pytest.fixture
def source(project, settings):
    """A CORTX source storage on the given endpoint, created through the ORM (the API is tested elsewhere)."""

    def _make(endpoint, bucket, **fields):
        from label_studio_cortx.models import CortxImportStorage

        settings.CORTX_TRUSTED_ENDPOINTS = [endpoint.url]
        return create_storage(CortxImportStorage, project, endpoint, bucket, **fields)

    return _make


def _synced(storage):
    storage.sync()
    storage.refresh_from_db()
    return storage


def test_files_mode_across_pages_creates_each_task_once(project, s3_http, source):
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 2 * PAGE + 150, prefix="img/")
    storage = _synced(source(s3_http, bucket, prefix="img", use_blob_urls=True))
    assert storage.status == "completed" and storage.last_sync_count == 2150
    tasks = project.tasks.order_by("inner_id")
    assert tasks.count() == 2150
    assert list(tasks.values_list("inner_id", flat=True)) == list(range(1, 2151))
    assert {len(t.data) for t in tasks[:5]} == {1}
    assert storage.links.count() == 2150 and storage.links.values("key").distinct().count() == 2150
    first = tasks.first()
    assert list(first.data.values()) == [f"s3://{bucket}/img/00000.jpg"]
    # Label Studio finds the storage of a task through the link accessor.
    assert first.get_storage_link().storage == storage
    project.refresh_from_db()
    # The Data Manager learns the data columns: every task counted once.
    assert list(project.summary.all_data_columns.values()) == [2150]

    # A re-sync that finds nothing new: one listing pass and one query per page, plus bookkeeping.
    with CaptureQueriesContext(connection) as queries:
        storage = _synced(storage)
    assert storage.last_sync_count == 0 and project.tasks.count() == 2150
    link_lookups = [q for q in queries.captured_queries if "cortximportstoragelink" in q["sql"].lower()]
    assert len(link_lookups) <= 3 + 2  # 3 pages, and FSM backfill / status reads
    assert len(queries.captured_queries) < 40


def test_tasks_mode_reads_many_files_concurrently_with_predictions(project, s3_http, source):
    bucket = new_bucket(s3_http)
    client = s3_http.client()
    for i in range(30):
        client.put_object(Bucket=bucket, Key=f"t/{i:03d}.json", Body=json.dumps({"image": f"s3://{bucket}/{i}.jpg"}))
    lines = "\n".join(json.dumps({"data": {"image": f"s3://{bucket}/l{i}.jpg"}, "meta": {"i": i}}) for i in range(50))
    client.put_object(Bucket=bucket, Key="t/big.jsonl", Body=lines)
    predicted = {
        "data": {"image": f"s3://{bucket}/p.jpg"},
        "predictions": [
            {
                "result": [
                    {"from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": ["good"]}}
                ]
            }
        ],
    }
    client.put_object(Bucket=bucket, Key="t/predicted.json", Body=json.dumps(predicted))
    storage = _synced(source(s3_http, bucket, prefix="t", use_blob_urls=False))
    assert storage.status == "completed", storage.traceback
    assert project.tasks.count() == 81
    jsonl = storage.links.filter(key="t/big.jsonl").select_related("task").order_by("row_index")
    assert [link.row_index for link in jsonl] == list(range(50))
    assert jsonl[7].task.meta == {"i": 7} and jsonl[7].task.data == {"image": f"s3://{bucket}/l7.jpg"}
    task = storage.links.get(key="t/predicted.json").task
    assert task.predictions.count() == 1 and task.total_predictions == 1


def test_reconcile_removes_missing_and_updates_changed_but_spares_annotated(project, s3_http, source):
    from tasks.models import Annotation

    bucket = new_bucket(s3_http)
    for name in ("a", "b", "c"):
        put(s3_http, bucket, f"t/{name}.json", json.dumps({"image": f"{name}-v1"}))
    storage = _synced(source(s3_http, bucket, prefix="t", use_blob_urls=False))
    assert project.tasks.count() == 3

    task_of = {link.key: link.task for link in storage.links.select_related("task")}
    Annotation.objects.create(task=task_of["t/b.json"], project=project, result=[])
    task_of["t/b.json"].refresh_from_db()
    assert task_of["t/b.json"].total_annotations == 1

    # Default: nothing is removed or updated.
    s3_http.client().delete_object(Bucket=bucket, Key="t/a.json")
    s3_http.client().delete_object(Bucket=bucket, Key="t/b.json")
    put(s3_http, bucket, "t/c.json", json.dumps({"image": "c-v2"}))
    storage = _synced(storage)
    assert project.tasks.count() == 3

    storage.sync_remove_missing = storage.sync_update_changed = True
    storage.save()
    storage = _synced(storage)
    assert storage.meta["tasks_removed"] == 1 and storage.meta["tasks_missing_kept"] == 1
    assert storage.meta["tasks_updated"] == 1
    assert set(project.tasks.values_list("data__image", flat=True)) == {"b-v1", "c-v2"}
    kept = storage.links.get(key="t/b.json")
    assert kept.object_exists is False and kept.task.annotations.count() == 1


def test_listing_falls_back_to_v1_when_v2_is_not_implemented():
    """In-process check of the fallback path (no server here implements only V1)."""
    from botocore.exceptions import ClientError

    from label_studio_cortx.source.listing import iter_pages

    class Paginator:
        def __init__(self, name):
            self.name = name

        def paginate(self, **kwargs):
            if self.name == "list_objects_v2":
                raise ClientError({"Error": {"Code": "NotImplemented", "Message": "no"}}, "ListObjectsV2")
            assert kwargs["PaginationConfig"] == {"PageSize": 1000} and kwargs["Prefix"] == "p/"
            return iter([{"Contents": [{"Key": "p/1"}]}, {"Contents": [{"Key": "p/2"}]}])

    class Client:
        def get_paginator(self, name):
            return Paginator(name)

    assert list(iter_pages(Client(), "bucket", {"Prefix": "p/"})) == [[{"Key": "p/1"}], [{"Key": "p/2"}]]


def test_plain_rows_are_what_bulk_create_writes(project, s3_http, source, monkeypatch):
    """Tasks and links written as plain rows (COPY / executemany) hold exactly what Django's bulk_create writes:
    every column, defaults included, and each link points at its own task."""
    from django.utils import timezone
    from io_storages.utils import StorageObject
    from tasks.models import Task

    from label_studio_cortx import rows
    from label_studio_cortx.models import CortxImportStorageLink
    from label_studio_cortx.source import tasks

    storage = source(s3_http, new_bucket(s3_http), use_blob_urls=False)
    seen = timezone.now()
    samples = [
        {"data": {"text": "plain"}},
        {"data": {"text": 'naïve ✓ "quoted" \\ back\tslash\nnewline', "n": [1, 2.5, None, True]}, "meta": {"m": 1}},
        {"data": {"image": "s3://b/x.jpg"}, "allow_skip": "false"},
        {"data": {"image": "s3://b/y.jpg"}, "allow_skip": False, "meta": {}},
    ]

    # Characters COPY's text format escapes (tab, newline, backslash, its NULL marker and end-of-data line).
    odd = "\t\\N\n\\.\r ü"

    def create(prefix: str) -> list[int]:
        objects = [
            StorageObject(key=f"{prefix}/{i}{odd}.json", task_data=sample, row_index=i if i % 2 else None)
            for i, sample in enumerate(samples)
        ]
        etags = {f"{prefix}/0{odd}.json": '"etag-0"'}
        return tasks.create_tasks(storage, CortxImportStorageLink, objects, tasks.SyncProgress(), etags, seen)

    def written(ids: list[int]) -> list[tuple[dict, dict]]:
        found = []
        for task_id in ids:
            task = Task.objects.filter(pk=task_id).values().get()
            link = CortxImportStorageLink.objects.filter(task_id=task_id).values().get()
            assert task["created_at"] is not None and abs((task["created_at"] - seen).total_seconds()) < 60
            assert link["key"].split("/", 1)[1] == f"{ids.index(task_id)}{odd}.json"
            for volatile in ("id", "inner_id", "created_at", "updated_at"):
                task.pop(volatile)
            for volatile in ("id", "task_id", "key", "created_at"):
                link.pop(volatile)
            found.append((task, link))
        return found

    assert rows.supported()
    plain_ids = create("plain")
    monkeypatch.setattr(rows, "supported", lambda: False)
    orm_ids = create("orm")
    assert written(plain_ids) == written(orm_ids)
    plain = list(Task.objects.filter(pk__in=plain_ids).order_by("id"))
    assert [t.allow_skip for t in plain] == [True, True, False, False]
    assert plain[1].data["text"].startswith("naïve ✓") and plain[1].meta == {"m": 1}
    inner = Task.objects.filter(project=project).order_by("id").values_list("inner_id", flat=True)
    assert list(inner) == list(range(1, 9))

    # A task whose allow_skip is no boolean is reported by key and row; the others of its page are created.
    monkeypatch.undo()
    progress = tasks.SyncProgress()
    objects = [
        StorageObject(key="bad.jsonl", task_data={"data": {"text": "x"}, "allow_skip": "maybe"}, row_index=3),
        StorageObject(key="good.json", task_data={"data": {"text": "y"}, "allow_skip": 0}),
    ]
    created = tasks.create_tasks(storage, CortxImportStorageLink, objects, progress)
    assert len(created) == 1 and Task.objects.get(pk=created[0]).allow_skip is False
    assert progress.report() == ["bad.jsonl: task 3 was not imported (allow_skip must be true or false)"]


def test_linked_keys_are_exactly_the_page_keys_that_have_links(project, s3_http, source):
    """The known-keys query reads the index over the page's key range: keys of the range that are not on the
    page are not reported, whatever order the database's collation gives them."""
    from io_storages.utils import StorageObject

    from label_studio_cortx import rows
    from label_studio_cortx.models import CortxImportStorageLink
    from label_studio_cortx.source import tasks

    storage = source(s3_http, new_bucket(s3_http), use_blob_urls=True)
    other = source(s3_http, new_bucket(s3_http), use_blob_urls=True)
    linked = ["a/1", "a/25", "a/3", "B/1", "_x", "z/9"]
    for owner, keys in ((storage, linked), (other, ["a/2"])):
        objects = [StorageObject(key=key, task_data={"image": key}) for key in keys]
        tasks.create_tasks(owner, CortxImportStorageLink, objects, tasks.SyncProgress())
    page = ["B/1", "_x", "a/1", "a/2", "a/3", "a/4"]
    assert rows.linked_keys(CortxImportStorageLink, storage.pk, page) == {"B/1", "_x", "a/1", "a/3"}
    assert rows.linked_keys(CortxImportStorageLink, other.pk, page) == {"a/2"}
    assert rows.linked_keys(CortxImportStorageLink, storage.pk, []) == set()


@pytest.mark.parametrize("max_params", [None, 40])
def test_sqlite_rows_go_in_multi_row_statements(project, monkeypatch, max_params):
    """On SQLite, rows and link upserts are multi-row statements, never executemany (whose per-row GIL hand-back
    stalls behind busy threads: the export's uploads); split at the parameter limit, every row written once."""
    from django.db.backends.utils import CursorWrapper
    from tasks.models import Annotation, Task

    from label_studio_cortx import rows
    from label_studio_cortx.models import CortxExportStorage, CortxExportStorageLink

    if connection.vendor != "sqlite":
        pytest.skip("the SQLite statements; PostgreSQL uses COPY and arrays")
    if max_params:
        monkeypatch.setattr(rows, "_sqlite_max_params", lambda: max_params)

    def no_executemany(*args, **kwargs):
        raise AssertionError("executemany on SQLite")

    monkeypatch.setattr(CursorWrapper, "executemany", no_executemany)
    json_text = rows.json_text(Task, "data")
    values = [(json_text({"text": f"row {i}", "odd": "%s %% ?"}), 100 + i) for i in range(23)]
    ids = rows.insert(Task, ("data", "inner_id"), values, {"project": project}, returning=True)
    created = list(Task.objects.filter(pk__in=ids).order_by("id").values_list("id", "inner_id", "data"))
    assert [row[0] for row in created] == ids and len(set(ids)) == 23
    assert [(row[1], row[2]["text"]) for row in created] == [(100 + i, f"row {i}") for i in range(23)]
    assert created[0][2]["odd"] == "%s %% ?"

    storage = CortxExportStorage.objects.create(project=project, bucket="b", s3_endpoint="http://127.0.0.1:1")
    annotations = Annotation.objects.bulk_create(
        [Annotation(task_id=task_id, project=project, result=[]) for task_id in ids]
    )
    first = [a.pk for a in annotations[:10]]
    rows.upsert_links(CortxExportStorageLink, "annotation", first, {"storage": storage.pk}, ("annotation", "storage"))
    before = dict(CortxExportStorageLink.objects.filter(storage=storage).values_list("annotation_id", "updated_at"))
    every = [a.pk for a in annotations]
    rows.upsert_links(CortxExportStorageLink, "annotation", every, {"storage": storage.pk}, ("annotation", "storage"))
    after = dict(CortxExportStorageLink.objects.filter(storage=storage).values_list("annotation_id", "updated_at"))
    assert sorted(after) == sorted(every) and sorted(before) == sorted(first)
    assert all(after[pk] >= before[pk] for pk in first)
