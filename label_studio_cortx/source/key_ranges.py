"""Listing one bucket as consecutive key ranges at once, the pages still handed on in key order.

Owns the split of a ListObjectsV2 pass into key ranges (``StartAfter``) listed by threads of their own. On a
store where a listing page is mostly spent waiting for the server (Ceph RGW before the client acknowledged
responses at once listed twice the keys per second with two ranges: docs/performance.md, "Concurrent listing") this
shortens the sync, which the listing holds up; where the client's own parsing is the limit (SeaweedFS, Ceph RGW
now) it changes nothing or slows it down, so the number of ranges is a setting (``CORTX_LIST_RANGES``), by default
chosen from the first page's timing (``AUTO``).

Where the ranges should end is not known in advance. The first page is listed alone; from its keys a scale is
built that reads a key as a number (each character position a digit of the alphabet the page shows there:
decimal, hexadecimal, letters or printable ASCII), and each next range ends an estimated ``SEGMENT_PAGES`` pages
further on. Each finished range corrects the estimate by the keys it really held. A wrong estimate costs
requests, never a key: the ranges are (lo, hi] with each hi the next lo and the last one open, and keys are
compared in Python's string order, which is S3's UTF-8 binary order.

That order is the one assumption, and not every store keeps it: SeaweedFS lists a "folder" where its name sorts
(``d/x`` before ``d-x``) and reads ``StartAfter`` the same way. A first page out of that order is listed on in one
pass; a later page out of order stops the listing with :class:`KeyOrderError` (nothing is skipped silently; the
caller, ``listing``, lists the bucket again in one pass).

The caller reads the ranges one after the other, so pages arrive in key order (tasks keep the bucket's order and
the writer's per-page key-range query holds), and a range's thread waits once ``BUFFER_PAGES`` of its pages wait
for the reader: memory is bounded by ranges x BUFFER_PAGES pages whatever the bucket's size.

Imports only the standard library; the boto3 client and the listing parameters come from ``listing``.
"""

from __future__ import annotations

import bisect
import logging
import queue
import string
import threading
import time
from collections import deque
from collections.abc import Iterator
from itertools import pairwise

logger = logging.getLogger(__name__)

# Keys a range is planned to hold, in pages: a few pages per range keep the window of ranges small in memory while
# the page that crosses each range's end (asked for only the keys still expected) stays a small part of the work.
SEGMENT_PAGES: float = 4
# Pages a range's thread lists ahead of the reader before it waits.
BUFFER_PAGES = 6
# Character positions after the prefix the scale reads; later ones do not move the estimate.
MAX_WIDTH = 128
# Longest StartAfter sent (S3 keys are at most 1,024 bytes).
MAX_KEY_BYTES = 1024
# Most a range's size may change from one estimate to the next.
MAX_FACTOR = 8
# ``ranges`` value that lets the first page choose: AUTO_RANGES when the client's own work (its thread's CPU time)
# was less than STORE_BOUND_SHARE of the page's wall time, so the store made it wait three times as long as it
# worked; else one pass. On the stores measured here one pass is the faster: SeaweedFS and Ceph RGW (once the
# client acknowledges responses at once, connection.config) answer a page of 1,000 keys in about the time the
# client spends parsing it, and two ranges there were slower or no faster (docs/performance.md, "Concurrent
# listing"). A distant or busy store leaves the client waiting most of each page; two ranges halve that wait, and
# more would compete with the sync's writer for the one interpreter.
AUTO = 0
AUTO_RANGES = 2
STORE_BOUND_SHARE = 0.25

_PRINTABLE = "".join(chr(code) for code in range(0x20, 0x7F))
# Alphabets a position may take, smallest first; a position takes the first that holds every character seen there.
_ALPHABETS = tuple(
    "".join(sorted(chars))
    for chars in (
        string.digits,
        "0123456789abcdef",
        "0123456789ABCDEF",
        string.digits + string.ascii_lowercase,
        string.digits + string.ascii_uppercase,
        string.digits + string.ascii_letters,
        _PRINTABLE,
    )
)
_DONE = object()


class KeyOrderError(Exception):
    """The store listed keys out of UTF-8 binary order: its listing cannot be split into key ranges."""


