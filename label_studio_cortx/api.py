"""REST views: Label Studio's storage views bound to the CORTX models, plus friendlier errors."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NamedTuple
from urllib.parse import unquote

import yaml
from core.middleware import HumanSignalCspMiddleware
from core.permissions import ViewClassPermission, all_permissions
from csp.utils import build_policy
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from io_storages.api import (
    ExportStorageDetailAPI,
    ExportStorageFormLayoutAPI,
    ExportStorageListAPI,
    ExportStorageSyncAPI,
    ExportStorageValidateAPI,
    ImportStorageDetailAPI,
    ImportStorageFormLayoutAPI,
    ImportStorageListAPI,
    ImportStorageListFilesAPI,
    ImportStorageSyncAPI,
    ImportStorageValidateAPI,
)
from io_storages.proxy_api import ProjectResolveStorageUri, ResolveStorageUriAPIMixin, TaskResolveStorageUri
from jwt_auth.auth import TokenAuthenticationPhaseout
from jwt_auth.middleware import JWTAuthenticationMiddleware
from projects.models import Project
from rest_framework import generics
from rest_framework.authentication import SessionAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings as rest_settings
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed as JWTAuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password
from tasks.models import Task
from users.models import User

from . import access, background, conf, media_storages, schedule
from .connection.errors import StorageError
from .models import CortxExportStorage, CortxImportStorage
from .serializers import STORED, CortxExportStorageSerializer, CortxImportStorageSerializer
from .source import events, media, media_links
from .target import snapshots

logger = logging.getLogger(__name__)

_JWT_FLAG = "fflag__feature_develop__prompts__dia_1829_jwt_token_auth"  # Label Studio's JWT switch and token phase-out

TAGS = ["Storage: CORTX S3"]


class StorageErrorAsBadRequest:
    """The one place a domain error becomes an HTTP answer: a StorageError is a 400 with its message."""

    def handle_exception(self, exc):
        if isinstance(exc, StorageError):
            exc = ValidationError(str(exc))
        return super().handle_exception(exc)


def resolve_storage(request, model, storage_id):
    """The stored storage a request is about, by id: 404 for ids that do not exist or that the user may not edit.

    The one place where a storage named in a request body is looked up, so that no request can borrow a
    stored secret for a connection it configures itself unless its user may edit that storage.
    """
    try:
        pk = int(str(storage_id).strip())
    except (TypeError, ValueError):
        raise NotFound(f"No {model._meta.verbose_name} with id {str(storage_id)[:40]!r}.") from None
    storage = model.objects.filter(pk=pk).select_related("project").first()
    if storage is None or not storage.has_permission(request.user):
        raise NotFound(f"No {model._meta.verbose_name} with id {pk}.")
    return storage


def body_storage_id(request):
    value = request.data.get("id")
    return None if value in (None, "") else value


def validated_instance(request, serializer_class):
    """Label Studio's validate_storage_instance, without replacing our specific error messages."""
    model = serializer_class.Meta.model
    storage_id = body_storage_id(request)
    stored = resolve_storage(request, model, storage_id) if storage_id is not None else None
    # The serializer's validate() checks the connection and raises the specific message.
    serializer = serializer_class(data=request.data, context={"request": request, STORED: stored})
    serializer.is_valid(raise_exception=True)
    return serializer.storage_with(serializer.validated_data)


@extend_schema(tags=TAGS, summary="List or create CORTX S3 source storages")
class CortxImportStorageListAPI(StorageErrorAsBadRequest, ImportStorageListAPI):
    queryset = CortxImportStorage.objects.all()
    serializer_class = CortxImportStorageSerializer


@extend_schema(tags=TAGS, summary="Get, update or delete a CORTX S3 source storage")
class CortxImportStorageDetailAPI(StorageErrorAsBadRequest, ImportStorageDetailAPI):
    queryset = CortxImportStorage.objects.all()
    serializer_class = CortxImportStorageSerializer


