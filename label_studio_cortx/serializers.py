"""REST serializers: field validation with actionable messages, secrets never in a response."""

from __future__ import annotations

import copy

from botocore.exceptions import ParamValidationError
from botocore.handlers import validate_bucket_name
from io_storages.serializers import ExportStorageSerializer, ImportStorageSerializer
from projects.models import Project
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from . import conf, schedule
from .connection import ca_bundle, endpoints
from .connection.errors import StorageError
from .models import CortxExportStorage, CortxImportStorage
from .source import patterns
from .target.snapshots import check_format

STORAGE_TYPE = "cortx"
# Serializer context key: the saved storage a request names by id, resolved by the view with permission checked.
STORED = "stored_storage"

# A change to any of these means the stored connection must be checked again.
CONNECTION_FIELDS = {
    "bucket",
    "prefix",
    "regex_filter",
    "recursive_scan",
    "s3_endpoint",
    "region_name",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "force_path_style",
    "ca_bundle",
    "verify_tls",
}


class CortxStorageSerializerMixin:
    secure_fields = ["aws_access_key_id", "aws_secret_access_key", "aws_session_token"]

    def to_representation(self, instance):
        result = super().to_representation(instance)
        for attr in self.secure_fields:
            result.pop(attr, None)
        result.pop("events_token_hash", None)
        # When the next scheduled sync is due (ISO 8601), null without a schedule.
        due = schedule.next_sync_at(instance) if getattr(instance, "pk", None) else None
        result["next_sync_at"] = due.isoformat() if due else None
        if isinstance(instance, CortxImportStorage):
            result["events_enabled"] = bool(instance.events_token_hash)
        return result

    def validate_sync_interval(self, value: int | None) -> int:
        value = value or 0
        if 0 < value < conf.min_sync_interval():
            raise ValidationError(
                f"The shortest sync interval your admin allows is {conf.min_sync_interval()} minutes "
                "(CORTX_MIN_SYNC_INTERVAL); 0 switches scheduled sync off."
            )
        return value

    def validate_s3_endpoint(self, value: str) -> str:
        if not value and self.instance is None:
            return value  # filled from CORTX_DEFAULT_ENDPOINT in validate()
        try:
            value = endpoints.normalize(value or "")
            endpoints.check_ssrf(value)
        except endpoints.EndpointError as exc:
            raise ValidationError(str(exc)) from None
        return value

    def validate_bucket(self, value: str | None) -> str | None:
        if not value:
            return value
        value = value.strip()
        try:
            validate_bucket_name({"Bucket": value})
        except ParamValidationError as exc:
            raise ValidationError(exc.kwargs["report"]) from None
        if not 3 <= len(value) <= 63:
            raise ValidationError("A bucket name has 3 to 63 characters.")
        return value

    def validate_ca_bundle(self, value: str | None) -> str:
        try:
            return ca_bundle.normalize(value)
        except ca_bundle.CABundleError as exc:
            raise ValidationError(str(exc)) from None

    def validate_verify_tls(self, value: bool) -> bool:
        if not value and not conf.allow_insecure_tls():
            raise ValidationError(
                "Your admin does not allow switching TLS verification off (CORTX_ALLOW_INSECURE_TLS). "
                "Paste the CA bundle of the endpoint instead."
            )
        return value

    def validate_regex_filter(self, value: str | None) -> str | None:
        try:
            return patterns.validate(value)
        except patterns.PatternError as exc:
            raise ValidationError(str(exc)) from None

    def validate_region_name(self, value: str | None) -> str | None:
        return value.strip() if value else value

    def validate(self, data):
        if self.stored_storage() is None and self.initial_data.get("id") not in (None, ""):
            raise ValidationError({"id": "A new storage cannot name an id: leave it out."})
        data = super().validate(data)
        if self.instance is None and not data.get("s3_endpoint"):
            if not conf.default_endpoint():
                raise ValidationError({"s3_endpoint": "Enter the S3 endpoint URL, e.g. https://s3.example.com."})
            data["s3_endpoint"] = self.validate_s3_endpoint(conf.default_endpoint())
        if self.instance is not None and not CONNECTION_FIELDS & set(data):
            return data
        storage = self.storage_with(data)
        try:
            storage.validate_connection()
        except StorageError as exc:
            raise ValidationError(str(exc)) from None
        return data

    def stored_storage(self):
        """The saved storage this data changes: the instance being updated, or the one a validate request
        names by id (resolved, with the user's permission checked, by the view: never looked up here)."""
        return self.instance if self.instance is not None else self.context.get(STORED)

    def storage_with(self, data):
        """The storage as it would be saved, to check its connection without saving it."""
        model = self.Meta.model
        stored = self.stored_storage()
        if stored is not None:
            # 'Check connection' on an existing storage: the form does not resend stored secrets.
            storage = copy.copy(stored)
        else:
            return model(**{k: v for k, v in data.items() if k != "id"})
        for key, value in data.items():
            if key in self.secure_fields and not value:
                continue
            setattr(storage, key, value)
        return storage


class CortxImportStorageSerializer(CortxStorageSerializerMixin, ImportStorageSerializer):
    type = serializers.ReadOnlyField(default=STORAGE_TYPE)
    presign = serializers.BooleanField(required=False, default=False)

    def validate_public_endpoint(self, value: str | None) -> str | None:
        if not value:
            return value
        try:
            return endpoints.normalize(value)
        except endpoints.EndpointError as exc:
            raise ValidationError(str(exc)) from None

    class Meta:
        model = CortxImportStorage
        # CORTX answers NotImplemented to server-side encryption headers. The events token is only ever set by
        # its own endpoint (api.CortxImportStorageEventsTokenAPI), and only its hash is stored.
        exclude = ["aws_sse_kms_key_id", "events_token_hash"]
        read_only_fields = ["sync_started_at"]
        extra_kwargs = {"s3_endpoint": {"required": False, "allow_blank": True}}


class CortxExportStorageSerializer(CortxStorageSerializerMixin, ExportStorageSerializer):
    type = serializers.ReadOnlyField(default=STORAGE_TYPE)

    def validate_export_format(self, value: str) -> str:
        try:
            return check_format(self._project(), value)
        except StorageError as exc:
            raise ValidationError(str(exc)) from None

    def _project(self):
        """The project the storage belongs to: sent with the data, or the stored storage's."""
        project_id = self.initial_data.get("project")
        if project_id:
            try:
                return Project.objects.filter(pk=int(project_id)).first()
            except (TypeError, ValueError):
                return None  # the project field reports it
        stored = self.stored_storage()
        return stored.project if stored is not None else None

    class Meta:
        model = CortxExportStorage
        # CORTX answers NotImplemented to server-side encryption headers.
        exclude = ["aws_sse_kms_key_id"]
        read_only_fields = ["sync_started_at"]
        extra_kwargs = {"s3_endpoint": {"required": False, "allow_blank": True}}
