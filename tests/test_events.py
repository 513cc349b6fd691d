"""Bucket notifications: the token, hostile and malformed requests, created/removed records in the documented
formats (Ceph RGW's HTTP push, MinIO's webhook), duplicates and disorder, a 10,000-event burst, and a real Ceph
RGW topic pushing to Label Studio.

The events are applied by a background worker on its own connection: tests commit their data (transactional_db).
"""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote_plus

import pytest

from tests.storage_helpers import create_storage, new_bucket, put, seed_objects

ETAG_X = hashlib.md5(b"x").hexdigest()  # the ETag of every b"x" object


def _source(project, endpoint, bucket, **fields):
    from label_studio_cortx.models import CortxImportStorage

    fields.setdefault("use_blob_urls", True)
    return create_storage(CortxImportStorage, project, endpoint, bucket, **fields)


def record(bucket: str, key: str, event: str = "ObjectCreated:Put", sequencer: str = "", etag: str = ETAG_X) -> dict:
    """One record in the S3 event format, as Ceph RGW 16.2 pushes it (measured: the key is not URL-encoded);
    MinIO's (and AWS's) encode the key and MinIO prefixes eventName with "s3:" (:func:`minio_record`)."""
    obj = {"key": key, "size": 1, "sequencer": sequencer}
    if not event.split(":")[-2].endswith("ObjectRemoved"):
        obj["eTag"] = etag
    return {
        "eventVersion": "2.2",
        "eventSource": "ceph:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-12-03T10:00:00.000Z",
        "eventName": event,
        "userIdentity": {"principalId": "admin"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "label-studio",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}", "id": ""},
            "object": obj,
        },
    }


def minio_record(bucket: str, key: str, event: str = "s3:ObjectCreated:Put") -> dict:
    result = record(bucket, key, event)
    result["eventSource"] = "minio:s3"
    result["s3"]["object"]["key"] = quote_plus(key)
    return result


@pytest.fixture
def token_for(api):
    def _token(storage) -> str:
        response = api.post(f"/api/storages/cortx/{storage.id}/events-token")
        assert response.status_code == 201, response.content
        return response.json()["token"]

    return _token


@pytest.fixture
def anonymous():
    from rest_framework.test import APIClient

    return APIClient()


def _post(client, storage, body, token=None, bearer=None, raw=False):
    url = f"/api/storages/cortx/{storage.id}/events" + (f"?token={token}" if token is not None else "")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer is not None else {}
    data = body if raw else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **headers)


def _settle(storage, timeout=120):
    """Wait until no event of the storage is queued and no sync of it runs."""
    from label_studio_cortx.models import CortxStorageEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        storage.refresh_from_db()
        pending = CortxStorageEvent.objects.filter(storage=storage).exists()
        if not pending and storage.status not in ("queued", "in_progress"):
            return storage.status
        time.sleep(0.05)
    raise AssertionError(f"events of storage {storage.pk} not applied: {storage.status}")


@pytest.fixture
def trusted(settings, s3_http):
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    return s3_http


# --- the token --------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_token_is_shown_once_stored_hashed_rotated_and_only_for_editors(api, project, trusted, anonymous):
    storage = _source(project, trusted, "any-bucket")
    first = api.post(f"/api/storages/cortx/{storage.id}/events-token")
    assert first.status_code == 201
    token, url = first.json()["token"], first.json()["url"]
    assert len(token) >= 40 and url.endswith(f"/api/storages/cortx/{storage.id}/events")
    storage.refresh_from_db()
    assert storage.events_token_hash == hashlib.sha256(token.encode()).hexdigest()
    detail = api.get(f"/api/storages/cortx/{storage.id}").json()
    assert token not in json.dumps(detail) and "events_token_hash" not in detail and detail["events_enabled"] is True
    listing = api.get(f"/api/storages/cortx/?project={project.id}").json()
    assert token not in json.dumps(listing) and storage.events_token_hash not in json.dumps(listing)

    second = api.post(f"/api/storages/cortx/{storage.id}/events-token").json()["token"]
    assert second != token
    assert _post(anonymous, storage, {"Records": []}, token=token).status_code == 401
    assert _post(anonymous, storage, {"Records": []}, token=second).status_code == 200

    # Nobody without a session or API token can make one (Label Studio's open-source edition has one
    # organization: every member may edit storages, as with its own storage views).
    assert anonymous.post(f"/api/storages/cortx/{storage.id}/events-token").status_code in (401, 403)
    storage.refresh_from_db()
    assert storage.events_token_hash == hashlib.sha256(second.encode()).hexdigest()


