"""Reading a pulled snapshot folder into plain Python structures (COCO, VOC, YOLO, JSON, CSV/TSV); stdlib only."""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import SnapshotError
from .manifest import MANIFEST_NAME, SnapshotManifest


def read_local_manifest(folder: Path) -> SnapshotManifest | None:
    """The manifest of a pulled snapshot folder, None when it has none."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return SnapshotManifest.from_json(path.read_bytes())
    except ValueError as exc:
        raise SnapshotError(f"{path} is not a valid snapshot manifest: {exc}") from exc


def _folder(folder: str | os.PathLike[str]) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise SnapshotError(f"{path} is not a folder (pass the folder returned by pull())")
    return path


def _manifest_file_names(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    manifest = read_local_manifest(folder)
    if manifest is None:
        return []
    return [
        folder.joinpath(*f.name.split("/"))
        for f in manifest.files
        if not f.archive and f.name.lower().endswith(suffixes)
    ]


def _find_file(folder: Path, defaults: tuple[str, ...], suffixes: tuple[str, ...], what: str) -> Path:
    for candidate in [*_manifest_file_names(folder, suffixes), *(folder / d for d in defaults)]:
        if candidate.is_file():
            return candidate
    matches = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
    matches = [p for p in matches if p.name != MANIFEST_NAME]
    if len(matches) == 1:
        return matches[0]
    raise SnapshotError(f"no {what} file found in {folder} (looked for {', '.join(defaults)})")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"cannot read JSON file {path}: {exc}") from exc


def load_coco(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """COCO export (``result.json``): a dict with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in
    pixels), ``categories`` and ``info``. ``images[*].file_name`` is relative to ``folder`` when the image was
    exported, otherwise the task's original image URL."""
    path = _find_file(_folder(folder), ("result.json",), (".json",), "COCO result.json")
    data = _read_json(path)
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise SnapshotError(f"{path} is not a COCO file (expected an object with images, annotations, categories)")
    return data


def _number(text: str | None) -> int | float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    return int(value) if value.is_integer() else value


