"""Writing annotations to a target bucket: one JSON object per annotation, as Label Studio's S3 target."""

from __future__ import annotations

import json
import logging

from tasks.models import Annotation

logger = logging.getLogger(__name__)


def object_key(storage, annotation) -> str:
    from .models import CortxExportStorageLink

    key = CortxExportStorageLink.get_key(annotation)
    return f"{storage.prefix}/{key}" if storage.prefix else key


def save_annotation(storage, annotation) -> None:
    from .models import CortxExportStorageLink

    body = json.dumps(storage._get_serialized_data(annotation))
    try:
        storage.get_client().put_object(
            Bucket=storage.bucket,
            Key=object_key(storage, annotation),
            Body=body.encode(),
            ContentType="application/json",
        )
    except Exception as exc:
        raise storage.connection_error(exc) from None
    CortxExportStorageLink.create(annotation, storage)


def delete_annotation(storage, annotation) -> None:
    from .models import CortxExportStorageLink

    try:
        # One key at a time: batch DeleteObjects needs Content-MD5, which CORTX demands and botocore dropped.
        storage.get_client().delete_object(Bucket=storage.bucket, Key=object_key(storage, annotation))
    except Exception as exc:
        raise storage.connection_error(exc) from None
    CortxExportStorageLink.objects.filter(storage=storage, annotation=annotation).delete()


def export_annotation_to_all(annotation_id: int) -> None:
    """Job run after an annotation is saved: write it to every CORTX target of its project.

    A store that is down must never fail the annotator's save: the failure is logged and the next
    manual sync of the target writes whatever is missing.
    """
    from .models import CortxExportStorage

    annotation = Annotation.objects.filter(pk=annotation_id).select_related("task", "project").first()
    if annotation is None:
        return
    for storage in CortxExportStorage.objects.filter(project_id=annotation.project_id):
        try:
            storage.save_annotation(annotation)
        except Exception as exc:
            logger.warning(
                "CORTX target storage %s could not write annotation %s (a sync will retry): %s",
                storage.pk,
                annotation_id,
                exc,
            )


def delete_annotation_from_all(annotation) -> None:
    from .models import CortxExportStorageLink

    for link in CortxExportStorageLink.objects.filter(annotation=annotation).select_related("storage"):
        if not link.storage.can_delete_objects:
            continue
        try:
            link.storage.delete_annotation(annotation)
        except Exception as exc:
            logger.warning(
                "CORTX target storage %s could not delete the object of annotation %s: %s",
                link.storage_id,
                annotation.pk,
                exc,
            )
