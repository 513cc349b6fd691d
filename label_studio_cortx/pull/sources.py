"""Where a snapshot's images live: references in annotation files turned into source objects (bucket, key).

Label Studio's converter records an image as the task's URI when it cannot fetch it (``s3://bucket/key`` for
cloud-sourced tasks, in COCO's ``file_name``), as a resolve URL (``/tasks/<id>/presign/?fileuri=<base64>``) when
the export resolved URIs, and only by file name in VOC (``<filename>``) and YOLO (the label file's stem). The first
two name their object; a bare name is looked up in the *media sources* the user names (the source storages'
``s3://bucket/prefix``), and a name found under two keys is an error naming both, never a guess.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from .errors import SnapshotError, s3_error

#: Schemes of URIs naming an object in a bucket (Label Studio's S3 storages, and ours, write ``s3://``).
OBJECT_SCHEMES = ("s3://", "s3a://", "s3n://")


@dataclass(frozen=True, order=True)
class Source:
    """One object in a source bucket."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def split_object_uri(uri: str) -> Source | None:
    """``s3://bucket/key`` as a :class:`Source`, the key taken verbatim (keys may hold ``?``, ``#``, ``%``)."""
    if not uri.startswith(OBJECT_SCHEMES):
        return None
    bucket, _, key = uri.partition("://")[2].partition("/")
    return Source(bucket, key) if bucket and key else None


def _decode_fileuri(value: str) -> str | None:
    if value.startswith(OBJECT_SCHEMES):
        return value
    padded = value + "=" * (-len(value) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            text = decode(padded).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if text.startswith(OBJECT_SCHEMES):
            return text
    return None


def parse_reference(ref: str) -> Source | None:
    """The object an image reference names, or None when it is a bare file name (look it up by name)."""
    source = split_object_uri(ref)
    if source is not None:
        return source
    # Label Studio's resolve / presign URLs carry the URI in ``fileuri`` (base64 since 1.13, plain before).
    parts = urlsplit(ref)
    if "/resolve" in parts.path or "/presign" in parts.path:
        for value in parse_qs(parts.query).get("fileuri", []):
            uri = _decode_fileuri(unquote(value)) or _decode_fileuri(value)
            if uri:
                return split_object_uri(uri)
    return None


def parse_media_source(text: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` (or ``bucket/prefix``) as ``(bucket, prefix)``; the prefix may be empty."""
    rest = text.partition("://")[2] if "://" in text else text
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SnapshotError(f"invalid media source {text!r}: expected s3://bucket or s3://bucket/prefix")
    return bucket, prefix


class Unresolved(Exception):
    """An image reference names no object (or more than one); the message says which and where it looked."""


class SourceIndex:
    """Bare file names (and stems, for YOLO) of the objects under the media sources, listed once on first use."""

    def __init__(self, sources: Iterable[str], client_for: Callable[[str], Any]) -> None:
        self.sources = [parse_media_source(s) for s in sources]
        self._client_for = client_for
        self._by_name: dict[str, list[Source]] | None = None
        self._by_stem: dict[str, list[Source]] = {}

    def _build(self) -> dict[str, list[Source]]:
        by_name: dict[str, list[Source]] = {}
        for bucket, prefix in self.sources:
            client = self._client_for(bucket)
            try:
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for obj in page.get("Contents", []) or []:
                        key = obj["Key"]
                        if key.endswith("/"):
                            continue
                        source = Source(bucket, key)
                        name = posixpath.basename(key)
                        by_name.setdefault(name, []).append(source)
                        self._by_stem.setdefault(posixpath.splitext(name)[0], []).append(source)
            except (ClientError, BotoCoreError) as exc:
                # The snapshot's own bucket and endpoint are fine here: say which media source failed, and how to
                # point it at another server.
                error = s3_error(exc, client, bucket, prefix=prefix)
                message = str(error).replace(" (check --bucket and --endpoint)", "")
                raise SnapshotError(
                    f"media source s3://{bucket}/{prefix}: {message}; if bucket {bucket!r} lives on another server, "
                    f"pass --media-endpoint {bucket}=URL (or clients={{{bucket!r}: ...}} in Python)"
                ) from exc
        return by_name

    def where(self) -> str:
        return ", ".join(f"s3://{b}/{p}" for b, p in self.sources) or "no media sources"

    def lookup(self, name: str, by_stem: bool = False) -> Source:
        """The one object whose base name (or stem) is ``name``; :class:`Unresolved` if none or several."""
        if not self.sources:
            raise Unresolved(
                f"{name!r} is a bare file name (the converter recorded no bucket or key for it): name the bucket "
                "the images come from with --media-source s3://bucket/prefix (media_sources=[...])"
            )
        if self._by_name is None:
            self._by_name = self._build()
        table = self._by_stem if by_stem else self._by_name
        found = sorted(set(table.get(name, [])))
        if not found:
            what = "no object whose name without extension is" if by_stem else "no object named"
            raise Unresolved(f"{what} {name!r} under {self.where()}")
        if len(found) > 1:
            listed = ", ".join(s.uri for s in found[:5])
            raise Unresolved(f"{name!r} is ambiguous: {len(found)} objects carry that name ({listed})")
        return found[0]
