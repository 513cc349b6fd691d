#!/usr/bin/env python
"""Media proxy benchmark: images through Label Studio's resolver (``/tasks/<id>/resolve/``) for the CORTX storage
and for Label Studio's own S3 storage, and through the CORTX media links a logged-in browser gets, against the bare
GET floor, at 1 and 8 concurrent clients, under Label Studio's development server and under gunicorn (the README's
production server).

One run: start the S3 server (``--server``), seed ``--images`` images of ``--size`` KiB, set Label Studio up once,
then for each web server: start it, create a project with a CORTX and an S3 source storage (proxy mode, no
presigned URLs) over the same bucket, sync both, and have N client threads fetch random images for ``--seconds``:
with the API token through ``/resolve/`` (both storages), and with a browser's session cookie through the media
links the task API gives a browser (CORTX). Two floors, measured before and after the proxied paths and averaged:
the same number of clients fetching the same objects straight from the store with boto3 (the issue's floor), and
with the plain HTTP client the proxied paths use (urllib3, a header-signed GET).

    python benchmarks/bench_media.py                          # moto; writes its section of docs/performance.md
    python benchmarks/bench_media.py --server rgw --quick     # smoke run, prints only

This is a script, not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_sync import (  # noqa: E402
    DATABASES,
    PostgresDatabases,
    load_average,
    log,
    md_table,
    process_cpu_seconds,
    start_server,
    write_doc,
)
from benchmarks.bench_sync import cpu_seconds as own_seconds  # noqa: E402
from label_studio_cortx.devservers.ls_server import start_label_studio  # noqa: E402

DEFAULT_DOC = REPO / "docs" / "performance.md"
BUCKET = "bench-media"
TOKEN = "bench-media-token-1"
PASSWORD = "bench-media-pass-1"  # the same for every start: the browser path logs in
PATHS = {
    "bare": "bare WSGI proxy (boto3 GET, no Django)",
    "link": "CORTX, media link (browser session)",
    "cortx": "CORTX, /resolve/ (API token)",
    "jwt": "CORTX, /resolve/ (JWT access token)",
    "s3": "Label Studio S3, /resolve/ (API token)",
}
PLAIN_FLOOR = "bare GET (signed, plain HTTP client)"
WEB_NAMES = {
    "runserver": "Django runserver",
    "gunicorn": "gunicorn, {workers} workers x 4 threads",
    "uwsgi": "uwsgi (HTTP router), {workers} processes x 4 threads",
}
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="a"/></Choices></View>'
)


def seed(endpoint, count: int, size: int) -> list[str]:
    client = endpoint.client()
    client.create_bucket(Bucket=BUCKET)
    rng = random.Random(7)
    keys = []
    for i in range(count):
        key = f"images/{i:05d}.jpg"
        client.put_object(Bucket=BUCKET, Key=key, Body=rng.randbytes(size), ContentType="image/jpeg")
        keys.append(key)
    return keys


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a process and its children that are alive now (the web server's workers)."""
    if pid is None:
        return 0.0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sum(process_cpu_seconds(int(each)) for each in [pid, *children])


def machine_busy_seconds() -> float:
    """CPU seconds every CPU of the machine spent outside idle and I/O wait since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def postgres_seconds() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process running now (the web workers' backends among them), by pid."""
    found = {}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "postgres":
                found[int(comm.parent.name)] = process_cpu_seconds(int(comm.parent.name))
    return found


