"""CORTX import (source) and export (target) storages and their link tables.

They subclass Label Studio's *abstract* S3 bases, never the concrete S3 models: a CORTX row must
never show up as an S3 row, be resolved by the plain AWS client, or be exported by S3's receivers.
The models carry configuration and implement Label Studio's storage interface by calling the parts:
``connection`` (clients, checks, secrets), ``source`` (sync, media), ``target`` (export, snapshots)
and ``background`` (where a sync runs). Those parts never import the models.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import urljoin

from core.current_request import get_current_request
from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from io_storages.base_models import (
    ExportStorage,
    ExportStorageLink,
    ImportStorageLink,
    ProjectStorageMixin,
    export_sync_background,
    export_sync_only_new_background,
)
from io_storages.s3.models import S3ImportStorageBase, S3StorageMixin
from io_storages.utils import StorageObject, get_uri_via_regex, storage_can_resolve_bucket_url

from . import background
from .connection import client as client_factory
from .connection import secrets as secret_store
from .connection.check import check_connection
from .connection.errors import StorageConnectionError, StorageError, translated
from .source import listing, media, media_links, sync, task_files
from .target import export, snapshots
from .target.export import ANNOTATION_JSON

logger = logging.getLogger(__name__)


class CortxStorageMixin(S3StorageMixin):
    """Connection settings shared by source and target storages."""

    s3_endpoint = models.TextField(
        _("s3_endpoint"), help_text="S3 endpoint URL that Label Studio connects to, e.g. https://s3.example.com"
    )
    force_path_style = models.BooleanField(
        _("force_path_style"), default=True, help_text="Address buckets as https://endpoint/bucket/key"
    )
    ca_bundle = models.TextField(
        _("ca_bundle"), null=True, blank=True, help_text="PEM certificate(s) of the CA(s) to trust for this endpoint"
    )
    verify_tls = models.BooleanField(
        _("verify_tls"), default=True, help_text="Verify the TLS certificate of the endpoint"
    )
    # Label Studio's credential fields, redeclared to be stored encrypted (connection/secrets.py). Same
    # options as Label Studio's, so forms, serializers and the API see no difference.
    aws_access_key_id = secret_store.EncryptedTextField(
        _("aws_access_key_id"), null=True, blank=True, help_text="AWS_ACCESS_KEY_ID"
    )
    aws_secret_access_key = secret_store.EncryptedTextField(
        _("aws_secret_access_key"), null=True, blank=True, help_text="AWS_SECRET_ACCESS_KEY"
    )
    aws_session_token = secret_store.EncryptedTextField(
        _("aws_session_token"), null=True, blank=True, help_text="AWS_SESSION_TOKEN"
    )
    # Scheduled sync (schedule.py): the next run is derived from sync_started_at, which is in the database, so a
    # schedule survives restarts and is shared by every process.
    sync_interval = models.PositiveIntegerField(
        _("sync_interval"),
        default=0,
        help_text="Sync automatically every this many minutes (0: off; at least CORTX_MIN_SYNC_INTERVAL)",
    )
    sync_started_at = models.DateTimeField(
        _("sync_started_at"),
        null=True,
        blank=True,
        help_text="When the last sync (manual, scheduled or from bucket events) was queued",
    )

    class Meta:
        abstract = True

    def info_set_queued(self) -> bool:
        """Claim the storage for a sync: one atomic UPDATE that succeeds only while no sync of it is queued or
        running, on every database (Label Studio skips its row lock on SQLite) and across processes."""
        busy = (self.Status.QUEUED, self.Status.IN_PROGRESS)
        now = timezone.now()
        trigger = getattr(self, "sync_trigger", "manual")
        # An event batch is no full sync: it does not move the schedule.
        stamp = {} if trigger == "events" else {"sync_started_at": now}
        claimed = (
            type(self).objects.filter(pk=self.pk).exclude(status__in=busy).update(status=self.Status.QUEUED, **stamp)
        )
        if not claimed:
            logger.info("CORTX storage %s: a sync is already queued or running; not queued again", self.pk)
            return False
        # Label Studio's _update_queued_status, plus what started the sync (manual, schedule, command, events).
        if stamp:
            self.sync_started_at = now
        self.last_sync = self.last_sync_count = self.last_sync_job = None
        self.status = self.Status.QUEUED
        attempts = (self.meta or {}).get("attempts", 0) + 1
        self.meta = {"attempts": attempts, "time_queued": str(now), "trigger": trigger}
        self.save(update_fields=["last_sync_job", "last_sync", "last_sync_count", "status", "meta"])
        return True

    # --- the client -------------------------------------------------------------------------
    def connection_config(self) -> client_factory.ConnectionConfig:
        # The only place stored secrets are decrypted: a loaded row holds ciphertext, a storage built
        # from a form may hold plaintext (reveal passes it through). A wrong or malformed key becomes
        # a StorageConnectionError, so a check answers 400 and a sync is marked failed with the message.
        try:
            access_key_id = secret_store.reveal(self.aws_access_key_id)
            secret_access_key = secret_store.reveal(self.aws_secret_access_key)
            session_token = secret_store.reveal(self.aws_session_token)
        except secret_store.SecretStoreError as exc:
            raise StorageConnectionError(str(exc)) from None
        return client_factory.ConnectionConfig.build(
            self.s3_endpoint or "",
            region_name=self.region_name,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            force_path_style=self.force_path_style,
            ca_bundle_pem=self.ca_bundle,
            verify_tls=self.verify_tls,
        )

    def get_client(self):
        with translated(self.s3_endpoint, bucket=self.bucket, what="client set-up"):
            return client_factory.get_client(self.connection_config())

    def get_client_and_resource(self):
        # boto3 resources are not used by this storage type: every call goes through the client.
        return self.get_client(), None

    def get_client_and_bucket(self, validate_connection: bool = True):
        client = self.get_client()
        if validate_connection:
            self.validate_connection(client)
        return client, self.bucket

    def info_set_failed(self) -> None:
        # Label Studio keeps a DRF ValidationError's message as the failed sync's "traceback" and the whole
        # traceback of anything else; a StorageError's message is what the user should read.
        super().info_set_failed()
        error = sys.exc_info()[1]
        if isinstance(error, StorageError):
            self.traceback = str(error)
            self.save(update_fields=["traceback"])
        background.notify_sync_finished(self)

    def info_set_completed(self, last_sync_count, **kwargs) -> None:
        super().info_set_completed(last_sync_count, **kwargs)
        background.notify_sync_finished(self)

    def info_set_completed_with_errors(self, last_sync_count, validation_errors, **kwargs) -> None:
        super().info_set_completed_with_errors(last_sync_count, validation_errors, **kwargs)
        background.notify_sync_finished(self)

    # --- checks -----------------------------------------------------------------------------
    def validate_connection(self, client=None) -> None:
        check_connection(self, client)

    @property
    def path_full(self) -> str:
        return f"s3://{self.bucket}/{self.prefix or ''}"

    @property
    def type_full(self) -> str:
        return "CORTX S3"

    def get_bytes_stream(self, uri: str, range_header: str | None = None):
        """Label Studio's storage interface (its own proxy's stream); the plugin's proxy uses ``media.serve``."""
        return media.open_stream(self, uri, range_header)


