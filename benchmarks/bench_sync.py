#!/usr/bin/env python
"""Import-sync and export benchmark: Label Studio's S3 storage vs. the CORTX storage vs. the server's floor.

One run, on one machine, against one local S3 server (``--server``: moto's server, SeaweedFS or Ceph RGW, real
HTTP, SigV4 authentication) and one database (``--db``: SQLite files, or PostgreSQL on 127.0.0.1):

1. start the server and seed the buckets once (files-mode buckets at every size, one bucket of JSON task files);
2. migrate one template database (a SQLite file, or a PostgreSQL database used as ``CREATE DATABASE ... TEMPLATE``);
3. run every scenario in its own subprocess (this script again, with ``--scenario``), each on a fresh copy of
   the template database, so that peak RSS and database state are per scenario;
4. print the results and write them between the result markers of ``docs/performance.md`` for that server and
   database (one section per pair).

Scenarios (``<n>`` is a size such as 10k):

* ``floor_list_<n>``   one bare, paginated ListObjectsV2 pass over the files bucket (plain boto3 client)
* ``floor_isolist_<n>`` the same pass through a client with the plugin's timestamp parser (ISO 8601 by the standard
  library, ``connection.config.botocore_session``): what listing costs the plugin's own client
* ``floor_acklist_<n>`` the same pass through a plain boto3 client whose connections acknowledge each response at
  once (``connection.config.acknowledge_at_once``, as the plugin's clients do): what the store can deliver to a
  client that does not delay its ACKs (Ceph RGW's default front end waits for them: docs/performance.md)
* ``floor_get_<n>``    concurrent GETs of the JSON task files, pool = ``--workers``
* ``floor_put_<n>``    concurrent PUTs of annotation-sized JSON bodies, pool = ``--workers``
* ``ls_files_<n>``     Label Studio's S3 source storage, files mode (``use_blob_urls=True``)
* ``ls_tasks_<n>``     Label Studio's S3 source storage, tasks mode (one GET per JSON file)
* ``ls_export_<n>``    Label Studio's S3 target storage, a sync of ``<n>`` annotations
* ``cortx_files_<n>``, ``cortx_tasks_<n>``, ``cortx_export_<n>``: the same with the CORTX storages
* ``cortx_resync_<n>`` a second sync of the ``<n>``-object files bucket with nothing changed
* ``cortx_jsonl_<n>``  tasks mode on one JSONL file of ``<n>`` rows (10k and ``--jsonl-rows``): peak RSS must not
  grow with the file (it streams, tasks created in chunks)
* ``cortx_jsonlist_<n>mb`` tasks mode on one JSON list file of about ``<n>`` MiB (``--json-list-mb``; rows of 16 KiB),
  its peak RSS compared with the 10k-row JSONL file's

A storage scenario times what Label Studio's sync API does (``validate_connection()`` then ``sync()``), and then
waits until the storage's status says the sync finished, because a CORTX sync may go on in a background thread.

Usage (from the repository root, in the project's virtualenv)::

    python benchmarks/bench_sync.py --quick                 # smoke run, sizes / 10, prints only
    python benchmarks/bench_sync.py                         # full run, writes docs/performance.md
    python benchmarks/bench_sync.py --server rgw --db postgresql   # Ceph RGW and PostgreSQL

This is a script, not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DOC = REPO / "docs" / "performance.md"
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"
SERVERS = {"moto": "moto server", "seaweedfs": "SeaweedFS", "rgw": "Ceph RGW"}
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def result_markers(server: str, db: str) -> tuple[str, str]:
    """The markers of one server/database section (moto + SQLite keeps the first section's plain markers)."""
    if (server, db) == ("moto", "sqlite"):
        return RESULTS_START, RESULTS_END
    return f"<!-- results:{server}-{db}:start -->", f"<!-- results:{server}-{db}:end -->"


FILES_BUCKET = "bench-files-{size}"
TASKS_BUCKET = "bench-tasks"
PUT_BUCKET = "bench-floor-put"
EXPORT_BUCKET = "bench-export-{kind}"
JSONL_BUCKET = "bench-jsonl-{rows}"
JSONL_SMALL = 10_000
JSON_LIST_BUCKET = "bench-jsonlist-{mb}mb"
JSON_LIST_ROW_BYTES = 16 * 1024
SEED_WORKERS = 8
FILE_BODY = b"\xff\xd8\xff\xe0" + b"\x00" * 60  # 64 bytes: files mode never reads the object

DONE_STATUSES = {"completed", "completed_with_errors", "failed"}

IMAGE_CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
  <Choices name="quality" toName="image"><Choice value="good"/><Choice value="bad"/></Choices>
</View>
"""

# A realistic annotation result: one box and one choice.
ANNOTATION_RESULT = [
    {
        "id": "box1",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 640,
        "original_height": 480,
        "image_rotation": 0,
        "value": {"x": 10.0, "y": 12.5, "width": 30.0, "height": 20.0, "rotation": 0, "rectanglelabels": ["Cat"]},
    },
    {"id": "q1", "type": "choices", "from_name": "quality", "to_name": "image", "value": {"choices": ["good"]}},
]


# --------------------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # floor | ls | cortx
    op: str  # list | get | put | files | tasks | resync | export
    size: int
    bucket: str


def size_label(n: int) -> str:
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        factor = 1
        if part.endswith("k"):
            part, factor = part[:-1], 1000
        sizes.append(int(float(part) * factor))
    return sizes


@dataclass
class Plan:
    sizes: list[int]
    ls_sizes: list[int]
    tasks_size: int
    export_size: int
    jsonl_rows: int = 0
    json_list_mb: int = 0

    @property
    def jsonl_sizes(self) -> list[int]:
        if self.jsonl_rows:
            return sorted({min(JSONL_SMALL, self.jsonl_rows), self.jsonl_rows})
        return [JSONL_SMALL] if self.json_list_mb else []  # the JSON list's RSS is compared with it

    @property
    def json_list_rows(self) -> int:
        return self.json_list_mb * 1024 * 1024 // JSON_LIST_ROW_BYTES

    @property
    def files_sizes(self) -> list[int]:
        return sorted(set(self.sizes) | set(self.ls_sizes))

    @property
    def resync_size(self) -> int:
        return max(self.sizes)

    def scenarios(self) -> list[Scenario]:
        t, e = self.tasks_size, self.export_size
        out = [
            Scenario(f"floor_list_{size_label(n)}", "floor", "list", n, FILES_BUCKET.format(size=n))
            for n in self.files_sizes
        ]
        out += [
            Scenario(f"floor_isolist_{size_label(n)}", "floor", "isolist", n, FILES_BUCKET.format(size=n))
            for n in self.files_sizes
        ]
        out += [
            Scenario(f"floor_acklist_{size_label(n)}", "floor", "acklist", n, FILES_BUCKET.format(size=n))
            for n in self.files_sizes
        ]
        out += [
            Scenario(f"floor_get_{size_label(t)}", "floor", "get", t, TASKS_BUCKET),
            Scenario(f"floor_put_{size_label(e)}", "floor", "put", e, PUT_BUCKET),
        ]
        out += [
            Scenario(f"ls_files_{size_label(n)}", "ls", "files", n, FILES_BUCKET.format(size=n)) for n in self.ls_sizes
        ]
        out += [
            Scenario(f"ls_tasks_{size_label(t)}", "ls", "tasks", t, TASKS_BUCKET),
            Scenario(f"ls_export_{size_label(e)}", "ls", "export", e, EXPORT_BUCKET.format(kind="ls")),
        ]
        out += [
            Scenario(f"cortx_files_{size_label(n)}", "cortx", "files", n, FILES_BUCKET.format(size=n))
            for n in self.sizes
        ]
        r = self.resync_size
        out += [
            Scenario(f"cortx_resync_{size_label(r)}", "cortx", "resync", r, FILES_BUCKET.format(size=r)),
            Scenario(f"cortx_tasks_{size_label(t)}", "cortx", "tasks", t, TASKS_BUCKET),
            Scenario(f"cortx_export_{size_label(e)}", "cortx", "export", e, EXPORT_BUCKET.format(kind="cortx")),
        ]
        out += [
            Scenario(f"cortx_jsonl_{size_label(n)}", "cortx", "jsonl", n, JSONL_BUCKET.format(rows=n))
            for n in self.jsonl_sizes
        ]
        if self.json_list_mb:
            mb = self.json_list_mb
            bucket = JSON_LIST_BUCKET.format(mb=mb)
            out.append(Scenario(f"cortx_jsonlist_{mb}mb", "cortx", "jsonl", self.json_list_rows, bucket))
        return out


def build_plan(args: argparse.Namespace) -> Plan:
    div = 10 if args.quick else 1
    sizes = [max(1, n // div) for n in parse_sizes(args.sizes)]
    if args.label_studio_sizes is not None:
        ls_sizes = [max(1, n // div) for n in parse_sizes(args.label_studio_sizes)]
    else:
        skip_at = parse_sizes(args.skip_label_studio_at)[0] // div
        ls_sizes = [n for n in sizes if n < skip_at]
    return Plan(
        sizes=sorted(set(sizes)),
        ls_sizes=sorted(set(ls_sizes)),
        tasks_size=max(1, parse_sizes(args.tasks_size)[0] // div),
        export_size=max(1, parse_sizes(args.export_size)[0] // div),
        jsonl_rows=parse_sizes(args.jsonl_rows)[0] // div if args.jsonl_rows else 0,
        json_list_mb=args.json_list_mb // div,
    )


# --------------------------------------------------------------------------------------------------------------
# Seeding (parent)
# --------------------------------------------------------------------------------------------------------------


def file_key(i: int) -> str:
    return f"img/{i:07d}.jpg"


def task_key(i: int) -> str:
    return f"tasks/{i:07d}.json"


def task_body(i: int, image_bucket: str) -> bytes:
    return json.dumps({"image": f"s3://{image_bucket}/{file_key(i)}", "caption": f"benchmark task {i}"}).encode()


def log(message: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def seed(endpoint, plan: Plan) -> dict[str, float]:
    """Create every bucket and put every object, with a pool of concurrent PUTs; returns seconds per bucket."""
    from botocore.config import Config

    client = endpoint.client(config=Config(max_pool_connections=SEED_WORKERS * 2))
    timings: dict[str, float] = {}
    image_bucket = FILES_BUCKET.format(size=min(plan.files_sizes))

    def fill(bucket: str, count: int, key_of, body_of, content_type: str) -> None:
        client.create_bucket(Bucket=bucket)
        start = time.perf_counter()
        done = 0
        step = max(1, count // 10)

        def put(i: int) -> None:
            client.put_object(Bucket=bucket, Key=key_of(i), Body=body_of(i), ContentType=content_type)

        with ThreadPoolExecutor(SEED_WORKERS) as pool:
            for _ in pool.map(put, range(count)):
                done += 1
                if done % step == 0 and count >= 10_000:
                    rate = done / (time.perf_counter() - start)
                    log(f"  {bucket}: {done}/{count} ({rate:.0f} PUT/s)")
        timings[bucket] = time.perf_counter() - start
        log(f"seeded {bucket}: {count} objects in {timings[bucket]:.1f} s")

    for n in plan.files_sizes:
        fill(FILES_BUCKET.format(size=n), n, file_key, lambda i: FILE_BODY, "image/jpeg")
    fill(TASKS_BUCKET, plan.tasks_size, task_key, lambda i: task_body(i, image_bucket), "application/json")
    for bucket in (PUT_BUCKET, EXPORT_BUCKET.format(kind="ls"), EXPORT_BUCKET.format(kind="cortx")):
        client.create_bucket(Bucket=bucket)
    for rows in plan.jsonl_sizes:
        bucket = JSONL_BUCKET.format(rows=rows)
        client.create_bucket(Bucket=bucket)
        start = time.perf_counter()
        with tempfile.TemporaryFile() as body:
            for i in range(rows):
                body.write(task_body(i, image_bucket) + b"\n")
            size = body.tell()
            body.seek(0)
            client.upload_fileobj(body, bucket, "tasks/big.jsonl")
        timings[bucket] = time.perf_counter() - start
        log(f"seeded {bucket}: one JSONL file of {rows} rows ({size / 1024 / 1024:.0f} MiB)")
    if plan.json_list_mb:
        bucket = JSON_LIST_BUCKET.format(mb=plan.json_list_mb)
        client.create_bucket(Bucket=bucket)
        start = time.perf_counter()
        with tempfile.TemporaryFile() as body:
            body.write(b"[")
            for i in range(plan.json_list_rows):
                row = json.loads(task_body(i, image_bucket))
                row["text"] = ""
                pad = JSON_LIST_ROW_BYTES - len(json.dumps(row)) - 2
                row["text"] = "lorem ipsum " * (pad // 12) + "x" * (pad % 12)
                body.write((b"," if i else b"") + json.dumps(row).encode() + b"\n")
            body.write(b"]")
            size = body.tell()
            body.seek(0)
            client.upload_fileobj(body, bucket, "tasks/big.json")
        timings[bucket] = time.perf_counter() - start
        log(f"seeded {bucket}: one JSON list of {plan.json_list_rows} rows ({size / 1024 / 1024:.0f} MiB)")
    return timings


# --------------------------------------------------------------------------------------------------------------
# Running scenarios (parent)
# --------------------------------------------------------------------------------------------------------------


def base_child_env(work_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        # Whatever the caller's shell says about Label Studio, Redis or the plugin must not leak into a run.
        if name.startswith(("CORTX_", "LABEL_STUDIO_CORTX_")) or name in ("SSRF_PROTECTION_ENABLED", "DATABASE_NAME"):
            env.pop(name)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "label_studio_cortx.settings",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_BASE_DATA_DIR": str(work_dir / "ls-data"),
            "DJANGO_DB": "sqlite",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "LATEST_VERSION_CHECK": "false",  # Label Studio asks pypi.org for its latest version at start-up
            "PYTHONUNBUFFERED": "1",
        }
    )
    pythonpath = [str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in pythonpath if p)
    return env


class SqliteDatabases:
    """Per-scenario SQLite files, each a copy of one migrated template."""

    kind = "sqlite"

    def __init__(self, db_dir: Path) -> None:
        self.db_dir = db_dir
        self.template = db_dir / "template.sqlite3"

    def env(self, name: str) -> dict[str, str]:
        return {"DJANGO_DB": "sqlite", "DATABASE_NAME": str(self.path(name))}

    def path(self, name: str) -> Path:
        return self.template if name == "template" else self.db_dir / f"{name}.sqlite3"

    def create(self, name: str, source: str = "template") -> None:
        if not self.path(name).exists():
            shutil.copyfile(self.path(source), self.path(name))

    def drop(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"SQLite files in {db_dir_kind(self.db_dir)}, a fresh copy of one migrated template per scenario"


class PostgresDatabases:
    """Per-scenario PostgreSQL databases on 127.0.0.1 (``POSTGRE_*`` variables), each created from a template."""

    kind = "postgresql"

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.settings = {
            "POSTGRE_HOST": os.environ.get("POSTGRE_HOST", "127.0.0.1"),
            "POSTGRE_PORT": os.environ.get("POSTGRE_PORT", "5432"),
            "POSTGRE_USER": os.environ.get("POSTGRE_USER", "postgres"),
            "POSTGRE_PASSWORD": os.environ.get("POSTGRE_PASSWORD", "postgres"),
        }
        self.created: set[str] = set()

    def _admin(self, sql: str) -> None:
        import psycopg  # Label Studio's PostgreSQL driver

        with psycopg.connect(
            host=self.settings["POSTGRE_HOST"],
            port=int(self.settings["POSTGRE_PORT"]),
            user=self.settings["POSTGRE_USER"],
            password=self.settings["POSTGRE_PASSWORD"],
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)

    def name(self, name: str) -> str:
        return f"bench_{self.tag}_{name}".lower()[:63]

    def env(self, name: str) -> dict[str, str]:
        return {"DJANGO_DB": "postgresql", "POSTGRE_NAME": self.name(name), **self.settings}

    def create(self, name: str, source: str | None = "template") -> None:
        if name in self.created:
            return
        template = f" TEMPLATE {self.name(source)}" if source else ""
        self._admin(f"CREATE DATABASE {self.name(name)}{template}")
        # PostgreSQL 15 copies the template through its buffers and WAL: written out now, not by the checkpointer
        # during the next timed scenario (nor are an earlier scenario's writes).
        self._admin("CHECKPOINT")
        self.created.add(name)

    def drop(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {self.name(name)}")
        self.created.discard(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            with contextlib.suppress(Exception):
                self.drop(name)

    def describe(self) -> str:
        return (
            f"PostgreSQL at {self.settings['POSTGRE_HOST']}:{self.settings['POSTGRE_PORT']}, a fresh database "
            "per scenario (CREATE DATABASE ... TEMPLATE of one migrated database)"
        )


def migrate_template(work_dir: Path, template_cache: Path | None, databases) -> None:
    """Migrate the database every scenario starts from (a SQLite file copied per scenario, or a PostgreSQL
    template database); a SQLite template can be cached between runs (migrating takes about a minute)."""
    sqlite = isinstance(databases, SqliteDatabases)
    template = databases.path("template") if sqlite else None
    if sqlite and template_cache is not None and template_cache.exists():
        shutil.copyfile(template_cache, template)
        log(f"template database copied from {template_cache}; applying any new migrations")
    else:
        log(f"migrating the template database ({DATABASES[databases.kind]})")
    if not sqlite:
        databases.create("template", source=None)
    start = time.perf_counter()
    with open(work_dir / "logs" / "migrate.log", "wb") as out:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput"],
            cwd=REPO,
            env={**base_child_env(work_dir), **databases.env("template")},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    log(f"template database ready in {time.perf_counter() - start:.0f} s")
    if sqlite and template_cache is not None:
        template_cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, template_cache)


def server_pid(endpoint) -> int:
    """The pid of the process serving S3 (moto, weed, radosgw), for its CPU seconds; 0 when unknown."""
    process = getattr(endpoint, "process", None)
    if process is not None and getattr(endpoint, "server", "moto") in ("moto", "SeaweedFS"):
        return process.pid
    with contextlib.suppress(OSError, subprocess.CalledProcessError, ValueError):
        found = subprocess.run(["pgrep", "-f", "radosgw"], capture_output=True, text=True, check=True).stdout.split()
        return int(found[0])
    return process.pid if process is not None else 0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc; 0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_scenario(scenario: Scenario, *, endpoint, work_dir: Path, databases, args, plan: Plan) -> dict[str, Any]:
    databases.create(scenario.name)
    config = {
        "scenario": asdict(scenario),
        "endpoint": {"url": endpoint.url, "access_key": endpoint.access_key, "secret_key": endpoint.secret_key},
        "image_bucket": FILES_BUCKET.format(size=min(plan.files_sizes)),
        "moto_pid": server_pid(endpoint),
        "workers": args.workers,
        "timeout": args.scenario_timeout,
        "cortx_settings": dict(item.split("=", 1) for item in args.cortx_setting),
        "result_path": str(work_dir / "results" / f"{scenario.name}.json"),
        "profile_path": str(work_dir / "results" / f"{scenario.name}.prof") if args.profile else None,
    }
    config_path = work_dir / "configs" / f"{scenario.name}.json"
    config_path.write_text(json.dumps(config))
    config_path.chmod(0o600)  # holds the (throw-away) moto secret key

    env = {**base_child_env(work_dir), **databases.env(scenario.name)}
    if scenario.kind == "ls":
        # Label Studio's S3 storage refuses private and loopback endpoints while SSRF protection is on.
        env["SSRF_PROTECTION_ENABLED"] = "false"
    elif scenario.kind == "cortx":
        # The CORTX storage keeps SSRF protection on and trusts the admin's list instead.
        env["CORTX_TRUSTED_ENDPOINTS"] = endpoint.url

    log_path = work_dir / "logs" / f"{scenario.name}.log"
    start = time.perf_counter()
    error = None
    try:
        with open(log_path, "wb") as out:
            proc = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    *("--scenario", scenario.name, "--child-config", str(config_path)),
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=args.scenario_timeout + 600,
            )
        if proc.returncode != 0:
            error = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        error = "timed out"
    elapsed = time.perf_counter() - start
    result_path = Path(config["result_path"])
    result: dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {}
    result.setdefault("name", scenario.name)
    result.update(kind=scenario.kind, op=scenario.op, size=scenario.size, process_seconds=round(elapsed, 1))
    if error and not result.get("error"):
        result["error"] = error
    if result.get("error"):
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        result["log_tail"] = tail
        log(f"{scenario.name}: FAILED ({result['error']}); log tail:\n{tail}")
    else:
        log(
            f"{scenario.name}: {result['seconds']:.2f} s, {result['rate']:.0f} {result['unit']}/s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB, {result.get('sql_statements', '-')} SQL statements"
        )
    return result


# --------------------------------------------------------------------------------------------------------------
# Scenarios (child)
# --------------------------------------------------------------------------------------------------------------


class QueryCounter:
    """Counts SQL statements on every connection, in every thread (execute wrappers are per connection)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def __call__(self, execute, sql, params, many, context):
        if not getattr(self._local, "paused", False):
            with self._lock:
                self.count += 1
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def paused(self):
        """Do not count this thread's statements (the benchmark's own status polling)."""
        self._local.paused = True
        try:
            yield
        finally:
            self._local.paused = False

    def install(self) -> None:
        from django.db import connections
        from django.db.backends.signals import connection_created

        def attach(sender, connection, **kwargs):
            if self not in connection.execute_wrappers:
                connection.execute_wrappers.append(self)

        connection_created.connect(attach, weak=False)
        for conn in connections.all():
            attach(None, conn)


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


class Meter:
    """Wall time, this process's CPU time and the S3 server's CPU time over the timed part of a scenario."""

    def __init__(self, moto_pid: int) -> None:
        self.moto_pid = moto_pid
        self.start = time.perf_counter()
        self.cpu = cpu_seconds()
        self.moto_cpu = process_cpu_seconds(moto_pid) if moto_pid else 0.0
        self.load_start = load_average()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def stop(self) -> dict[str, Any]:
        seconds = self.elapsed()
        return {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds() - self.cpu,
            "moto_cpu_seconds": process_cpu_seconds(self.moto_pid) - self.moto_cpu if self.moto_pid else None,
            "load_start": self.load_start,
            "load_end": load_average(),
        }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a scenario process would
    report the benchmark parent's size (which holds the seeding state) whenever that is larger than its own.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def floor_client(cfg: dict, iso_timestamps: bool = False):
    """A plain boto3 client; with ``iso_timestamps``, from the plugin's botocore session (its timestamp parser)."""
    import boto3

    from label_studio_cortx.connection.config import botocore_session
    from label_studio_cortx.devservers.moto_server import s3_client_config

    ep = cfg["endpoint"]
    session = boto3.session.Session(botocore_session=botocore_session()) if iso_timestamps else boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=ep["url"],
        aws_access_key_id=ep["access_key"],
        aws_secret_access_key=ep["secret_key"],
        region_name="us-east-1",
        config=s3_client_config(max_pool_connections=max(10, cfg["workers"] * 2)),
    )


