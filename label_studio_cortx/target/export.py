"""Writing annotations to a target bucket: one JSON object per annotation, as Label Studio's S3 target.

Save-time export and delete (jobs queued by the Django layer's signals) and the target sync of such a
target. Jobs get the storage class from their caller: the target side never imports the models.
"""

from __future__ import annotations

import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor, as_completed

from core.feature_flags import flag_set
from core.utils.common import load_func
from django.conf import settings
from tasks.models import Annotation

from .. import conf, rows
from ..connection import client as client_factory
from ..connection.errors import MAX_REPORTED_ERRORS, CappedMessages, StorageError, storage_error, translated

logger = logging.getLogger(__name__)

# export_format of a target that writes one JSON object per annotation (Label Studio's own behaviour).
ANNOTATION_JSON = "ANNOTATION_JSON"
EXPORT_BATCH_SIZE = 200


def object_key(storage, annotation) -> str:
    key = storage.links.model.get_key(annotation)
    # Label Studio's S3 target writes "annotations//1" for a prefix typed as "annotations/".
    prefix = (storage.prefix or "").rstrip("/")
    return f"{prefix}/{key}" if prefix else key


def serialize_batch(storage, annotations: list) -> list[bytes]:
    """The JSON bodies Label Studio's S3 target would write, serialized as one batch.

    Label Studio serializes annotation by annotation; DRF builds its serializer fields once per
    serializer, so one ``many=True`` serializer per batch saves most of that CPU.
    """
    user = storage.project.organization.created_by
    task_format = settings.FUTURE_SAVE_TASK_TO_STORAGE or flag_set(
        "fflag_feat_optic_650_target_storage_task_format_long", user=user, override_system_default=False
    )
    if task_format:
        return [json.dumps(storage._get_serialized_data(annotation)).encode() for annotation in annotations]
    serializer_class = load_func(settings.STORAGE_ANNOTATION_SERIALIZER)
    items = serializer_class(annotations, many=True, context={"project": storage.project}).data
    return [json.dumps(item).encode() for item in items]


def put_json(client, storage, key: str, body: bytes) -> None:
    """Write one annotation object: the single PUT behind save-time export and target syncs."""
    client_factory.put_bytes(client, storage.bucket, key, body, "application/json")


def save_annotation(storage, annotation) -> None:
    (body,) = serialize_batch(storage, [annotation])
    with translated(storage.s3_endpoint, bucket=storage.bucket, what="annotation upload"):
        put_json(storage.get_client(), storage, object_key(storage, annotation), body)
    storage.links.model.create(annotation, storage)


def delete_annotation(storage, annotation) -> None:
    delete_key(storage, object_key(storage, annotation))
    storage.links.filter(annotation=annotation).delete()


def delete_key(storage, key: str) -> None:
    with translated(storage.s3_endpoint, bucket=storage.bucket, what="annotation delete"):
        # One key at a time: batch DeleteObjects needs Content-MD5, which CORTX demands and botocore dropped.
        storage.get_client().delete_object(Bucket=storage.bucket, Key=key)


def export_annotation_to_all(storage_class, annotation_id: int) -> None:
    """Job run after an annotation is saved: write it to every CORTX target of its project.

    A store that is down must never fail the annotator's save: the failure is logged and the next
    manual sync of the target writes whatever is missing.
    """
    annotation = Annotation.objects.filter(pk=annotation_id).select_related("task", "project").first()
    if annotation is None:
        return
    # Snapshot targets are written by a sync only: a per-annotation object would not belong to any snapshot.
    targets = storage_class.objects.filter(project_id=annotation.project_id, export_format=ANNOTATION_JSON)
    for storage in targets:
        try:
            storage.save_annotation(annotation)
        except StorageError as exc:
            logger.warning(
                "CORTX target storage %s could not write annotation %s (its next sync writes it): %s",
                storage.pk,
                annotation_id,
                exc,
            )


