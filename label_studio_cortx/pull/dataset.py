"""A snapshot made ready to train on: its images fetched, its files pointing at them, a fixed split.

Owns the orchestration behind ``pull --with-media`` and :func:`pull_dataset`: resolve every image reference of the
snapshot's COCO / VOC / YOLO files to a source object (:mod:`.sources`), fetch them (:mod:`.media`), rewrite the
format's files (:mod:`.layouts`), split deterministically, write the optional Hugging Face ``imagefolder`` layout,
and hand back a :class:`Dataset` (paths, summary, sample iterator) that needs no ML library.

The split is a function of each source object's URI, the seed and the ratios only (see :func:`assign_split`), so
two pulls, and snapshots of the same images in another format, get the same split. It is stored in ``media.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .download import LATEST, pull
from .errors import SnapshotError
from .layouts import IMAGES_DIR, Box, ImageRef, layout_for, safe_relative
from .loaders import read_local_manifest
from .media import DEFAULT_WORKERS, OK, Fetcher, MediaManifest, MediaObject, MediaRequest, TransferStats
from .sources import Source, SourceIndex, Unresolved, parse_reference

SPLIT_NAMES = ("train", "val", "test")
LAYOUT_NAMES = ("native", "imagefolder")
IMAGEFOLDER_DIR = "imagefolder"


class MediaIncomplete(SnapshotError):
    """Some images could not be fetched; ``problems`` lists them (each with ``uri`` and ``error``); ``dataset`` is
    what was fetched (with this run's transfer counts), as :func:`open_dataset` would return it."""

    def __init__(self, problems: list[MediaObject], folder: Path, dataset: Dataset | None = None) -> None:
        self.problems, self.folder, self.dataset = problems, folder, dataset
        lines = "\n".join(f"  {p.status}: {p.error}" for p in problems)
        super().__init__(
            f"{len(problems)} image(s) of the snapshot could not be fetched into {folder}:\n{lines}\n"
            "Fix or remove them and pull again (verified images are kept), or pass --allow-missing "
            "(allow_missing=True) to train without them"
        )


def parse_split(value: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.8,0.2"`` (train, val) or ``"0.7,0.2,0.1"`` (train, val, test) as ratios summing to 1."""
    try:
        parts = tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except ValueError:
        raise SnapshotError(f"invalid split {value!r}: expected ratios like 0.8,0.2 or 0.7,0.2,0.1") from None
    if not 1 <= len(parts) <= len(SPLIT_NAMES) or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise SnapshotError(f"invalid split {value!r}: one to three non-negative ratios summing to 1, like 0.8,0.2")
    return parts


def assign_split(uris: Iterable[str], ratios: Sequence[float], seed: int = 0) -> dict[str, str]:
    """Split name of every URI, from ``sha256(seed, uri)`` read as a number in [0, 1) against the ratios.

    Each image's split depends on its own URI only, not on which other images are there: the same image lands in
    the same split in every pull and in every format's snapshot, and images added to the project later never move
    an existing image from val to train. The counts follow the ratios statistically (not exactly on small sets).
    """
    bounds, total = [], 0.0
    for ratio in ratios:
        total += ratio
        bounds.append(total)
    out = {}
    for uri in set(uris):
        point = int.from_bytes(hashlib.sha256(f"{seed}\0{uri}".encode()).digest()[:8], "big") / 2**64
        index = next((i for i, bound in enumerate(bounds) if point < bound), len(bounds) - 1)
        out[uri] = SPLIT_NAMES[index]
    return out


@dataclass
class Sample:
    """One image and its boxes (pixels, top-left ``x, y``, ``w, h``)."""

    image: Path
    width: int | None
    height: int | None
    boxes: list[Box]
    split: str | None
    source: str

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.boxes]


@dataclass
class Dataset:
    """A pulled snapshot with its media: paths, a summary and the samples; plain Python, no ML library."""

    folder: Path
    format: str
    layout: str
    classes: list[str]
    paths: dict[str, Path]
    objects: list[MediaObject]
    split: dict[str, Any]
    boxes: dict[str, list[Box]] = field(repr=False)
    stats: TransferStats = field(default_factory=TransferStats)

    @property
    def images_dir(self) -> Path:
        return self.folder / IMAGES_DIR

    @property
    def problems(self) -> list[MediaObject]:
        """Images that could not be fetched (missing, unreadable, unresolvable), each naming its key."""
        return [o for o in self.objects if o.status != OK]

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """Every fetched image with its boxes, sorted by path; only those of ``split`` if given."""
        assignment = self.split.get("assignment", {})
        for obj in sorted((o for o in self.objects if o.status == OK), key=lambda o: o.path):
            name = assignment.get(obj.uri)
            if split is None or name == split:
                yield Sample(self.folder / obj.path, obj.width, obj.height, self.boxes.get(obj.path, []), name, obj.uri)

    def summary(self) -> dict[str, Any]:
        ok = [o for o in self.objects if o.status == OK]
        sizes: dict[str, int] = {}
        for name in self.split.get("assignment", {}).values():
            sizes[name] = sizes.get(name, 0) + 1
        return {
            "folder": str(self.folder),
            "format": self.format,
            "layout": self.layout,
            "images": len(ok),
            "annotations": sum(len(self.boxes.get(o.path, [])) for o in ok),
            "classes": list(self.classes),
            "splits": {n: sizes.get(n, 0) for n in SPLIT_NAMES if n in sizes or n in ("train", "val")},
            "problems": [{"status": p.status, "uri": p.uri, "error": p.error} for p in self.problems],
            "downloaded": self.stats.downloaded,
            "already_verified": self.stats.skipped,
            "resumed": self.stats.resumed,
            "bytes_downloaded": self.stats.bytes,
            "paths": {k: str(v) for k, v in self.paths.items()},
        }


def _local_names(refs: list[ImageRef], resolved: dict[str, Source]) -> dict[Source, str]:
    """``images/<base name>`` for each source; the bucket and key where two sources share a base name."""
    sources = sorted(set(resolved.values()))
    by_ref = {r.ref: r for r in refs}
    owners: dict[str, list[Source]] = {}
    for source in sources:
        owners.setdefault(posixpath.basename(source.key), []).append(source)
    names = {}
    for ref, source in resolved.items():
        base = posixpath.basename(source.key)
        if by_ref[ref].extension_from_source:  # YOLO: the label's stem (with its sub-folder) + the object's suffix
            name = ref + posixpath.splitext(base)[1]
        elif len(owners[base]) == 1:
            name = base
        else:
            name = f"{source.bucket}/{source.key}"
        names[source] = f"{IMAGES_DIR}/{safe_relative(name)}"
    return names


def _write_imagefolder(data: Dataset) -> Path:
    """``imagefolder/<split>/`` with the images (hard links where possible) and a ``metadata.jsonl`` each."""
    root = data.folder / IMAGEFOLDER_DIR
    shutil.rmtree(root, ignore_errors=True)
    classes = list(data.classes)
    rows: dict[str, list[str]] = {}
    for sample in data.samples():
        split = sample.split or "train"
        relative = Path(sample.image).relative_to(data.images_dir).as_posix()
        target = root / split / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(sample.image, target)
        except OSError:  # another file system, or no hard links: a copy
            shutil.copy2(sample.image, target)
        for label in sample.labels:
            if label not in classes:
                classes.append(label)
        objects = {
            "bbox": [[b.x, b.y, b.w, b.h] for b in sample.boxes],
            "categories": [classes.index(b.label) for b in sample.boxes],
            "labels": sample.labels,
        }
        row = {"file_name": relative, "width": sample.width, "height": sample.height, "objects": objects}
        rows.setdefault(split, []).append(json.dumps(row, ensure_ascii=False))
    for split, lines in rows.items():
        (root / split / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "classes.json").write_text(json.dumps(classes, ensure_ascii=False) + "\n", encoding="utf-8")
    return root


def fetch_media(
    folder: str | os.PathLike[str],
    client: Any,
    *,
    media_sources: Iterable[str] = (),
    clients: dict[str, Any] | None = None,
    workers: int = DEFAULT_WORKERS,
    split: str | Sequence[float] = (0.8, 0.2),
    seed: int = 0,
    layout: str = "native",
    allow_missing: bool = False,
    progress: bool = True,
) -> Dataset:
    """Fetch the images of the pulled snapshot in ``folder`` and rewrite its files to point at them.

    :param client: S3 client for the source buckets (see :func:`make_client`); ``clients`` overrides it per bucket
    :param media_sources: ``s3://bucket/prefix`` where images named only by file name (VOC, YOLO) are looked up
    :param workers: objects downloaded at once
    :param split: train/val(/test) ratios, e.g. ``"0.8,0.2"``; :param seed: the split's seed
    :param layout: ``"native"`` (the snapshot's format) or ``"imagefolder"`` (also a Hugging Face imagefolder)
    :param allow_missing: leave unfetchable images out instead of raising :class:`MediaIncomplete`
    """
    base = Path(folder).expanduser()
    if layout not in LAYOUT_NAMES:
        raise SnapshotError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUT_NAMES)}")
    ratios = parse_split(split)
    manifest = read_local_manifest(base)
    if manifest is None:
        raise SnapshotError(f"{base} has no manifest.json: pass the folder returned by pull()")
    files = layout_for(base, manifest.format)
    overrides = clients or {}

    def client_for(bucket: str) -> Any:
        return overrides.get(bucket, client)

    index = SourceIndex(media_sources, client_for)
    refs = files.refs()
    resolved: dict[str, Source] = {}
    problems: list[MediaObject] = []
    for ref in refs:
        try:
            resolved[ref.ref] = parse_reference(ref.ref) or index.lookup(ref.ref, by_stem=ref.by_stem)
        except Unresolved as exc:
            problems.append(MediaObject(uri=ref.ref, path="", status="missing", error=str(exc), refs=[ref.ref]))
    names = _local_names(refs, resolved)
    expect = {}
    for ref in refs:
        if ref.ref in resolved and ref.expect:
            expect.setdefault(resolved[ref.ref], ref.expect)
    requests = [MediaRequest(s, names[s], expect.get(s)) for s in sorted(names)]
    previous = MediaManifest.read(base)
    before = {o.path: o for o in previous.objects} if previous else {}
    fetcher = Fetcher(base, client_for, workers=workers, progress=progress)
    try:
        objects = fetcher.fetch_all(requests, before)
    except BaseException:
        # Interrupted: record what was verified so far, so the next run skips it (partial files resume anyway).
        done = {**before, **{p: o for p, o in fetcher.finished.items() if o.status == OK}}
        MediaManifest(manifest.snapshot, manifest.format, layout, list(done.values())).write(base)
        raise
    refs_of: dict[str, list[str]] = {}
    for ref, source in resolved.items():
        refs_of.setdefault(names[source], []).append(ref)
    for obj in objects:
        obj.refs = sorted(refs_of.get(obj.path, []))
    objects += problems
    ok = {o.path: o for o in objects if o.status == OK}
    local = {ref: (names[s] if names[s] in ok else None) for ref, s in resolved.items()}
    assignment = assign_split((o.uri for o in ok.values()), ratios, seed)
    by_path = {o.path: assignment[o.uri] for o in ok.values()}
    split_info = {"seed": seed, "ratios": list(ratios), "names": list(SPLIT_NAMES[: len(ratios)]), "assignment": {}}
    split_info["assignment"] = dict(sorted(assignment.items()))
    written = files.write(local, by_path)
    sizes = {p: (o.width, o.height) for p, o in ok.items() if o.width and o.height}
    boxes = files.boxes(local, sizes) if files.format == "YOLO" else files.boxes(local)  # type: ignore[call-arg]
    paths = {"folder": base, "images": base / IMAGES_DIR}
    for key, value in written.items():
        if isinstance(value, str):
            paths[key] = base / value
        else:
            paths.update({f"{key[:-6]}_{name}": base / p for name, p in value.items()})
    data = Dataset(base, files.format, layout, list(files.classes), paths, objects, split_info, boxes, fetcher.stats)
    if layout == "imagefolder":
        paths["imagefolder"] = _write_imagefolder(data)
    MediaManifest(manifest.snapshot, manifest.format, layout, objects, split_info).write(base)
    if data.problems and not allow_missing:
        raise MediaIncomplete(data.problems, base, data)
    return data