@pytest.mark.django_db
def test_requests_without_the_right_token_get_401_and_change_nothing(project, trusted, anonymous, token_for, caplog):
    from label_studio_cortx.models import CortxStorageEvent

    bucket = "any-bucket"
    storage = _source(project, trusted, bucket)
    body = {"Records": [record(bucket, "a.jpg")]}
    assert _post(anonymous, storage, body).status_code == 401  # no token: events are off until one is made
    token = token_for(storage)
    for response in (
        _post(anonymous, storage, body),
        _post(anonymous, storage, body, token="wrong"),
        _post(anonymous, storage, body, bearer="wrong"),
        _post(anonymous, storage, body, token=token[:-1]),
        _post(anonymous, storage, body, bearer=token + "x"),
        anonymous.post(
            f"/api/storages/cortx/{storage.id + 999}/events?token={token}",
            data=json.dumps(body),
            content_type="application/json",
        ),
        anonymous.post(
            f"/api/storages/cortx/{storage.id}/events",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}",
        ),
    ):
        assert response.status_code == 401
    # A malformed body without the token is still a 401: nothing is read before the token is checked.
    assert _post(anonymous, storage, b"{not json", token="wrong", raw=True).status_code == 401
    assert CortxStorageEvent.objects.count() == 0 and project.tasks.count() == 0
    assert token not in caplog.text


@pytest.mark.django_db
def test_malformed_bodies_get_400_oversized_413_and_change_nothing(project, trusted, anonymous, token_for, settings):
    from label_studio_cortx.models import CortxStorageEvent

    settings.CORTX_EVENTS_MAX_RECORDS = 5
    settings.CORTX_EVENTS_MAX_BODY_BYTES = 64 * 1024
    bucket = "any-bucket"
    storage = _source(project, trusted, bucket)
    token = token_for(storage)
    good = record(bucket, "a.jpg")
    no_key = record(bucket, "b.jpg")
    del no_key["s3"]["object"]["key"]
    bad_sequencer = record(bucket, "c.jpg", sequencer="not-hex!")
    long_key = record(bucket, "k" * 1025)
    for body in (
        b"{not json",
        b"",
        json.dumps([good]).encode(),
        json.dumps({"Records": {"0": good}}).encode(),
        json.dumps({"Records": [good, "text"]}).encode(),
        json.dumps({"Records": [good, no_key]}).encode(),
        json.dumps({"Records": [good, {**good, "eventName": 7}]}).encode(),
        json.dumps({"Records": [good, bad_sequencer]}).encode(),
        json.dumps({"Records": [good, long_key]}).encode(),
        json.dumps({"Records": [good] * 6}).encode(),
    ):
        response = _post(anonymous, storage, body, bearer=token, raw=True)
        assert response.status_code == 400, (body[:80], response.content)
    huge = json.dumps({"Records": [good], "padding": "x" * 70000}).encode()
    assert _post(anonymous, storage, huge, bearer=token, raw=True).status_code == 413
    assert CortxStorageEvent.objects.count() == 0 and project.tasks.count() == 0


