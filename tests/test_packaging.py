"""Packaging: the wheel carries migrations and templates inside the package; models match migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def test_migrations_are_complete(db):
    # Raises SystemExit when a model change has no migration.
    call_command("makemigrations", "io_storages_cortx", "--check", "--dry-run", verbosity=0)


def test_wheel_holds_migrations_templates_and_pins_label_studio(tmp_path):
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
    )
    (wheel,) = dist.glob("label_studio_cortx-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "label_studio_cortx/migrations/0001_initial.py" in names
    assert "label_studio_cortx/migrations/__init__.py" in names
    assert "label_studio_cortx/templates/label_studio_cortx/form_layout.yml" in names
    assert "label_studio_cortx/templates/label_studio_cortx/_connection_toggles.yml" in names
    assert not any(n.startswith(("tests/", "migrations/", "templates/")) for n in names)
    assert "Requires-Dist: label-studio<1.24,>=1.23.0" in metadata
    assert "label-studio-cortx = label_studio_cortx.cli:main" in entry_points


def test_console_script_is_label_studio_with_the_plugin():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "label-studio-cortx"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for command in ("start", "init", "user", "reset_password"):
        assert command in result.stdout