def annotation_like_body(i: int) -> bytes:
    """About the size and shape of one exported annotation (Label Studio's annotation serializer output)."""
    now = "2025-01-01T00:00:00.000000Z"
    return json.dumps(
        {
            "id": i,
            "result": ANNOTATION_RESULT,
            "created_username": " bench@example.com, 1",
            "created_ago": "0 minutes",
            "completed_by": {"id": 1, "first_name": "", "last_name": "", "email": "bench@example.com"},
            "task": {
                "id": i,
                "data": {"image": f"s3://bench-files-10k/{file_key(i)}"},
                "meta": {},
                "created_at": now,
                "updated_at": now,
                "is_labeled": True,
                "overlap": 1,
                "inner_id": i,
                "total_annotations": 1,
                "cancelled_annotations": 0,
                "total_predictions": 0,
                "project": 1,
            },
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": now,
            "updated_at": now,
            "draft_created_at": None,
            "lead_time": 1.0,
            "import_id": None,
            "last_action": None,
            "bulk_created": True,
            "project": 1,
            "updated_by": None,
            "parent_prediction": None,
            "parent_annotation": None,
            "last_created_by": None,
        }
    ).encode()


def run_floor(sc: dict, cfg: dict) -> dict[str, Any]:
    client = floor_client(cfg, iso_timestamps=sc["op"] == "isolist")
    if sc["op"] == "acklist":
        from label_studio_cortx.connection.config import acknowledge_at_once

        acknowledge_at_once(client)
    workers = cfg["workers"]
    n = sc["size"]
    result: dict[str, Any] = {}
    if sc["op"] in ("list", "isolist", "acklist"):
        meter = Meter(cfg["moto_pid"])
        count = 0
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=sc["bucket"], PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            count += len(page.get("Contents", []))
        unit = "objects"
    elif sc["op"] == "get":
        keys = [task_key(i) for i in range(n)]
        meter = Meter(cfg["moto_pid"])

        def get(key: str) -> int:
            return len(client.get_object(Bucket=sc["bucket"], Key=key)["Body"].read())

        with ThreadPoolExecutor(workers) as pool:
            sizes = list(pool.map(get, keys))
        count = len(sizes)
        result["bytes_per_object"] = round(sum(sizes) / max(1, count))
        unit = "objects"
    elif sc["op"] == "put":
        bodies = [(f"floor/{i:07d}.json", annotation_like_body(i)) for i in range(n)]
        meter = Meter(cfg["moto_pid"])

        def put(item: tuple[str, bytes]) -> None:
            client.put_object(Bucket=sc["bucket"], Key=item[0], Body=item[1], ContentType="application/json")

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, bodies))
        count = len(bodies)
        result["bytes_per_object"] = round(sum(len(b) for _, b in bodies) / max(1, count))
        unit = "annotations"
    else:
        raise ValueError(sc["op"])
    result.update(meter.stop(), count=count, unit=unit)
    if count != n:
        result["error"] = f"expected {n} objects, got {count}"
    return result


