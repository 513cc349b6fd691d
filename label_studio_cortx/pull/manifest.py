"""Snapshot manifest: the single source of truth for the snapshot layout in a bucket.

A CORTX target storage can write *snapshots* of a project's annotations converted by Label Studio's
converter. Layout under the storage prefix ``P`` (may be empty)::

    P/snapshots/<ts>/<files>            the snapshot's files (``result.json``, ``result.csv``, ``COCO.zip`` ...)
    P/snapshots/<ts>/manifest.json      this manifest
    P/snapshots/latest.json             same content as the newest manifest, written LAST

``<ts>`` is a UTC timestamp such as ``20261127T203015Z`` (see :func:`new_snapshot_id`), so snapshot ids sort
chronologically as plain strings.

This module is pure standard library: it is shared by the server-side writer (inside Label Studio) and by
:mod:`label_studio_cortx.pull` (the pull side, which must run without Django or Label Studio).

One module although long: it is the snapshot format, every field with its validation, read by both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "ARCHIVE_SUFFIX",
    "LATEST_NAME",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "SNAPSHOTS_DIR",
    "SNAPSHOT_ID_FORMAT",
    "SNAPSHOT_ID_RE",
    "ManifestFile",
    "ManifestProject",
    "SnapshotManifest",
    "archive_name",
    "file_key",
    "is_snapshot_id",
    "latest_key",
    "manifest_key",
    "new_snapshot_id",
    "normalize_prefix",
    "sha256_file",
    "snapshot_folder",
    "snapshots_root",
    "utc_isoformat",
]

#: Version of the manifest schema written by this code. Readers refuse manifests with a newer version.
MANIFEST_VERSION = 1
#: Folder (under the storage prefix) holding all snapshots.
SNAPSHOTS_DIR = "snapshots"
#: Name of the manifest inside a snapshot folder (and of the copy written next to pulled files).
MANIFEST_NAME = "manifest.json"
#: Name of the pointer to the newest complete snapshot, directly under :data:`SNAPSHOTS_DIR`.
LATEST_NAME = "latest.json"
#: Suffix of archives holding directory-shaped converter output (COCO, VOC, YOLO ...).
ARCHIVE_SUFFIX = ".zip"
#: :func:`datetime.strftime` format of snapshot ids.
SNAPSHOT_ID_FORMAT = "%Y%m%dT%H%M%SZ"
#: Regular expression matching a snapshot id.
SNAPSHOT_ID_RE = re.compile(r"^\d{8}T\d{6}Z$")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------------------------------------------------
# Object keys
# --------------------------------------------------------------------------------------------------------------------


def normalize_prefix(prefix: str | None) -> str:
    """Return the storage prefix without leading/trailing slashes (``None`` and ``"/"`` become ``""``)."""
    return (prefix or "").strip("/")


def is_snapshot_id(value: str) -> bool:
    """True if ``value`` looks like a snapshot id (``YYYYMMDDTHHMMSSZ``)."""
    return isinstance(value, str) and bool(SNAPSHOT_ID_RE.match(value))


def _check_snapshot_id(snapshot: str) -> str:
    if not is_snapshot_id(snapshot):
        raise ValueError(f"invalid snapshot id {snapshot!r}: expected a UTC timestamp like 20261127T203015Z")
    return snapshot


def snapshots_root(prefix: str | None) -> str:
    """Key prefix of all snapshots, with a trailing slash: ``"P/snapshots/"`` (``"snapshots/"`` for no prefix)."""
    p = normalize_prefix(prefix)
    return f"{p}/{SNAPSHOTS_DIR}/" if p else f"{SNAPSHOTS_DIR}/"


def snapshot_folder(prefix: str | None, ts: str) -> str:
    """Key prefix of one snapshot, with a trailing slash: ``"P/snapshots/<ts>/"``."""
    return f"{snapshots_root(prefix)}{_check_snapshot_id(ts)}/"


def file_key(prefix: str | None, ts: str, name: str) -> str:
    """Object key of the snapshot file ``name`` (a path relative to the snapshot folder)."""
    return snapshot_folder(prefix, ts) + _check_relative_name(name, "name")


def latest_key(prefix: str | None) -> str:
    """Object key of the latest-snapshot pointer: ``"P/snapshots/latest.json"``."""
    return snapshots_root(prefix) + LATEST_NAME


def manifest_key(prefix: str | None, ts: str) -> str:
    """Object key of a snapshot's manifest: ``"P/snapshots/<ts>/manifest.json"``."""
    return snapshot_folder(prefix, ts) + MANIFEST_NAME


