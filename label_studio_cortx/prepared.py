"""The media paths' database work on PostgreSQL: a persistent connection's health checked without a round trip, and
the statements prepared (``CORTX_DB_PREPARED_STATEMENTS``).

Django's health check of a persistent connection (``CONN_HEALTH_CHECKS``, which ``CORTX_DB_CONN_MAX_AGE`` turns on)
sends ``SELECT 1`` before each request's first statement: a round trip for every image, about a twentieth of the
web process's Python time of a proxied image (docs/performance.md). On the media paths the connection is looked at
first without one: a connection whose server went away (a restart, a terminated backend, an idle timeout) has its
socket readable, with the server's last message or the end of the stream, and then Django's own check runs (it
closes the connection when ``SELECT 1`` fails, and the first statement opens a new one); a socket with nothing to
read is a connection the server still holds, and the check is taken as done. Outside the media paths Django checks
as before.

Every image an annotator or an API client opens repeats the same few statements: the session's or the token's
user, Label Studio's JWT middleware's reads, the access statement. On PostgreSQL planning them costs more than
running them (pgbench, one client: the token's five-table query 0.43 ms sent as text, 0.12 ms prepared; the access
statement 0.25 ms and 0.08 ms), and that is a PostgreSQL server process's CPU for every image, on the machine that
also runs the web workers (docs/performance.md, "Media proxy: where the time goes").

Django sends every statement with its parameters bound on the client and keeps psycopg's prepared statements off
(``prepare_threshold=None``), so that a connection pooler in transaction mode, which may hand a connection's next
statement to another server connection, keeps working. ``statements()`` turns both on for the statements of one
block on this thread's connection: they are sent with server-side binding (Django's own ``ServerBindingCursor``,
what its ``server_side_binding`` option uses) and psycopg prepares each after ``PREPARE_AFTER`` executions on that
connection and runs the prepared one from then on (psycopg's cache, at most ``prepared_max`` statements per
connection). Everything else Label Studio sends is sent as before. It pays off with persistent connections
(``CORTX_DB_CONN_MAX_AGE``); behind PgBouncer in transaction mode it needs PgBouncer 1.21 or newer with
``max_prepared_statements`` set, else the setting stays off. Without psycopg 3 or PostgreSQL it does nothing.

Part of the Django layer: used by ``media_gateway`` around both of its paths. Imports Django and ``conf`` only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
from collections.abc import Iterator

from django.db import DatabaseError, connection

from . import conf

logger = logging.getLogger(__name__)

PREPARE_AFTER = 5  # psycopg's own default threshold: a statement run once is not worth a round trip to prepare


def _psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


@contextlib.contextmanager
def statements() -> Iterator[None]:
    """The block's statements on this thread's PostgreSQL connection, its health checked without a round trip and
    its statements prepared once they repeat (see the module)."""
    if connection.vendor == "postgresql":
        _health_checked()
    if not (conf.get("CORTX_DB_PREPARED_STATEMENTS") and connection.vendor == "postgresql" and _psycopg3()):
        yield
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = connection.connection
    saved = raw.cursor_factory, raw.prepare_threshold
    raw.cursor_factory = ServerBindingCursor
    raw.prepare_threshold = PREPARE_AFTER if saved[1] is None else saved[1]
    try:
        with connection.execute_wrapper(functools.partial(_sent_again_when_lost, raw)):
            yield
    finally:
        raw.cursor_factory, raw.prepare_threshold = saved


def _health_checked() -> None:
    """Django's pending health check of a persistent connection, done without ``SELECT 1`` when the connection's
    socket has nothing to read (see the module); otherwise left to Django, at the block's first statement."""
    raw = connection.connection
    if raw is None or raw.closed or not connection.health_check_enabled or connection.health_check_done:
        return
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
    if not poller.poll(0):
        connection.health_check_done = True


def _sent_again_when_lost(raw, execute, sql, params, many, context):
    """A statement psycopg took for prepared that the server session does not hold (or holds already): a pooler in
    transaction mode gave this connection another session. Both sides forget every prepared statement and the
    statement is sent again unprepared, outside a transaction (inside one, the failure has ended it)."""
    from psycopg.errors import DuplicatePreparedStatement, InvalidSqlStatementName

    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        lost = isinstance(exc.__cause__, (InvalidSqlStatementName, DuplicatePreparedStatement))
        if not lost or connection.in_atomic_block:
            raise
    logger.warning(
        "a prepared statement was not on the database connection's server session: CORTX_DB_PREPARED_STATEMENTS "
        "needs a direct connection, or PgBouncer 1.21+ with max_prepared_statements"
    )
    raw.execute("DEALLOCATE ALL")  # psycopg empties its cache when it sees this succeed
    return execute(sql, params, many, context)
