"""The pull side: annotation snapshots from a bucket into a training job, with boto3 alone (no Django).

A Label Studio server writes snapshots of a project's annotations (JSON, JSON_MIN, CSV, TSV, COCO, VOC,
YOLO ...) under ``<prefix>/snapshots/`` (see ``target.snapshots``); a training job pulls one with
:func:`pull` (or ``label-studio-cortx pull``) and reads it with :func:`load`::

    from label_studio_cortx.pull import make_client, pull, load

    client = make_client("https://cortx.example.com", access_key="...", secret_key="...")
    folder = pull(client, "annotations", "projects/cats", "/data/snapshots")
    coco = load(folder)          # {"images": [...], "annotations": [...], "categories": [...]}

With ``pull_dataset`` (``pull --with-media``) the images of a COCO / VOC / YOLO snapshot come along, verified,
with the files rewritten to point at them and a fixed train/val split (see docs/snapshots.md).

Parts: ``manifest`` (the snapshot format both sides share), ``client`` (the boto3 client, configured by
``connection.config``), ``download`` (listing, manifests, verified resumable download), ``loaders``
(plain Python structures), ``sources`` (image references to objects), ``media`` (image downloads and
``media.json``), ``imageinfo`` (image headers), ``layouts`` (per-format rewriting), ``dataset`` (the
orchestration, split and imagefolder layout), ``cli``. May import the standard library, boto3/botocore, tqdm and the
Django-free modules of ``connection`` (config, ca_bundle), nothing else of the plugin.
"""

from .cli import build_pull_parser, main_pull
from .client import make_client
from .dataset import Dataset, MediaIncomplete, Sample, assign_split, fetch_media, open_dataset, pull_dataset
from .download import list_snapshots, pull, read_manifest
from .errors import ChecksumMismatch, SnapshotError
from .loaders import load, load_coco, load_csv, load_json, load_voc, load_yolo

__all__ = [
    "ChecksumMismatch",
    "Dataset",
    "MediaIncomplete",
    "Sample",
    "assign_split",
    "fetch_media",
    "open_dataset",
    "pull_dataset",
    "SnapshotError",
    "build_pull_parser",
    "list_snapshots",
    "load",
    "load_coco",
    "load_csv",
    "load_json",
    "load_voc",
    "load_yolo",
    "main_pull",
    "make_client",
    "pull",
    "read_manifest",
]
