"""``label-studio-cortx pull``: the command line over :func:`label_studio_cortx.pull.pull`."""

from __future__ import annotations

import argparse
import os
import re
import sys

from ..connection.config import DEFAULT_LIMITS, DEFAULT_REGION
from .client import make_client
from .dataset import LAYOUT_NAMES, Dataset, MediaIncomplete, fetch_media, open_dataset, parse_split
from .download import LATEST, list_snapshots, pull
from .errors import SnapshotError, endpoint_of
from .loaders import read_local_manifest
from .manifest import snapshots_root
from .media import DEFAULT_WORKERS


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


#: What ``CORTX_MEDIA_<BUCKET>_<WHAT>`` can give a ``--media-endpoint`` bucket instead of the ``--endpoint`` one's.
MEDIA_ENV_FIELDS = ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN", "CA_BUNDLE")


def media_env_name(bucket: str, field: str) -> str:
    """``CORTX_MEDIA_<BUCKET>_<FIELD>``: the bucket upper-cased, every character but A-Z and 0-9 as ``_``."""
    return f"CORTX_MEDIA_{re.sub(r'[^A-Z0-9]', '_', bucket.upper())}_{field}"


def build_pull_parser(prog: str = "label-studio-cortx pull") -> argparse.ArgumentParser:
    """The argument parser of ``label-studio-cortx pull``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Download an annotation snapshot written by a CORTX target storage, verify it and unpack it "
        "into DEST/<snapshot id>/.",
    )
    parser.add_argument("dest", metavar="DEST", nargs="?", help="folder receiving DEST/<snapshot id>/")
    parser.add_argument("--endpoint", help="S3 endpoint URL (default: $CORTX_ENDPOINT or $AWS_ENDPOINT_URL)")
    parser.add_argument("--bucket", required=True, help="bucket of the target storage")
    parser.add_argument("--prefix", default="", help="prefix of the target storage (default: none)")
    parser.add_argument(
        "--snapshot", default=LATEST, help="'latest' (default) or a snapshot id such as 20261127T203015Z"
    )
    parser.add_argument("--list", action="store_true", help="list the snapshot ids (oldest first) and exit")
    parser.add_argument(
        "--access-key", help="access key id (default: $AWS_ACCESS_KEY_ID; prefer the environment for secrets)"
    )
    parser.add_argument(
        "--secret-key",
        help="secret access key (default: $AWS_SECRET_ACCESS_KEY; give one that starts with - as --secret-key=KEY)",
    )
    parser.add_argument("--session-token", help="session token (default: $AWS_SESSION_TOKEN)")
    parser.add_argument(
        "--region",
        default=None,
        help=f"signing region (default: $AWS_REGION, $AWS_DEFAULT_REGION or {DEFAULT_REGION})",
    )
    parser.add_argument("--ca-bundle", metavar="PATH", help="PEM file with the CA that signed the endpoint's TLS cert")
    parser.add_argument("--no-verify-tls", action="store_true", help="do not verify TLS certificates (insecure)")
    parser.add_argument(
        "--virtual-host-style", action="store_true", help="bucket.endpoint addressing instead of path-style"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded zip archives")
    parser.add_argument("--force", action="store_true", help="replace DEST/<snapshot id>/ if it holds something else")
    media = parser.add_argument_group(
        "media (COCO, VOC and YOLO snapshots)",
        "--with-media also downloads the images the snapshot's tasks reference into DEST/<snapshot id>/images/ and "
        "rewrites the annotation files to point at them; media.json records what came from where.",
    )
    media.add_argument("--with-media", action="store_true", help="download the images too (verified, resumable)")
    media.add_argument(
        "--media-source",
        action="append",
        default=[],
        metavar="s3://BUCKET[/PREFIX]",
        help="where images named only by file name (VOC, YOLO) are looked up; repeatable",
    )
    media.add_argument(
        "--media-endpoint",
        action="append",
        default=[],
        metavar="BUCKET=URL",
        help="another endpoint for one source bucket; repeatable. Its credentials and CA come from the environment "
        "variables CORTX_MEDIA_<BUCKET>_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _SESSION_TOKEN and _CA_BUNDLE (<BUCKET> "
        "upper-cased, characters other than A-Z and 0-9 as _), e.g. CORTX_MEDIA_RAW_IMAGES_ACCESS_KEY_ID for "
        "raw-images; without them, those of --endpoint (and --ca-bundle)",
    )
    media.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="images downloaded at once (default: 8)")
    media.add_argument("--split", default="0.8,0.2", help="train,val[,test] ratios (default: 0.8,0.2)")
    media.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    media.add_argument(
        "--layout", choices=LAYOUT_NAMES, default="native", help="imagefolder: also a Hugging Face imagefolder"
    )
    media.add_argument(
        "--allow-missing", action="store_true", help="exit 0 even if images are missing or unreadable (left out)"
    )
    return parser


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _media_summary(data: Dataset) -> str:
    summary = data.summary()
    splits = " / ".join(f"{n} {c}" for n, c in summary["splits"].items())
    line = (
        f"media: {summary['images']} images ({summary['downloaded']} downloaded, {summary['already_verified']} "
        f"already verified, {summary['resumed']} resumed, {_human_size(summary['bytes_downloaded'])}), "
        f"{summary['annotations']} boxes, {len(summary['classes'])} classes, split {splits}"
    )
    if summary["problems"]:
        line += f"; {len(summary['problems'])} missing or unreadable"
    return line


def _media_hints(exc: MediaIncomplete, own: dict[str, set[str]]) -> list[str]:
    """Advice for --media-endpoint buckets that were refused with the --endpoint credentials or CA."""
    hints = []
    for bucket, fields in sorted(own.items()):
        errors = [p.error or "" for p in exc.problems if p.uri.startswith(f"s3://{bucket}/")]
        if "ACCESS_KEY_ID" not in fields and any("access denied" in e for e in errors):
            hints.append(
                f"s3://{bucket} was read with the --endpoint credentials; give it its own with the environment "
                f"variables {media_env_name(bucket, 'ACCESS_KEY_ID')} and {media_env_name(bucket, 'SECRET_ACCESS_KEY')}"
            )
        if "CA_BUNDLE" not in fields and any("certificate is not trusted" in e for e in errors):
            hints.append(
                f"s3://{bucket} was read with the --ca-bundle CA; give it its own with the environment variable "
                f"{media_env_name(bucket, 'CA_BUNDLE')} (a PEM file path or PEM text)"
            )
    return hints


def main_pull(argv: list[str] | None = None) -> int:
    """Entry point of ``label-studio-cortx pull`` (argv without the ``pull`` word). Returns the exit code:
    0 on success, 1 when ``--with-media`` could not fetch every image (without ``--allow-missing``), 2 on usage
    errors and on :class:`SnapshotError` (printed as ``error: ...`` on stderr)."""
    parser = build_pull_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or usage error: argparse already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    endpoint = args.endpoint or _env("CORTX_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if not endpoint:
        return fail("no endpoint: pass --endpoint URL or set CORTX_ENDPOINT (or AWS_ENDPOINT_URL)")
    if not args.list and not args.dest:
        return fail("DEST is required (the folder receiving DEST/<snapshot id>/), unless --list is given")

    if args.workers < 1:
        return fail(f"--workers must be at least 1, got {args.workers}")
    try:
        parse_split(args.split)  # before any download: a typo must not cost a pull
    except SnapshotError as exc:
        return fail(str(exc))

    def connect(url: str, access_key: str | None, secret_key: str | None, token: str | None, ca: str | None) -> object:
        return make_client(
            url,
            access_key=access_key,
            secret_key=secret_key,
            session_token=token,
            region=args.region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or DEFAULT_REGION,
            ca_bundle=ca,
            verify=not args.no_verify_tls,
            path_style=not args.virtual_host_style,
            max_pool_connections=max(args.workers, DEFAULT_LIMITS.max_pool_connections),
        )

    main_credentials = (
        args.access_key or _env("AWS_ACCESS_KEY_ID"),
        args.secret_key or _env("AWS_SECRET_ACCESS_KEY"),
        args.session_token or _env("AWS_SESSION_TOKEN"),
    )
    own: dict[str, set[str]] = {}  # --media-endpoint bucket -> the CORTX_MEDIA_<BUCKET>_* fields it has

    def connect_media(item: str) -> object:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise SnapshotError(f"--media-endpoint {item!r}: expected BUCKET=URL")
        env = {field: _env(media_env_name(name, field)) for field in MEDIA_ENV_FIELDS}
        own[name] = {field for field, value in env.items() if value}
        access, secret = env["ACCESS_KEY_ID"], env["SECRET_ACCESS_KEY"]
        if bool(access) != bool(secret):
            have, lack = ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY") if access else ("SECRET_ACCESS_KEY", "ACCESS_KEY_ID")
            raise SnapshotError(
                f"--media-endpoint {name}=...: {media_env_name(name, have)} is set but {media_env_name(name, lack)} "
                "is not (set both, or neither to use the --endpoint credentials)"
            )
        credentials = (access, secret, env["SESSION_TOKEN"]) if access else main_credentials
        try:
            return connect(url, *credentials, env["CA_BUNDLE"] or args.ca_bundle)
        except SnapshotError as exc:
            raise SnapshotError(f"--media-endpoint {name}=...: {exc}") from None

    try:
        client = connect(endpoint, *main_credentials, args.ca_bundle)
        overrides = {}
        for item in args.media_endpoint:
            overrides[item.partition("=")[0]] = connect_media(item)
        if args.list:
            snapshots = list_snapshots(client, args.bucket, args.prefix)
            for ts in snapshots:
                print(ts)
            if not snapshots:
                where = f"s3://{args.bucket}/{snapshots_root(args.prefix)}"
                print(f"no snapshots under {where} at {endpoint_of(client)}", file=sys.stderr)
            return 0
        folder = pull(
            client,
            args.bucket,
            args.prefix,
            args.dest,
            snapshot=args.snapshot,
            progress=not args.no_progress,
            keep_archives=args.keep_archives,
            force=args.force,
        )
        manifest = read_local_manifest(folder)
        print(folder)
        if manifest is not None:
            title = f" {manifest.project.title!r}" if manifest.project.title else ""
            print(
                f"{manifest.format} snapshot {manifest.snapshot} of project {manifest.project.id}{title}: "
                f"{len(manifest.files)} file(s), {_human_size(manifest.total_size)}, "
                f"{manifest.task_count} tasks, {manifest.annotation_count} annotations"
            )
        if args.with_media:
            try:
                data = fetch_media(
                    folder,
                    client,
                    media_sources=args.media_source,
                    clients=overrides,
                    workers=args.workers,
                    split=args.split,
                    seed=args.seed,
                    layout=args.layout,
                    allow_missing=args.allow_missing,
                    progress=not args.no_progress,
                )
            except MediaIncomplete as exc:
                print(f"error: {exc}", file=sys.stderr)
                for hint in _media_hints(exc, own):
                    print(f"hint: {hint}", file=sys.stderr)
                print(_media_summary(exc.dataset if exc.dataset is not None else open_dataset(folder)))
                return 1
            for problem in data.problems:  # --allow-missing: still never silent
                print(f"warning: left out: {problem.error}", file=sys.stderr)
            print(_media_summary(data))
        return 0
    except SnapshotError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
