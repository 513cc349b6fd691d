#!/usr/bin/env python
"""Media proxy benchmark: images through Label Studio's resolver (``/tasks/<id>/resolve/``) for the CORTX storage
and for Label Studio's own S3 storage, and through the CORTX media links a logged-in browser gets, against the bare
GET floor, at 1 and 8 concurrent clients, under Label Studio's development server and under gunicorn (the README's
production server).

One run: start the S3 server (``--server``), seed ``--images`` images of ``--size`` KiB, set Label Studio up once,
then for each web server: start it, create a project with a CORTX and an S3 source storage (proxy mode, no
presigned URLs) over the same bucket, sync both, and have N client threads fetch random images for ``--seconds``:
with the API token through ``/resolve/`` (both storages), and with a browser's session cookie through the media
links the task API gives a browser (CORTX). The floor is the same clients fetching the same objects straight from
the store with boto3.

    python benchmarks/bench_media.py                          # moto; writes its section of docs/performance.md
    python benchmarks/bench_media.py --server rgw --quick     # smoke run, prints only

This is a script, not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_sync import load_average, log, md_table, start_server, write_doc  # noqa: E402
from label_studio_cortx.devservers.ls_server import start_label_studio  # noqa: E402

DEFAULT_DOC = REPO / "docs" / "performance.md"
BUCKET = "bench-media"
TOKEN = "bench-media-token-1"
PATHS = {
    "link": "CORTX, media link (browser session)",
    "cortx": "CORTX, /resolve/ (API token)",
    "s3": "Label Studio S3, /resolve/ (API token)",
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


def load(fetch, clients: int, seconds: float) -> dict[str, float]:
    """``fetch(rng) -> bytes`` from ``clients`` threads for ``seconds``: throughput and latency."""
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
    return {
        "requests": len(latencies),
        "mib_per_s": total[0] / elapsed / 1024 / 1024,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000 if len(latencies) >= 20 else 0.0,
    }


def floor_fetch(endpoint, keys: list[str]):
    from label_studio_cortx.devservers.moto_server import s3_client_config

    client = endpoint.client(config=s3_client_config(max_pool_connections=32))

    def fetch(rng: random.Random) -> int:
        return len(client.get_object(Bucket=BUCKET, Key=rng.choice(keys))["Body"].read())

    return fetch


def proxy_fetch(server, urls: list[str], expected: int, cookies=None):
    """Fetches through Label Studio: with the API token, or (``cookies``) as the logged-in browser they came from."""
    import requests

    local = threading.local()

    def fetch(rng: random.Random) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            if cookies is None:
                local.session.headers["Authorization"] = f"Token {TOKEN}"
            else:
                local.session.cookies.update(cookies)
        response = local.session.get(server.url + rng.choice(urls), timeout=120)
        body = response.content
        if response.status_code != 200 or len(body) != expected:
            raise RuntimeError(f"resolve answered {response.status_code} with {len(body)} bytes")
        return len(body)

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
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="16 images, 5 s per measurement, prints only")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.seconds, args.no_doc = 16, 5.0, True
    clients = [int(c) for c in args.clients.split(",")]
    size = args.size * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    load_start = load_average()
    rows: list[list[str]] = []
    endpoint = start_server(args.server, work)
    try:
        keys = seed(endpoint, args.images, size)
        log(f"{args.server} at {endpoint.url}: {len(keys)} images of {args.size} KiB")
        floor = {n: load(floor_fetch(endpoint, keys), n, args.seconds) for n in clients}
        common = {"data_dir": work / "ls", "token": TOKEN, "trusted_endpoints": [endpoint.url]}
        quiet = {"DEBUG": "false", "LOG_LEVEL": "WARNING"}
        start_label_studio(**common, extra_env=quiet).stop()  # migrations and the user, once
        for web, workers in (("runserver", 0), ("gunicorn", args.gunicorn_workers)):
            web_name = "Django runserver" if not workers else f"gunicorn, {workers} workers x 4 threads"
            for kind in ("cortx", "s3"):
                # Label Studio's S3 storage refuses loopback endpoints while SSRF protection is on; the CORTX
                # storage keeps it on and trusts CORTX_TRUSTED_ENDPOINTS instead.
                env = quiet if kind == "cortx" else {**quiet, "SSRF_PROTECTION_ENABLED": "false"}
                with start_label_studio(**common, extra_env=env, gunicorn_workers=workers) as server:
                    project_id, urls = storage_urls(server, endpoint, kind)
                    paths = [(PATHS[kind], proxy_fetch(server, urls, size))]
                    if kind == "cortx":
                        links, cookies = browser_links(server, project_id)
                        paths.insert(0, (PATHS["link"], proxy_fetch(server, links, size, cookies)))
                    for (name, fetch), n in ((path, n) for path in paths for n in clients):
                        result = load(fetch, n, args.seconds)
                        bare = floor[n]
                        log(f"{web} {name} {n} clients: {result['mib_per_s']:.1f} MiB/s, p50 {result['p50_ms']:.0f} ms")
                        rows.append(
                            [
                                web_name,
                                name,
                                str(n),
                                f"{result['mib_per_s']:.1f}",
                                f"{result['mib_per_s'] / bare['mib_per_s']:.2f}x",
                                f"{result['p50_ms']:.0f}",
                                f"{result['p50_ms'] / bare['p50_ms']:.1f}x",
                                f"{result['p95_ms']:.0f}",
                            ]
                        )
    finally:
        endpoint.stop()
    for n in clients:
        rows.insert(
            0,
            [
                "bare GET (boto3)",
                "floor",
                str(n),
                f"{floor[n]['mib_per_s']:.1f}",
                "1.00x",
                f"{floor[n]['p50_ms']:.0f}",
                "1.0x",
                f"{floor[n]['p95_ms']:.0f}",
            ],
        )
    command = "python " + " ".join([os.path.relpath(__file__, REPO), *(argv if argv is not None else sys.argv[1:])])
    start, end = f"<!-- media:{args.server}:start -->", f"<!-- media:{args.server}:end -->"
    section = "\n".join(
        [
            start,
            f"### Media proxy, {endpoint.server if hasattr(endpoint, 'server') else args.server}",
            "",
            f"`{command}`: {args.images} images of {args.size} KiB, {args.seconds:g} s per measurement; load average "
            f"{load_start:.1f} at the start, {load_average():.1f} at the end; {os.cpu_count()} CPUs. Target: CORTX "
            "under the production server at 8 clients >= 0.5x the bare GET's throughput, p50 < 2x the bare GET's.",
            "",
            md_table(["Web server", "Path", "Clients", "MiB/s", "vs bare", "p50 ms", "p50 vs bare", "p95 ms"], rows),
            end,
        ]
    )
    print(section)
    if not args.no_doc:
        write_doc(DEFAULT_DOC, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