class CheckedSyncMixin:
    """Label Studio's sync views check the connection in the request, which a hung store holds for minutes.
    Here the check runs first in the sync job; the request waits at most CORTX_SYNC_WAIT_SECONDS and answers
    the storage, whose status says how it went. A check that has already failed by then (a wrong secret, a key
    that may not write) answers 400 with its message, as Label Studio's in-request check would; a sync that
    failed after its check answers the storage with status "failed", as in Label Studio."""

    def post(self, request, *args, **kwargs):
        storage = self.get_object()
        if not storage.synchronizable:
            return Response(status=400, data={"message": f"Storage {storage.id} is not synchronizable"})
        storage.get_client()  # an endpoint that may not be used is a 400 now (no network), not a failed job
        storage.sync(check=True)
        storage.refresh_from_db()
        if background.check_failed(storage):
            raise ValidationError([storage.traceback or "The sync failed."])
        return Response(self.serializer_class(storage).data)


@extend_schema(tags=TAGS, summary="Sync tasks from a CORTX S3 source storage")
class CortxImportStorageSyncAPI(StorageErrorAsBadRequest, CheckedSyncMixin, ImportStorageSyncAPI):
    serializer_class = CortxImportStorageSerializer


@extend_schema(tags=TAGS, summary="Check a CORTX S3 source storage connection")
class CortxImportStorageValidateAPI(StorageErrorAsBadRequest, ImportStorageValidateAPI):
    serializer_class = CortxImportStorageSerializer

    def create(self, request, *args, **kwargs):
        validated_instance(request, self.serializer_class)
        return Response()


class CortxImportStorageListFilesAPI(StorageErrorAsBadRequest, ImportStorageListFilesAPI):
    def __init__(self, *args, **kwargs):
        kwargs["serializer_class"] = CortxImportStorageSerializer
        super().__init__(*args, **kwargs)

    @extend_schema(exclude=True)
    def create(self, request, *args, **kwargs):
        instance = validated_instance(request, self.serializer_class)
        limit = int(request.data.get("limit", settings.DEFAULT_STORAGE_LIST_LIMIT))
        files = []
        for obj in instance.iter_objects():
            files.append(instance.get_unified_metadata(obj))
            if len(files) >= limit:
                files.append({"key": None, "last_modified": None, "size": None})
                break
        return Response({"files": files})


class FormLayoutMixin:
    """Form layouts are templates, rendered with the admin's defaults (endpoint, region, TLS policy)."""

    template_name = "label_studio_cortx/form_layout.yml"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        # Values go in as JSON, which is valid YAML whatever characters they hold.
        context = {
            "endpoint_placeholder": json.dumps(
                f"{conf.default_endpoint()} (default)" if conf.default_endpoint() else "https://s3.example.com"
            ),
            "default_region": json.dumps(conf.default_region()),
            "allow_insecure_tls": conf.allow_insecure_tls(),
            "export_format_options": json.dumps(
                [{"value": snapshots.ANNOTATION_JSON, "label": "Per-annotation JSON (written on every save)"}]
                + [
                    {"value": name, "label": f"{title} snapshot (written on Sync)"}
                    for name, title in snapshots.format_titles().items()
                ]
            ),
        }
        layout = yaml.safe_load(render_to_string(self.template_name, context))
        return Response([*layout[self.storage_type], sync_interval_row()])


def sync_interval_row() -> dict:
    """The scheduled-sync field of both forms (Label Studio's legacy form: a counter)."""
    return {
        "columnCount": 1,
        "fields": [
            {
                "type": "counter",
                "name": "sync_interval",
                "label": "Sync automatically every (minutes, 0 = off)",
                "min": 0,
                "value": 0,
                "tooltip": f"At least {conf.min_sync_interval()} minutes; the storage card's API shows next_sync_at.",
            }
        ],
    }


class CortxImportStorageFormLayoutAPI(StorageErrorAsBadRequest, FormLayoutMixin, ImportStorageFormLayoutAPI):
    pass


@extend_schema(tags=TAGS, summary="Check a CORTX S3 target storage connection")
class CortxExportStorageValidateAPI(StorageErrorAsBadRequest, ExportStorageValidateAPI):
    serializer_class = CortxExportStorageSerializer

    def create(self, request, *args, **kwargs):
        validated_instance(request, self.serializer_class)
        return Response()


