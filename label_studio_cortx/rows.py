"""Writing many rows of one model without building model instances (shared by the source and target sides).

A files-mode sync creates a task and a link per object. Through ``bulk_create`` that cost about 0.5 ms per
object on PostgreSQL (docs/performance.md, "Real stores: where the time goes"): a model instance per row and
one ``get_db_prep_save`` per column per row, ten times the listing's cost. Here only the columns that differ
from row to row are given; every other column gets its field's default (or "now" for ``auto_now`` fields),
prepared for the database once per batch, and the rows go to the database as plain tuples: ``COPY`` on
PostgreSQL, multi-row ``INSERT`` statements on SQLite. Other databases keep ``bulk_create`` (``supported``).

Not ``executemany`` on SQLite: Python's sqlite3 releases the GIL around every row's step and must take it back
for the next row, so while other threads run Python (the export's upload pool, the listing thread) each row
waits up to a GIL switch interval (5 ms): 200 links took 0.8 s instead of 3 ms (docs/performance.md).

Values that differ per row must already be what the database stores: JSON fields as text from
``json_text``, foreign keys as ids. Rows are written as given; no model signal is sent, as with
``bulk_create``. Imports Django only; the source and target sides import it.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from django.db import connection, models
from django.utils import timezone

# SQLite's bound on one statement's parameters when the library does not say (SQLITE_MAX_VARIABLE_NUMBER before
# SQLite 3.32); newer libraries allow 32766, read from the connection.
SQLITE_DEFAULT_MAX_PARAMS = 999


def supported() -> bool:
    """Whether the connection's database has a plain-row path (else callers use ``bulk_create``)."""
    return connection.vendor in ("postgresql", "sqlite")


def json_text(model: type[models.Model], name: str) -> Callable[[Any], str]:
    """A function turning a value into the JSON text Django stores for ``model``'s JSON field ``name``
    (the field's encoder, as Django's own adaptation uses)."""
    return partial(json.dumps, cls=model._meta.get_field(name).encoder)


def _constants(model: type[models.Model], varying: Sequence[str], given: dict[str, Any]) -> tuple[list, list]:
    """The columns not in ``varying`` and their values prepared for the database: ``given`` (by field name or
    attname), else "now" for auto_now(_add) fields, else the field's default."""
    now = timezone.now()
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in varying or field.name in varying:
            continue
        if field.name in given or field.attname in given:
            value = given.get(field.attname, given.get(field.name))
            if isinstance(value, models.Model):
                value = value.pk
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
        if isinstance(field, models.JSONField) and value is not None:
            value = json.dumps(value, cls=field.encoder)
        else:
            value = field.get_db_prep_save(value, connection)
        columns.append(field.column)
        values.append(value)
    return columns, values


def _column_names(model: type[models.Model], varying: Sequence[str]) -> list[str]:
    return [model._meta.get_field(name).column for name in varying]


def insert(
    model: type[models.Model],
    varying: Sequence[str],
    rows: Sequence[tuple],
    constants: dict[str, Any],
    ids: Sequence[int] | None = None,
    returning: bool = False,
) -> list[int]:
    """Insert ``rows`` (tuples of the ``varying`` fields' database values) into ``model``'s table; the other
    columns get ``constants`` or their defaults. Runs in the caller's transaction. ``ids`` (PostgreSQL only,
    drawn from the table's sequence by the caller) are the rows' primary keys. With ``returning``, the rows'
    primary keys are returned in row order."""
    if not rows:
        return []
    fixed_columns, fixed_values = _constants(model, varying, constants)
    columns = _column_names(model, varying) + fixed_columns
    table = connection.ops.quote_name(model._meta.db_table)
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    fixed = tuple(fixed_values)
    if connection.vendor == "postgresql":
        if returning and ids is None:
            # COPY returns no ids: the caller draws them with its own statement (source.tasks._open_page).
            raise ValueError("PostgreSQL: pass the rows' ids to get them back")
        return _copy(model, table, quoted, rows, fixed, ids)
    head = f"INSERT INTO {table} ({quoted}) VALUES "
    with connection.cursor() as cursor:
        first = 0
        if returning:
            # Once the first row is in, this transaction holds SQLite's write lock until it ends: every id from
            # the first row's on is a row inserted here, in row order (SQLite inserts a VALUES list in order,
            # which Django's bulk_create relies on as well).
            cursor.execute(head + _placeholders(1, len(columns)), rows[0] + fixed)
            first, rows = cursor.lastrowid, rows[1:]
        _sqlite_insert(cursor, head, "", [row + fixed for row in rows])
        if not returning:
            return []
        pk = connection.ops.quote_name(model._meta.pk.column)
        cursor.execute(f"SELECT {pk} FROM {table} WHERE {pk} >= %s ORDER BY {pk}", [first])
        ids = [row[0] for row in cursor.fetchall()]
        rows_inserted = len(rows) + 1
    if len(ids) != rows_inserted:
        raise RuntimeError(f"{model._meta.db_table}: inserted {rows_inserted} rows but found {len(ids)} new ids")
    return ids