def postgres_delta(before: dict[int, float]) -> float:
    """PostgreSQL's CPU seconds since ``before``, of the processes alive now: a backend that ended in between (a web
    worker's connection reaching CONN_MAX_AGE) takes its time with it instead of subtracting its whole life."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in postgres_seconds().items())


def load(fetch, clients: int, seconds: float, web_pid: int | None = None) -> dict[str, float]:
    """``fetch(rng) -> bytes`` from ``clients`` threads for ``seconds``: throughput, latency, the CPU time the
    web server (``web_pid`` and its workers) spent per request, and the whole machine's CPU per request split into
    the benchmark's clients, the web server, PostgreSQL and the rest (the S3 server, the kernel, anything else)."""
    web_cpu, busy, postgres, own = cpu_seconds(web_pid), machine_busy_seconds(), postgres_seconds(), own_seconds()
    latencies: list[float] = []
    total = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            size = fetch(rng)
            took = time.perf_counter() - started
            with lock:
                latencies.append(took)
                total[0] += size

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    web_cpu = cpu_seconds(web_pid) - web_cpu
    busy, postgres, own = machine_busy_seconds() - busy, postgres_delta(postgres), own_seconds() - own
    per = 1000 / max(len(latencies), 1)
    return {
        "web_cpu_ms": web_cpu / len(latencies) * 1000 if latencies and web_pid else 0.0,
        "machine_cpu_ms": busy * per,
        "client_cpu_ms": own * per,
        "postgres_cpu_ms": postgres * per,
        "other_cpu_ms": max(busy - own - postgres - web_cpu, 0.0) * per,
        "busy_cpus": busy / elapsed,
        "requests": len(latencies),
        "mib_per_s": total[0] / elapsed / 1024 / 1024,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000 if len(latencies) >= 20 else 0.0,
    }


def floor_fetch(endpoint, keys: list[str]):
    """The issue's floor: the clients GET the objects from the store with boto3."""
    from label_studio_cortx.devservers.moto_server import s3_client_config

    client = endpoint.client(config=s3_client_config(max_pool_connections=32))

    def fetch(rng: random.Random) -> int:
        return len(client.get_object(Bucket=BUCKET, Key=rng.choice(keys))["Body"].read())

    return fetch


def _http_get(pool, url: str, headers: dict[str, str], expected: int) -> int:
    response = pool.request("GET", url, headers=headers, retries=False, timeout=120)
    if response.status != 200 or len(response.data) != expected:
        raise RuntimeError(f"{url.split('?')[0]} answered {response.status} with {len(response.data)} bytes")
    return len(response.data)


def plain_floor_fetch(endpoint, keys: list[str], expected: int):
    """The same objects with the HTTP client every proxied path uses (urllib3, the body read in one call, as a
    browser's own network stack does), each request SigV4-signed in its header: the floor without boto3's
    per-call CPU, which on this machine is about twice what the HTTP exchange itself costs the client."""
    import urllib3
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    pool = urllib3.PoolManager(maxsize=32)
    credentials = Credentials(endpoint.access_key, endpoint.secret_key)

    def fetch(rng: random.Random) -> int:
        request = AWSRequest(method="GET", url=f"{endpoint.url}/{BUCKET}/{rng.choice(keys)}")
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
        return _http_get(pool, request.url, dict(request.headers.items()), expected)

    return fetch


def proxy_fetch(server, urls: list[str], expected: int, cookies=None, authorization: str = f"Token {TOKEN}"):
    """Fetches through Label Studio: with ``authorization`` (the API token), or (``cookies``) as the logged-in
    browser they came from, with the same HTTP client as ``plain_floor_fetch``."""
    import urllib3

    pool = urllib3.PoolManager(maxsize=32)
    if cookies is None:
        headers = {"Authorization": authorization}
    else:
        headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}

    def fetch(rng: random.Random) -> int:
        return _http_get(pool, server.url + rng.choice(urls), headers, expected)

    return fetch


def row(web: str, path: str, clients: int, result: dict, bare: dict, plain: dict) -> list[str]:
    return [
        web,
        path,
        str(clients),
        f"{result['mib_per_s']:.1f}",
        f"{result['mib_per_s'] / bare['mib_per_s']:.2f}x",
        f"{result['p50_ms']:.0f}",
        f"{result['p50_ms'] / bare['p50_ms']:.1f}x",
        f"{result['mib_per_s'] / plain['mib_per_s']:.2f}x",
        f"{result['p95_ms']:.0f}",
        f"{result['web_cpu_ms']:.1f}" if result["web_cpu_ms"] else "-",
    ]


