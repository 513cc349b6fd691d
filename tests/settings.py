"""Test settings: the plugin's settings module, with Label Studio kept off the internet."""

import atexit
import os
import shutil
import tempfile

if "LABEL_STUDIO_BASE_DATA_DIR" not in os.environ:
    # Label Studio writes its data dir and secret key here at import; removed when the test run ends.
    os.environ["LABEL_STUDIO_BASE_DATA_DIR"] = tempfile.mkdtemp(prefix="ls-cortx-test-")
    _owner, _data_dir = os.getpid(), os.environ["LABEL_STUDIO_BASE_DATA_DIR"]
    # Only the process that made it: a forked child inherits the handler, and its exit must not take the
    # directory (and the secret key in it) from under the rest of the run.
    atexit.register(lambda: os.getpid() == _owner and shutil.rmtree(_data_dir, ignore_errors=True))
# Label Studio reports errors to its Sentry project by default.
os.environ["SENTRY_DSN"] = ""
os.environ["FRONTEND_SENTRY_DSN"] = ""
# Nor ask PyPI for its latest version, nor send usage analytics.
os.environ.setdefault("LATEST_VERSION_CHECK", "false")
os.environ.setdefault("COLLECT_ANALYTICS", "false")

from label_studio_cortx.settings import *  # noqa: E402,F401,F403

# Label Studio generated SECRET_KEY into the data dir's .env without putting it in the environment: the workers,
# servers and commands the tests start get it from here, as an admin gives every process the same key.
os.environ.setdefault("SECRET_KEY", SECRET_KEY)  # noqa: F405

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
