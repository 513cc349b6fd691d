"""``label-studio-cortx``: Label Studio's own command line with the CORTX plugin active.

Every ``label-studio`` subcommand (start, init, user, reset_password, ...) works unchanged; the
plugin adds ``pull`` (download an annotation snapshot; needs only boto3) and ``demo`` (a first run
against a local S3 endpoint with sample data).
"""

from __future__ import annotations

import os
import sys

SETTINGS_MODULE = "label_studio_cortx.settings"


def activate() -> None:
    """Point Django at the plugin's settings, unless an admin chose another module on purpose."""
    current = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not current or current in ("core.settings.label_studio", "label_studio.core.settings.label_studio"):
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    # Imported per command: the pull needs neither Django nor Label Studio, and the demo sets Django up first.
    if command == "pull":
        from .pull import main_pull

        return main_pull(argv[1:])
    if command == "demo":
        activate()
        # Only now: the demo's modules need the [demo] extra, which `label-studio-cortx start` does not.
        from .devservers.demo import main_demo

        return main_demo(argv[1:])

    activate()
    # After activate(): Label Studio reads DJANGO_SETTINGS_MODULE when its server module is imported.
    from label_studio.server import main as label_studio_main

    sys.argv = ["label-studio-cortx", *argv]
    result = label_studio_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