def django_setup(sc: dict, cfg: dict) -> QueryCounter:
    import django

    django.setup()
    from django.conf import settings

    if sc["kind"] == "cortx":
        from label_studio_cortx import conf

        # Every pool of the plugin gets the same size as the floor's (and as Label Studio's fixed 8 threads).
        for name in (setting.name for setting in conf.TABLE):
            if name.endswith("_WORKERS"):
                setattr(settings, name, cfg["workers"])
        for name, value in cfg["cortx_settings"].items():
            try:
                setattr(settings, name, json.loads(value))
            except ValueError:
                setattr(settings, name, value)
    counter = QueryCounter()
    counter.install()
    return counter


def make_project():
    from organizations.models import Organization
    from projects.models import Project
    from users.models import User

    user = User.objects.create_user(email="bench@example.com", password="bench-pass-123", username="bench")
    organization = Organization.create_organization(created_by=user, title="Benchmark")
    user.active_organization = organization
    user.save(update_fields=["active_organization"])
    project = Project.objects.create(
        title="Benchmark", created_by=user, organization=organization, label_config=IMAGE_CONFIG
    )
    return user, project


def storage_kwargs(sc: dict, cfg: dict) -> dict[str, Any]:
    ep = cfg["endpoint"]
    kwargs: dict[str, Any] = {
        "title": sc["name"],
        "bucket": sc["bucket"],
        "s3_endpoint": ep["url"],
        "aws_access_key_id": ep["access_key"],
        "aws_secret_access_key": ep["secret_key"],
        "region_name": "us-east-1",
    }
    if sc["kind"] == "cortx":
        kwargs["force_path_style"] = True
    return kwargs