def interleaved(fetches: list[tuple[str, Any, int | None]], clients: int, seconds: float, rounds: int) -> dict:
    """``rounds`` rounds of every (name, fetch, web pid) in turn, the order reversed every other round: {name: [result
    per round]}. Each path is then compared with the floor of its own round, measured within a minute of it."""
    results: dict[str, list[dict]] = {name: [] for name, _, _ in fetches}
    for number in range(rounds):
        for name, fetch, pid in fetches if number % 2 == 0 else fetches[::-1]:
            results[name].append(load(fetch, clients, seconds, web_pid=pid))
        log(f"round {number + 1}/{rounds}: " + ", ".join(f"{n} {r[-1]['mib_per_s']:.0f}" for n, r in results.items()))
    return results


ROUND_FLOOR = "bare GET (boto3)"


def rounds_table(results: dict) -> str:
    """Per path: its ratios to the same round's bare GET (median, lowest, highest), how many rounds met the target,
    and the machine's CPU per image, split."""
    floor = results[ROUND_FLOOR]
    rows = []
    for name, measured in results.items():
        ratio = [m["mib_per_s"] / f["mib_per_s"] for m, f in zip(measured, floor, strict=True)]
        p50 = [m["p50_ms"] / f["p50_ms"] for m, f in zip(measured, floor, strict=True)]
        met = sum(1 for r, q in zip(ratio, p50, strict=True) if r >= 0.5 and q < 2)

        def median(key: str, measured=measured) -> float:
            return statistics.median(m[key] for m in measured)

        rows.append(
            [
                name,
                f"{median('mib_per_s'):.1f}",
                f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})",
                f"{statistics.median(p50):.1f}x ({min(p50):.1f}-{max(p50):.1f})",
                "-" if name == ROUND_FLOOR else f"{met} of {len(ratio)}",
                f"{median('machine_cpu_ms'):.1f}",
                f"{median('client_cpu_ms'):.1f}",
                f"{median('web_cpu_ms'):.1f}" if median("web_cpu_ms") else "-",
                f"{median('postgres_cpu_ms'):.1f}",
                f"{median('other_cpu_ms'):.1f}",
                f"{median('busy_cpus'):.2f}",
            ]
        )
    header = ["Path", "MiB/s", "vs bare GET (lowest-highest)", "p50 vs bare", "rounds meeting the target"]
    header += ["machine CPU ms", "clients", "web server", "PostgreSQL", "S3 server and rest", "CPUs busy"]
    return md_table(header, rows)


def rounds_section(args, results: dict, clients: int, web_name: str) -> list[str]:
    """The interleaved rounds' table and what it shows, ahead of the run's full table."""
    count = len(results[ROUND_FLOOR])
    return [
        f"**The target, in {count} interleaved rounds** ({web_name}, {clients} clients, {args.round_seconds:g} s per "
        "path and round, the order reversed every other round; each path against the bare GET of its own round). "
        "*machine CPU ms*: all CPUs' busy time per image (from /proc/stat), split into the benchmark's client threads, "
        "the web server's processes, PostgreSQL's processes and the rest (the S3 server, the kernel's work not "
        "charged to those, anything else running). A path's throughput against the bare GET's is the ratio of their "
        "busy CPUs times the inverse ratio of their machine CPU per image.",
        "",
        rounds_table(results),
        "",
        "**Every measurement**, one after the other:",
        "",
    ]


def floors(endpoint, keys: list[str], size: int, clients: list[int], seconds: float) -> dict:
    """Both floors at each client count: {"bare": {n: result}, "plain": {n: result}}."""
    fetches = {"bare": floor_fetch(endpoint, keys), "plain": plain_floor_fetch(endpoint, keys, size)}
    return {name: {n: load(fetch, n, seconds) for n in clients} for name, fetch in fetches.items()}