# --- applying events ------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_created_and_removed_keys_follow_the_storage_rules_in_rgw_and_minio_formats(
    api, project, trusted, anonymous, token_for
):
    from tasks.models import Annotation

    bucket = new_bucket(trusted)
    for key in ("images/a b.jpg", "images/c.jpg", "images/sub/d.jpg", "other/e.jpg", "images/f.txt"):
        put(trusted, bucket, key, b"x")
    storage = _source(project, trusted, bucket, prefix="images", regex_filter=r".*\.jpg")
    token = token_for(storage)

    # Ceph RGW: a URL with the token, keys as they are.
    rgw = _post(anonymous, storage, {"Records": [
        record(bucket, "images/a b.jpg", sequencer="0001"),
        record(bucket, "images/a b.jpg", sequencer="0001"),  # a duplicate
        record(bucket, "images/sub/d.jpg"),  # below the prefix's folder: not recursive
        record(bucket, "other/e.jpg"),  # outside the prefix
        record(bucket, "images/f.txt"),  # not matched by the regex
        record("another-bucket", "images/c.jpg"),  # another bucket's record
        {**record(bucket, "images/c.jpg"), "eventName": "ObjectTagging:Put"},  # not a create or remove
    ]}, token=token)  # fmt: skip
    assert rgw.status_code == 200 and rgw.json() == {"queued": 2, "ignored": 3}
    # MinIO: a webhook with auth_token (a Bearer header) and "s3:"-prefixed event names.
    # MinIO: a webhook with auth_token (a Bearer header), "s3:"-prefixed event names, URL-encoded keys.
    put(trusted, bucket, "images/g h+i.jpg", b"x")
    minio = _post(anonymous, storage, {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/images/c.jpg",
                                       "Records": [minio_record(bucket, "images/c.jpg"),
                                                   minio_record(bucket, "images/g h+i.jpg")]},
                  bearer=token)  # fmt: skip
    assert minio.status_code == 200 and minio.json()["queued"] == 2
    assert _settle(storage) == "completed", storage.traceback
    assert storage.meta["trigger"] == "events" and storage.sync_started_at is None  # events do not move schedules
    data = sorted(next(iter(task.data.values())) for task in project.tasks.all())
    assert data == [f"s3://{bucket}/images/{name}" for name in ("a b.jpg", "c.jpg", "g h+i.jpg")]

    # Now a full sync: nothing new, no duplicate of the event-made tasks.
    storage.sync()
    storage.refresh_from_db()
    assert storage.status == "completed" and storage.meta["tasks_existed"] == 3 and project.tasks.count() == 3
    project.tasks.filter(pk=storage.links.get(key="images/g h+i.jpg").task_id).delete()

    # A "removed" for an object that is still there (an old event arriving late) removes nothing.
    _post(anonymous, storage, {"Records": [record(bucket, "images/c.jpg", "ObjectRemoved:Delete")]}, token=token)
    _settle(storage)
    assert project.tasks.count() == 2 and storage.links.filter(object_exists=False).count() == 0

    # Removal off (the default): the task stays, its link is marked.
    trusted.client().delete_object(Bucket=bucket, Key="images/c.jpg")
    _post(anonymous, storage, {"Records": [record(bucket, "images/c.jpg", "ObjectRemoved:Delete")]}, token=token)
    _settle(storage)
    assert project.tasks.count() == 2 and storage.links.get(key="images/c.jpg").object_exists is False

    # Removal on: an unannotated task goes, an annotated one is only marked.
    type(storage).objects.filter(pk=storage.pk).update(sync_remove_missing=True)
    annotated = storage.links.get(key="images/a b.jpg").task
    Annotation.objects.create(task=annotated, project=project, result=[])
    trusted.client().delete_object(Bucket=bucket, Key="images/a b.jpg")
    body = {"Records": [record(bucket, key, "ObjectRemoved:Delete") for key in ("images/a b.jpg", "images/c.jpg")]}
    _post(anonymous, storage, body, token=token)
    _settle(storage)
    assert list(project.tasks.values_list("pk", flat=True)) == [annotated.pk]
    assert storage.links.get(key="images/a b.jpg").object_exists is False
    storage.refresh_from_db()
    assert storage.meta["tasks_removed"] == 1 and storage.meta["tasks_missing_kept"] == 1


