"""ROOT_URLCONF with the plugin: its /api/storages/cortx routes and its media proxy first, then all of Label
Studio's (the proxy's routes are Label Studio's own paths, so the labeling UI's links reach it unchanged)."""

from core.urls import urlpatterns as label_studio_urlpatterns
from django.urls import include, path

from . import api

urlpatterns = [
    path("api/storages/", include("label_studio_cortx.urls")),
    path("cortx/media/<str:token>/<str:name>", api.MediaLinkView.as_view(), name="cortx-media-link"),
    path("tasks/<int:task_id>/resolve/", api.CortxTaskResolveStorageUri.as_view()),
    path("projects/<int:project_id>/resolve/", api.CortxProjectResolveStorageUri.as_view()),
    path("tasks/<int:task_id>/presign/", api.CortxTaskResolveStorageUri.as_view()),  # Label Studio's old name
    path("projects/<int:project_id>/presign/", api.CortxProjectResolveStorageUri.as_view()),
    *label_studio_urlpatterns,
]
