"""settings.GET_STORAGE_LIST: Label Studio's storage types plus CORTX S3."""

from __future__ import annotations


def get_storage_list() -> list[dict]:
    # A new list on every call: Label Studio appends to the list it gets back. Imported here: Label Studio reads
    # this setting's path while its URL configuration loads, before the API views can be imported.
    from io_storages.functions import get_storage_list as label_studio_storage_list

    from .api import CortxExportStorageListAPI, CortxImportStorageListAPI

    return [
        *label_studio_storage_list(),
        {
            "name": "cortx",
            "title": "CORTX S3",
            "import_list_api": CortxImportStorageListAPI,
            "export_list_api": CortxExportStorageListAPI,
        },
    ]