def open_dataset(folder: str | os.PathLike[str]) -> Dataset:
    """Re-open a folder pulled with media (no network): the same :class:`Dataset` :func:`pull_dataset` returned."""
    base = Path(folder).expanduser()
    media = MediaManifest.read(base)
    if media is None:
        raise SnapshotError(f"{base} has no media.json: pull it with --with-media (pull_dataset()) first")
    files = layout_for(base, media.format)
    local: dict[str, str | None] = {}
    for obj in media.objects:
        for ref in obj.refs:
            local[ref] = obj.path if obj.status == OK else None
    sizes = {o.path: (o.width, o.height) for o in media.objects if o.status == OK and o.width and o.height}
    boxes = files.boxes(local, sizes) if files.format == "YOLO" else files.boxes(local)  # type: ignore[call-arg]
    paths = {"folder": base, "images": base / IMAGES_DIR}
    if (base / IMAGEFOLDER_DIR).is_dir():
        paths["imagefolder"] = base / IMAGEFOLDER_DIR
    split = media.split or {}
    return Dataset(base, files.format, media.layout, list(files.classes), paths, media.objects, split, boxes)


def pull_dataset(
    client: Any,
    bucket: str,
    prefix: str | None,
    dest: str | os.PathLike[str],
    snapshot: str = LATEST,
    *,
    force: bool = False,
    progress: bool = True,
    **media: Any,
) -> Dataset:
    """:func:`pull` the snapshot, then :func:`fetch_media` its images (same keyword arguments)."""
    folder = pull(client, bucket, prefix, dest, snapshot=snapshot, progress=progress, force=force)
    return fetch_media(folder, client, progress=progress, **media)
