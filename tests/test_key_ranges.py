"""The key-range planner (``source.key_ranges``), in process: how keys are read as numbers, how range ends are
written back, and when "auto" splits. The listing itself is tested on the real stores (tests/test_real_stores.py)."""

from __future__ import annotations

import random
import uuid

import pytest

from label_studio_cortx.source import key_ranges
from label_studio_cortx.source.key_ranges import Scale

_RND = random.Random(3)
SHAPES = {
    "numbered": [f"p/img_{i:06d}.jpg" for i in range(1000)],
    "sparse ids": sorted(f"p/{_RND.randrange(10**12):012d}.jpg" for _ in range(1000)),
    "uuids": sorted(f"p/{uuid.UUID(int=_RND.getrandbits(128))}.png" for _ in range(1000)),
    "lengths": sorted(f"p/{i}.jpg" for i in range(1000)),
    "unicode": sorted(f"p/{i:04d}-{'日本語'[i % 3]}{chr(0xE0 + i % 20)}.png" for i in range(1000)),
    "unicode folders": sorted(f"p/{chr(0xE0 + i % 20)}{chr(0x65E5 + i % 7)}/{i:03d}" for i in range(1000)),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_scale_keeps_key_order(shape):
    keys = SHAPES[shape]
    scale = Scale("p/", keys[:100])
    values = [scale.value(key) for key in keys]
    assert values == sorted(values), "a later key read as a smaller number"
    assert values[0] < values[-1]


@pytest.mark.parametrize("shape", ["numbered", "sparse ids", "uuids"])
def test_a_key_of_the_samples_alphabets_is_written_back_as_itself(shape):
    keys = SHAPES[shape]
    scale = Scale("p/", keys)
    assert all(scale.key(scale.value(key)) == key for key in keys)


@pytest.mark.parametrize("shape", [shape for shape in SHAPES if shape != "unicode folders"])
def test_range_ends_step_forward_and_stay_sendable(shape):
    keys = SHAPES[shape]
    scale = Scale("p/", keys[:200])
    step = (scale.value(keys[199]) - scale.value(keys[0])) // 10
    lo, ends = keys[199], []
    for _ in range(50):
        hi = key_ranges._next_end(scale, lo, step)
        if hi is None:
            break
        assert hi > lo and hi.startswith("p/")
        assert len(hi.encode()) <= key_ranges.MAX_KEY_BYTES and all(ord(char) >= 0x20 for char in hi)
        ends.append(hi)
        lo = hi
    assert len(ends) >= 5


def test_numbered_keys_are_cut_where_the_page_says():
    """From a first page of 1,000 numbered keys, four pages on is about key 5,000."""
    keys = SHAPES["numbered"]
    scale = Scale("p/", keys)
    step = (scale.value(keys[-1]) - scale.value(keys[0])) * 4000 // 999
    hi = key_ranges._next_end(scale, keys[-1], step)
    assert "p/img_004800" <= hi <= "p/img_005200", hi


def test_the_end_of_the_scale_is_an_open_range():
    """Past the largest key the scale can write (here: a first character beyond those the page showed) the rest
    of the bucket is one range."""
    scale = Scale("p/", ["p/a", "p/b"])
    assert key_ranges._next_end(scale, "p/b", 10**6) is None
    keys = SHAPES["unicode folders"][:200]
    scale = Scale("p/", keys)
    assert key_ranges._next_end(scale, keys[-1], scale.value(keys[-1]) - scale.value(keys[0])) is None


class _TimedBucket:
    """ListObjectsV2 over numbered keys, each call taking ``seconds``: asleep (a store that makes the client wait)
    or busy in the calling thread (a client whose own work is the limit)."""

    def __init__(self, count: int, seconds: float, busy: bool) -> None:
        self.keys = [f"k/{i:06d}" for i in range(count)]
        self.seconds, self.busy, self.calls = seconds, busy, []

    def list_objects_v2(self, **request) -> dict:
        import bisect
        import time

        self.calls.append(dict(request))
        started = time.perf_counter()
        if self.busy:
            while time.perf_counter() - started < self.seconds:
                pass
        else:
            time.sleep(self.seconds)
        after = request.get("ContinuationToken") or request.get("StartAfter") or ""
        start = bisect.bisect_right(self.keys, after)
        page = self.keys[start : start + request["MaxKeys"]]
        truncated = start + len(page) < len(self.keys)
        return {
            "Contents": [{"Key": key} for key in page],
            "IsTruncated": truncated,
            **({"NextContinuationToken": page[-1]} if truncated else {}),
        }


@pytest.mark.parametrize("busy", [False, True], ids=["the store waits", "the client works"])
def test_auto_lists_in_ranges_only_when_the_store_held_the_first_page_up(busy):
    bucket = _TimedBucket(2000, 0.02, busy)
    pages = list(key_ranges.iter_pages(bucket, "b", {"Prefix": "k/"}, key_ranges.AUTO, page_size=100))
    assert [entry["Key"] for page in pages for entry in page] == bucket.keys
    split = any("StartAfter" in call for call in bucket.calls)
    assert split is not busy, bucket.calls[:3]