@extend_schema(tags=TAGS, summary="List or create CORTX S3 target storages")
class CortxExportStorageListAPI(StorageErrorAsBadRequest, ExportStorageListAPI):
    queryset = CortxExportStorage.objects.all()
    serializer_class = CortxExportStorageSerializer


@extend_schema(tags=TAGS, summary="Get, update or delete a CORTX S3 target storage")
class CortxExportStorageDetailAPI(StorageErrorAsBadRequest, ExportStorageDetailAPI):
    queryset = CortxExportStorage.objects.all()
    serializer_class = CortxExportStorageSerializer


@extend_schema(tags=TAGS, summary="Write annotations to a CORTX S3 target storage")
class CortxExportStorageSyncAPI(StorageErrorAsBadRequest, CheckedSyncMixin, ExportStorageSyncAPI):
    serializer_class = CortxExportStorageSerializer


class CortxExportStorageFormLayoutAPI(StorageErrorAsBadRequest, FormLayoutMixin, ExportStorageFormLayoutAPI):
    pass


@extend_schema(
    tags=TAGS,
    summary="Write a snapshot to a CORTX S3 target storage",
    description="Queues a snapshot of the project's annotations, converted with Label Studio's exporter (body: "
    "optional `export_format`, else the storage's), written under `<prefix>/snapshots/` where target syncs run. "
    "Answers at once with the storage (its `status`); when the snapshot is done, the storage's `meta` names it "
    "(`snapshot`, `snapshot_manifest`).",
)
class CortxExportStorageSnapshotAPI(StorageErrorAsBadRequest, generics.GenericAPIView):
    permission_required = ViewClassPermission(POST=all_permissions.storages_sync)
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    serializer_class = CortxExportStorageSerializer
    queryset = CortxExportStorage.objects.all()

    def post(self, request, *args, **kwargs):
        storage = self.get_object()
        export_format = snapshots.snapshot_format(storage, request.data.get("export_format") or None)
        storage.get_client()  # the endpoint may be used (no network): otherwise a 400 now, not a failed job
        if storage.status in (storage.Status.QUEUED, storage.Status.IN_PROGRESS):
            raise ValidationError(f"Storage {storage.pk} is already syncing; try again when it has finished.")
        background.start_sync(storage, snapshots.snapshot_background, export_format, wait=0)
        storage.refresh_from_db()
        return Response(self.serializer_class(storage).data, status=202)


# --- bucket notifications ----------------------------------------------------------------------------------
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# Compared against when there is no stored hash, so that an unknown storage takes as long as a wrong token.
_NO_HASH = token_hash(secrets.token_urlsafe(32))