def archive_name(fmt: str) -> str:
    """File name of the archive holding a directory-shaped export format, e.g. ``"COCO.zip"``."""
    return f"{fmt}{ARCHIVE_SUFFIX}"


# --------------------------------------------------------------------------------------------------------------------
# Time and hashing
# --------------------------------------------------------------------------------------------------------------------


def _as_utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:  # naive datetimes are taken to be UTC already
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def new_snapshot_id(now: datetime | None = None) -> str:
    """Snapshot id for ``now`` (default: current time) as ``%Y%m%dT%H%M%SZ`` in UTC. Naive datetimes are UTC."""
    return _as_utc(now).strftime(SNAPSHOT_ID_FORMAT)


def utc_isoformat(now: datetime | None = None) -> str:
    """ISO 8601 UTC timestamp with second precision and a ``Z`` suffix, for :attr:`SnapshotManifest.created_at`."""
    return _as_utc(now).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1024 * 1024) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------------------------


def _require(data: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{where}: missing required field(s): {', '.join(missing)}")


def _get_str(data: dict[str, Any], key: str, where: str, allow_empty: bool = False) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    if not allow_empty and not value:
        raise ValueError(f"{where}.{key}: must not be empty")
    return value


def _get_int(data: dict[str, Any], key: str, where: str, minimum: int | None = 0) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}.{key}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}.{key}: must be >= {minimum}, got {value}")
    return value


def _check_relative_name(name: str, where: str) -> str:
    """A file name inside a snapshot folder: a relative POSIX path that cannot escape the folder."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: must be a non-empty string")
    if "\\" in name or "\x00" in name:
        raise ValueError(f"{where}: {name!r} must be a POSIX path without backslashes or NUL characters")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")):
        raise ValueError(f"{where}: {name!r} must be a relative path without '.', '..' or empty components")
    return name


def _check_created_at(value: str, where: str) -> str:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value  # Python 3.10 rejects a bare "Z"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None or parsed.utcoffset() != timedelta(0):
        raise ValueError(f"{where}: {value!r} must be in UTC (end with 'Z' or '+00:00')")
    return value


# --------------------------------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class ManifestFile:
    """One object of a snapshot.

    :ivar name: path relative to the snapshot folder (``"result.json"``, ``"COCO.zip"``)
    :ivar key: full object key in the bucket
    :ivar size: size in bytes
    :ivar sha256: lowercase hex SHA-256 of the object's content
    :ivar archive: True if the file is a zip archive to unpack into the snapshot folder
    """

    name: str
    key: str
    size: int
    sha256: str
    archive: bool = False

    REQUIRED = ("name", "key", "size", "sha256")

    @classmethod
    def for_file(
        cls, path: str | os.PathLike[str], prefix: str | None, ts: str, name: str | None = None, archive: bool = False
    ) -> ManifestFile:
        """Entry for the local file ``path`` uploaded as ``name`` (default: its base name) into snapshot ``ts``."""
        name = name if name is not None else os.path.basename(os.fspath(path))
        return cls(
            name=name,
            key=file_key(prefix, ts, name),
            size=os.path.getsize(path),
            sha256=sha256_file(path),
            archive=archive,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "size": self.size, "sha256": self.sha256, "archive": self.archive}

    @classmethod
    def from_dict(cls, data: Any, where: str = "file") -> ManifestFile:
        """Build from a parsed JSON object, raising :class:`ValueError` naming the offending field."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        _require(data, cls.REQUIRED, where)
        name = _check_relative_name(_get_str(data, "name", where), f"{where}.name")
        if name == MANIFEST_NAME:
            raise ValueError(f"{where}.name: {MANIFEST_NAME!r} is reserved for the snapshot manifest")
        key = _get_str(data, "key", where)
        size = _get_int(data, "size", where)
        sha = _get_str(data, "sha256", where).lower()
        if not _SHA256_RE.match(sha):
            raise ValueError(f"{where}.sha256: {sha!r} is not a hex SHA-256 digest (64 hex characters)")
        archive = data.get("archive", False)
        if not isinstance(archive, bool):
            raise ValueError(f"{where}.archive: expected true or false, got {type(archive).__name__}")
        return cls(name=name, key=key, size=size, sha256=sha, archive=archive)


@dataclass
class ManifestProject:
    """The Label Studio project a snapshot was taken from."""

    id: int
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title}

    @classmethod
    def from_dict(cls, data: Any, where: str = "project") -> ManifestProject:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        _require(data, ("id",), where)
        title = data.get("title", "")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise ValueError(f"{where}.title: expected a string, got {type(title).__name__}")
        return cls(id=_get_int(data, "id", where, minimum=None), title=title)