def wait_until_done(storage, started_at, new_threads, counter: QueryCounter, timeout: float) -> None:
    """Wait until this sync finished: it may go on in a thread the sync call started.

    While such a thread runs, this mostly waits on the thread itself (it ends the moment the sync does) and reads
    the storage row only every quarter of a second, so that polling does not compete for SQLite's lock.
    """
    from django.db import OperationalError

    deadline = time.monotonic() + timeout
    while True:
        try:
            with counter.paused():
                storage.refresh_from_db()
        except OperationalError:  # SQLite "database is locked" while the sync commits
            pass
        else:
            finished = storage.status in ("completed", "completed_with_errors") and (
                storage.last_sync is not None and storage.last_sync >= started_at
            )
            if finished or storage.status == "failed":
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"sync did not finish within {timeout:.0f} s (status {storage.status})")
        alive = [thread for thread in new_threads if thread.is_alive()]
        if alive:
            alive[0].join(0.25)
        else:
            time.sleep(0.05)


def timed_sync(storage, counter: QueryCounter, cfg: dict) -> dict[str, Any]:
    """What Label Studio's sync API does (validate, sync, refresh), then wait until the sync has finished."""
    from django.utils import timezone

    started_at = timezone.now()
    counter.count = 0
    meter = Meter(cfg["moto_pid"])
    threads_before = set(threading.enumerate())
    storage.validate_connection()
    storage.sync()
    returned = meter.elapsed()
    new_threads = [thread for thread in threading.enumerate() if thread not in threads_before]
    wait_until_done(storage, started_at, new_threads, counter, cfg["timeout"])
    result = {
        **meter.stop(),
        "sync_call_returned_after": returned,
        "sql_statements": counter.count,
        "status": storage.status,
        "last_sync_count": storage.last_sync_count,
    }
    if storage.status != "completed":
        result["error"] = f"sync ended with status {storage.status}: {(storage.traceback or '')[-2000:]}"
    return result