class CortxImportStorageBase(CortxStorageMixin, S3ImportStorageBase):
    # CORTX v1 has neither presigned URLs nor CORS: proxy media through Label Studio by default.
    presign = models.BooleanField(_("presign"), default=False, help_text="Generate presigned URLs")
    public_endpoint = models.TextField(
        _("public_endpoint"),
        null=True,
        blank=True,
        help_text="Endpoint URL browsers use for presigned links, when it differs from s3_endpoint",
    )
    sync_remove_missing = models.BooleanField(
        _("sync_remove_missing"), default=False, help_text="On sync, remove tasks whose objects are gone"
    )
    sync_update_changed = models.BooleanField(
        _("sync_update_changed"), default=False, help_text="On sync, update tasks whose JSON file changed (ETag)"
    )
    sync_touch_annotated = models.BooleanField(
        _("sync_touch_annotated"),
        default=False,
        help_text="Let removal and updates affect tasks that have annotations (otherwise they are only marked)",
    )
    # Bucket notifications (api.CortxImportStorageEventsAPI): the SHA-256 of the token, never the token.
    events_token_hash = models.CharField(_("events_token_hash"), max_length=64, null=True, blank=True)

    class Meta:
        abstract = True

    def validate_connection(self, client=None) -> None:
        check_connection(self, client, listing.list_params(self))

    def iter_objects(self):
        return listing.iter_objects(self)

    def iter_keys(self):
        for obj in self.iter_objects():
            yield obj["Key"]

    def get_unified_metadata(self, obj) -> dict:
        return {"key": obj["Key"], "last_modified": obj.get("LastModified"), "size": obj.get("Size")}

    def get_data(self, key: str) -> list[StorageObject]:
        return task_files.read_task_data(self, key)

    def scan_and_create_links(self):
        return sync.scan_and_create_links(self, self.links.model)

    def sync(self, check: bool = False) -> None:
        """Queue a sync; ``check``: check the connection first, in the job (the Sync button's path)."""
        background.start_sync(self, check=check)

    def generate_http_url(self, url: str) -> str:
        return media.presigned_url(self, url)

    def can_resolve_url(self, url: str | None) -> bool:
        return storage_can_resolve_bucket_url(self, url)

    def resolve_uri(self, uri, task=None):
        """Label Studio's resolve_uri, except that proxied media resolved for a browser's session becomes a media
        link (``source.media_links``), served before Label Studio's middleware; API clients (token, JWT) and
        presigned storages get Label Studio's ``/tasks/<id>/resolve/`` URL as before."""
        if isinstance(uri, str) and self.url_scheme in uri and task is not None and not self.presign:
            extracted, _ = get_uri_via_regex(uri, prefixes=(self.url_scheme,))
            if extracted and self.can_resolve_url(extracted):
                organization_id = self.project.organization_id
                made = media_links.make(self.pk, task.id, organization_id, extracted, get_current_request())
                if made is not None:
                    path = reverse("cortx-media-link", kwargs={"token": made[0], "name": made[1]})
                    return uri.replace(extracted, urljoin(settings.HOSTNAME, path))
        return super().resolve_uri(uri, task)

    def get_blob_metadata(self, key: str) -> dict:
        with translated(self.s3_endpoint, bucket=self.bucket, what="object metadata"):
            response = self.get_client().head_object(Bucket=self.bucket, Key=key)
        response.pop("ResponseMetadata", None)
        return response