def objects_to_delete(storage_class, annotation) -> dict[int, list[str]]:
    """{target storage id: [object keys]} to delete when ``annotation`` is deleted (read before it is gone)."""
    # A target switched to snapshots keeps its old links; its bucket now holds snapshots, which are never edited.
    links = storage_class.links.field.model.objects.filter(
        annotation=annotation, storage__export_format=ANNOTATION_JSON, storage__can_delete_objects=True
    ).select_related("storage")
    found: dict[int, list[str]] = {}
    for link in links:
        found.setdefault(link.storage_id, []).append(object_key(link.storage, annotation))
    return found


def delete_objects(storage_class, storage_id: int, keys: list[str]) -> None:
    """Job run after an annotation was deleted: remove its objects from one target, one key at a time."""
    storage = storage_class.objects.filter(pk=storage_id).first()
    if storage is None:
        return
    for key in keys:
        try:
            delete_key(storage, key)
        except StorageError as exc:
            logger.warning(
                "CORTX target storage %s could not delete object %s of a deleted annotation: %s", storage_id, key, exc
            )


def save_annotations(storage, annotations) -> None:
    """A target sync: write the annotations with a bounded pool of concurrent PUTs.

    Serialization (database work) stays on this thread; only the uploads run in the pool, and
    every failed upload is reported in the storage status instead of being dropped.
    """
    link_class = storage.links.model
    storage.info_set_in_progress()
    storage.cached_user = storage.project.organization.created_by
    total = annotations.count()
    client = storage.get_client()
    exported = 0
    errors = CappedMessages(MAX_REPORTED_ERRORS, "more failed uploads")

    def record(futures: dict) -> None:
        """Collect one batch's uploads, then link what was written in one upsert (new links, or updated_at)."""
        nonlocal exported
        written = []
        for future in as_completed(futures):
            annotation = futures[future]
            try:
                future.result()
                written.append(annotation.pk)
            except Exception as exc:
                error = storage_error(exc, storage.s3_endpoint, bucket=storage.bucket, what="annotation upload")
                errors.add(f"Annotation {annotation.pk}: {error}")
        if rows.supported():
            rows.upsert_links(link_class, "annotation", written, {"storage": storage.pk}, ("annotation", "storage"))
        else:
            link_class.objects.bulk_create(
                [link_class(storage=storage, annotation_id=pk) for pk in written],
                update_conflicts=True,
                unique_fields=["annotation", "storage"],
                update_fields=["updated_at"],
            )
        exported += len(written)
        storage.info_update_progress(last_sync_count=exported, total_annotations=total)

    # Label Studio's task serializer lists the task's comment authors (a many-to-many field): fetched per batch
    # here, not with one query per annotation. The project is the storage's own instance, not one joined per
    # annotation: a Project parses its label config when loaded (0.7 ms, as much as serializing the annotation).
    project = storage.project
    queryset = (
        annotations.filter(project_id=project.pk)
        .select_related("task", "completed_by")
        .prefetch_related("task__comment_authors")
        .order_by("pk")
    )
    pending: dict | None = None
    with ThreadPoolExecutor(max_workers=conf.export_workers()) as pool:
        for batch in _batched(queryset.iterator(chunk_size=EXPORT_BATCH_SIZE), EXPORT_BATCH_SIZE):
            for annotation in batch:
                annotation.cached_user = storage.cached_user
                annotation.project = annotation.task.project = project
            # This batch serializes while the previous one is still uploading.
            futures = {
                pool.submit(put_json, client, storage, object_key(storage, annotation), body): annotation
                for annotation, body in zip(batch, serialize_batch(storage, batch), strict=True)
            }
            if pending is not None:
                record(pending)
            pending = futures
        if pending is not None:
            record(pending)

    if errors.count:
        storage.info_set_completed_with_errors(
            last_sync_count=exported, validation_errors=errors.report(), total_annotations=total
        )
    else:
        storage.info_set_completed(last_sync_count=exported, total_annotations=total)


def _batched(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