def run_import(sc: dict, cfg: dict, counter: QueryCounter) -> dict[str, Any]:
    from io_storages.s3.models import S3ImportStorage

    from label_studio_cortx.models import CortxImportStorage

    model = S3ImportStorage if sc["kind"] == "ls" else CortxImportStorage
    n = sc["size"]
    extra: dict[str, Any] = {"prefix": "tasks"} if sc["op"] == "jsonl" else {}
    storage = None
    if sc["op"] == "resync":
        # The database of the first sync (cortx_files_<n>) when the parent could hand it over.
        storage = model.objects.filter(bucket=sc["bucket"]).first()
        if storage is None:
            _, project = make_project()
            storage = model.objects.create(
                project=project, use_blob_urls=True, presign=False, recursive_scan=True, **storage_kwargs(sc, cfg)
            )
            first = timed_sync(storage, counter, cfg)
            extra["first_sync_seconds"] = first["seconds"]
        else:
            extra["first_sync"] = "reused from the files-mode scenario"
        project = storage.project
    else:
        _, project = make_project()
        storage = model.objects.create(
            project=project,
            use_blob_urls=sc["op"] == "files",
            presign=False,
            recursive_scan=True,
            **storage_kwargs(sc, cfg),
            **extra,
        )
        extra = {}
    tasks_before = project.tasks.count()
    result = timed_sync(storage, counter, cfg)
    tasks_after = project.tasks.count()
    result.update(extra)
    result.update(count=n, unit="objects", tasks_created=tasks_after - tasks_before, tasks_total=tasks_after)
    expected_new = 0 if sc["op"] == "resync" else n
    if result["tasks_created"] != expected_new and not result.get("error"):
        result["error"] = f"expected {expected_new} new tasks, got {result['tasks_created']}"
    if tasks_after != n and not result.get("error"):
        result["error"] = f"expected {n} tasks in the project, got {tasks_after}"
    return result


def run_export(sc: dict, cfg: dict, counter: QueryCounter) -> dict[str, Any]:
    from io_storages.s3.models import S3ExportStorage
    from tasks.models import Annotation, Task

    from label_studio_cortx.models import CortxExportStorage

    n = sc["size"]
    user, project = make_project()
    tasks = Task.objects.bulk_create(
        [
            Task(data={"image": f"s3://{cfg['image_bucket']}/{file_key(i)}"}, project=project, inner_id=i + 1)
            for i in range(n)
        ],
        batch_size=500,
    )
    Annotation.objects.bulk_create(
        [
            Annotation(task=task, project=project, completed_by=user, result=ANNOTATION_RESULT, lead_time=1.0)
            for task in tasks
        ],
        batch_size=500,
    )
    Task.objects.filter(project=project).update(is_labeled=True, total_annotations=1)
    model = S3ExportStorage if sc["kind"] == "ls" else CortxExportStorage
    storage = model.objects.create(project=project, prefix="annotations", **storage_kwargs(sc, cfg))
    result = timed_sync(storage, counter, cfg)
    # Untimed check: every annotation must have become an object.
    client = floor_client(cfg)
    written = sizes = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=sc["bucket"], Prefix="annotations/"):
        for obj in page.get("Contents", []):
            written += 1
            sizes += obj["Size"]
    result.update(
        count=n,
        unit="annotations",
        objects_written=written,
        bytes_per_object=round(sizes / max(1, written)),
        links=storage.links.count(),
    )
    if written != n and not result.get("error"):
        result["error"] = f"expected {n} objects in the target bucket, found {written}"
    return result


