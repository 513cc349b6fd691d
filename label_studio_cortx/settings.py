"""Label Studio with the CORTX S3 storage type: ``DJANGO_SETTINGS_MODULE=label_studio_cortx.settings``.

The one setting an admin changes, for the web process and every RQ worker. It extends Label
Studio's own settings module and adds the app, its storage type, routes and plugin settings.
"""

import os
import sys
from importlib import resources

import label_studio

# Label Studio imports its modules by top-level names (core, io_storages, ...).
_LABEL_STUDIO_DIR = os.path.dirname(label_studio.__file__)
if _LABEL_STUDIO_DIR not in sys.path:
    sys.path.insert(0, _LABEL_STUDIO_DIR)

# Label Studio's settings module reads django.conf.settings while it is being imported, so during
# that import the variable must name Label Studio's module, not this one.
_own_module = os.environ.get("DJANGO_SETTINGS_MODULE")
os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
try:
    from label_studio.core.settings.label_studio import *  # noqa: F401,F403,E402
    from label_studio.core.settings.label_studio import (  # noqa: E402
        DATABASES,
        INSTALLED_APPS,
        IO_STORAGES_IMPORT_LINK_NAMES,
        RQ_QUEUES,
        TEMPLATES,
    )
    from label_studio.core.utils.params import get_env  # noqa: E402
finally:
    if _own_module is None:
        del os.environ["DJANGO_SETTINGS_MODULE"]
    else:
        os.environ["DJANGO_SETTINGS_MODULE"] = _own_module

INSTALLED_APPS = [*INSTALLED_APPS, "label_studio_cortx.apps.CortxStorageConfig"]
GET_STORAGE_LIST = "label_studio_cortx.storage_list.get_storage_list"
IO_STORAGES_IMPORT_LINK_NAMES = [*IO_STORAGES_IMPORT_LINK_NAMES, "io_storages_cortx_cortximportstoragelink"]
ROOT_URLCONF = "label_studio_cortx.root_urls"
WSGI_APPLICATION = "label_studio_cortx.wsgi.application"  # media links before the middleware (media_gateway)

# The project storage dialog's new "provider" wizard has a hard-coded list of providers and cannot
# show a plugin's type. Label Studio's frontend forces that wizard on only when the environment name
# is exactly "opensource"; any other name leaves every flag at its feature_flags.json value, where
# the wizard is off and the other forced flags have the same values. So this single setting brings
# back the backend-driven form (types from /api/storages/types, fields from /<type>/form).
FRONTEND_SENTRY_ENVIRONMENT = get_env("FRONTEND_SENTRY_ENVIRONMENT", "opensource-cortx")

# Templates are package data (mapped from the top-level templates/ folder): found through the
# package's resources so that wheel and editable installs both work.
TEMPLATES[0]["DIRS"] = [*TEMPLATES[0]["DIRS"], str(resources.files("label_studio_cortx.templates"))]

# --- CORTX S3 settings: every CORTX_* name, default and meaning is in the table of label_studio_cortx/conf.py;
# each can be set from the environment (README "Admin guide").
from label_studio_cortx import conf as _conf  # noqa: E402

_CORTX = _conf.from_env()
globals().update(_CORTX)

# --- Redis/RQ workers ---
# Label Studio's open-source settings hard-code REDIS_ENABLED = False. With CORTX_REDIS_URL set, syncs
# and export-on-save jobs go to RQ queues instead; run workers with the same settings module:
#   DJANGO_SETTINGS_MODULE=label_studio_cortx.settings python -m label_studio.manage rqworker low default
if _CORTX["CORTX_REDIS_URL"]:
    REDIS_ENABLED = True
    RQ_QUEUES = {name: {**queue, "URL": _CORTX["CORTX_REDIS_URL"]} for name, queue in RQ_QUEUES.items()}

# --- SQLite (the embedded default) ---
# Background syncs write from a thread of the server while requests write too. Label Studio leaves
# SQLite's busy timeout at Python's 5 s; a long page insert can outlast that and fail a request with
# "database is locked", so writers wait longer for each other.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, **DATABASES["default"].get("OPTIONS", {})}

# --- persistent database connections (the production server) ---
# Label Studio opens a database connection per request. Each image an annotator opens is a request, and
# opening a connection is the largest single cost of a proxied image after the store's GET (SQLite parses
# Label Studio's whole schema again; PostgreSQL starts a backend): docs/performance.md.
if _CORTX["CORTX_DB_CONN_MAX_AGE"] > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = _CORTX["CORTX_DB_CONN_MAX_AGE"]
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
