"""``python -m label_studio_cortx.pull [pull] ...``: the pull command without Label Studio's CLI."""

import sys

from .cli import main_pull

argv = sys.argv[1:]
if argv[:1] == ["pull"]:
    argv = argv[1:]
sys.exit(main_pull(argv))