def child_main(name: str, config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    sc = cfg["scenario"]
    assert sc["name"] == name, (sc["name"], name)
    result: dict[str, Any] = {"name": name}
    profiler = None
    if cfg.get("profile_path"):
        import cProfile

        # Profiles this (the main) thread only: add --cortx-setting CORTX_SYNC_IN_BACKGROUND=false to see a sync.
        profiler = cProfile.Profile()
    try:
        if sc["kind"] == "floor":
            result.update(run_floor(sc, cfg))
        else:
            counter = django_setup(sc, cfg)
            if profiler is not None:
                profiler.enable()
            if sc["op"] == "export":
                result.update(run_export(sc, cfg, counter))
            else:
                result.update(run_import(sc, cfg, counter))
    except Exception as exc:
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(cfg["profile_path"])
    if result.get("seconds"):
        result["rate"] = result["count"] / result["seconds"]
        if "sql_statements" in result:
            result["sql_per_object"] = result["sql_statements"] / max(1, result["count"])
    result["peak_rss_mb"] = peak_rss_mb()
    Path(cfg["result_path"]).write_text(json.dumps(result, default=str))
    print(json.dumps(result, default=str, indent=1))
    return 0 if not result.get("error") else 1


# --------------------------------------------------------------------------------------------------------------
# Report (parent)
# --------------------------------------------------------------------------------------------------------------


def plugin_source_hash() -> str:
    """A digest of the plugin's Python sources, to tell whether they changed while the benchmark ran."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "label_studio_cortx").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def server_label(endpoint) -> str:
    """The endpoint row's server name: SeaweedFS or Ceph RGW with its version, or "moto server" (moto's version
    is a row of its own)."""
    if not hasattr(endpoint, "server"):
        return "moto server"
    return f"{endpoint.server} {getattr(endpoint, 'version', '')}".strip()


def machine_info(endpoint, databases, loads: tuple[float, float], source_hashes: tuple[str, str]) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "CPU": f"{cpu}, {os.cpu_count()} logical CPUs (nproc {len(os.sched_getaffinity(0))})",
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Label Studio": version("label-studio"),
        "label-studio-cortx": f"{version('label-studio-cortx')} (git {commit}; sources sha256 {source_hashes[0]}"
        + (")" if source_hashes[0] == source_hashes[1] else f", **changed during the run** to {source_hashes[1]})"),
        "Django": version("django"),
        "boto3 / botocore": f"{version('boto3')} / {version('botocore')}",
        "moto": version("moto"),
        "SQLite": sqlite3.sqlite_version,
        "S3 endpoint": f"{server_label(endpoint)} at {endpoint.url} "
        "(HTTP, SigV4 auth, the same server for all scenarios)",
        "Databases": databases.describe(),
        "Load average (1 min)": f"{loads[0]:.1f} at the start of the run, {loads[1]:.1f} at the end",
        "Date (end of run)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def db_dir_kind(path: Path) -> str:
    """Where the databases live: a RAM file system or a disk makes a big difference to SQLite's commits."""
    best, fstype = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) >= len(best):
                best, fstype = parts[1], parts[2]
    return f"`{path}` ({fstype} file system)"


def fmt_secs(r: dict | None) -> str:
    if not r:
        return "not measured"
    if r.get("error") or not r.get("seconds"):
        return f"failed ({r.get('error', 'no result')})"[:80]
    return f"{r['seconds']:.1f} s ({r['rate']:,.0f}/s)"


def ok(r: dict | None) -> bool:
    return bool(r) and not r.get("error") and bool(r.get("seconds"))


def ratio_check(cx: dict | None, floor: dict | None, limit: float, what: str) -> tuple[str, bool | None]:
    if not (ok(cx) and ok(floor)):
        return what, None
    ratio = cx["seconds"] / floor["seconds"]
    return f"{ratio:.2f}x {what} > {limit}x", ratio <= limit


def speedup_check(ls: dict | None, cx: dict | None, factor: float) -> tuple[str, bool | None]:
    if not (ok(ls) and ok(cx)):
        return "LS", None
    speedup = ls["seconds"] / cx["seconds"]
    return f"{speedup:.1f}x LS < {factor:g}x", speedup >= factor


def target_rows(results: dict[str, dict], plan: Plan) -> list[list[str]]:
    rows = []

    def row(label, ls, cx, floor, target, checks):
        """checks: list of (description, passed or None when not measurable)."""
        speedup = f"{ls['seconds'] / cx['seconds']:.1f}x" if ok(ls) and ok(cx) else "-"
        vs_floor = f"{cx['seconds'] / floor['seconds']:.2f}x" if ok(cx) and ok(floor) else "-"
        if not ok(cx):
            met = "**no** (CORTX run failed)"
        else:
            measured = [(d, p) for d, p in checks if p is not None]
            failed = [d for d, p in measured if not p]
            if not measured:
                met = "n/a"
            elif failed:
                met = "**no**: " + "; ".join(failed)
            else:
                met = "yes"
        rows.append([label, fmt_secs(ls), fmt_secs(cx), fmt_secs(floor), speedup, vs_floor, target, met])

    for n in plan.sizes:
        s = size_label(n)
        ls, cx, fl = results.get(f"ls_files_{s}"), results.get(f"cortx_files_{s}"), results.get(f"floor_list_{s}")
        checks = [ratio_check(cx, fl, 1.5, "floor")]
        target = "<= 1.5x floor"
        if n in plan.ls_sizes:
            target += ", >= 10x LS"
            checks.append(speedup_check(ls, cx, 10))
        row(f"Files mode, {size_label(n)} objects (floor: list)", ls, cx, fl, target, checks)
        for floor_name, what in (("isolist", "the plugin's timestamp parser"), ("acklist", "ACKs at once")):
            other = results.get(f"floor_{floor_name}_{s}")
            if other:
                row(f"Files mode, {size_label(n)} objects (floor: list, {what})", None, cx, other, "(comparison)", [])

    r = plan.resync_size
    cx, fl = results.get(f"cortx_resync_{size_label(r)}"), results.get(f"floor_list_{size_label(r)}")
    row(
        f"Re-sync, nothing changed, {size_label(r)} objects (floor: list)",
        None,
        cx,
        fl,
        "<= 1.3x floor",
        [ratio_check(cx, fl, 1.3, "floor")],
    )
    ack = results.get(f"floor_acklist_{size_label(r)}")
    if ack:
        row(
            f"Re-sync, nothing changed, {size_label(r)} objects (floor: list, ACKs at once)",
            None,
            cx,
            ack,
            "(comparison)",
            [],
        )

    for op, size, floor_name, label in (
        ("tasks", plan.tasks_size, "floor_get", "Tasks mode, {n} JSON files (floor: GET)"),
        ("export", plan.export_size, "floor_put", "Export, {n} annotations (floor: PUT)"),
    ):
        # Issue #10: on every server, within 1.5x of the bare GET/PUT floor (issue #5 also let 3x Label Studio do).
        s = size_label(size)
        ls, cx, fl = results.get(f"ls_{op}_{s}"), results.get(f"cortx_{op}_{s}"), results.get(f"{floor_name}_{s}")
        row(label.format(n=s), ls, cx, fl, "<= 1.5x floor", [ratio_check(cx, fl, 1.5, "floor")])
    return rows


