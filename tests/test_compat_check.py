"""The compatibility-table check itself (tests/compat_check.py) finds what a run contradicts."""

from __future__ import annotations

import pytest

from tests import compat_check

TABLE = """
| id in the suite | server | version |
|---|---|---|
| `moto` | moto | 5.2.5 |
| `rgw` | Ceph RGW | 16.2.15 pacific |

| feature the plugin uses | moto | SeaweedFS | Ceph RGW | CORTX profile over RGW |
|---|---|---|---|---|
| presigned GET | **skip** (no query auth) | **yes** | **yes** | **skip** |
| one long name | **yes** | **no** (refused) | **yes** | not known |
"""


@pytest.fixture
def run(monkeypatch):
    """Pretend results: {nodeid: (store, rows, outcome)}."""
    for name in ("_rows", "_stores", "_outcomes", "VERSIONS"):
        monkeypatch.setattr(compat_check, name, {})

    def record(results: dict, versions: dict | None = None) -> list[str]:
        for nodeid, (store, rows, outcome) in results.items():
            compat_check._rows[nodeid] = rows
            compat_check._stores[nodeid] = store
            compat_check._outcomes[nodeid] = outcome
        compat_check.VERSIONS.update(versions or {})
        return compat_check.mismatches(TABLE)

    return record


def test_agreeing_results_pass(run):
    assert (
        run(
            {
                "a[moto]": ("moto", ["presigned GET"], "skipped"),
                "a[rgw]": ("rgw", ["presigned GET"], "passed"),
                "b[seaweedfs]": ("seaweedfs", ["one long name"], "skipped"),
                "b[cortx-rgw]": ("cortx-rgw", ["one long name"], "skipped"),
                "c[moto]": ("moto", ["presigned GET"], "failed"),  # pytest reports failures itself
            },
            {"moto": "5.2.5", "rgw": "16.2.15"},
        )
        == []
    )


def test_each_kind_of_disagreement_is_reported(run):
    problems = run(
        {
            "a[moto]": ("moto", ["presigned GET"], "passed"),  # the table says skip
            "a[rgw]": ("rgw", ["presigned GET"], "skipped"),  # the table says yes
            "b[cortx-rgw]": ("cortx-rgw", ["one long name"], "passed"),  # the table says it was not tested
            "c[rgw]": ("rgw", ["no such row"], "passed"),
        },
        {"rgw": "18.2.7", "moto": "5.2"},  # neither is the version the table names
    )
    assert len(problems) == 6, problems
    assert any("'moto'" in p and "a[moto] passed" in p for p in problems)
    assert any("'Ceph RGW'" in p and "a[rgw] skipped" in p for p in problems)
    assert any("b[cortx-rgw] passed" in p for p in problems)
    assert any("0 rows" in p and "no such row" in p for p in problems)
    assert sum("does not name the version tested" in p for p in problems) == 2


def test_the_real_table_parses():
    features, versions = compat_check.read_table(compat_check.TABLE.read_text(encoding="utf-8"))
    assert set(versions) >= set(compat_check.COLUMNS)
    assert all(set(cells) == set(compat_check.COLUMNS) for cells in features.values())
    assert len(features) >= 15
