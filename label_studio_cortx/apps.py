from django.apps import AppConfig


class CortxStorageConfig(AppConfig):
    name = "label_studio_cortx"
    # Label Studio finds a task's storage link by accessor names matching '.*io_storages_'.
    label = "io_storages_cortx"
    verbose_name = "CORTX S3 storage"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401