@dataclass
class SnapshotManifest:
    """Content of ``P/snapshots/<ts>/manifest.json`` and ``P/snapshots/latest.json``.

    JSON schema (version 1)::

        {"manifest_version": 1, "snapshot": "20261127T203015Z", "created_at": "2026-11-27T20:30:15Z",
         "format": "COCO", "project": {"id": 1, "title": "Cats"}, "label_studio_version": "1.23.2",
         "plugin_version": "0.1.0", "task_count": 3, "annotation_count": 2,
         "files": [{"name": "COCO.zip", "key": "P/snapshots/20261127T203015Z/COCO.zip", "size": 1234,
                    "sha256": "<hex>", "archive": true}]}

    Unknown top-level fields are ignored when reading (forward compatible within a version).
    """

    snapshot: str
    created_at: str
    format: str
    project: ManifestProject
    label_studio_version: str
    plugin_version: str
    task_count: int
    annotation_count: int
    files: list[ManifestFile] = field(default_factory=list)
    manifest_version: int = MANIFEST_VERSION

    REQUIRED = (
        "manifest_version",
        "snapshot",
        "created_at",
        "format",
        "project",
        "label_studio_version",
        "plugin_version",
        "task_count",
        "annotation_count",
        "files",
    )

    # ---- derived values ---------------------------------------------------------------------------------------------

    @property
    def total_size(self) -> int:
        """Sum of the sizes of all files, in bytes."""
        return sum(f.size for f in self.files)

    @property
    def archives(self) -> list[ManifestFile]:
        return [f for f in self.files if f.archive]

    # ---- serialization ----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": self.manifest_version,
            "snapshot": self.snapshot,
            "created_at": self.created_at,
            "format": self.format,
            "project": self.project.to_dict(),
            "label_studio_version": self.label_studio_version,
            "plugin_version": self.plugin_version,
            "task_count": self.task_count,
            "annotation_count": self.annotation_count,
            "files": [f.to_dict() for f in self.files],
        }

    def validate(self) -> SnapshotManifest:
        """Raise :class:`ValueError` if the manifest does not match the schema; return ``self`` otherwise."""
        self.from_dict(self.to_dict())
        return self

    def to_json(self, indent: int | None = 2) -> str:
        """Serialize to JSON (validated first, so an invalid manifest is never written)."""
        data = self.to_dict()
        self.from_dict(data)
        return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> SnapshotManifest:
        """Parse and validate a manifest. Raises :class:`ValueError` with a message naming the bad field."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"manifest is not UTF-8 text: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"manifest is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> SnapshotManifest:
        where = "manifest"
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        _require(data, cls.REQUIRED, where)
        version = _get_int(data, "manifest_version", where, minimum=1)
        if version > MANIFEST_VERSION:
            raise ValueError(
                f"{where}.manifest_version: {version} is newer than the supported version {MANIFEST_VERSION}; "
                "upgrade label-studio-cortx"
            )
        snapshot = _get_str(data, "snapshot", where)
        if not is_snapshot_id(snapshot):
            raise ValueError(f"{where}.snapshot: {snapshot!r} is not a snapshot id like 20261127T203015Z")
        created_at = _check_created_at(_get_str(data, "created_at", where), f"{where}.created_at")
        fmt = _get_str(data, "format", where)
        project = ManifestProject.from_dict(data["project"], f"{where}.project")
        ls_version = _get_str(data, "label_studio_version", where, allow_empty=True)
        plugin_version = _get_str(data, "plugin_version", where, allow_empty=True)
        task_count = _get_int(data, "task_count", where)
        annotation_count = _get_int(data, "annotation_count", where)
        raw_files = data["files"]
        if not isinstance(raw_files, list):
            raise ValueError(f"{where}.files: expected a list, got {type(raw_files).__name__}")
        files = [ManifestFile.from_dict(f, f"{where}.files[{i}]") for i, f in enumerate(raw_files)]
        seen: set[str] = set()
        for i, f in enumerate(files):
            if f.name in seen:
                raise ValueError(f"{where}.files[{i}].name: duplicate file name {f.name!r}")
            seen.add(f.name)
        return cls(
            manifest_version=version,
            snapshot=snapshot,
            created_at=created_at,
            format=fmt,
            project=project,
            label_studio_version=ls_version,
            plugin_version=plugin_version,
            task_count=task_count,
            annotation_count=annotation_count,
            files=files,
        )