class Scale:
    """Keys after ``prefix`` read as numbers: position i is a digit in the base of its alphabet (plus one where
    some key of the sample ends there, digit 0 meaning "the key ended")."""

    def __init__(self, prefix: str, keys: list[str]) -> None:
        self.prefix = prefix
        tails = [key[len(prefix) :] for key in keys]
        width = min(max(len(tail) for tail in tails), MAX_WIDTH)
        self.positions: list[tuple[str, int]] = []
        for index in range(width):
            seen = {tail[index] for tail in tails if len(tail) > index}
            ends = int(any(len(tail) <= index for tail in tails))
            alphabet = next((a for a in _ALPHABETS if seen.issubset(a)), None)
            if alphabet is None:
                alphabet = "".join(sorted(set(_PRINTABLE) | seen))
            self.positions.append((alphabet, ends))

    def value(self, key: str) -> int:
        """Never smaller for a later key: a character outside a position's alphabet reads as the largest number
        below the next character of the alphabet (or the smallest, below its first), the rest of the key with it."""
        tail = key[len(self.prefix) :]
        number, rest = 0, None  # rest: every later digit the largest ("max") or the smallest ("min")
        for index, (alphabet, ends) in enumerate(self.positions):
            base = len(alphabet) + ends
            if rest == "max":
                digit = base - 1
            elif rest == "min" or index >= len(tail):
                digit, rest = 0, "min"
            else:
                char = tail[index]
                at = bisect.bisect_left(alphabet, char)
                if at < len(alphabet) and alphabet[at] == char:
                    digit = at + ends
                elif at == 0:
                    digit, rest = 0, "max" if ends else "min"
                else:
                    digit, rest = at - 1 + ends, "max"
            number = number * base + digit
        return number

    def key(self, number: int) -> str | None:
        """The key written by ``number`` (None: beyond every key the scale can write)."""
        digits = []
        for alphabet, ends in reversed(self.positions):
            number, digit = divmod(number, len(alphabet) + ends)
            digits.append(digit)
        if number:
            return None
        digits.reverse()
        while digits and digits[-1] == 0 and self.positions[len(digits) - 1][1]:
            digits.pop()  # trailing "ended" digits: a shorter key
        chars = [
            alphabet[max(digit - ends, 0)] for (alphabet, ends), digit in zip(self.positions, digits, strict=False)
        ]
        return self.prefix + "".join(chars)