def load_voc(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Pascal VOC export: one dict per ``Annotations/*.xml`` (sorted by file name)::

    {"annotation_file": "Annotations/cat1.xml", "folder": "images", "filename": "cat1.jpg",
     "size": {"width": 640, "height": 480, "depth": 3},
     "objects": [{"name": "Cat", "bbox": {"xmin": 64, "ymin": 96, "xmax": 256, "ymax": 288},
                  "pose": "Unspecified", "truncated": 0, "difficult": 0}]}
    """
    base = _folder(folder)
    annotations = base / "Annotations"
    if not annotations.is_dir():
        raise SnapshotError(f"no Annotations/ folder in {base}: not a VOC export")
    result: list[dict[str, Any]] = []
    for xml_path in sorted(annotations.rglob("*.xml")):
        try:
            root = ET.parse(xml_path).getroot()
            size = root.find("size")
            objects = []
            for obj in root.findall("object"):
                box = obj.find("bndbox")
                objects.append(
                    {
                        "name": (obj.findtext("name") or "").strip(),
                        "bbox": None
                        if box is None
                        else {k: _number(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")},
                        "pose": (obj.findtext("pose") or "").strip() or None,
                        "truncated": _number(obj.findtext("truncated")),
                        "difficult": _number(obj.findtext("difficult")),
                    }
                )
            result.append(
                {
                    "annotation_file": xml_path.relative_to(base).as_posix(),
                    "folder": (root.findtext("folder") or "").strip() or None,
                    "filename": (root.findtext("filename") or "").strip(),
                    "size": {
                        k: _number(size.findtext(k)) if size is not None else None for k in ("width", "height", "depth")
                    },
                    "objects": objects,
                }
            )
        except (ET.ParseError, ValueError) as exc:
            raise SnapshotError(f"cannot parse VOC file {xml_path}: {exc}") from exc
    return result


def load_yolo(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """YOLO export: ``{"classes": [...], "labels": {image_stem: [(class_id, x_center, y_center, w, h), ...]},
    "notes": <notes.json or None>}``.

    Coordinates are normalized to 0..1. ``class_id`` indexes ``classes``. Label files in sub-folders of
    ``labels/`` are keyed by their relative path without ``.txt``. Lines with more values (YOLO OBB corners,
    keypoints) are returned as longer tuples; images without boxes map to an empty list.
    """
    base = _folder(folder)
    classes_file = base / "classes.txt"
    labels_dir = base / "labels"
    if not classes_file.is_file() or not labels_dir.is_dir():
        raise SnapshotError(f"{base} is not a YOLO export (expected classes.txt and labels/)")
    classes = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels: dict[str, list[tuple[Any, ...]]] = {}
    for txt in sorted(labels_dir.rglob("*.txt")):
        rows: list[tuple[Any, ...]] = []
        for lineno, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
            values = line.split()
            if not values:
                continue
            try:
                rows.append((int(float(values[0])), *(float(v) for v in values[1:])))
            except ValueError as exc:
                raise SnapshotError(f"{txt}:{lineno}: not a YOLO label line: {line!r}") from exc
        labels[txt.relative_to(labels_dir).with_suffix("").as_posix()] = rows
    notes_file = base / "notes.json"
    notes = _read_json(notes_file) if notes_file.is_file() else None
    return {"classes": classes, "labels": labels, "notes": notes}


def load_json(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Label Studio JSON or JSON_MIN export (``result.json``): the list of tasks / flat records."""
    path = _find_file(_folder(folder), ("result.json",), (".json",), "JSON result.json")
    data = _read_json(path)
    if not isinstance(data, list):
        raise SnapshotError(f"{path} is not a Label Studio JSON export (expected a list)")
    return data


def load_csv(folder: str | os.PathLike[str], delimiter: str | None = None) -> list[dict[str, str]]:
    """CSV or TSV export: one dict per row, all values as strings (JSON columns are JSON text).

    The delimiter defaults to a tab for TSV snapshots (per the manifest, or a ``.tsv`` file) and a comma
    otherwise. Note that Label Studio's converter names both ``result.csv``.
    """
    base = _folder(folder)
    path = _find_file(base, ("result.csv", "result.tsv"), (".csv", ".tsv"), "CSV/TSV result")
    if delimiter is None:
        manifest = read_local_manifest(base)
        is_tsv = (manifest is not None and manifest.format.upper() == "TSV") or path.suffix.lower() == ".tsv"
        delimiter = "\t" if is_tsv else ","
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(max(previous_limit, 2**31 - 1))  # cells may hold large JSON results
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter=delimiter))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cannot read CSV file {path}: {exc}") from exc
    finally:
        csv.field_size_limit(previous_limit)


_LOADERS: dict[str, Callable[[Path], Any]] = {
    "COCO": load_coco,
    "COCO_WITH_IMAGES": load_coco,
    "VOC": load_voc,
    "YOLO": load_yolo,
    "YOLO_WITH_IMAGES": load_yolo,
    "YOLO_OBB": load_yolo,
    "YOLO_OBB_WITH_IMAGES": load_yolo,
    "JSON": load_json,
    "JSON_MIN": load_json,
    "CSV": load_csv,
    "TSV": load_csv,
}


def load(folder: str | os.PathLike[str]) -> Any:
    """Load a pulled snapshot with the loader matching the format in its ``manifest.json``."""
    base = _folder(folder)
    manifest = read_local_manifest(base)
    if manifest is None:
        raise SnapshotError(
            f"{base} has no {MANIFEST_NAME}: pass the folder returned by pull(), or call load_coco(), load_voc(), "
            "load_yolo(), load_json() or load_csv() directly"
        )
    loader = _LOADERS.get(manifest.format.upper())
    if loader is None:
        raise SnapshotError(
            f"no loader for format {manifest.format!r}; the snapshot's files are in {base} "
            f"(supported: {', '.join(sorted(_LOADERS))})"
        )
    return loader(base)
