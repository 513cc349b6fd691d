"""Check docs/compatibility.md against what the storage suite really did on each server.

A test of tests/test_real_stores.py names the rows of the compatibility table it proves with
``@pytest.mark.compat("row text")`` (the start of the row's first cell), or, for a test parametrized by
``mode``, ``@pytest.mark.compat(proxy="row", presign=("row", "row"))``. At the end of a run, every (row, server) the run
tested is compared with the table's cell for that server:

- a cell beginning ``**yes**`` needs the test to have passed there;
- ``**no**`` (the server refuses, checked) needs it to have passed or to have skipped after checking the refusal;
- ``**skip**`` needs it to have skipped there;
- any other cell (not tested here) must not belong to a test that passed on that server.

The tested versions are checked too: the versions table names, for each server, the version the run met.
A disagreement fails the run (exit status 1) with a list of the cells to correct. Tests that failed are
reported by pytest already and are not compared.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parent.parent / "docs" / "compatibility.md"
# The store ids of tests/endpoint_fixtures.py and the table's column headers for them.
COLUMNS = {"moto": "moto", "seaweedfs": "SeaweedFS", "rgw": "Ceph RGW", "cortx-rgw": "CORTX profile over RGW"}
# Versions the servers reported in this run, by store id (filled in by the ``store`` fixture).
VERSIONS: dict[str, str] = {}

_rows: dict[str, list[str]] = {}  # nodeid -> rows it proves
_stores: dict[str, str] = {}  # nodeid -> store id
_outcomes: dict[str, str] = {}  # nodeid -> passed / skipped / failed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compat(row, **by_mode): the docs/compatibility.md rows this test proves")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("compat")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "store" not in callspec.params:
            continue
        rows = list(marker.args)
        mode = callspec.params.get("mode")
        by_mode = marker.kwargs.get(mode, ())
        rows.extend([by_mode] if isinstance(by_mode, str) else by_mode)
        _rows[item.nodeid] = rows
        _stores[item.nodeid] = callspec.params["store"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _rows:
        return
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped:
        _outcomes.setdefault(report.nodeid, "skipped")
    elif report.when == "call" and report.passed:
        _outcomes.setdefault(report.nodeid, "passed")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def read_table(text: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The features table as {row: {store id: cell}} and the versions table as {store id: row text}."""
    features: dict[str, dict[str, str]] = {}
    versions: dict[str, str] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = cells
            continue
        if set(line) <= set("|-: "):
            continue
        if header[0] == "id in the suite":
            versions[cells[0].strip("`")] = line
        elif header[0].startswith("feature"):
            features[cells[0]] = {
                store: cells[header.index(title)] for store, title in COLUMNS.items() if title in header
            }
    return features, versions


def _expected(cell: str) -> set[str]:
    if cell.startswith("**yes**"):
        return {"passed"}
    if cell.startswith("**no**"):
        return {"passed", "skipped"}
    if cell.startswith("**skip**"):
        return {"skipped"}
    return {"skipped", "not run"}


def mismatches(text: str) -> list[str]:
    """What the table says that this run's results contradict."""
    features, versions = read_table(text)
    problems = []
    for nodeid, rows in _rows.items():
        outcome = _outcomes.get(nodeid)
        if outcome not in ("passed", "skipped"):
            continue
        store = _stores[nodeid]
        for wanted in rows:
            matches = [row for row in features if row.startswith(wanted)]
            if len(matches) != 1:
                problems.append(f"{nodeid}: {len(matches)} rows of the features table begin with {wanted!r}")
                continue
            cell = features[matches[0]].get(store, "")
            if outcome not in _expected(cell):
                problems.append(f"row {wanted!r}, column {COLUMNS[store]!r} says {cell[:40]!r}, but {nodeid} {outcome}")
    for store, version in VERSIONS.items():
        row = versions.get(store, "")
        if version and not re.search(rf"(?<![\d.]){re.escape(version)}(?!\.?\d)", row):
            problems.append(f"the versions table's row for {store!r} does not name the version tested: {version}")
    return problems


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _outcomes:
        return
    problems = mismatches(TABLE.read_text(encoding="utf-8"))
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["docs/compatibility.md disagrees with this run:", *(f"  - {p}" for p in problems)]
        if reporter is not None:
            reporter.write_sep("=", "compatibility table", red=True)
            reporter.write_line("\n".join(lines))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