def rss_rows(results: dict[str, dict], plan: Plan) -> list[list[str]]:
    return _files_rss_row(results, plan) + _jsonl_rss_row(results, plan)


def _jsonl_rss_row(results: dict[str, dict], plan: Plan) -> list[list[str]]:
    if not plan.jsonl_sizes:
        return []
    small_rows = plan.jsonl_sizes[0]
    ja = results.get(f"cortx_jsonl_{size_label(small_rows)}")
    large = []
    if len(plan.jsonl_sizes) == 2:
        rows = plan.jsonl_sizes[1]
        large.append((f"one JSONL file of {size_label(rows)}", results.get(f"cortx_jsonl_{size_label(rows)}")))
    if plan.json_list_mb:
        mb = plan.json_list_mb
        large.append((f"one {mb} MiB JSON list", results.get(f"cortx_jsonlist_{mb}mb")))
    out = []
    for what, jb in large:
        if not (ja and jb and ja.get("peak_rss_mb") and jb.get("peak_rss_mb")):
            continue
        grown = jb["peak_rss_mb"] - ja["peak_rss_mb"]
        out.append(
            [
                f"Peak RSS, {what} vs a JSONL file of {size_label(small_rows)} rows",
                "-",
                f"{ja['peak_rss_mb']:.0f} MB -> {jb['peak_rss_mb']:.0f} MB ({grown:+.0f} MB)",
                "-",
                "-",
                "-",
                "<= +100 MB",
                "yes" if grown <= 100 else f"**no**: +{grown:.0f} MB",
            ]
        )
    return out


def _files_rss_row(results: dict[str, dict], plan: Plan) -> list[list[str]]:
    small, large = min(plan.sizes), max(plan.sizes)
    a, b = results.get(f"cortx_files_{size_label(small)}"), results.get(f"cortx_files_{size_label(large)}")
    if not (a and b and a.get("peak_rss_mb") and b.get("peak_rss_mb")) or small == large:
        return []
    delta = b["peak_rss_mb"] - a["peak_rss_mb"]
    met = "yes" if delta <= 100 else f"**no**: +{delta:.0f} MB"
    ls_note = ""
    la, lb = results.get(f"ls_files_{size_label(small)}"), results.get(f"ls_files_{size_label(large)}")
    if la and la.get("peak_rss_mb"):
        ls_note = f"{la['peak_rss_mb']:.0f} MB at {size_label(small)}"
        if lb and lb.get("peak_rss_mb"):
            ls_note += f", {lb['peak_rss_mb']:.0f} MB at {size_label(large)}"
    return [
        [
            f"Peak RSS, files mode {size_label(large)} vs {size_label(small)}",
            ls_note or "-",
            f"{a['peak_rss_mb']:.0f} MB -> {b['peak_rss_mb']:.0f} MB (+{delta:.0f} MB)",
            "-",
            "-",
            "-",
            "<= +100 MB",
            met,
        ]
    ]


def detail_rows(results: dict[str, dict]) -> list[list[str]]:
    rows = []
    for name, r in results.items():
        if not ok(r):
            rows.append([f"`{name}`", "failed"] + ["-"] * 8)
            continue
        sql = r.get("sql_statements")
        rows.append(
            [
                f"`{name}`",
                f"{r['count']:,}",
                f"{r['seconds']:.2f}",
                f"{r['rate']:,.0f}",
                f"{r['tasks_created']:,}" if "tasks_created" in r else "-",
                f"{sql:,} ({r['sql_per_object']:.2f})" if sql is not None else "-",
                f"{r['cpu_seconds']:.1f}",
                f"{r['moto_cpu_seconds']:.1f}" if r.get("moto_cpu_seconds") is not None else "-",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['load_start']:.1f} / {r['load_end']:.1f}",
            ]
        )
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results, plan, machine, command, args, seed_seconds, wall_seconds) -> str:
    cortx_settings = [f"`CORTX_*_WORKERS={args.workers}`"] + [f"`{s}`" for s in args.cortx_setting]
    start, end = result_markers(args.server, args.db)
    parts = [
        start,
        f"### {SERVERS[args.server]}, {DATABASES[args.db]}",
        "",
        "<!-- Generated by benchmarks/bench_sync.py; edits between these markers are overwritten. -->",
        "",
        "**Command** (from the repository root, in the project's virtualenv):",
        "",
        "```sh",
        command,
        "```",
        "",
        "**Machine**",
        "",
        md_table(["", ""], [[k, v] for k, v in machine.items()]),
        "",
        f"Sizes: files mode {', '.join(size_label(n) for n in plan.sizes)} "
        f"(Label Studio at {', '.join(size_label(n) for n in plan.ls_sizes) or 'none'}), "
        f"tasks mode {size_label(plan.tasks_size)}, export {size_label(plan.export_size)}; "
        f"pool size {args.workers} (floor and CORTX: {', '.join(cortx_settings)}; Label Studio's S3 target uses "
        "its fixed min(8, 4 x CPUs) threads and imports one object at a time). "
        f"Seeding took {sum(seed_seconds.values()) / 60:.1f} min, the whole run {wall_seconds / 60:.1f} min.",
        "",
        "**Targets** (time = from the sync call until the storage reports the sync finished; "
        "speed-up = Label Studio's time / CORTX's time; vs floor = CORTX's time / floor's time)",
        "",
        md_table(
            ["Scenario", "Label Studio S3", "CORTX", "Floor", "CORTX speed-up vs LS", "CORTX vs floor", "Target"]
            + ["Met?"],
            target_rows(results, plan) + rss_rows(results, plan),
        ),
        "",
        "**Every scenario**, over the timed part: SQL statements on every database connection (the sync's own "
        "thread included); CPU seconds of the scenario's process and of the S3 server; the 1-minute load average "
        f"at its start and end (the machine has {len(os.sched_getaffinity(0))} CPUs; the scenario and the server "
        "account for up to 2 of the load, more means other processes competed for the CPUs).",
        "",
        md_table(
            ["Scenario", "Objects", "Seconds", "Per second", "Tasks created", "SQL (per object)", "CPU s"]
            + ["server CPU s", "Peak RSS MB", "Load"],
            detail_rows(results),
        ),
    ]
    failures = {name: r for name, r in results.items() if not ok(r)}
    if failures:
        parts += ["", "**Failed scenarios**", ""]
        parts += [f"* `{name}`: {r.get('error', 'no result')}" for name, r in failures.items()]
    parts.append(end)
    return "\n".join(parts)


DOC_SKELETON = """# Performance

Measured with `benchmarks/bench_sync.py` (see `benchmarks/README.md`). The section between the result markers is
written by the script; the rest of this page is maintained by hand.

## Results

{results}
"""