@pytest.mark.django_db(transaction=True)
def test_out_of_order_events_end_in_the_state_of_the_store(project, trusted, anonymous, token_for, settings):
    from label_studio_cortx import schedule

    bucket = new_bucket(trusted)
    put(trusted, bucket, "kept.jpg", b"x")
    storage = _source(project, trusted, bucket, sync_remove_missing=True)
    token = token_for(storage)
    # One batch: kept.jpg was removed (sequencer 2) and re-created (3), arriving as 3, 2; gone.jpg was created (1)
    # and removed (2), arriving as 2, 1 ("remove before create").
    settings.CORTX_SCHEDULER = False
    body = {"Records": [
        record(bucket, "kept.jpg", sequencer="0000000000000003"),
        record(bucket, "kept.jpg", "ObjectRemoved:Delete", sequencer="0000000000000002"),
        record(bucket, "gone.jpg", "ObjectRemoved:Delete", sequencer="0000000000000002"),
        record(bucket, "gone.jpg", sequencer="0000000000000001"),
    ]}  # fmt: skip
    assert _post(anonymous, storage, body, token=token).json()["queued"] == 4
    _settle(storage)
    assert [link.key for link in storage.links.all()] == ["kept.jpg"]
    # The same events again, and again out of order: nothing changes.
    body["Records"].reverse()
    _post(anonymous, storage, body, token=token)
    _settle(storage)
    assert [link.key for link in storage.links.all()] == ["kept.jpg"] and project.tasks.count() == 1
    assert schedule.next_sync_at(storage) is None


def _source_with_its_store_down(project, trusted, settings, objects: int):
    """A source storage over a bucket of ``objects`` objects, whose endpoint then points where nothing listens (the
    store is down until the test puts ``trusted.url`` back); (storage, bucket)."""
    from label_studio_cortx.devservers.moto_server import free_port

    down = f"http://127.0.0.1:{free_port()}"
    settings.CORTX_TRUSTED_ENDPOINTS = [trusted.url, down]
    settings.CORTX_MAX_ATTEMPTS = 1
    bucket = new_bucket(trusted)
    seed_objects(trusted, bucket, objects)
    storage = _source(project, trusted, bucket)
    type(storage).objects.filter(pk=storage.pk).update(s3_endpoint=down)
    return storage, bucket


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_10000_events_is_queued_without_the_store_and_applied_in_batches(
    project, trusted, anonymous, token_for, settings
):
    """The requests never touch the store: they are answered while it is down, and the events wait until it is
    back. Then 10,000 events (20 for each of 500 keys) become 500 tasks, in batches."""
    from label_studio_cortx import schedule
    from label_studio_cortx.models import CortxStorageEvent

    storage, bucket = _source_with_its_store_down(project, trusted, settings, objects=500)
    token = token_for(storage)
    for request in range(10):
        body = {"Records": [record(bucket, f"{i % 500:05d}.jpg", sequencer=f"{request:04x}{i:04x}")
                            for i in range(1000)]}  # fmt: skip
        response = _post(anonymous, storage, body, token=token)
        assert response.status_code == 200 and response.json()["queued"] == 1000
    assert _settle_failed(storage) == "failed"
    assert "refused" in storage.traceback
    assert CortxStorageEvent.objects.filter(storage=storage).count() == 10000  # kept for when the store is back
    assert project.tasks.count() == 0

    type(storage).objects.filter(pk=storage.pk).update(s3_endpoint=trusted.url)
    schedule.apply_pending_events_soon()  # what the scheduler's next tick does
    assert _settle(storage, timeout=300) == "completed", storage.traceback
    assert project.tasks.count() == 500 and storage.links.count() == 500
    assert storage.meta["events_applied"] == 10000 and storage.last_sync_count == 500


