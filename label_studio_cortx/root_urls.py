"""ROOT_URLCONF with the plugin: its /api/storages/cortx routes first, then all of Label Studio's."""

from core.urls import urlpatterns as label_studio_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("api/storages/", include("label_studio_cortx.urls")),
    *label_studio_urlpatterns,
]