def write_doc(path: Path, section: str) -> None:
    start, end = section.splitlines()[0], section.splitlines()[-1]
    if path.exists():
        text = path.read_text()
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            path.write_text(head + section + tail)
            return
        if RESULTS_END in text:  # a new server/database section goes after the first one
            head, tail = text.split(RESULTS_END, 1)
            path.write_text(head + RESULTS_END + "\n\n" + section + tail)
            return
        path.write_text(text.rstrip() + "\n\n## Results\n\n" + section + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DOC_SKELETON.format(results=section))


# --------------------------------------------------------------------------------------------------------------
# Main (parent)
# --------------------------------------------------------------------------------------------------------------


def start_server(server: str, work_dir: Path):
    """The S3 server of the run, from the dev servers the tests use."""
    if server == "seaweedfs":
        from label_studio_cortx.devservers.seaweedfs import start_seaweedfs

        return start_seaweedfs()
    if server == "rgw":
        from label_studio_cortx.devservers.ceph_rgw import start_ceph_rgw

        # Ceph's memstore holds every object in RAM: room for the 100k files bucket and the exports.
        return start_ceph_rgw(memstore_bytes=4 << 30)
    from label_studio_cortx.devservers.moto_server import start_moto

    return start_moto(tmp_dir=work_dir / "moto")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See benchmarks/README.md.")
    parser.add_argument("--sizes", default="10000,100000", help="files-mode sizes (default: %(default)s)")
    parser.add_argument("--tasks-size", default="10000", help="JSON task files for tasks mode (default: %(default)s)")
    parser.add_argument("--export-size", default="5000", help="annotations to export (default: %(default)s)")
    parser.add_argument(
        "--jsonl-rows", default="2000000", help="rows of the one large JSONL file (default: %(default)s; 0: none)"
    )
    parser.add_argument(
        "--json-list-mb",
        type=int,
        default=0,
        help="MiB of one large JSON list file (rows of 16 KiB; 1024 for the 1 GB case; default: 0, none)",
    )
    parser.add_argument("--workers", type=int, default=8, help="pool size of the floor and of CORTX (default: 8)")
    parser.add_argument("--server", choices=sorted(SERVERS), default="moto", help="S3 server (default: moto)")
    parser.add_argument("--db", choices=sorted(DATABASES), default="sqlite", help="database (default: sqlite)")
    parser.add_argument(
        "--skip-label-studio-at",
        default="100000",
        help="measure Label Studio's S3 files mode only below this size (default: %(default)s; at 100k it would "
        "take over 10 minutes)",
    )
    parser.add_argument("--label-studio-sizes", help="files-mode sizes for Label Studio (overrides the above)")
    parser.add_argument("--quick", action="store_true", help="smoke run: every size / 10; prints, writes no doc")
    parser.add_argument(
        "--out", help=f"Markdown file to update (default: {DEFAULT_DOC.relative_to(REPO)}; none with --quick)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write the Markdown file")
    parser.add_argument("--json", help="also write the raw results to this JSON file")
    parser.add_argument("--only", help="comma-separated scenario names to run (default: all)")
    parser.add_argument(
        "--cortx-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Django setting for the CORTX scenarios, e.g. CORTX_SYNC_IN_BACKGROUND=false (repeatable)",
    )
    parser.add_argument("--template-db", help="cache the migrated template database here and reuse it next time")
    parser.add_argument("--work-dir", help="directory for databases and logs (default: a new temporary directory)")
    parser.add_argument(
        "--db-dir", help="directory for the scenario databases (default: WORK_DIR/db; e.g. /dev/shm for RAM)"
    )
    parser.add_argument("--keep-work-dir", action="store_true", help="keep databases and logs after the run")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each scenario's main thread (implies --keep-work-dir)"
    )
    parser.add_argument("--scenario-timeout", type=float, default=3600.0, help="seconds per scenario")
    # Internal: one scenario, in a child process.
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scenario:
        return child_main(args.scenario, args.child_config)
    args.keep_work_dir = args.keep_work_dir or args.profile

    sys.path.insert(0, str(REPO))

    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]])
    plan = build_plan(args)
    scenarios = plan.scenarios()
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            print(f"unknown scenarios: {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in scenarios)}")
            return 2
        scenarios = [s for s in scenarios if s.name in wanted]
    out = None if args.no_doc else Path(args.out) if args.out else (None if args.quick else DEFAULT_DOC)

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-sync-")).resolve()
    for sub in ("logs", "configs", "results", "ls-data"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)
    db_dir = Path(args.db_dir).resolve() / work_dir.name if args.db_dir else work_dir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    source_start = plugin_source_hash()
    if load_start > len(os.sched_getaffinity(0)) / 2:
        log(f"warning: the 1-minute load average is {load_start:.1f}; other processes will skew the timings")
    log(f"work dir {work_dir}; scenarios: {', '.join(s.name for s in scenarios)}")

    run_start = time.perf_counter()
    results: dict[str, dict] = {}
    databases = SqliteDatabases(db_dir) if args.db == "sqlite" else PostgresDatabases(f"{os.getpid()}")
    endpoint = start_server(args.server, work_dir)
    try:
        log(f"{args.server} at {endpoint.url} (pid {server_pid(endpoint) or '?'})")
        seed_seconds = seed(endpoint, plan)
        migrate_template(work_dir, Path(args.template_db).resolve() if args.template_db else None, databases)
        resync_source = None
        for scenario in scenarios:
            if scenario.op == "resync" and resync_source is not None:
                databases.create(scenario.name, source=resync_source)  # the state the files-mode sync left behind
            log(f"running {scenario.name}")
            results[scenario.name] = run_scenario(
                scenario, endpoint=endpoint, work_dir=work_dir, databases=databases, args=args, plan=plan
            )
            if scenario.kind == "cortx" and scenario.op == "files" and scenario.size == plan.resync_size:
                resync_source = scenario.name if ok(results[scenario.name]) else None
            elif not args.keep_work_dir:
                databases.drop(scenario.name)
    finally:
        endpoint.stop()
        if isinstance(databases, PostgresDatabases) and not args.keep_work_dir:
            databases.drop_all()
    wall = time.perf_counter() - run_start

    machine = machine_info(endpoint, databases, (load_start, load_average()), (source_start, plugin_source_hash()))
    section = render(results, plan, machine, command, args, seed_seconds, wall)
    print()
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "command": command, "results": results}, indent=1))
    if out is not None:
        write_doc(out, section)
        log(f"results written to {out}")
    if args.keep_work_dir:
        log(f"databases and logs kept in {work_dir} and {db_dir}")
    else:
        shutil.rmtree(db_dir, ignore_errors=True)
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0 if all(ok(r) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
