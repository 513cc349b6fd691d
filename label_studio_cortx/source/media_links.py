"""Media links: the signed, per-user URLs under which the labeling UI loads proxied media.

A link names one object of one CORTX storage, the task it was resolved for (and its project's organization) and
the user it was made for, signed
with Django's SECRET_KEY; it is a link, not a key: the web layer (``label_studio_cortx.media_gateway``) serves it,
before Label Studio's middleware, to a valid session of that user until it expires, and after that (or to anyone
else) only once Label Studio has authenticated the request and the user has access to the task. The expiry is
rounded to a window so that a task opened twice in one window gets the same URL (the browser's cache and its ETag
revalidation keep working).

May import Django (signing, the session's user key) and ``conf``; not the models or the web layer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.core import signing

from .. import conf

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SALT = "label_studio_cortx.media-link"


@dataclass(frozen=True)
class MediaLink:
    storage_id: int
    task_id: int
    organization_id: int
    uri: str
    user_id: int
    expires: int

    def fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires


def sign(link: MediaLink) -> str:
    payload = [link.storage_id, link.task_id, link.organization_id, link.uri, link.user_id, link.expires]
    return signing.Signer(salt=_SALT).sign_object(payload, compress=True)


def unsign(token: str) -> MediaLink | None:
    """The link a token names, or None when it was not made by this server (or is malformed): expired links are
    returned too (see ``MediaLink.fresh``)."""
    if len(token) > 8192:
        return None
    try:
        storage_id, task_id, organization_id, uri, user_id, expires = signing.Signer(salt=_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not all(isinstance(v, int) for v in (storage_id, task_id, organization_id, user_id, expires)):
        return None
    if not isinstance(uri, str):
        return None
    return MediaLink(storage_id, task_id, organization_id, uri, user_id, expires)


def expiry(now: float | None = None) -> int:
    """The end of the window after the current one: a link lives between one and two windows, and links made in
    the same window are equal."""
    window = conf.media_link_seconds()
    now = time.time() if now is None else now
    return (int(now) // window + 2) * window


def from_browser(request: Any) -> bool:
    """Whether the request's user is logged in by its session: a browser, as opposed to an API client (token or
    JWT), which has no session cookie to present with a link."""
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    if user is None or session is None or not user.is_authenticated:
        return False
    return str(session.get(SESSION_KEY)) == str(user.pk)


def make(storage_id: int, task_id: int, organization_id: int, uri: str, request: Any) -> tuple[str, str] | None:
    """(token, file name) of a media link for ``uri`` resolved for ``request``'s user, or None when the request is
    not logged in by a session (Label Studio's ``/tasks/<id>/resolve/`` URL is then used) or links are off. The name
    only makes the URL readable (and a download's default name): the token alone decides what is served."""
    if not conf.media_links():
        return None
    if not from_browser(request):
        return None
    link = MediaLink(storage_id, task_id, organization_id, uri, int(request.user.pk), expiry())
    name = _UNSAFE.sub("_", uri.rsplit("/", 1)[-1])[-100:] or "object"
    return sign(link), name
