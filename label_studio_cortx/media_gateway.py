"""Serving media links (``source.media_links``): the image an annotator opens, without Label Studio's middleware.

Each proxied image used to cross Label Studio's whole middleware stack and token authentication, most of what a
proxied request cost (docs/performance.md). A media link is served in two ways:

- **the fast path**, a WSGI wrapper in front of Django (``wrap``, used by ``label_studio_cortx.wsgi`` and so by
  gunicorn and ``label-studio-cortx start``): a GET or HEAD of an unexpired link with a session cookie of the user
  the link was made for (checked as Django's ``get_user`` checks it: a valid session, an active user, the password
  unchanged; the session younger than MAX_SESSION_AGE, as Label Studio's inactivity middleware requires) and not a
  revoked member of the project's organization (Label Studio Community's access rule) is served from the link's
  storage, with one indexed statement (the user and the membership, ``access.session_user``; the storage row and
  its client come from ``media_storages``);
- **the full path**, the Django view ``api.MediaLinkView`` for everything else (an expired link, an API client's token,
  another user's session): Label Studio's authentication, then the same check as ``/tasks/<id>/resolve/`` (access to
  the task's project, a storage of that project that resolves the URI). A link is never a key by itself.

Both answer with ``source.media.serve``.

An API client's GET of ``/tasks/<id>/resolve/`` or ``/projects/<id>/resolve/`` (an ``Authorization`` or
``X-Api-Key`` header: a script, an SDK, a training job) is dispatched here too (``_by_token``): to the plugin's
resolve view itself (``api.CortxTaskResolveStorageUri``: Label Studio's authentication and permission classes and
its task check, then the CORTX storage or Label Studio's own resolver), behind only those of Label Studio's
middleware that act on such a request - CORS, Django's security headers, ``X-Api-Key``, the JWT access token, the
CSP headers (the last two as ``api``'s variants: the same answers with less work per image) - instead of all
twenty. The others are for browser sessions (session, CSRF, messages, session timeouts), for writes (last
activity), or telemetry. Behind them, on the task route, ``api.task_media_for_api_client`` answers first the GETs the
view would simply stream or redirect (DRF's authenticators would accept, the access rule allows, a CORTX storage
answers) and leaves the rest to the view. A 401 or 403 goes to Django after all, so every refusal is decided by
Label Studio's whole stack. Both fast paths are off as soon as ``settings.MIDDLEWARE`` holds anything not reviewed
here (an admin's own IP allowlist or audit log then sees every request).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core import signals
from django.core.exceptions import ValidationError
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest, get_script_name
from django.db import close_old_connections
from django.http.cookie import parse_cookie
from django.urls import set_script_prefix
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from . import access, conf, media_storages, prepared
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
    if not conf.media_links() or not _middleware_reviewed():  # links made before links were turned off: full path
        return None
    token = _token(environ.get("PATH_INFO", ""))
    link = media_links.unsign(token) if token else None
    session_key = _session_key(environ) if link else None
    if link is None or not link.fresh() or not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if time.time() - float(session.get("last_login") or 0) > settings.MAX_SESSION_AGE:
        return None  # Label Studio's inactivity middleware would log this session out
    with prepared.statements():  # the fast path's database work: the checks above need none
        if not _of_the_links_user(session, link):
            return None
        found = media_storages.rows.get(link.storage_id)
    if found is None or found[0].presign or not found[0].can_resolve_url(link.uri):
        return None
    return found, link


_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"  # the backend Label Studio's login sessions name


def _of_the_links_user(session, link: media_links.MediaLink) -> bool:
    """Whether the session is a login of the link's user that Django accepts, and that user is not a revoked member
    of the link's organization (Label Studio Community's access rule).

    Django's check of a session (``get_user``): the session names an installed backend and a user; the backend finds
    the user and lets them in (``ModelBackend``: they exist and are active); the session's hash of the user's
    password is the current one. For ``ModelBackend`` sessions the user's row and the membership are one statement
    (``access.session_user``); a session Django would accept only after changing it (a hash made with a fallback
    secret) or of another backend is Django's to decide (``get_user``, or the full path)."""
    backend = session.get(BACKEND_SESSION_KEY)
    if backend not in settings.AUTHENTICATION_BACKENDS:
        return False
    if backend != _MODEL_BACKEND:
        user = get_user(SimpleNamespace(session=session))
        return user.is_authenticated and user.pk == link.user_id and not access.revoked(user.pk, link.organization_id)
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
    except (KeyError, ValidationError):
        return False
    if user_id != link.user_id:
        return False
    found = access.session_user(user_id, link.organization_id)
    if found is None:
        return False
    user, was_revoked = found
    session_hash = session.get(HASH_SESSION_KEY)
    verified = bool(session_hash) and constant_time_compare(session_hash, user.get_session_auth_hash())
    return verified and ModelBackend().user_can_authenticate(user) and not was_revoked