@pytest.mark.django_db(transaction=True)
def test_a_storage_with_too_many_events_waiting_answers_503_and_stores_nothing(
    project, trusted, anonymous, token_for, settings
):
    """The events table is bounded per storage: while CORTX_EVENTS_MAX_PENDING events wait (the store is down), a
    notification is refused with 503 and Retry-After, so that the sender resends it later."""
    from label_studio_cortx import schedule
    from label_studio_cortx.models import CortxStorageEvent

    settings.CORTX_EVENTS_MAX_PENDING = 1500
    storage, bucket = _source_with_its_store_down(project, trusted, settings, objects=10)
    token = token_for(storage)

    def body(count: int, first: int) -> dict:
        return {"Records": [record(bucket, f"{first + i:05d}.jpg") for i in range(count)]}

    def waiting() -> int:
        return CortxStorageEvent.objects.filter(storage=storage).count()

    assert _post(anonymous, storage, body(1000, 0), token=token).status_code == 200
    assert _settle_failed(storage) == "failed" and waiting() == 1000
    refused = _post(anonymous, storage, body(1000, 1000), token=token)
    assert refused.status_code == 503 and int(refused["Retry-After"]) >= 1
    assert "1000 bucket events" in refused.json()["detail"] and waiting() == 1000
    assert _post(anonymous, storage, body(500, 1000), token=token).status_code == 200  # up to the cap
    assert _settle_failed(storage) == "failed" and waiting() == 1500
    assert _post(anonymous, storage, body(1, 5000), token=token).status_code == 503

    # The store is back: the waiting events are applied (10 of the keys exist) and notifications are taken again.
    type(storage).objects.filter(pk=storage.pk).update(s3_endpoint=trusted.url)
    schedule.apply_pending_events_soon()
    assert _settle(storage) == "completed" and waiting() == 0 and project.tasks.count() == 10
    assert _post(anonymous, storage, body(1000, 2000), token=token).status_code == 200
    _settle(storage)


def _settle_failed(storage, timeout=120):
    """Wait until every queued attempt to apply the events has run (the ten requests may have queued more than
    one: a later attempt still running would read the endpoint before the test repairs it) and the last failed."""
    from label_studio_cortx import schedule

    assert schedule._events_worker().wait_idle(timeout), "the bucket-events worker did not finish"
    storage.refresh_from_db()
    return storage.status


# --- a real Ceph RGW topic pushing to Label Studio --------------------------------------------------------------
def _wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_real_ceph_rgw_bucket_notification_makes_and_removes_tasks(
    project, ceph_rgw_s3, live_server, token_for, settings
):
    """The README's recipe: an RGW (SNS-compatible) topic with an HTTP push endpoint carrying the token in its
    URL, a bucket notification for created and removed objects; PUT and DELETE through S3 only."""
    import boto3

    from label_studio_cortx import schedule

    rgw = ceph_rgw_s3
    settings.CORTX_TRUSTED_ENDPOINTS = [rgw.url]
    bucket = new_bucket(rgw)
    storage = _source(project, rgw, bucket, prefix="images", sync_remove_missing=True)
    token = token_for(storage)
    push = live_server.url.replace("localhost", "127.0.0.1") + f"/api/storages/cortx/{storage.id}/events?token={token}"
    sns = boto3.client("sns", endpoint_url=rgw.url, region_name=rgw.region, aws_access_key_id=rgw.access_key,
                       aws_secret_access_key=rgw.secret_key)  # fmt: skip
    arn = sns.create_topic(Name=f"label-studio-{bucket}", Attributes={"push-endpoint": push})["TopicArn"]
    s3 = rgw.client()
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"TopicConfigurations": [
        {"Id": "label-studio", "TopicArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})  # fmt: skip
    try:
        for key in ("images/1.jpg", "images/a b+c.jpg", "images/3.jpg", "elsewhere/4.jpg"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        _wait_for(lambda: project.tasks.count() == 3 and not storage.pending_events.exists(), "3 tasks")
        keys = sorted(storage.links.values_list("key", flat=True))
        assert keys == ["images/1.jpg", "images/3.jpg", "images/a b+c.jpg"]
        storage.refresh_from_db()
        assert storage.meta["trigger"] == "events"

        s3.delete_object(Bucket=bucket, Key="images/a b+c.jpg")
        _wait_for(lambda: project.tasks.count() == 2 and not storage.pending_events.exists(), "a removed task")
        assert sorted(storage.links.values_list("key", flat=True)) == ["images/1.jpg", "images/3.jpg"]
        s3.put_object(Bucket=bucket, Key="images/1.jpg", Body=b"x")  # overwritten, same content: no duplicate
        s3.put_object(Bucket=bucket, Key="images/5.jpg", Body=b"x")
        _wait_for(lambda: project.tasks.count() == 3 and not storage.pending_events.exists(), "one more task")
        assert storage.links.filter(key="images/1.jpg").count() == 1
    finally:
        schedule.stop_thread()  # the live server's first request started it
        sns.delete_topic(TopicArn=arn)  # the bucket's notification then has nowhere to push