def mean_floor(first: dict, last: dict) -> dict:
    """The floors measured before and after the proxied paths, averaged: this machine's store and CPUs drift
    by a third within minutes, and a floor measured once would credit or blame the paths for the drift."""
    return {
        name: {n: {key: (first[name][n][key] + last[name][n][key]) / 2 for key in first[name][n]} for n in first[name]}
        for name in first
    }


@contextlib.contextmanager
def bare_proxy(endpoint, workers: int):
    """benchmarks/bare_proxy.py under gunicorn with Label Studio's worker layout: (its URL, its pid)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "BARE_PROXY_ENDPOINT": endpoint.url,
        "BARE_PROXY_ACCESS_KEY": endpoint.access_key,
        "BARE_PROXY_SECRET_KEY": endpoint.secret_key,
        "BARE_PROXY_BUCKET": BUCKET,
    }
    command = [sys.executable, "-m", "gunicorn", "benchmarks.bare_proxy:application", "--chdir", str(REPO)]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "4", "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the bare proxy did not start") from None
                time.sleep(0.2)
        time.sleep(1)  # every worker booted
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def plain_fetch(url: str, keys: list[str], expected: int):
    import urllib3

    pool = urllib3.PoolManager(maxsize=32)

    def fetch(rng: random.Random) -> int:
        return _http_get(pool, f"{url}/{rng.choice(keys)}", {}, expected)

    return fetch


def storage_urls(server, endpoint, kind: str) -> tuple[int, list[str]]:
    """A project with one source storage of ``kind`` (cortx or s3) over the bucket, synced; its resolve URLs."""
    api = server.api()
    project = api.post("/api/projects", json={"title": f"media {kind}", "label_config": CONFIG}).json()
    fields = {
        "project": project["id"],
        "title": kind,
        "bucket": BUCKET,
        "prefix": "images",
        "use_blob_urls": True,
        "presign": False,
        "aws_access_key_id": endpoint.access_key,
        "aws_secret_access_key": endpoint.secret_key,
        "region_name": "us-east-1",
    }
    fields["s3_endpoint"] = endpoint.url
    path = "/api/storages/cortx" if kind == "cortx" else "/api/storages/s3"
    storage = api.post(path, json=fields).json()
    api.post(f"{path}/{storage['id']}/sync")
    deadline = time.monotonic() + 600
    while api.get(f"{path}/{storage['id']}").json()["status"] in ("queued", "in_progress"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind} sync did not finish")
        time.sleep(1)
    tasks = api.get(f"/api/tasks?project={project['id']}&page_size=100000").json()["tasks"]
    urls = [task["data"]["image"] for task in tasks]
    if not urls or not all("/resolve/" in url for url in urls):
        raise RuntimeError(f"{kind}: tasks are not proxied: {urls[:2]}")
    return project["id"], urls


def jwt_access_token(server, personal: dict[str, str]) -> str:
    """What Label Studio's SDK sends: a JWT access token, exchanged for the user's personal access token (made once
    in ``personal``: Label Studio allows one per user, and every server of a run shares the database)."""
    api = server.api()
    if "refresh" not in personal:
        created = api.post("/api/token/", json={})
        created.raise_for_status()
        personal["refresh"] = created.json()["token"]
    refreshed = api.post("/api/token/refresh/", json={"refresh": personal["refresh"]})
    refreshed.raise_for_status()
    return refreshed.json()["access"]


def browser_links(server, project_id: int):
    """What the labeling UI gets for the same tasks when a browser is logged in: media links, and its cookies."""
    browser = server.browser()
    tasks = browser.get(f"{server.url}/api/tasks?project={project_id}&page_size=100000", timeout=120).json()["tasks"]
    links = [task["data"]["image"] for task in tasks]
    if not links or not all(link.startswith("/cortx/media/") for link in links):
        raise RuntimeError(f"a logged-in browser got no media links: {links[:2]}")
    return links, browser.cookies.get_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["moto", "seaweedfs", "rgw"], default="moto")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=512, help="KiB per image (default: 512)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement (default: 20)")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--gunicorn-workers", type=int, default=4, help="gunicorn workers, uwsgi processes")
    parser.add_argument(
        "--web",
        default="both",
        help="web servers, comma-separated: runserver, gunicorn, uwsgi (Label Studio's Docker image's server; needs "
        "the [bench] extra); both (the default): runserver,gunicorn",
    )
    parser.add_argument(
        "--db", choices=sorted(DATABASES), default="sqlite", help="Label Studio's database (default: sqlite)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="then this many interleaved rounds under gunicorn at the most clients: the bare GET, the bare WSGI "
        "proxy and the CORTX paths in turn, each compared with its own round's bare GET (default: 0, none)",
    )
    parser.add_argument("--round-seconds", type=float, default=5.0, help="per path and round (default: 5)")
    parser.add_argument("--quick", action="store_true", help="16 images, 5 s per measurement, prints only")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.seconds, args.no_doc = 16, 5.0, True
    clients = [int(c) for c in args.clients.split(",")]
    webs = ["runserver", "gunicorn"] if args.web == "both" else args.web.split(",")
    if not webs or set(webs) - set(WEB_NAMES):
        parser.error(f"--web: one or more of {', '.join(WEB_NAMES)} (or both)")
    size = args.size * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    load_start = load_average()
    rows: list[list[str]] = []
    measured: list[tuple[str, str, int, dict]] = []
    round_results: dict | None = None
    endpoint = start_server(args.server, work)
    postgres = PostgresDatabases(f"media{os.getpid()}") if args.db == "postgresql" else None
    try:
        keys = seed(endpoint, args.images, size)
        log(f"{args.server} at {endpoint.url}: {len(keys)} images of {args.size} KiB")
        first_floor = floors(endpoint, keys, size, clients, args.seconds)
        with bare_proxy(endpoint, args.gunicorn_workers) as (url, pid):
            proxy = {n: load(plain_fetch(url, keys, size), n, args.seconds, web_pid=pid) for n in clients}
        common = {"data_dir": work / "ls", "token": TOKEN, "password": PASSWORD, "trusted_endpoints": [endpoint.url]}
        quiet = {"DEBUG": "false", "LOG_LEVEL": "WARNING"}
        if postgres is not None:  # one database for the run's servers, as the SQLite file in data_dir is
            postgres.create("media", source=None)
            quiet.update(postgres.env("media"))
        start_label_studio(**common, extra_env=quiet).stop()  # migrations and the user, once
        personal: dict[str, str] = {}
        for web in webs:
            workers = {"gunicorn_workers": args.gunicorn_workers} if web == "gunicorn" else {}
            workers = {"uwsgi_workers": args.gunicorn_workers} if web == "uwsgi" else workers
            web_name = WEB_NAMES[web].format(workers=args.gunicorn_workers)
            for kind in ("cortx", "s3"):
                # Label Studio's S3 storage refuses loopback endpoints while SSRF protection is on; the CORTX
                # storage keeps it on and trusts CORTX_TRUSTED_ENDPOINTS instead.
                env = quiet if kind == "cortx" else {**quiet, "SSRF_PROTECTION_ENABLED": "false"}
                with start_label_studio(**common, extra_env=env, **workers) as server:
                    project_id, urls = storage_urls(server, endpoint, kind)
                    paths = [(PATHS[kind], proxy_fetch(server, urls, size))]
                    if kind == "cortx":
                        links, cookies = browser_links(server, project_id)
                        paths.insert(0, (PATHS["link"], proxy_fetch(server, links, size, cookies)))
                        jwt = f"Bearer {jwt_access_token(server, personal)}"
                        paths.append((PATHS["jwt"], proxy_fetch(server, urls, size, authorization=jwt)))
                    for (name, fetch), n in ((path, n) for path in paths for n in clients):
                        result = load(fetch, n, args.seconds, web_pid=server.pid)
                        log(f"{web} {name} {n} clients: {result['mib_per_s']:.1f} MiB/s, p50 {result['p50_ms']:.0f} ms")
                        measured.append((web_name, name, n, result))
                    if args.rounds and web == "gunicorn" and kind == "cortx":
                        with bare_proxy(endpoint, args.gunicorn_workers) as (url, pid):
                            fetches = [(ROUND_FLOOR, floor_fetch(endpoint, keys), None)]
                            fetches.append((PATHS["bare"], plain_fetch(url, keys, size), pid))
                            fetches += [(name, fetch, server.pid) for name, fetch in paths]
                            round_results = interleaved(fetches, max(clients), args.round_seconds, args.rounds)
        last_floor = floors(endpoint, keys, size, clients, args.seconds)
    finally:
        endpoint.stop()
        if postgres is not None:
            postgres.drop_all()
    floor = mean_floor(first_floor, last_floor)
    bare, plain = floor["bare"], floor["plain"]
    gunicorn_name = WEB_NAMES["gunicorn"].format(workers=args.gunicorn_workers)
    rows += [row("-", "bare GET (boto3)", n, bare[n], bare[n], plain[n]) for n in clients]
    rows += [row("-", PLAIN_FLOOR, n, plain[n], bare[n], plain[n]) for n in clients]
    rows += [row(gunicorn_name, PATHS["bare"], n, proxy[n], bare[n], plain[n]) for n in clients]
    rows += [row(web_name, name, n, result, bare[n], plain[n]) for web_name, name, n, result in measured]
    drift = ", ".join(
        f"{n} clients {first_floor['bare'][n]['mib_per_s']:.0f} / {last_floor['bare'][n]['mib_per_s']:.0f} MiB/s"
        for n in clients
    )
    command = "python " + " ".join([os.path.relpath(__file__, REPO), *(argv if argv is not None else sys.argv[1:])])
    key = args.server if args.db == "sqlite" else f"{args.server}:{args.db}"
    start, end = f"<!-- media:{key}:start -->", f"<!-- media:{key}:end -->"
    database = "" if args.db == "sqlite" else f", {DATABASES[args.db]}"
    section = "\n".join(
        [
            start,
            f"### Media proxy, {endpoint.server if hasattr(endpoint, 'server') else args.server}{database}",
            "",
            f"`{command}`: {args.images} images of {args.size} KiB, {args.seconds:g} s per measurement; load average "
            f"{load_start:.1f} at the start, {load_average():.1f} at the end; {os.cpu_count()} CPUs; Label Studio's "
            f"database {DATABASES[args.db]}. Floors measured "
            f"before and after the proxied paths and averaged (bare GET before / after: {drift}). Target: CORTX "
            "under the production server at 8 clients >= 0.5x the bare GET's throughput, p50 < 2x the bare GET's. "
            "*vs plain GET*: against the same objects fetched with the proxied paths' own HTTP client. "
            "*web CPU ms*: CPU time of the web server's processes per image.",
            "",
            *([] if round_results is None else rounds_section(args, round_results, max(clients), gunicorn_name)),
            md_table(
                [
                    "Web server",
                    "Path",
                    "Clients",
                    "MiB/s",
                    "vs bare",
                    "p50 ms",
                    "p50 vs bare",
                    "vs plain GET",
                    "p95 ms",
                    "web CPU ms",
                ],
                rows,
            ),
            end,
        ]
    )
    print(section)
    if not args.no_doc:
        write_doc(DEFAULT_DOC, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
