"""Export on save and delete: Label Studio only wires these signals for its own S3 targets. Both only queue work
(background.run_soon): the annotator's request never talks to the store.

And a changed or deleted source storage is dropped from the media paths' rows (``media_storages``) at once.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

from . import media_storages
from .background import run_soon
from .models import CortxExportStorage, CortxImportStorage
from .target.export import ANNOTATION_JSON, delete_objects, export_annotation_to_all, objects_to_delete


@receiver(post_save, sender=Annotation, dispatch_uid="label_studio_cortx.export_on_save")
def export_annotation_to_cortx_storages(sender, instance, **kwargs) -> None:
    # Avoid a job per annotation for projects without a per-annotation CORTX target.
    if CortxExportStorage.objects.filter(project_id=instance.project_id, export_format=ANNOTATION_JSON).exists():
        run_soon(export_annotation_to_all, CortxExportStorage, instance.pk)


@receiver(pre_delete, sender=Annotation, dispatch_uid="label_studio_cortx.delete_on_delete")
def delete_annotation_from_cortx_storages(sender, instance, **kwargs) -> None:
    # The object keys are computed now: once the annotation is deleted, its links (and task) are gone.
    for storage_id, keys in objects_to_delete(CortxExportStorage, instance).items():
        run_soon(delete_objects, CortxExportStorage, storage_id, keys)


@receiver(post_save, sender=CortxImportStorage, dispatch_uid="label_studio_cortx.media_rows_saved")
@receiver(post_delete, sender=CortxImportStorage, dispatch_uid="label_studio_cortx.media_rows_deleted")
def forget_media_rows(sender, **kwargs) -> None:
    media_storages.rows.forget()
