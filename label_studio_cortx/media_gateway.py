"""Serving media links (``source.media_links``): the image an annotator opens, without Label Studio's middleware.

Each proxied image used to cross Label Studio's whole middleware stack and token authentication, most of what a
proxied request cost (docs/performance.md). A media link is served in two ways:

- **the fast path**, a WSGI wrapper in front of Django (``wrap``, used by ``label_studio_cortx.wsgi`` and so by
  gunicorn and ``label-studio-cortx start``): a GET or HEAD of an unexpired link with a session cookie of the user
  the link was made for (Django's ``get_user`` decides: a valid session, an active user, the password unchanged;
  the session younger than MAX_SESSION_AGE, as Label Studio's inactivity middleware requires) and not a revoked
  member of the project's organization (Label Studio Community's access rule) is served from the link's storage,
  with two indexed queries (the user, the membership; the storage row and its client are kept for two seconds);
- **the full path**, the Django view ``api.MediaLinkView`` for everything else (an expired link, an API client's token,
  another user's session): Label Studio's authentication, then the same check as ``/tasks/<id>/resolve/`` (access to
  the task's project, a storage of that project that resolves the URI). A link is never a key by itself.

Both answer with ``source.media.serve``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.db import close_old_connections, connection
from django.http.cookie import parse_cookie
from organizations.models import OrganizationMember

from . import conf
from .connection.errors import StorageError
from .models import CortxImportStorage
from .source import media, media_links

logger = logging.getLogger(__name__)

PREFIX = "/cortx/media/"  # root_urls' route "cortx-media-link", as PATH_INFO shows it
WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def _token(path: str) -> str | None:
    rest = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
    token, slash, _name = rest.partition("/")
    return token if slash and token else None


def _session_key(environ: dict) -> str | None:
    cookie = environ.get("HTTP_COOKIE", "")
    if not cookie or len(cookie) > 16384:
        return None
    return parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME)


def _fast_storage(environ: dict) -> tuple[tuple[Any, Any], media_links.MediaLink] | None:
    """((storage, client), link) of a request the fast path may serve, else None (the full path decides)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or environ.get("HTTP_AUTHORIZATION"):
        return None
    if not conf.media_links():  # links made before the admin turned them off take the full path
        return None
    token = _token(environ.get("PATH_INFO", ""))
    link = media_links.unsign(token) if token else None
    session_key = _session_key(environ) if link else None
    if link is None or not link.fresh() or not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if time.time() - float(session.get("last_login") or 0) > settings.MAX_SESSION_AGE:
        return None  # Label Studio's inactivity middleware would log this session out
    # Django's own check of a session: its user exists, is active, and its password has not changed since.
    user = get_user(SimpleNamespace(session=session))
    if not user.is_authenticated or user.pk != link.user_id:
        return None
    if _revoked(user.pk, link.organization_id):
        return None
    found = _storages.get(link.storage_id)
    if found is None or found[0].presign or not found[0].can_resolve_url(link.uri):
        return None
    return found, link


def _revoked(user_id: int, organization_id: int) -> bool:
    """Label Studio Community's access rule (projects.mixins.ProjectMixin.has_permission, through
    Organization.has_deleted): anyone but a revoked member of the project's organization. One indexed query
    written out: the ORM's query building was a tenth of a served image."""
    with connection.cursor() as cursor:
        cursor.execute(_revoked_sql(connection.vendor), [user_id, organization_id])
        return cursor.fetchone() is not None


@functools.cache
def _revoked_sql(vendor: str) -> str:
    meta, quote = OrganizationMember._meta, connection.ops.quote_name
    return (
        f"SELECT 1 FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('user').column)} = %s"
        f" AND {quote(meta.get_field('organization').column)} = %s"
        f" AND {quote(meta.get_field('deleted_at').column)} IS NOT NULL LIMIT 1"
    )


class _StorageRows:
    """Storage rows and their clients for the fast path, each read again after ``seconds``: a project's images
    all come from one storage row, and reading its wide row (secrets, CA bundle) was a sixth of a served image;
    its client is found once per row too (keys decrypted, configuration built). A change to the storage (a
    deleted storage, new keys, presign turned on) reaches the fast path within ``seconds``. The client is None
    when it cannot be built (``media.serve`` then says so)."""

    def __init__(self, seconds: float = 2.0, size: int = 256):
        self.seconds, self.size = seconds, size
        self._rows: dict[int, tuple[float, tuple[Any, Any] | None]] = {}
        self._lock = threading.Lock()

    def get(self, storage_id: int) -> tuple[Any, Any] | None:
        """(storage, its client) or None when there is no such storage."""
        now = time.monotonic()
        with self._lock:
            found = self._rows.get(storage_id)
        if found is not None and now - found[0] < self.seconds:
            return found[1]
        storage = CortxImportStorage.objects.filter(pk=storage_id).first()
        entry = None
        if storage is not None:
            try:
                entry = (storage, storage.get_client())
            except StorageError:
                entry = (storage, None)
        with self._lock:
            if len(self._rows) >= self.size:
                self._rows.clear()
            self._rows[storage_id] = (now, entry)
        return entry


_storages = _StorageRows()


def wrap(application: WsgiApp) -> WsgiApp:
    """``application`` with media links served in front of it (see the module's docstring)."""

    def media_first(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith(PREFIX):
            return application(environ, start_response)
        close_old_connections()  # what Django's request_started does: CONN_MAX_AGE and health checks apply
        answer = None
        try:
            found = _fast_storage(environ)
            if found is not None:
                (storage, client), link = found
                answer = media.serve(
                    storage,
                    link.uri,
                    range_header=environ.get("HTTP_RANGE"),
                    if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
                    head=environ["REQUEST_METHOD"] == "HEAD",
                    client=client,
                )
        except Exception:
            logger.exception("media link: fast path failed")
            answer = media.MediaResponse(500, [("Content-Type", "text/plain"), ("Content-Length", "0")], iter(()))
        finally:
            close_old_connections()  # what request_finished does; the body needs no database
        if answer is None:
            return application(environ, start_response)  # the full path: Django, its middleware, api.MediaLinkView
        start_response(f"{answer.status} {_REASONS.get(answer.status, '')}".strip(), answer.headers)
        return answer.body

    return media_first


_REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 424: "Failed Dependency", 500: "Server Error"}