class CortxImportStorage(ProjectStorageMixin, CortxImportStorageBase):
    class Meta:
        abstract = False


class CortxExportStorage(CortxStorageMixin, ExportStorage):
    # Not a choices field: the valid formats depend on the project's labeling config (checked by the serializer)
    # and on Label Studio's converter version, which must not turn into migrations.
    export_format = models.CharField(
        _("export_format"),
        max_length=64,
        default=ANNOTATION_JSON,
        help_text=f"{ANNOTATION_JSON}: one JSON object per annotation, written on save; or a Label Studio export "
        "format (JSON, JSON_MIN, CSV, TSV, COCO, VOC, YOLO ...): each sync writes a snapshot of the project",
    )

    @property
    def writes_snapshots(self) -> bool:
        return self.export_format != ANNOTATION_JSON

    def sync(self, save_only_new_annotations: bool = False, check: bool = False) -> None:
        """Queue a sync; ``check``: check the connection (and write access) first, in the job."""
        background.start_sync(
            self, export_sync_only_new_background if save_only_new_annotations else export_sync_background, check=check
        )

    def save_all_annotations(self) -> None:
        if self.writes_snapshots:
            snapshots.sync_snapshot(self)
        else:
            super().save_all_annotations()

    def save_only_new_annotations(self) -> None:
        # A snapshot is always of the whole project.
        if self.writes_snapshots:
            self.save_all_annotations()
        else:
            super().save_only_new_annotations()

    def save_annotations(self, annotations) -> None:
        export.save_annotations(self, annotations)

    def save_annotation(self, annotation) -> None:
        export.save_annotation(self, annotation)

    def delete_annotation(self, annotation) -> None:
        export.delete_annotation(self, annotation)


class CortxImportStorageLink(ImportStorageLink):
    storage = models.ForeignKey(CortxImportStorage, on_delete=models.CASCADE, related_name="links")
    # For optional reconciliation on re-sync: what the object was, and when a listing last saw it.
    object_etag = models.CharField(_("object_etag"), max_length=128, null=True, blank=True)
    seen_at = models.DateTimeField(_("seen_at"), null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["storage", "key"], name="cortx_link_storage_key")]


class CortxExportStorageLink(ExportStorageLink):
    storage = models.ForeignKey(CortxExportStorage, on_delete=models.CASCADE, related_name="links")

    class Meta:
        # One link per annotation and target: lets a target sync record a whole batch in one upsert.
        constraints = [models.UniqueConstraint(fields=["annotation", "storage"], name="cortx_export_link_unique")]


class CortxTaskFileProblem(models.Model):
    """A JSONL task file imported in part: the lines that could not be read, at the ETag that was read.

    A re-sync reports them again while the file is unchanged, and once its ETag changes reads it again
    and adds the rows that have no task yet (and forgets the record when no bad line is left).
    """

    storage = models.ForeignKey(CortxImportStorage, on_delete=models.CASCADE, related_name="task_file_problems")
    key = models.TextField(_("key"))
    etag = models.CharField(_("etag"), max_length=128, null=True, blank=True)
    problems = models.JSONField(_("problems"), default=list)
    updated_at = models.DateTimeField(_("updated_at"), auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["storage", "key"], name="cortx_task_file_problem_unique")]


class CortxStorageEvent(models.Model):
    """A bucket notification received and not yet applied: the durable queue between the events endpoint (which
    only stores these) and the batch job that turns them into tasks (``source.events``)."""

    storage = models.ForeignKey(CortxImportStorage, on_delete=models.CASCADE, related_name="pending_events")
    key = models.TextField(_("key"))
    removed = models.BooleanField(_("removed"), default=False)
    # S3's per-key ordering token (hex, compared after left-padding) and the object's ETag.
    sequencer = models.CharField(_("sequencer"), max_length=64, blank=True, default="")
    etag = models.CharField(_("etag"), max_length=128, null=True, blank=True)
    received_at = models.DateTimeField(_("received_at"), auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["storage", "id"], name="cortx_event_storage_id")]
