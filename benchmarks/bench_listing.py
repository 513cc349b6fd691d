#!/usr/bin/env python
"""Concurrent listing: one ListObjectsV2 pass over a bucket against the same keys listed as N key ranges at once
(each range from ``StartAfter`` to its last key), with the plugin's listing client, on one S3 server.

Issue 10 asks, once the listing itself is what a files-mode sync waits for (docs/performance.md: files mode at
0.9-1.4x of the bare listing on every real store), whether listing key ranges concurrently helps. The split here is
the best case for it: the boundaries are the bucket's own key quantiles, known in advance (a sync would have to find
them, by prefix or by sampling the bucket, and pay for that). Each range runs in its own thread with its own client
over one connection pool, as the sync's listing would.

Beside that best case, the same numbers of ranges as the plugin plans them (``source.key_ranges``, what
``CORTX_LIST_RANGES`` turns on): the first page alone, each next range's end estimated from the keys seen, the pages
handed on in key order. The gap between the two rows is what not knowing the boundaries costs.

    python benchmarks/bench_listing.py --server seaweedfs --keys 100000 --ranges 1,2,4 --repeat 3

Prints a Markdown table; nothing is asserted and no document is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_media import machine_busy_seconds  # noqa: E402
from benchmarks.bench_sync import (  # noqa: E402
    cpu_seconds,
    load_average,
    log,
    md_table,
    process_cpu_seconds,
    server_pid,
    start_server,
)
from label_studio_cortx.source import key_ranges  # noqa: E402

BUCKET = "bench-listing"
PREFIX = "files/"


def key(i: int) -> str:
    return f"{PREFIX}{i:07d}.jpg"


def listing_client(endpoint, pool: int, delayed_acks: bool = False):
    """The plugin's listing client: its botocore session (ISO 8601 timestamps), configuration and connections that
    acknowledge each response at once (``delayed_acks``: the operating system's default instead)."""
    import boto3

    from label_studio_cortx.connection.config import (
        ClientLimits,
        acknowledge_at_once,
        botocore_config,
        botocore_session,
    )

    client = boto3.session.Session(botocore_session=botocore_session()).client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name="us-east-1",
        config=botocore_config(ClientLimits(max_pool_connections=max(pool, 10))),
    )
    if not delayed_acks:
        acknowledge_at_once(client)
    return client


def seed(endpoint, count: int) -> None:
    client = listing_client(endpoint, 32)
    client.create_bucket(Bucket=BUCKET)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=BUCKET, Key=key(i), Body=b"x"), range(count)))


def list_range(client, start_after: str | None, last: str | None) -> int:
    """Keys after ``start_after`` up to ``last`` (inclusive; None: to the end), page by page."""
    params = {"Bucket": BUCKET, "Prefix": PREFIX, "MaxKeys": 1000}
    if start_after is not None:
        params["StartAfter"] = start_after
    count = 0
    while True:
        page = client.list_objects_v2(**params)
        keys = [item["Key"] for item in page.get("Contents", [])]
        inside = [k for k in keys if last is None or k <= last]
        count += len(inside)
        if len(inside) < len(keys) or not page.get("IsTruncated"):
            return count
        params["ContinuationToken"] = page["NextContinuationToken"]
        params.pop("StartAfter", None)


