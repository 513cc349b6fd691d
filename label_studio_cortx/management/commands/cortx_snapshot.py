"""``cortx_snapshot``: write annotation snapshots to CORTX target storages, e.g. from cron on a shared server.

    python -m label_studio.manage cortx_snapshot --storage 3 [--format COCO]
    python -m label_studio.manage cortx_snapshot --project 7      # every snapshot-format target of project 7

Exit status 0 when every snapshot was written, 1 (with the reasons on stderr) otherwise.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from label_studio_cortx.models import ANNOTATION_JSON, CortxExportStorage
from label_studio_cortx.pull.manifest import snapshot_folder
from label_studio_cortx.target.snapshots import run_snapshot


class Command(BaseCommand):
    help = "Write a snapshot of a project's annotations, converted by Label Studio's exporter, to CORTX targets."

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--storage", type=int, help="id of a CORTX target storage")
        which.add_argument("--project", type=int, help="snapshot every CORTX target of this project with a format")
        parser.add_argument("--format", dest="export_format", help="export format instead of the storage's own")

    def handle(self, *args, storage: int | None, project: int | None, export_format: str | None, **options) -> None:
        if storage is not None:
            targets = list(CortxExportStorage.objects.filter(pk=storage))
            if not targets:
                raise CommandError(f"There is no CORTX target storage with id {storage}.")
        else:
            targets = list(CortxExportStorage.objects.filter(project_id=project).order_by("pk"))
            if not export_format:
                targets = [t for t in targets if t.export_format != ANNOTATION_JSON]
            if not targets:
                raise CommandError(
                    f"Project {project} has no CORTX target storage with a snapshot export format "
                    "(set one in the storage's settings, or pass --format)."
                )

        failures = []
        for target in targets:
            try:
                manifest = run_snapshot(target, export_format)
            except Exception as exc:  # every target is tried; all failures are reported together
                failures.append(f"storage {target.pk}: {_message(exc)}")
                continue
            self.stdout.write(
                f"storage {target.pk}: {manifest.format} snapshot {manifest.snapshot} "
                f"({manifest.task_count} tasks, {manifest.annotation_count} annotations, "
                f"{manifest.total_size} bytes) at s3://{target.bucket}/"
                + snapshot_folder(target.prefix, manifest.snapshot)
            )
        if failures:
            raise CommandError("Snapshot failed for " + "; ".join(failures))


def _message(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)  # DRF ValidationError: its messages, not its repr
    if isinstance(detail, list):
        return " ".join(str(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(
            f"{key}: {' '.join(map(str, value)) if isinstance(value, list) else value}" for key, value in detail.items()
        )
    return str(exc)
