"""Label Studio Community's rule for who may read a task's media, and the user a media request authenticates as:
each in one statement.

Label Studio 1.23 (``projects.mixins.ProjectMixin.has_permission``, which ``Task.has_permission`` calls) lets an
authenticated user read any task unless their membership of the project's organization was revoked ("LSO always
runs a single organization"). Asked through the ORM (the task and project rows, then the membership), building the
queries cost more than running them, for every image; here the rule is one statement per database, and
tests/test_media_links.py checks it against Label Studio's own ``has_permission``.

The same holds for the users: Label Studio's token authentication reads an API token's user, then the user's active
organization, its creator and its JWT settings (``token_user``); its JWT middleware reads a JWT's user twice and then
the same three (``user_with_organization``); a media link's session needs the user and the membership
(``session_user``). The ORM built those queries for every image (a fifth of an API client's image,
docs/performance.md); here each is written once per database, and its rows become the model instances, with
Django's own converters, that the ORM's ``select_related`` would give (a test compares them).

Part of the Django layer: used by ``media_gateway`` (media links) and ``api`` (``/tasks/<id>/resolve/``, the
links' full path, the token path's authentication). Imports Django and Label Studio's models only.
"""

from __future__ import annotations

import functools
import weakref
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from jwt_auth.models import JWTSettings
from organizations.models import Organization, OrganizationMember
from projects.models import Project
from rest_framework.authtoken.models import Token
from tasks.models import Task
from users.models import User

_MAX_ID = 2**63 - 1  # Django's URL converter takes any digits; no database integer holds more


def revoked(user_id: int, organization_id: int) -> bool:
    """Whether the user's membership of the organization was revoked (Label Studio's ``Organization.has_deleted``)."""
    with connection.cursor() as cursor:
        cursor.execute(_revoked_sql(connection.vendor), [user_id, organization_id])
        return cursor.fetchone() is not None


class TaskAccess(NamedTuple):
    project_id: int
    organization_id: int | None
    permitted: bool  # not a revoked member of the project's organization (Label Studio Community's rule)


def task_row(task_id: int, user_id: int) -> TaskAccess | None:
    """What ``task_access`` decides on, without the model instances: the task's project and organization and whether
    the user may read it; None when there is no such task."""
    if not 0 <= task_id <= _MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_task_sql(connection.vendor), [user_id, task_id])
        row = cursor.fetchone()
    if row is None:
        return None
    project_id, organization_id, was_revoked = row
    return TaskAccess(project_id, organization_id, not was_revoked)


def task_instance(task_id: int, found: TaskAccess) -> Task:
    """The task of ``task_row``'s answer, holding only what the media paths read of it: its id, its project's id and
    its organization's id."""
    project = Project.from_db(connection.alias, ["id", "organization_id"], [found.project_id, found.organization_id])
    if found.organization_id is not None:
        project.organization = Organization.from_db(connection.alias, ["id"], [found.organization_id])
    task = Task.from_db(connection.alias, ["id", "project_id"], [task_id, found.project_id])
    task.project = project
    return task


def task_access(task_id: int, user_id: int) -> tuple[Task, bool] | None:
    """(the task, whether the user may read it), or None when there is no such task: ``task_row``, then
    ``task_instance``."""
    found = task_row(task_id, user_id)
    return None if found is None else (task_instance(task_id, found), found.permitted)


