"""Export on save and delete: Label Studio only wires these signals for its own S3 targets."""

from __future__ import annotations

from core.redis import start_job_async_or_sync
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

from .export import delete_annotation_from_all, export_annotation_to_all
from .models import ANNOTATION_JSON, CortxExportStorage


@receiver(post_save, sender=Annotation, dispatch_uid="label_studio_cortx.export_on_save")
def export_annotation_to_cortx_storages(sender, instance, **kwargs) -> None:
    # Avoid an RQ job per annotation for projects without a per-annotation CORTX target.
    if CortxExportStorage.objects.filter(project_id=instance.project_id, export_format=ANNOTATION_JSON).exists():
        start_job_async_or_sync(export_annotation_to_all, instance.pk)


@receiver(pre_delete, sender=Annotation, dispatch_uid="label_studio_cortx.delete_on_delete")
def delete_annotation_from_cortx_storages(sender, instance, **kwargs) -> None:
    delete_annotation_from_all(instance)