def _placeholders(count: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * count)


def _sqlite_max_params() -> int:
    connection.ensure_connection()
    try:
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):
        return SQLITE_DEFAULT_MAX_PARAMS


def _sqlite_insert(cursor, head: str, tail: str, rows: Sequence[tuple]) -> None:
    """SQLite: ``head`` + a multi-row VALUES list + ``tail``, as few statements as the parameter limit allows."""
    if not rows:
        return
    width = len(rows[0])
    per_statement = max(1, _sqlite_max_params() // width)
    for offset in range(0, len(rows), per_statement):
        chunk = rows[offset : offset + per_statement]
        cursor.execute(head + _placeholders(len(chunk), width) + tail, list(itertools.chain.from_iterable(chunk)))


def _copy(model, table: str, quoted: str, rows: Sequence[tuple], fixed: tuple, ids: Sequence[int] | None) -> list:
    """PostgreSQL: one COPY of every row (with the given primary keys, if any)."""
    with connection.cursor() as cursor:
        if ids is not None:
            quoted = f"{connection.ops.quote_name(model._meta.pk.column)}, {quoted}"
        # Django's cursor wraps psycopg's; COPY needs psycopg's own.
        with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
            if ids is not None:
                for pk, row in zip(ids, rows, strict=True):
                    copy.write_row((pk, *row, *fixed))
            else:
                for row in rows:
                    copy.write_row(row + fixed)
    return list(ids or [])


def upsert_links(
    model: type[models.Model], field: str, values: Sequence[int], constants: dict[str, Any], conflict: Sequence[str]
) -> None:
    """One row per value of the integer field ``field``; a row that exists already (same ``conflict`` fields)
    gets its ``auto_now`` fields set to now instead. The target sync's links: one statement per batch, where
    ``bulk_create(update_conflicts=True)`` compiled every column of every row."""
    if not values:
        return
    fixed_columns, fixed_values = _constants(model, (field,), constants)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    column = quote(model._meta.get_field(field).column)
    others = ", ".join(quote(name) for name in fixed_columns)
    touched = [f.column for f in model._meta.concrete_fields if getattr(f, "auto_now", False)]
    on_conflict = (
        f"ON CONFLICT ({', '.join(quote(model._meta.get_field(name).column) for name in conflict)}) DO UPDATE SET "
        + ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in touched)
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            placeholders = ", ".join(["%s"] * len(fixed_values))
            cursor.execute(
                f"INSERT INTO {table} ({column}, {others}) SELECT v, {placeholders} FROM unnest(%s::bigint[]) AS v "
                + on_conflict,
                [*fixed_values, list(values)],
            )
        else:
            _sqlite_insert(
                cursor,
                f"INSERT INTO {table} ({column}, {others}) VALUES ",
                " " + on_conflict,
                [(value, *fixed_values) for value in values],
            )


def linked_keys(link_model: type[models.Model], storage_id: int, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` (one listing page) already have a link of the storage.

    On PostgreSQL the keys go as one array and the index is read over the page's key range only (bounds taken
    by the database, so its collation decides them): about 3 ms a page of 1,000 against 25-30 ms for Django's
    ``key IN (...)`` with 1,000 parameters, which is what a re-sync with nothing new spends its time on.
    """
    if not keys:
        return set()
    if connection.vendor != "postgresql":
        return set(link_model.objects.filter(storage_id=storage_id, key__in=keys).values_list("key", flat=True))
    table = connection.ops.quote_name(link_model._meta.db_table)
    storage_column = connection.ops.quote_name(link_model._meta.get_field("storage").column)
    key_column = connection.ops.quote_name(link_model._meta.get_field("key").column)
    sql = (
        "WITH page AS MATERIALIZED (SELECT unnest(%s::text[]) AS k) "
        f"SELECT {key_column} FROM {table} WHERE {storage_column} = %s "
        f"AND {key_column} >= (SELECT min(k) FROM page) AND {key_column} <= (SELECT max(k) FROM page) "
        f"AND {key_column} IN (SELECT k FROM page)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(keys), storage_id])
        return {row[0] for row in cursor.fetchall()}


# A SELECT expression that makes the current transaction's commit not wait for its WAL to reach the disk
# (PostgreSQL). For the rows a sync creates: after a crash of the database server the last few pages' tasks and
# links (always together: one transaction) may be missing, and the next sync creates them again. A later
# synchronous commit (an annotation, say) flushes the WAL before it, so nothing that refers to a task can
# outlive it. Saves a disk flush per page.
RELAX_COMMIT = "set_config('synchronous_commit', 'off', true)"
