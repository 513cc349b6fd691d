"""Routes under /api/storages/, mirroring Label Studio's S3 ones with 'cortx' for 's3'."""

from django.urls import path

from . import api

app_name = "cortx_storages"

urlpatterns = [
    path("cortx/", api.CortxImportStorageListAPI.as_view(), name="storage-cortx-list"),
    path("cortx/<int:pk>", api.CortxImportStorageDetailAPI.as_view(), name="storage-cortx-detail"),
    path("cortx/<int:pk>/sync", api.CortxImportStorageSyncAPI.as_view(), name="storage-cortx-sync"),
    path("cortx/<int:pk>/events", api.CortxImportStorageEventsAPI.as_view(), name="storage-cortx-events"),
    path(
        "cortx/<int:pk>/events-token",
        api.CortxImportStorageEventsTokenAPI.as_view(),
        name="storage-cortx-events-token",
    ),
    path("cortx/validate", api.CortxImportStorageValidateAPI.as_view(), name="storage-cortx-validate"),
    path("cortx/form", api.CortxImportStorageFormLayoutAPI.as_view(), name="storage-cortx-form"),
    path("cortx/files", api.CortxImportStorageListFilesAPI.as_view(), name="storage-cortx-list-files"),
    path("export/cortx", api.CortxExportStorageListAPI.as_view(), name="export-storage-cortx-list"),
    path("export/cortx/<int:pk>", api.CortxExportStorageDetailAPI.as_view(), name="export-storage-cortx-detail"),
    path("export/cortx/<int:pk>/sync", api.CortxExportStorageSyncAPI.as_view(), name="export-storage-cortx-sync"),
    path(
        "export/cortx/<int:pk>/snapshot",
        api.CortxExportStorageSnapshotAPI.as_view(),
        name="export-storage-cortx-snapshot",
    ),
    path("export/cortx/validate", api.CortxExportStorageValidateAPI.as_view(), name="export-storage-cortx-validate"),
    path("export/cortx/form", api.CortxExportStorageFormLayoutAPI.as_view(), name="export-storage-cortx-form"),
]
