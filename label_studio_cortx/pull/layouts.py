"""What each converter format says about its images, and how its files are rewritten to point at local copies.

One class per format (COCO, VOC, YOLO), each reading the converter's original files (kept in ``.source/`` of the
snapshot folder, so every run starts from the same input and a re-run is idempotent) and answering three things:

- ``refs()``: the image references, as the converter wrote them, with the pixel size the annotations assume;
- ``write(local, split)``: the format's files with local image paths (images that could not be fetched left out,
  with their boxes), plus the split in the format's own convention (COCO ``annotations/<split>.json``, VOC
  ``ImageSets/Main/<split>.txt``, YOLO ``<split>.txt`` and the ``data.yaml`` Ultralytics reads);
- ``boxes()``: every image's boxes in pixels (``x, y, w, h``, top-left origin), format-independent, for the
  sample iterator and the imagefolder layout.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SnapshotError
from .loaders import load_coco, load_voc, load_yolo

SOURCE_DIR = ".source"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class ImageRef:
    """An image as a converter file names it: ``ref`` is matched by stem (YOLO) or as URI / file name."""

    ref: str
    by_stem: bool = False
    expect: tuple[int, int] | None = None
    extension_from_source: bool = False  # the local name must be "<ref><extension of the object>" (YOLO)


@dataclass(frozen=True)
class Box:
    """A bounding box in pixels: top-left corner ``x, y``, size ``w, h``, class ``label``."""

    label: str
    x: float
    y: float
    w: float
    h: float


def safe_relative(name: str) -> str:
    """``name`` as a relative POSIX path that stays inside its folder (S3 keys may hold ``..`` or ``//``)."""
    parts = [p if p not in ("", ".", "..") else "_" for p in name.replace("\\", "/").split("/")]
    return "/".join(parts)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _keep_originals(folder: Path, names: tuple[str, ...]) -> Path:
    """Copy the converter's files into ``.source/`` once; later runs rewrite from these copies."""
    source = folder / SOURCE_DIR
    done = source / ".complete"
    if not done.exists():
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir()
        for name in names:
            original = folder / name
            if original.is_dir():
                shutil.copytree(original, source / name)
            elif original.is_file():
                shutil.copy2(original, source / name)
        done.write_text("", encoding="utf-8")
    return source


class CocoLayout:
    format = "COCO"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        source = _keep_originals(folder, ("result.json",))
        self.data = load_coco(source)
        self.classes = [c["name"] for c in sorted(self.data["categories"], key=lambda c: c["id"])]

    def refs(self) -> list[ImageRef]:
        out = []
        for image in self.data["images"]:
            w, h = image.get("width"), image.get("height")
            out.append(ImageRef(str(image["file_name"]), expect=(int(w), int(h)) if w and h else None))
        return out

    def write(self, local: dict[str, str | None], split: dict[str, str]) -> dict[str, Any]:
        """``local``: reference -> path relative to the folder (None: left out); ``split``: that path -> split."""
        images, kept = [], {}
        for image in self.data["images"]:
            path = local.get(str(image["file_name"]))
            if path is None:
                continue
            images.append({**image, "file_name": posixpath.relpath(path, IMAGES_DIR)})
            kept[image["id"]] = path
        annotations = [a for a in self.data["annotations"] if a["image_id"] in kept]
        result = {**self.data, "images": images, "annotations": annotations}
        _write_text(self.folder / "result.json", json.dumps(result, indent=2, ensure_ascii=False))
        # One annotation file per split, so CocoDetection(root="images", annFile="annotations/train.json") works.
        split_files = {}
        shutil.rmtree(self.folder / "annotations", ignore_errors=True)
        for name in sorted(set(split.values())):
            ids = {i for i, p in kept.items() if split.get(p) == name}
            part = {
                **result,
                "images": [i for i in images if i["id"] in ids],
                "annotations": [a for a in annotations if a["image_id"] in ids],
            }
            split_files[name] = f"annotations/{name}.json"
            _write_text(self.folder / split_files[name], json.dumps(part, ensure_ascii=False))
        return {"annotation_file": "result.json", "split_files": split_files}

    def boxes(self, local: dict[str, str | None]) -> dict[str, list[Box]]:
        names = {c["id"]: c["name"] for c in self.data["categories"]}
        by_id = {i["id"]: local.get(str(i["file_name"])) for i in self.data["images"]}
        out: dict[str, list[Box]] = {p: [] for p in by_id.values() if p}
        for a in self.data["annotations"]:
            path = by_id.get(a["image_id"])
            if path and a.get("bbox"):
                x, y, w, h = (float(v) for v in a["bbox"])
                out[path].append(Box(names.get(a["category_id"], str(a["category_id"])), x, y, w, h))
        return out


class VocLayout:
    format = "VOC"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.source = _keep_originals(folder, ("Annotations",))
        self.entries = load_voc(self.source)
        self.classes = sorted({o["name"] for e in self.entries for o in e["objects"]})

    def refs(self) -> list[ImageRef]:
        out = []
        for e in self.entries:
            w, h = e["size"].get("width"), e["size"].get("height")
            out.append(ImageRef(e["filename"], expect=(int(w), int(h)) if w and h else None))
        return out

    def write(self, local: dict[str, str | None], split: dict[str, str]) -> dict[str, Any]:
        annotations = self.folder / "Annotations"
        shutil.rmtree(annotations, ignore_errors=True)
        stems: dict[str, list[str]] = {}
        for e in self.entries:
            path = local.get(e["filename"])
            if path is None:
                continue
            tree = ET.parse(self.source / e["annotation_file"])
            root = tree.getroot()
            relative = posixpath.relpath(path, IMAGES_DIR)
            for tag, text in (("folder", IMAGES_DIR), ("filename", relative), ("path", path)):
                element = root.find(tag)
                if element is None:
                    element = ET.SubElement(root, tag)
                element.text = text
            target = self.folder / e["annotation_file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            tree.write(target, encoding="utf-8", xml_declaration=True)
            stem = posixpath.splitext(posixpath.relpath(e["annotation_file"], "Annotations"))[0]
            stems.setdefault(split.get(path, ""), []).append(stem)
        sets = self.folder / "ImageSets" / "Main"
        shutil.rmtree(sets, ignore_errors=True)
        split_files = {}
        for name, names in sorted(stems.items()):
            if name:
                split_files[name] = f"ImageSets/Main/{name}.txt"
                _write_text(self.folder / split_files[name], "".join(f"{s}\n" for s in sorted(names)))
        return {"annotation_dir": "Annotations", "split_files": split_files}

    def boxes(self, local: dict[str, str | None]) -> dict[str, list[Box]]:
        out: dict[str, list[Box]] = {}
        for e in self.entries:
            path = local.get(e["filename"])
            if path is None:
                continue
            out[path] = [
                Box(o["name"], b["xmin"], b["ymin"], b["xmax"] - b["xmin"], b["ymax"] - b["ymin"])
                for o in e["objects"]
                if (b := o["bbox"]) and None not in b.values()
            ]
        return out


class YoloLayout:
    format = "YOLO"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.source = _keep_originals(folder, ("labels", "classes.txt"))
        self.data = load_yolo(self.source)
        self.classes = self.data["classes"]

    def refs(self) -> list[ImageRef]:
        # The label file's stem is the image's base name without extension (the converter's only record of it).
        return [ImageRef(stem, by_stem=True, extension_from_source=True) for stem in self.data["labels"]]

    def write(self, local: dict[str, str | None], split: dict[str, str]) -> dict[str, Any]:
        labels = self.folder / "labels"
        shutil.rmtree(labels, ignore_errors=True)
        lists: dict[str, list[str]] = {}
        for stem in self.data["labels"]:
            path = local.get(stem)
            if path is None:
                continue
            # Ultralytics finds a label by replacing /images/ with /labels/ and the extension with .txt.
            label = self.folder / "labels" / (posixpath.splitext(posixpath.relpath(path, IMAGES_DIR))[0] + ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.source / "labels" / f"{stem}.txt", label)
            lists.setdefault(split.get(path, "train"), []).append(f"./{path}")
        split_files = {}
        for name in ("train", "val", "test"):
            if name in lists or name in ("train", "val"):
                split_files[name] = f"{name}.txt"
                _write_text(self.folder / split_files[name], "".join(f"{p}\n" for p in sorted(lists.get(name, []))))
        _write_text(self.folder / "data.yaml", data_yaml(self.folder, split_files, self.classes))
        return {"data_yaml": "data.yaml", "split_files": split_files}

    def boxes(self, local: dict[str, str | None], sizes: dict[str, tuple[int, int]]) -> dict[str, list[Box]]:
        out: dict[str, list[Box]] = {}
        for stem, rows in self.data["labels"].items():
            path = local.get(stem)
            if path is None or path not in sizes:
                continue
            width, height = sizes[path]
            out[path] = []
            for row in rows:
                if len(row) != 5:
                    raise SnapshotError(f"labels/{stem}.txt: {len(row)} values on a line; only boxes are supported")
                cls, xc, yc, w, h = row
                name = self.classes[cls] if 0 <= cls < len(self.classes) else str(cls)
                out[path].append(Box(name, (xc - w / 2) * width, (yc - h / 2) * height, w * width, h * height))
        return out


def data_yaml(folder: Path, split_files: dict[str, str], classes: list[str]) -> str:
    """Ultralytics' dataset YAML, written by hand (JSON strings are valid YAML) so the pull needs no YAML library."""
    lines = ["# Written by label-studio-cortx pull: an Ultralytics dataset", f"path: {json.dumps(str(folder))}"]
    lines += [f"{name}: {json.dumps(path)}" for name, path in split_files.items()]
    lines += [f"nc: {len(classes)}", "names:"]
    lines += [f"  {i}: {json.dumps(name, ensure_ascii=False)}" for i, name in enumerate(classes)]
    return "\n".join(lines) + "\n"


LAYOUTS = {"COCO": CocoLayout, "VOC": VocLayout, "YOLO": YoloLayout}


def layout_for(folder: Path, fmt: str) -> CocoLayout | VocLayout | YoloLayout:
    cls = LAYOUTS.get(fmt.upper())
    if cls is None:
        raise SnapshotError(
            f"--with-media needs a COCO, VOC or YOLO snapshot; this one is {fmt} (its files are in {folder})"
        )
    return cls(folder)