class _Range:
    """One key range (lo, hi], its pages on the way to the reader, and what its listing found."""

    def __init__(self, lo: str, hi: str | None, stop: threading.Event, expected: int = 0) -> None:
        self.lo, self.hi = lo, hi
        self.expected = expected  # keys the range was planned to hold
        self.count = 0
        self.exhausted = False  # the listing ended inside this range: no key after it
        self._pages: queue.Queue = queue.Queue(maxsize=BUFFER_PAGES)
        self._stop = stop
        self.thread: threading.Thread | None = None

    def start(self, client, request: dict) -> None:
        self.thread = threading.Thread(target=self.list, args=(client, request), name="cortx-list-range", daemon=True)
        self.thread.start()

    def put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pages(self) -> Iterator[list[dict]]:
        while True:
            item = self._pages.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def list(self, client, request: dict) -> None:
        """List the range into the reader's queue (run by the range's thread)."""
        request = dict(request, StartAfter=self.lo)
        page_size, last, probed = request["MaxKeys"], self.lo, False
        self.exhausted = True  # unless the listing passes ``hi`` first
        try:
            for response in _responses(client, request):
                if self._stop.is_set():
                    return
                contents = response.get("Contents", [])
                if not _ascending([last, *(entry["Key"] for entry in contents)]):
                    raise KeyOrderError("the store listed keys out of UTF-8 binary order")
                if contents:
                    last = contents[-1]["Key"]
                if self.hi is not None and _passes(response, contents, self.hi):
                    inside = bisect.bisect_right([entry["Key"] for entry in contents], self.hi)
                    self.count += inside
                    self.exhausted = False
                    self.put(contents[:inside])
                    break
                self.count += len(contents)
                if not self.put(contents):
                    return
                # Near the planned end, ask for about the keys still expected (at the end itself, a tenth of a
                # page once): the page that crosses the end is short instead of a whole page listed for nothing.
                remaining = self.expected - self.count
                if self.hi is None or remaining >= page_size or (remaining <= 0 and probed):
                    request["MaxKeys"] = page_size
                else:
                    request["MaxKeys"] = max(remaining + remaining // 4 + 1, page_size // 10)
                    probed = remaining <= 0
        except BaseException as exc:  # handed to the reader, which raises it in order
            self.put(exc)
            return
        self.put(_DONE)


def _passes(response: dict, contents: list[dict], hi: str) -> bool:
    """Whether a page reaches past ``hi``: a key, or a folder rolled up by the delimiter (all its keys follow it)."""
    if contents and contents[-1]["Key"] > hi:
        return True
    return any(common["Prefix"] > hi for common in response.get("CommonPrefixes", ()))


def _ascending(keys: list[str]) -> bool:
    return all(before < after for before, after in pairwise(keys))


def _next_end(scale: Scale, lo: str, step: int) -> str | None:
    """The end of the range after ``lo`` about ``step`` on the scale (None: the rest of the bucket)."""
    start = scale.value(lo)
    for _ in range(8):
        hi = scale.key(start + step)
        if hi is None:
            return None
        while len(hi.encode()) > MAX_KEY_BYTES:
            hi = hi[:-1]
        if hi > lo:
            return hi
        step *= 2
    return None


def _responses(client, request: dict) -> Iterator[dict]:
    """ListObjectsV2 responses from ``request`` on, following continuation tokens; reads ``request`` again for each
    call, so the caller may change its ``MaxKeys`` between them."""
    while True:
        response = client.list_objects_v2(**request)
        yield response
        token = response.get("NextContinuationToken")
        if not response.get("IsTruncated") or not token:
            return
        request.pop("StartAfter", None)
        request["ContinuationToken"] = token


def _first(responses: Iterator[dict]) -> tuple[dict, float]:
    """The first response and the share of its wall time that was this thread's own CPU (parsing, signing)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    first = next(responses)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return first, (cpu / wall if wall > 0 else 1.0)


def iter_pages(client, bucket: str, params: dict, ranges: int, page_size: int = 1000) -> Iterator[list[dict]]:
    """The pages of a ListObjectsV2 pass in key order, listed as up to ``ranges`` key ranges at once (``AUTO``: as
    the first page's timing suggests)."""
    request = dict(params, Bucket=bucket, MaxKeys=page_size)
    responses = _responses(client, request)
    first, client_share = _first(responses)
    if ranges == AUTO:
        ranges = AUTO_RANGES if client_share < STORE_BOUND_SHARE else 1
        logger.debug("%s: %d key range(s), the client's share of the first page %.2f", bucket, ranges, client_share)
    contents = first.get("Contents", [])
    keys = [entry["Key"] for entry in contents]
    split = ranges > 1 and first.get("IsTruncated") and len(keys) > 1 and _ascending(keys)
    scale = Scale(params.get("Prefix", ""), keys) if split else None
    target = max(1, int(SEGMENT_PAGES * page_size))
    step = (scale.value(keys[-1]) - scale.value(keys[0])) * target // (len(keys) - 1) if scale else 0
    if step <= 0:
        # One range, one page, or keys the scale cannot read (out of order, or none): the rest in one pass.
        yield contents
        yield from (response.get("Contents", []) for response in responses)
        return
    request = dict(params, Bucket=bucket, MaxKeys=page_size)

    stop = threading.Event()
    window: deque[_Range] = deque()
    reading: _Range | None = None
    lo: str | None = keys[-1]

    def plan() -> None:
        """Start ranges after ``lo`` until ``ranges`` are listed or waiting to be read."""
        nonlocal lo
        while lo is not None and len(window) < ranges:
            hi = _next_end(scale, lo, step)
            part = _Range(lo, hi, stop, target)
            part.start(client, request)
            window.append(part)
            lo = hi

    try:
        plan()  # the ranges list while the reader works on the first page
        yield contents
        while window:
            reading = window.popleft()
            yield from reading.pages()
            if reading.exhausted:
                lo = None  # the bucket ends in this range: the ranges already started after it are drained
            elif reading.hi is not None:
                span = scale.value(reading.hi) - scale.value(reading.lo)
                wanted = span * target // reading.count if reading.count else step * MAX_FACTOR
                step = max(1, min(step * MAX_FACTOR, max(step // MAX_FACTOR, wanted)))
            plan()
    finally:
        stop.set()
        # One deadline for all: a thread inside a request leaves when it returns (the client's read timeout).
        deadline = time.monotonic() + 5
        for part in (reading, *window):
            if part is not None and part.thread is not None:
                part.thread.join(timeout=max(0.0, deadline - time.monotonic()))