def list_oracle(client, count: int, ranges: int) -> int:
    """The bucket as ``ranges`` key ranges split at its own key quantiles, a thread each."""
    bounds = [key(count * k // ranges - 1) for k in range(1, ranges)]
    starts, lasts = [None, *bounds], [*bounds, None]
    found = [0] * ranges

    def run(index: int) -> None:
        found[index] = list_range(client, starts[index], lasts[index])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(ranges)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(found)


def list_planned(client, ranges: int) -> int:
    """The bucket as the plugin lists it with ``CORTX_LIST_RANGES=ranges``: pages in key order, checked."""
    listed, last = 0, ""
    for page in key_ranges.iter_pages(client, BUCKET, {"Prefix": PREFIX}, ranges):
        if page and page[0]["Key"] <= last:
            raise RuntimeError(f"planned ranges handed on {page[0]['Key']} after {last}")
        listed += len(page)
        last = page[-1]["Key"] if page else last
    return listed


def measure(client, count: int, ranges: int, pid: int, planned: bool = False) -> dict[str, float]:
    """One listing of the bucket as ``ranges`` concurrent key ranges: wall seconds and the CPU it took."""
    own, server, busy = cpu_seconds(), process_cpu_seconds(pid), machine_busy_seconds()
    started = time.perf_counter()
    requests = []
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: requests.append(1), unique_id="count")
    try:
        listed = list_planned(client, ranges) if planned else list_oracle(client, count, ranges)
    finally:
        client.meta.events.unregister("before-call.s3.ListObjectsV2", unique_id="count")
    seconds = time.perf_counter() - started
    if listed != count:
        raise RuntimeError(f"{ranges} ranges listed {listed} keys, not {count}")
    return {
        "seconds": seconds,
        "client_cpu": cpu_seconds() - own,
        "server_cpu": process_cpu_seconds(pid) - server,
        "machine_cpu": machine_busy_seconds() - busy,
        "requests": len(requests),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["moto", "seaweedfs", "rgw"], default="seaweedfs")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--ranges", default="1,2,4", help="concurrent key ranges to compare (default: 1,2,4)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions (default: 3)")
    parser.add_argument(
        "--delayed-acks",
        action="store_true",
        help="connections that delay their ACKs (the operating system's default), not the plugin's",
    )
    args = parser.parse_args(argv)
    # "auto": the plugin's default, key_ranges.AUTO (the first page decides).
    counts = [key_ranges.AUTO if n.strip() == "auto" else int(n) for n in args.ranges.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-listing-"))
    load_start = load_average()
    endpoint = start_server(args.server, work)
    try:
        started = time.perf_counter()
        seed(endpoint, args.keys)
        log(f"{args.server}: {args.keys} keys seeded in {time.perf_counter() - started:.0f} s")
        client, pid = listing_client(endpoint, max(counts), args.delayed_acks), server_pid(endpoint)
        measure(client, args.keys, 1, pid)  # warm: the store's caches, the client's connections
        # (ranges, planned): the quantile split, and the plugin's planned ranges for every count above one.
        runs = [(n, False) for n in counts if n >= 1] + [(n, True) for n in counts if n != 1]
        results: dict[tuple[int, bool], list[dict]] = {run: [] for run in runs}
        for repeat in range(args.repeat):
            for n, planned in runs if repeat % 2 == 0 else runs[::-1]:
                results[n, planned].append(measure(client, args.keys, n, pid, planned))
                log(
                    f"{n or 'auto'} ranges{' (planned)' if planned else ''}: {results[n, planned][-1]['seconds']:.2f} s"
                )
    finally:
        endpoint.stop()
    single = statistics.median(r["seconds"] for r in results[counts[0], False])
    rows = []
    for (n, planned), measured in results.items():
        seconds = statistics.median(r["seconds"] for r in measured)
        rows.append(
            [
                f"{n or 'auto'}, planned by the plugin"
                if planned
                else f"{n}, at the key quantiles"
                if n > 1
                else str(n),
                f"{seconds:.2f} ({min(r['seconds'] for r in measured):.2f}-{max(r['seconds'] for r in measured):.2f})",
                f"{args.keys / seconds:,.0f}",
                f"{single / seconds:.2f}x",
                f"{statistics.median(r['client_cpu'] for r in measured):.2f}",
                f"{statistics.median(r['server_cpu'] for r in measured):.2f}",
                f"{statistics.median(r['machine_cpu'] for r in measured):.2f}",
                str(round(statistics.median(r["requests"] for r in measured))),
            ]
        )
    header = ["key ranges", "seconds, median (lowest-highest)", "keys/s", f"vs {counts[0]} range(s)"]
    header += ["client CPU s", "S3 server CPU s", "machine CPU s", "requests"]
    command = "python " + " ".join(["benchmarks/bench_listing.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"\n`{command}`: {args.server}, {args.keys:,} keys, {args.repeat} interleaved repetitions; load average")
    print(f"{load_start:.1f} at the start, {load_average():.1f} at the end.\n")
    print(md_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