def token_user(key: str) -> Token | None:
    """The token with this key, or None: its ``user``, the user's ``active_organization``, that organization's
    ``created_by`` and ``jwt`` already loaded, as ``Token.objects.select_related(...).get(key=key)`` of those four
    relations gives them."""
    with connection.cursor() as cursor:
        cursor.execute(_graph_sql(connection.vendor, token=True), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    token, *user = _instances(row, (Token, *_USER_MODELS))
    token.user = _joined(*user)
    return token


class TokenOwner(NamedTuple):
    user_id: int
    is_active: bool
    organization_id: int | None  # the user's active organization
    legacy_tokens_enabled: bool | None  # its JWT settings' switch; None when it has no JWT settings row yet


def token_owner(key: str) -> TokenOwner | None:
    """What Label Studio's token authentication decides an API token's request on, without the model instances it
    builds: the token's user, whether they are active, their active organization and its legacy-token switch."""
    with connection.cursor() as cursor:
        cursor.execute(_token_owner_sql(connection.vendor), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    user_id, is_active, organization_id, legacy = row
    return TokenOwner(user_id, bool(is_active), organization_id, None if legacy is None else bool(legacy))


def user_with_organization(user_id: object) -> User | None:
    """The user with this id (a JWT's claim), or None, loaded as ``token_user`` loads a token's user."""
    user_id = _user_id(user_id)
    if user_id is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_graph_sql(connection.vendor, token=False), [user_id])
        row = cursor.fetchone()
    return None if row is None else _joined(*_instances(row, _USER_MODELS))


class JwtOwner(NamedTuple):
    user_id: int
    is_active: bool
    password: str  # the hash, for simplejwt's check that the password did not change since the token was made
    email: str
    organization_id: int | None  # the user's active organization
    creator_email: str | None  # the organization's creator's; None without an organization or a creator
    api_tokens_enabled: bool | None  # the organization's JWT settings' switch; None when it has no row yet


def jwt_owner(user_id: object) -> JwtOwner | None:
    """What Label Studio's JWT middleware decides a JWT access token's request on, read as ``user_with_organization``
    reads it but without the four model instances it builds: the user's active state, password hash and email, their
    active organization, its creator's email (Label Studio's feature flags' key) and its JWT settings' switch."""
    user_id = _user_id(user_id)
    if user_id is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_jwt_owner_sql(connection.vendor), [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    user_id, is_active, password, email, organization_id, creator_id, creator_email, enabled = row
    return JwtOwner(
        user_id,
        bool(is_active),
        password,
        email,
        organization_id,
        None if creator_id is None else creator_email,
        None if enabled is None else bool(enabled),
    )


def _user_id(value: object) -> int | None:
    try:
        user_id = User._meta.pk.to_python(value)
    except ValidationError:
        return None
    return user_id if isinstance(user_id, int) and 0 <= user_id <= _MAX_ID else None


def _joined(user: User, organization, creator, jwt) -> User:
    user.active_organization = organization
    if organization is not None:
        if creator is not None:
            organization.created_by = creator
        if jwt is not None:
            jwt.organization = organization  # a one-to-one: the organization's ``jwt`` is set too
    return user


def session_user(user_id: int, organization_id: int) -> tuple[User, bool] | None:
    """(the user with this id, whether their membership of the organization was revoked), or None: what a media
    link's fast path asks of a session's user, in one statement (``User.objects.get(pk=...)`` and ``revoked``)."""
    if not 0 <= user_id <= _MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_session_user_sql(connection.vendor), [user_id, organization_id, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    (user,) = _instances(row[:-1], (User,))
    return user, bool(row[-1])


# A user row's models in the statements' order: the user, the active organization, its creator, its JWT settings.
_USER_MODELS = (User, Organization, User, JWTSettings)


def _instances(row: tuple, models: tuple) -> list:
    """The row's model instances, one per model in order (each model's concrete columns in turn), with Django's
    converters applied as the ORM's compiler applies them; None for a model an outer join found no row of."""
    found, start = [], 0
    conn = connections[DEFAULT_DB_ALIAS]
    for model in models:
        attnames, pk_index, converters = _layout(conn, model)
        values = list(row[start : start + len(attnames)])
        start += len(attnames)
        if values[pk_index] is None:
            found.append(None)
            continue
        for index, field_converters, column in converters:
            for convert in field_converters:
                values[index] = convert(values[index], column, conn)
        found.append(model.from_db(conn.alias, attnames, values))
    return found


# Per connection object (each thread has its own; Django's converters are its methods), dropped with it.
_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _layout(conn, model) -> tuple[list[str], int, list[tuple[int, list, object]]]:
    """What turning a model's columns into an instance needs, worked out once per connection: the attribute names,
    the primary key's index, and (index, converters, column) of the columns whose database value Django converts
    (SQLite's datetimes and booleans, JSON)."""
    known = _LAYOUTS.get(conn)
    if known is None:
        known = _LAYOUTS[conn] = {}
    if model not in known:
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            column = field.get_col(model._meta.db_table)
            field_converters = conn.ops.get_db_converters(column) + column.get_db_converters(conn)
            if field_converters:
                converters.append((index, field_converters, column))
        known[model] = ([field.attname for field in fields], fields.index(model._meta.pk), converters)
    return known[model]


def _columns(prefix: str, model) -> str:
    """The model's concrete columns, in field order, qualified by a table name or alias (already quoted)."""
    quote = connection.ops.quote_name
    return ", ".join(f"{prefix}.{quote(field.column)}" for field in model._meta.concrete_fields)


@functools.cache
def _session_user_sql(vendor: str) -> str:
    table = connection.ops.quote_name(User._meta.db_table)
    return (
        f"SELECT {_columns(table, User)}, EXISTS ({_deleted_membership('%s', '%s')}) FROM {table}"
        f" WHERE {_column(User._meta, 'id')} = %s"
    )


@functools.cache
def _graph_sql(vendor: str, token: bool) -> str:
    """The user (by the token's key, or by id) with the active organization, its creator and its JWT settings."""
    quote, user, on = connection.ops.quote_name, User._meta, _aliased
    models, aliases = (_USER_MODELS, ("u", "o", "c", "j"))
    if token:
        models, aliases = (Token, *models), ("t", *aliases)
        source = (
            f"{quote(Token._meta.db_table)} t INNER JOIN {quote(user.db_table)} u"
            f" ON {on('t', Token._meta, 'user')} = {on('u', user, 'id')}"
        )
        where = on("t", Token._meta, "key")
    else:
        source, where = f"{quote(user.db_table)} u", on("u", user, "id")
    columns = ", ".join(_columns(alias, model) for alias, model in zip(aliases, models, strict=True))
    return f"SELECT {columns} FROM {source}{_organization_joins()} WHERE {where} = %s"


@functools.cache
def _jwt_owner_sql(vendor: str) -> str:
    """``_graph_sql``'s joins by the user's id, with only the columns ``jwt_owner`` reads."""
    user, organization, jwt, on = User._meta, Organization._meta, JWTSettings._meta, _aliased
    columns = [on("u", user, f) for f in ("id", "is_active", "password", "email")]
    columns += [on("o", organization, "id"), on("c", user, "id"), on("c", user, "email")]
    columns.append(on("j", jwt, "api_tokens_enabled"))
    source = f"{connection.ops.quote_name(user.db_table)} u{_organization_joins()}"
    return f"SELECT {', '.join(columns)} FROM {source} WHERE {on('u', user, 'id')} = %s"


def _organization_joins() -> str:
    """The joins from the user ``u`` to the active organization ``o``, its creator ``c`` and its JWT settings ``j``."""
    quote, on = connection.ops.quote_name, _aliased
    user, organization, jwt = User._meta, Organization._meta, JWTSettings._meta
    return (
        f" LEFT OUTER JOIN {quote(organization.db_table)} o"
        f" ON {on('u', user, 'active_organization')} = {on('o', organization, 'id')}"
        f" LEFT OUTER JOIN {quote(user.db_table)} c ON {on('o', organization, 'created_by')} = {on('c', user, 'id')}"
        f" LEFT OUTER JOIN {quote(jwt.db_table)} j ON {on('j', jwt, 'organization')} = {on('o', organization, 'id')}"
    )


def _aliased(alias: str, meta, field: str) -> str:
    return f"{alias}.{connection.ops.quote_name(meta.get_field(field).column)}"


def _column(meta, field: str) -> str:
    quote = connection.ops.quote_name
    return f"{quote(meta.db_table)}.{quote(meta.get_field(field).column)}"


def _deleted_membership(user: str, organization: str) -> str:
    member = OrganizationMember._meta
    return (
        f"SELECT 1 FROM {connection.ops.quote_name(member.db_table)} WHERE {_column(member, 'user')} = {user}"
        f" AND {_column(member, 'organization')} = {organization} AND {_column(member, 'deleted_at')} IS NOT NULL"
    )


@functools.cache
def _revoked_sql(vendor: str) -> str:
    return _deleted_membership("%s", "%s") + " LIMIT 1"


@functools.cache
def _task_sql(vendor: str) -> str:
    task, project, quote = Task._meta, Project._meta, connection.ops.quote_name
    return (
        f"SELECT {_column(project, 'id')}, {_column(project, 'organization')},"
        f" EXISTS ({_deleted_membership('%s', _column(project, 'organization'))})"
        f" FROM {quote(task.db_table)} INNER JOIN {quote(project.db_table)}"
        f" ON {_column(task, 'project')} = {_column(project, 'id')} WHERE {_column(task, 'id')} = %s"
    )


@functools.cache
def _token_owner_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    token, user, jwt = Token._meta, User._meta, JWTSettings._meta
    return (
        f"SELECT {_column(user, 'id')}, {_column(user, 'is_active')}, {_column(user, 'active_organization')},"
        f" {_column(jwt, 'legacy_api_tokens_enabled')}"
        f" FROM {quote(token.db_table)} INNER JOIN {quote(user.db_table)}"
        f" ON {_column(token, 'user')} = {_column(user, 'id')}"
        f" LEFT OUTER JOIN {quote(jwt.db_table)}"
        f" ON {_column(jwt, 'organization')} = {_column(user, 'active_organization')}"
        f" WHERE {_column(token, 'key')} = %s"
    )