def _request_token(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()[:512]
    return str(request.query_params.get("token", ""))[:512]


@extend_schema(
    tags=TAGS,
    summary="Create or rotate the bucket-notification token of a CORTX S3 source storage",
    description="Answers `{token, url}` once: the token is stored only as its SHA-256 and cannot be read back. "
    "A new token replaces the old one at once.",
)
class CortxImportStorageEventsTokenAPI(StorageErrorAsBadRequest, generics.GenericAPIView):
    permission_required = ViewClassPermission(POST=all_permissions.storages_change)
    queryset = CortxImportStorage.objects.all()
    serializer_class = CortxImportStorageSerializer

    def post(self, request, *args, **kwargs):
        storage = resolve_storage(request, CortxImportStorage, kwargs["pk"])
        token = secrets.token_urlsafe(32)
        CortxImportStorage.objects.filter(pk=storage.pk).update(events_token_hash=token_hash(token))
        url = request.build_absolute_uri(f"/api/storages/cortx/{storage.pk}/events")
        return Response({"token": token, "url": url}, status=201)


@extend_schema(
    tags=TAGS,
    summary="Receive S3 bucket notifications (Ceph RGW HTTP push, MinIO webhook)",
    description="Authenticated by the storage's events token (`Authorization: Bearer <token>` or `?token=`), not "
    "by a session. The records are queued and applied in the background: created keys become tasks, removed keys "
    "follow the storage's reconciliation options. 401 for a wrong token, 400 for a malformed body, 413 for one "
    "above CORTX_EVENTS_MAX_BODY_BYTES, 503 with Retry-After while CORTX_EVENTS_MAX_PENDING events of the storage "
    "wait; none of them changes anything.",
)
class CortxImportStorageEventsAPI(StorageErrorAsBadRequest, APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request, pk: int):
        storage = CortxImportStorage.objects.filter(pk=pk).first()
        stored = (storage.events_token_hash if storage is not None else None) or _NO_HASH
        token = _request_token(request)
        if not token or not hmac.compare_digest(token_hash(token), stored) or stored == _NO_HASH:
            return Response({"detail": "Missing or wrong events token."}, status=401)
        limit = conf.events_max_body_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return Response({"detail": f"The body is larger than {limit} bytes."}, status=413)
        # Read at most Content-Length bytes (Django's stream is limited to it), which is within the limit.
        body = request._request.body
        if len(body) > limit:
            return Response({"detail": f"The body is larger than {limit} bytes."}, status=413)
        records = events.parse_notification(body, storage.bucket, conf.events_max_records())
        accept = events.key_filter(storage)
        wanted = [record for record in records if accept(record.key)]
        cap = conf.events_max_pending()
        pending = storage.pending_events.count() if wanted else 0
        if pending + len(wanted) > cap:
            # Back-pressure rather than an unbounded table: RGW's persistent topics and MinIO's queue resend later.
            logger.warning("CORTX storage %s: %d bucket events wait (CORTX_EVENTS_MAX_PENDING=%d)", pk, pending, cap)
            retry = str(max(1, int(conf.scheduler_tick_seconds())))
            detail = f"{pending} bucket events of this storage wait to be applied (at most {cap}); send again later."
            return Response({"detail": detail}, status=503, headers={"Retry-After": retry})
        queued = schedule.queue_events(storage, wanted)
        return Response({"queued": queued, "ignored": len(records) - len(wanted)})


# --- the media proxy: CORTX URLs found in one query -------------------------------------------------------------
class CortxResolveMixin:
    """Label Studio's ``/tasks/<id>/resolve/`` and ``/projects/<id>/resolve/`` with the storage found first among
    the project's CORTX storages (one query). Label Studio's resolver loads every storage of every type of the
    project (11 queries) for each image an annotator opens: a third of a proxied request (docs/performance.md).
    Authentication is Label Studio's (an API token's rows read in one query: ``TokenWithOrganization``), permission is
    its rule (the task route asks it in one statement: ``access.task_access``), the presign redirect is Label Studio's
    own code; the proxied stream is the plugin's one media answer (``source.media.serve``, as for media links), which
    adds ``nosniff`` and a sandbox CSP to Label Studio's proxy: a bucket's HTML must not run in Label Studio's origin.
    A URL no CORTX storage of the project resolves goes to Label Studio's resolver unchanged."""

    def get_authenticators(self):
        return [
            TokenWithOrganization() if type(found) is TokenAuthenticationPhaseout else found
            for found in super().get_authenticators()
        ]

    def resolve(self, request, fileuri: str, instance, permitted: bool | None = None):
        # ``permitted``: the task route's answer from ``access.task_access``; the project route asks Label Studio.
        if not (instance.has_permission(request.user) if permitted is None else permitted):
            return Response(status=403)
        project_id = instance.pk if isinstance(instance, Project) else instance.project_id
        answer = cortx_answer(request, fileuri, project_id, lambda: instance)
        return super().resolve(request, fileuri, instance) if answer is None else answer


def cortx_answer(
    request, fileuri: str, project_id: int, instance: Callable[[], Task | Project]
) -> HttpResponse | StreamingHttpResponse | Response | None:
    """What a CORTX storage of the project answers for ``?fileuri=``: Label Studio's presign redirect for
    ``instance()``, the task or project of the request (a 404 ``Response`` where the storage cannot presign it), or
    the proxied stream; None when no CORTX storage of the project resolves the URI (Label Studio's resolver's to
    answer). Access is the caller's. ``instance`` is called only for the redirect: the stream needs the project's id
    alone, and building the task's model instances was 7% of an API token's image (docs/performance.md)."""
    uri = decoded_fileuri(fileuri)
    found = cortx_storage_for(project_id, uri)
    if found is None:
        return None
    storage, client = found
    if storage.presign:
        task_or_project = instance()
        return ResolveStorageUriAPIMixin().redirect_to_presign_url(uri, task_or_project, type(task_or_project).__name__)
    return served(request, storage, uri, client)


class TokenWithOrganization(TokenAuthenticationPhaseout):
    """Label Studio's token authentication as it is (its legacy-token switch per organization, the request context
    and feature flags it sets), with the token's user read in one statement together with what that code reads of the
    user next: the active organization, its creator (the feature flags' user) and its JWT settings
    (``access.token_user``). Four queries and a savepoint, then the ORM building the one query, were a fifth of an API
    client's image (docs/performance.md)."""

    def authenticate_credentials(self, key: str):
        # DRF's TokenAuthentication.authenticate_credentials with the wider read (``access.token_user``, Label
        # Studio's token model); the same two checks, with DRF's messages.
        if self.get_model() is not Token:
            return super().authenticate_credentials(key)
        token = access.token_user(key)
        if token is None:
            raise AuthenticationFailed(gettext("Invalid token."))
        if not token.user.is_active:
            raise AuthenticationFailed(gettext("User inactive or deleted."))
        return token.user, token


class JWTUserWithOrganization(JWTAuthentication):
    """simplejwt's authentication as Label Studio's JWT middleware uses it, with the token's user read in one
    statement together with what the middleware reads next (``access.user_with_organization``)."""

    def get_user(self, validated_token):
        if jwt_settings.USER_ID_FIELD != "id" or self.user_model is not User:
            return super().get_user(validated_token)
        return _jwt_subject(validated_token, access.user_with_organization)


class JWTOwnerAuthentication(JWTAuthentication):
    """simplejwt's authentication as Label Studio's JWT middleware uses it, answering with ``access.jwt_owner`` (what
    the middleware decides on, without model instances) instead of the user."""

    def get_user(self, validated_token) -> access.JwtOwner:
        return _jwt_subject(validated_token, access.jwt_owner)


def _jwt_subject(validated_token, read: Callable[[object], Any]) -> Any:
    """simplejwt's ``JWTAuthentication.get_user`` with ``read`` (a user or an ``access.JwtOwner`` by the token's user
    id, or None) for its query: the same checks, with simplejwt's messages."""
    try:
        user_id = validated_token[jwt_settings.USER_ID_CLAIM]
    except KeyError as exc:
        raise InvalidToken(gettext("Token contained no recognizable user identification")) from exc
    found = read(user_id)
    if found is None:
        raise JWTAuthenticationFailed(gettext("User not found"), code="user_not_found")
    if jwt_settings.CHECK_USER_IS_ACTIVE and not found.is_active:
        raise JWTAuthenticationFailed(gettext("User is inactive"), code="user_inactive")
    if jwt_settings.CHECK_REVOKE_TOKEN and validated_token.get(
        jwt_settings.REVOKE_TOKEN_CLAIM
    ) != get_md5_hash_password(found.password):
        raise JWTAuthenticationFailed(gettext("The user's password has been changed."), code="password_changed")
    return found


class JWTMiddlewareWithOrganization(JWTAuthenticationMiddleware):
    """Label Studio's ``JWTAuthenticationMiddleware`` on the token path, its user read once instead of four queries
    and a second read of the same user row.

    Where the user has an active organization with a creator and JWT settings (every organization Label Studio has
    used a JWT in), the middleware decides on ``access.jwt_owner`` (one statement, no model instances): Label
    Studio's feature flag is asked for a user that shows its ``get_user_repr`` what the user would (``_FlagUser``),
    and ``request.user`` becomes the user read when first used (``api.task_media_for_api_client`` reads the owner
    only: building the user, its organization, the creator and the JWT settings, and reading the JWT settings in
    the transaction Label Studio's ``AutoOneToOneField`` opens, were an eighth of a JWT image, docs/performance.md).
    Anything else is decided on the model instances (``JWTUserWithOrganization``), as before."""

    def __call__(self, request):
        # Label Studio's JWTAuthenticationMiddleware.__call__, with the narrower reads.
        try:
            self._authenticate(request)
        except (JWTAuthenticationFailed, InvalidToken, TokenError) as exc:
            logger.info("JWT authentication failed: %s", exc)  # Label Studio's: other authentication may follow
        return self.get_response(request)

    @staticmethod
    def _authenticate(request) -> None:
        """Label Studio's decision: a JWT whose user its feature flag lets in, in an organization that allows JWTs,
        sets ``request.user`` and ``request.is_jwt``."""
        from core.feature_flags import flag_set  # imported late, as Label Studio's middleware does

        if _owner_decides():
            owner_and_token = JWTOwnerAuthentication().authenticate(request)
            if owner_and_token is None:
                return  # no JWT in the request
            owner = owner_and_token[0]
            if owner.creator_email is not None and owner.api_tokens_enabled is not None:
                if flag_set(_JWT_FLAG, user=_FlagUser.of(owner)) and owner.api_tokens_enabled:
                    request.user = SimpleLazyObject(functools.partial(_jwt_user, owner.user_id))
                    request.is_jwt = True
                    request.cortx_jwt_owner = owner
                return
        user_and_token = JWTUserWithOrganization().authenticate(request)  # the instances decide
        if user_and_token:
            user = user_and_token[0]
            if flag_set(_JWT_FLAG, user=user) and user.active_organization.jwt.api_tokens_enabled:
                request.user = user
                request.is_jwt = True


def _owner_decides() -> bool:
    """Whether the owner's row decides as the instances would: simplejwt finds users by id in Label Studio's user
    model, and Label Studio's feature flags see a user through its own ``get_user_repr``."""
    return (
        jwt_settings.USER_ID_FIELD == "id"
        and get_user_model() is User
        and settings.FEATURE_FLAGS_GET_USER_REPR == _LABEL_STUDIO_USER_REPR
    )


_LABEL_STUDIO_USER_REPR = "core.feature_flags.utils.get_user_repr"


def _jwt_user(user_id: int) -> User | AnonymousUser:
    # A user deleted since the owner's read is nobody, as Label Studio's middleware answers a user not found.
    return access.user_with_organization(user_id) or AnonymousUser()


class _FlagUser(NamedTuple):
    """What Label Studio's ``get_user_repr`` reads of a user with an active organization that has a creator, for
    its feature flags: ``is_anonymous``, ``email``, ``active_organization.id`` and ``...created_by.email``."""

    email: str
    active_organization: SimpleNamespace
    is_anonymous: bool = False

    @classmethod
    def of(cls, owner: access.JwtOwner) -> _FlagUser:
        creator = SimpleNamespace(email=owner.creator_email)
        return cls(owner.email, SimpleNamespace(id=owner.organization_id, created_by=creator))


class CspMiddlewareWithPolicyKept(HumanSignalCspMiddleware):
    """Label Studio's CSP middleware on the token path, with the policy built from the settings alone kept until a
    ``CSP_`` setting changes. django-csp builds the header string again for every response (0.1-0.2 ms of an API
    client's 2.6-2.9 ms image in process, docs/performance.md); a response or request that brings its own part (a
    view's ``csp_update``, ``csp_replace`` or ``csp`` decorator, a nonce a template asked for) still gets its policy
    built for it."""

    def build_policy(self, request, response):
        if getattr(request, "_csp_nonce", None) or any(
            getattr(response, name, None) for name in ("_csp_config", "_csp_update", "_csp_replace")
        ):
            return super().build_policy(request, response)
        return _settings_policy()


@functools.cache
def _settings_policy() -> str:
    return build_policy()


@receiver(setting_changed)
def _csp_setting_changed(setting: str, **_kwargs) -> None:
    if setting.startswith("CSP_"):
        _settings_policy.cache_clear()


def served(request, storage, uri: str, client=None) -> HttpResponse | StreamingHttpResponse:
    """The object at ``uri`` as the browser gets it (``source.media.serve``), for a request Django authenticated."""
    answer = media.serve(
        storage,
        uri,
        range_header=request.headers.get("Range"),
        if_none_match=request.headers.get("If-None-Match"),
        head=request.method == "HEAD",
        client=client,
    )
    if answer.status in (200, 206) and request.method != "HEAD":
        response = StreamingHttpResponse(answer.body, status=answer.status)
    else:  # a 304, a HEAD or an error: no body to stream (or a short one)
        response = HttpResponse(b"".join(answer.body), status=answer.status)
    for header, value in answer.headers:
        response[header] = value
    return response


def decoded_fileuri(fileuri: str) -> str:
    """The URI in ``?fileuri=``: URL-safe base64, or (Label Studio's fallback for old links) percent-encoded."""
    try:
        return base64.urlsafe_b64decode(fileuri.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return unquote(fileuri)


def cortx_storage_for(project_id: int, uri: str) -> tuple[CortxImportStorage, Any] | None:
    """(storage, client) of the first CORTX source storage of the project (by id, as Label Studio orders them) that
    resolves ``uri``; rows and clients as ``media_storages`` keeps them."""
    for storage, client in media_storages.rows.of_project(project_id):
        if storage.can_resolve_url(uri):
            return storage, client
    return None


@extend_schema(exclude=True)
class CortxTaskResolveStorageUri(CortxResolveMixin, TaskResolveStorageUri):
    def get(self, request, *args, **kwargs):
        fileuri = request.GET.get("fileuri")
        if fileuri is None:
            return Response(status=400)
        found = access.task_access(kwargs["task_id"], request.user.pk)
        if found is None:
            return Response(status=404)
        return self.resolve(request, fileuri, *found)


_LEGACY_TOKEN_LOG = logging.getLogger("jwt_auth.auth")  # Label Studio's own logger and line for a legacy token's use


def task_media_for_api_client(request, task_id: int) -> HttpResponse | StreamingHttpResponse | None:
    """``/tasks/<id>/resolve/`` for an API client, without DRF's view, when what the view would do is plain: DRF's
    authenticators accept the request (``_api_client``), the user may read the task (``access.task_row``), a CORTX
    storage of its project answers (``cortx_answer``: the stream, or the presign redirect); that answer is the
    view's. None for anything else (no ``fileuri``, a refusal, Label Studio's own storages, a presign that fails, an
    ``Accept`` or ``?format=`` the view's negotiation would refuse, REST framework settings not Label Studio's): the
    view decides it.

    DRF's view and Label Studio's authentication around the token's one statement (the request context, the feature
    flags, five model instances, the JWT settings' transaction) were a third of an API client's image in process
    (docs/performance.md)."""
    view = CortxTaskResolveStorageUri
    fileuri = request.GET.get("fileuri")
    if (
        request.method != "GET"
        or fileuri is None
        or not (_as_label_studio_configures(view) and _negotiates(request, view))
    ):
        return None
    client = _api_client(request)
    if client is None:
        return None
    user_id, legacy_token = client
    found = access.task_row(task_id, user_id)
    answer = (
        cortx_answer(request, fileuri, found.project_id, functools.partial(access.task_instance, task_id, found))
        if found is not None and found.permitted
        else None
    )
    if answer is None or isinstance(answer, Response):  # a DRF Response is the view's to render
        return None
    if legacy_token is not None:  # logged once the answer is this path's: the view logs its own
        _LEGACY_TOKEN_LOG.info(
            "Legacy token authentication used",
            extra={"user_id": user_id, "organization_id": legacy_token.organization_id, "endpoint": request.path},
        )
    return answer


def _api_client(request) -> tuple[int, access.TokenOwner | None] | None:
    """(the user's id, the legacy API token's owner when Label Studio logs its use) for the user the resolve view's
    authenticators would accept, when they would accept it as Label Studio configures them; None for anything else,
    refusals included (the view decides those).

    DRF tries them in order. Label Studio's token authentication (``TokenAuthenticationPhaseout``) takes a header with
    the ``Token`` keyword, parsed as DRF parses it (Label Studio's middleware has made an ``X-Api-Key`` one): the
    token must exist and its user be active (DRF), and where Label Studio's JWT feature flag is on, the user's
    active organization must allow legacy tokens, and the use is logged. Without the keyword, DRF's session
    authentication takes the user Label Studio's JWT middleware set (the token path runs no session middleware), if
    active; a GET passes its CSRF check."""
    from core.feature_flags import flag_set  # Label Studio's feature flags, read as its authentication reads them

    words = get_authorization_header(request).split()
    if not words or words[0].lower() != TokenWithOrganization.keyword.lower().encode():
        if not getattr(request, "is_jwt", False):
            return None
        owner = getattr(request, "cortx_jwt_owner", None)  # the user is read only if the view needs it
        if owner is not None:
            return (owner.user_id, None) if owner.is_active else None
        return (request.user.pk, None) if request.user.is_active else None
    if len(words) != 2:
        return None  # DRF refuses anything but one word after the keyword
    key = words[1]
    # A word longer than Label Studio's keys, or with control or non-ASCII characters, is not looked up here.
    if len(key) > Token._meta.get_field("key").max_length or not (key.isascii() and key.decode().isprintable()):
        return None
    owner = access.token_owner(key.decode())
    if owner is None or not owner.is_active:
        return None
    if not flag_set(_JWT_FLAG):
        return owner.user_id, None
    if owner.organization_id is not None and not owner.legacy_tokens_enabled:
        return None  # refused (False), or the organization's JWT settings not made yet (None): the view decides
    return owner.user_id, owner


def _negotiates(request, view) -> bool:
    """Whether DRF's content negotiation would find one of the view's renderers for the request (else a 406): no
    ``?format=`` override, and a media type of the ``Accept`` header (``*/*`` when it is missing) that matches."""
    if (
        request.GET.get(rest_settings.URL_FORMAT_OVERRIDE) is not None
        or len(request.META.get("HTTP_ACCEPT", "")) > 4096
    ):
        return False
    accepted = DefaultContentNegotiation().get_accept_list(request)
    return any(media_type_matches(r.media_type, each) for r in view.renderer_classes for each in accepted)


@functools.cache
def _as_label_studio_configures(view) -> bool:
    # The view's REST framework classes are fixed when the class is made; these are the ones the plain path follows.
    return (
        tuple(view.authentication_classes) == (TokenAuthenticationPhaseout, SessionAuthentication)
        and tuple(view.permission_classes) == (IsAuthenticated,)
        and not view.throttle_classes
        and view.content_negotiation_class is DefaultContentNegotiation
        and TokenWithOrganization().get_model() is Token
    )


@extend_schema(exclude=True)
class CortxProjectResolveStorageUri(CortxResolveMixin, ProjectResolveStorageUri):
    pass


@extend_schema(exclude=True)
class MediaLinkView(APIView):
    """The full path of a media link (``media_gateway`` serves the fast one): Label Studio's authentication, then
    the resolve endpoint's check - access to the task, and a CORTX storage of its project that resolves the object."""

    http_method_names = ["get", "head"]
    permission_classes = (IsAuthenticated,)

    def get(self, request, token: str, name: str = ""):
        link = media_links.unsign(token)
        found = access.task_access(link.task_id, request.user.pk) if link else None
        if found is None or not found[1]:
            return HttpResponse(status=404)
        entry = media_storages.rows.get(link.storage_id)  # the row and client the fast path and /resolve/ use
        if entry is None or entry[0].project_id != found[0].project_id or not entry[0].can_resolve_url(link.uri):
            return HttpResponse(status=404)
        return served(request, entry[0], link.uri, entry[1])

    head = get
