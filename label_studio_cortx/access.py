"""Label Studio Community's rule for who may read a task's media, as both media paths ask it: in one query.

Label Studio 1.23 (``projects.mixins.ProjectMixin.has_permission``, which ``Task.has_permission`` calls) lets an
authenticated user read any task unless their membership of the project's organization was revoked ("LSO always
runs a single organization"). Asked through the ORM (the task and project rows, then the membership), building the
queries cost more than running them, for every image; here the rule is one statement per database, and
tests/test_media_links.py checks it against Label Studio's own ``has_permission``.

Part of the Django layer: used by ``media_gateway`` (media links) and ``api`` (``/tasks/<id>/resolve/``, the
links' full path). Imports only Label Studio's models.
"""

from __future__ import annotations

import functools

from django.db import connection
from organizations.models import Organization, OrganizationMember
from projects.models import Project
from tasks.models import Task

_MAX_ID = 2**63 - 1  # Django's URL converter takes any digits; no database integer holds more


def revoked(user_id: int, organization_id: int) -> bool:
    """Whether the user's membership of the organization was revoked (Label Studio's ``Organization.has_deleted``)."""
    with connection.cursor() as cursor:
        cursor.execute(_revoked_sql(connection.vendor), [user_id, organization_id])
        return cursor.fetchone() is not None


def task_access(task_id: int, user_id: int) -> tuple[Task, bool] | None:
    """(the task, whether the user may read it), or None when there is no such task. The task holds only what the
    media paths read of it: its id, its project's id and its organization's id."""
    if not 0 <= task_id <= _MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_task_sql(connection.vendor), [user_id, task_id])
        row = cursor.fetchone()
    if row is None:
        return None
    project_id, organization_id, was_revoked = row
    project = Project.from_db(connection.alias, ["id", "organization_id"], [project_id, organization_id])
    if organization_id is not None:
        project.organization = Organization.from_db(connection.alias, ["id"], [organization_id])
    task = Task.from_db(connection.alias, ["id", "project_id"], [task_id, project_id])
    task.project = project
    return task, not was_revoked


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
