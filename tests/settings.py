"""Test settings: the plugin's settings module, with Label Studio kept off the internet."""

import atexit
import os
import shutil
import tempfile

if "LABEL_STUDIO_BASE_DATA_DIR" not in os.environ:
    # Label Studio writes its data dir and secret key here at import; removed when the test run ends.
    os.environ["LABEL_STUDIO_BASE_DATA_DIR"] = tempfile.mkdtemp(prefix="ls-cortx-test-")
    atexit.register(shutil.rmtree, os.environ["LABEL_STUDIO_BASE_DATA_DIR"], ignore_errors=True)
# Label Studio reports errors to its Sentry project by default.
os.environ["SENTRY_DSN"] = ""
os.environ["FRONTEND_SENTRY_DSN"] = ""
# Nor ask PyPI for its latest version, nor send usage analytics.
os.environ.setdefault("LATEST_VERSION_CHECK", "false")
os.environ.setdefault("COLLECT_ANALYTICS", "false")

from label_studio_cortx.settings import *  # noqa: E402,F401,F403

# Syncs run inline in the API tests: pytest-django wraps each test in a transaction that a background
# thread cannot see. tests/test_background.py covers the background thread and RQ paths.
CORTX_SYNC_IN_BACKGROUND = False
# Likewise save-time exports (tests/test_save_never_waits.py runs a real server with the default).
CORTX_EXPORT_IN_BACKGROUND = False

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as Label Studio uses, not Django's default in-memory test database: that one is shared
    # between threads in SQLite's shared-cache mode, whose table locks fail at once ("database table
    # is locked") instead of waiting, so a background sync would fail where a real server does not.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(os.environ["LABEL_STUDIO_BASE_DATA_DIR"], "test_label_studio.sqlite3")
    }