# Label Studio 1.23's middleware (core.settings.base and .label_studio, with INACTIVITY_SESSION_TIMEOUT_ENABLED), each
# read for what it does to a GET: a fast path skips the ones not in _TOKEN_MIDDLEWARE.
_REVIEWED_MIDDLEWARE = frozenset(
    {
        "corsheaders.middleware.CorsMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "core.middleware.DisableCSRF",
        "django.middleware.csrf.CsrfViewMiddleware",
        "core.middleware.XApiKeySupportMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "core.middleware.CommonMiddlewareAppendSlashWithoutRedirect",
        "django_user_agents.middleware.UserAgentMiddleware",
        "core.middleware.SetSessionUIDMiddleware",
        "core.middleware.ContextLogMiddleware",
        "core.middleware.DatabaseIsLockedRetryMiddleware",
        "core.current_request.ThreadLocalMiddleware",
        "jwt_auth.middleware.JWTAuthenticationMiddleware",
        "core.middleware.HumanSignalCspMiddleware",
        "organizations.middleware.DummyGetSessionMiddleware",
        "core.middleware.UpdateLastActivityMiddleware",
        "core.middleware.InactivitySessionTimeoutMiddleWare",
    }
)
# What acts on an API client's GET: response headers (CORS, security, CSP) and the two ways in for a token.
_TOKEN_MIDDLEWARE = frozenset(
    {
        "corsheaders.middleware.CorsMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "core.middleware.XApiKeySupportMiddleware",
        "jwt_auth.middleware.JWTAuthenticationMiddleware",
        "core.middleware.HumanSignalCspMiddleware",
    }
)
_RESOLVE = re.compile(r"/(tasks|projects)/([0-9]{1,18})/(?:resolve|presign)/\Z")  # root_urls' resolve routes


def _middleware_reviewed() -> bool:
    return _middleware_known(tuple(settings.MIDDLEWARE))


@functools.cache
def _middleware_known(middleware: tuple[str, ...]) -> bool:
    unknown = set(middleware) - _REVIEWED_MIDDLEWARE
    if unknown:
        logger.info("media fast paths off: settings.MIDDLEWARE has %s", ", ".join(sorted(unknown)))
    return not unknown


@functools.cache
def _token_handlers(middleware: tuple[str, ...]) -> dict[str, Callable]:
    """The resolve views behind the token middleware, in settings.MIDDLEWARE's order, per route."""
    from . import api  # the views bring Label Studio's API modules: imported once the first token request comes

    handlers = {}
    for route, view, kwarg in (
        ("tasks", api.CortxTaskResolveStorageUri, "task_id"),
        ("projects", api.CortxProjectResolveStorageUri, "project_id"),
    ):
        handler = _dispatch(view.as_view(), kwarg, api.task_media_for_api_client if route == "tasks" else None)
        for path in reversed([name for name in middleware if name in _TOKEN_MIDDLEWARE]):
            found = import_string(path)
            if found is api.JWTAuthenticationMiddleware:  # Label Studio's, with its user read in one statement
                found = api.JWTMiddlewareWithOrganization
            elif found is api.HumanSignalCspMiddleware:  # Label Studio's, with its policy built once
                found = api.CspMiddlewareWithPolicyKept
            handler = found(handler)
        handlers[route] = handler
    return handlers


def _dispatch(view: Callable, kwarg: str, plain: Callable | None = None) -> Callable:
    """The view behind the token middleware; ``plain`` (``api.task_media_for_api_client``) answers first what needs
    none of DRF's view, and leaves the rest to it."""

    def dispatch(request):
        object_id = int(_RESOLVE.match(request.path_info).group(2))
        response = plain(request, object_id) if plain is not None else None
        if response is not None:
            return response
        response = view(request, **{kwarg: object_id})
        if callable(getattr(response, "render", None)):  # a DRF Response, rendered where Django's handler would
            response = response.render()
        return response

    return dispatch


def _token_request(environ: dict) -> str | None:
    """The resolve route ("tasks" or "projects") of an API client's GET the token path may serve, else None."""
    # A cookie may come along (Label Studio gives every reply a session cookie, and an SDK's client keeps it): if the
    # token fails and the cookie is a browser session, the 401 goes to Django's session authentication.
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    if not (environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_X_API_KEY")):
        return None
    match = _RESOLVE.match(environ.get("PATH_INFO", ""))
    if match is None or not _middleware_reviewed():
        return None
    return match.group(1)


def _by_token(route: str, environ: dict, start_response: Callable, application: WsgiApp) -> Iterable[bytes]:
    """What Django's WSGIHandler does around a request (script prefix, request_started, the response's close sending
    request_finished), with the token handlers instead of the whole middleware stack. A refusal (401, 403) or a
    fault goes to ``application``, which answers it with all of Label Studio's middleware."""
    set_script_prefix(get_script_name(environ))
    signals.request_started.send(sender=WSGIHandler, environ=environ)
    response = None
    try:
        with prepared.statements():
            response = _token_handlers(tuple(settings.MIDDLEWARE))[route](WSGIRequest(environ))
    except Exception:
        logger.exception("resolve by token: fast path failed")
    if response is None or response.status_code in (401, 403):
        if response is None:
            signals.request_finished.send(sender=WSGIHandler)
        else:
            response._handler_class = WSGIHandler
            response.close()  # request_finished: the request's connections and Label Studio's context released
        return application(environ, start_response)
    response._handler_class = WSGIHandler
    headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
    start_response(f"{response.status_code} {response.reason_phrase}", headers)
    return response


def wrap(application: WsgiApp) -> WsgiApp:
    """``application`` with media links, and API clients' resolve requests, served in front of it (see the module's
    docstring)."""

    def media_first(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith(PREFIX):
            route = _token_request(environ)
            if route is not None:
                return _by_token(route, environ, start_response, application)
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
