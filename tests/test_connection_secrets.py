"""Storage secrets encrypted at rest (label_studio_cortx/connection/secrets.py), against real S3 endpoints.

Covers the cipher itself, what the database (and a full dump of it) holds after storages are created
through the API, syncs with decrypted credentials, key rotation, the data migration of existing
plaintext rows, and what users and admins see when the key is wrong, malformed or derived.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from label_studio_cortx.connection import secrets as secret_store
from tests.storage_helpers import error_text, new_bucket, payload, put

SECRET_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
TABLES = {"source": "io_storages_cortx_cortximportstorage", "target": "io_storages_cortx_cortxexportstorage"}
SESSION_TOKEN = "session-token-value-8817"


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def trust(settings):
    """Trust the given endpoints as an admin would (they are on 127.0.0.1, which SSRF blocks)."""

    def _trust(*endpoints):
        settings.CORTX_TRUSTED_ENDPOINTS = [e.url for e in endpoints]

    return _trust


def create(api, endpoint, bucket, project, kind="source", **extra):
    url = "/api/storages/cortx/" if kind == "source" else "/api/storages/export/cortx"
    response = api.post(url, payload(endpoint, bucket, project, **extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def raw_secrets(kind: str, storage_id: int) -> dict[str, str | None]:
    """The secret columns exactly as the database holds them (raw SQL, no model field involved)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(SECRET_FIELDS)} FROM {TABLES[kind]} WHERE id = %s", [storage_id])
        row = cursor.fetchone()
    return dict(zip(SECRET_FIELDS, row, strict=True))


def raw_row_text(kind: str, storage_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {TABLES[kind]} WHERE id = %s", [storage_id])
        return repr(cursor.fetchone())


def model(kind: str):
    from label_studio_cortx.models import CortxExportStorage, CortxImportStorage

    return CortxImportStorage if kind == "source" else CortxExportStorage


# --- the cipher --------------------------------------------------------------------------------
def test_round_trip_and_format(settings):
    settings.CORTX_SECRETS_KEY = new_key()
    token = secret_store.encrypt("s3cr3t/with+chars")
    assert token.startswith("cortx-enc:v1:") and secret_store.is_encrypted(token)
    assert "s3cr3t" not in token
    assert secret_store.reveal(token) == "s3cr3t/with+chars"
    assert secret_store.encrypt("s3cr3t/with+chars") != token  # randomized: equal secrets do not show
    # What a form sends (plaintext) and "no secret" pass through unchanged.
    for value in ("plain-text", "", None):
        assert not secret_store.is_encrypted(value)
        assert secret_store.reveal(value) == value


def test_tampered_or_foreign_ciphertext_is_refused_naming_the_setting(settings):
    settings.CORTX_SECRETS_KEY = new_key()
    token = secret_store.encrypt("secret")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    settings.CORTX_SECRETS_KEY = new_key()
    for value in (token, tampered, "cortx-enc:v1:not-a-token", "cortx-enc:v1:ünïcode"):
        with pytest.raises(secret_store.SecretDecryptError, match="CORTX_SECRETS_KEY"):
            secret_store.reveal(value)


def test_keys_follow_the_setting_first_encrypts_all_decrypt(settings):
    old, new = new_key(), new_key()
    settings.CORTX_SECRETS_KEY = old
    under_old = secret_store.encrypt("value")
    settings.CORTX_SECRETS_KEY = f" {new} , {old} "  # spaces around entries are ignored
    under_new = secret_store.encrypt("value")
    assert secret_store.reveal(under_old) == secret_store.reveal(under_new) == "value"
    assert Fernet(new.encode()).decrypt(under_new.removeprefix(secret_store.PREFIX).encode()) == b"value"
    settings.CORTX_SECRETS_KEY = new
    assert secret_store.reveal(under_new) == "value"
    with pytest.raises(secret_store.SecretDecryptError):
        secret_store.reveal(under_old)


def test_derived_key_without_setting_is_stable_and_stays_a_fallback(settings):
    settings.CORTX_SECRETS_KEY = ""
    assert secret_store.using_derived_key()
    token = secret_store.encrypt("value")
    derived = secret_store.derive_key(settings.SECRET_KEY)
    assert Fernet(derived).decrypt(token.removeprefix(secret_store.PREFIX).encode()) == b"value"
    # An admin who sets a key later keeps the storages readable until they are rotated.
    settings.CORTX_SECRETS_KEY = new_key()
    assert not secret_store.using_derived_key()
    assert secret_store.reveal(token) == "value"
    # A changed SECRET_KEY with the old one in SECRET_KEY_FALLBACKS still opens them.
    settings.CORTX_SECRETS_KEY = ""
    old_secret_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-django-secret-key-" + "x" * 40
    with pytest.raises(secret_store.SecretDecryptError, match="SECRET_KEY"):
        secret_store.reveal(token)
    settings.SECRET_KEY_FALLBACKS = [old_secret_key]
    assert secret_store.reveal(token) == "value"


@pytest.mark.parametrize("value, position", [("not-a-key", "the key"), ("{good},short", "key 2 of 2")])
def test_malformed_key_is_a_clear_error_at_use(settings, value, position):
    value = value.format(good=new_key())
    settings.CORTX_SECRETS_KEY = value
    for use in (lambda: secret_store.encrypt("x"), lambda: secret_store.reveal("plain"), secret_store.check_keys):
        with pytest.raises(secret_store.SecretsKeyConfigError) as raised:
            use()
        message = str(raised.value)
        assert "CORTX_SECRETS_KEY is malformed" in message and position in message
        assert "short" not in message and "not-a-key" not in message  # never echoes the setting


# --- what the database holds ----------------------------------------------------------------------
def test_api_create_and_patch_store_no_plaintext_anywhere(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "a.jpg", b"x")
    source = create(api, cortx_s3, bucket, project)
    target = create(api, cortx_s3, bucket, project, kind="target", prefix="out")
    # moto refuses unknown session tokens: one is stored directly, which encrypts it all the same.
    model("target").objects.filter(pk=target["id"]).update(aws_session_token=SESSION_TOKEN)
    plaintexts = (cortx_s3.access_key, cortx_s3.secret_key, SESSION_TOKEN)

    for kind, storage_id in (("source", source["id"]), ("target", target["id"])):
        stored = raw_secrets(kind, storage_id)
        assert secret_store.is_encrypted(stored["aws_access_key_id"])
        assert secret_store.is_encrypted(stored["aws_secret_access_key"])
        assert secret_store.reveal(stored["aws_secret_access_key"]) == cortx_s3.secret_key
        row = raw_row_text(kind, storage_id)
        assert not [secret for secret in plaintexts if secret in row], row
        # A loaded model keeps the ciphertext: only connection_config() decrypts.
        storage = model(kind).objects.get(pk=storage_id)
        assert storage.aws_secret_access_key == stored["aws_secret_access_key"]
        assert storage.connection_config().secret_access_key == cortx_s3.secret_key
    assert secret_store.reveal(raw_secrets("target", target["id"])["aws_session_token"]) == SESSION_TOKEN

    # A PATCH that leaves the secrets out keeps the stored ones; one that sends plaintext re-encrypts it.
    before = raw_secrets("source", source["id"])
    response = api.patch(f"/api/storages/cortx/{source['id']}", {"title": "Renamed", "prefix": ""}, format="json")
    assert response.status_code == 200, response.content
    assert raw_secrets("source", source["id"]) == before
    response = api.patch(
        f"/api/storages/cortx/{source['id']}", {"aws_secret_access_key": cortx_s3.secret_key}, format="json"
    )
    assert response.status_code == 200, response.content
    after = raw_secrets("source", source["id"])
    assert after["aws_secret_access_key"] != before["aws_secret_access_key"]
    assert secret_store.reveal(after["aws_secret_access_key"]) == cortx_s3.secret_key

    # A full dump of the database (Django's, and SQLite's own) holds none of them.
    out = io.StringIO()
    # django_rq's Queue is an unmanaged model without a table: nothing to dump there.
    call_command("dumpdata", exclude=["django_rq"], stdout=out)
    dump = out.getvalue()
    assert "cortx-enc:v1:" in dump
    assert not [secret for secret in plaintexts if secret in dump]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        sql_dump = "\n".join(connection.connection.iterdump())
        assert "cortx-enc:v1:" in sql_dump
        assert not [secret for secret in plaintexts if secret in sql_dump]


def test_syncs_and_checks_work_with_decrypted_credentials(api, project, cortx_s3, trust, settings):
    settings.CORTX_SECRETS_KEY = new_key()
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    for name in ("img/a.jpg", "img/b.jpg"):
        put(cortx_s3, bucket, name, b"jpeg")
    source = create(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
    response = api.post(f"/api/storages/cortx/{source['id']}/sync")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed" and project.tasks.count() == 2

    # storage_with() copies of stored storages (ciphertext) with some plaintext changes still connect:
    # a check of the saved storage without its secrets, and a PATCH of a connection field.
    data = {k: v for k, v in payload(cortx_s3, bucket, project, prefix="img").items() if k not in SECRET_FIELDS}
    response = api.post("/api/storages/cortx/validate", {**data, "id": source["id"]}, format="json")
    assert response.status_code == 200, response.content
    response = api.patch(f"/api/storages/cortx/{source['id']}", {"prefix": "img/"}, format="json")
    assert response.status_code == 200, response.content
    response = api.patch(
        f"/api/storages/cortx/{source['id']}", {"aws_access_key_id": cortx_s3.access_key}, format="json"
    )
    assert response.status_code == 200, response.content

    target = create(api, cortx_s3, bucket, project, kind="target", prefix="out")
    task = project.tasks.first()
    from tasks.models import Annotation

    Annotation.objects.create(task=task, project=project, result=[])
    response = api.post(f"/api/storages/export/cortx/{target['id']}/sync")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    listing = cortx_s3.client().list_objects_v2(Bucket=bucket, Prefix="out/")
    assert listing.get("KeyCount", 0) >= 1


# --- rotation -----------------------------------------------------------------------------------
def test_rotate_command_moves_every_row_to_the_first_key(api, project, cortx_s3, trust, settings):
    trust(cortx_s3)
    old, new = new_key(), new_key()
    settings.CORTX_SECRETS_KEY = old
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "a.jpg", b"x")
    source = create(api, cortx_s3, bucket, project, use_blob_urls=True)
    target = create(api, cortx_s3, bucket, project, kind="target", prefix="out")
    # A row the migration missed (written raw) is encrypted by the rotation too.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLES['target']} SET aws_session_token = %s WHERE id = %s", [SESSION_TOKEN, target["id"]]
        )

    settings.CORTX_SECRETS_KEY = f"{new},{old}"
    out = io.StringIO()
    call_command("cortx_rotate_secrets", stdout=out)
    assert "source storages: 1 rows, 2 values re-encrypted (0 plaintext)" in out.getvalue()
    assert "target storages: 1 rows, 3 values re-encrypted (1 plaintext)" in out.getvalue()

    settings.CORTX_SECRETS_KEY = new  # the old key is gone
    only_new = Fernet(new.encode())
    for kind, storage_id in (("source", source["id"]), ("target", target["id"])):
        for value in raw_secrets(kind, storage_id).values():
            if value:
                only_new.decrypt(value.removeprefix(secret_store.PREFIX).encode())
    assert secret_store.reveal(raw_secrets("target", target["id"])["aws_session_token"]) == SESSION_TOKEN
    response = api.post(f"/api/storages/cortx/{source['id']}/sync")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed" and project.tasks.count() == 1


def test_rotate_command_fails_clearly_and_changes_nothing_on_bad_rows(api, project, cortx_s3, trust, settings):
    trust(cortx_s3)
    settings.CORTX_SECRETS_KEY = kept = new_key()
    bucket = new_bucket(cortx_s3)
    first = create(api, cortx_s3, bucket, project, kind="target", title="Readable")
    settings.CORTX_SECRETS_KEY = new_key()  # a key that is lost afterwards
    second = create(api, cortx_s3, bucket, project, kind="target", title="Orphan")
    before = raw_secrets("target", first["id"])
    settings.CORTX_SECRETS_KEY = f"{new_key()},{kept}"
    with pytest.raises(CommandError) as raised:
        call_command("cortx_rotate_secrets", stdout=io.StringIO())
    message = str(raised.value)
    assert "CORTX_SECRETS_KEY" in message and f"target storage {second['id']} (Orphan)" in message
    assert f"storage {first['id']} " not in message  # neither named nor rewritten
    assert raw_secrets("target", first["id"]) == before

    settings.CORTX_SECRETS_KEY = "garbage"
    with pytest.raises(CommandError, match="CORTX_SECRETS_KEY is malformed"):
        call_command("cortx_rotate_secrets", stdout=io.StringIO())


# --- the data migration ---------------------------------------------------------------------------
def test_migration_encrypts_existing_plaintext_rows_and_reverse_decrypts(transactional_db, project, settings):
    from django.db.migrations.executor import MigrationExecutor

    settings.CORTX_SECRETS_KEY = new_key()
    app = "io_storages_cortx"
    before, after = (app, "0004_export_link_unique"), (app, "0005_encrypt_secrets")
    executor = MigrationExecutor(connection)
    latest = [key for key in executor.loader.graph.leaf_nodes() if key[0] == app]
    try:
        executor.migrate([before])
        old_apps = MigrationExecutor(connection).loader.project_state(before).apps
        rows = {}
        for kind, name in (("source", "CortxImportStorage"), ("target", "CortxExportStorage")):
            storage = old_apps.get_model(app, name).objects.create(
                project_id=project.id,
                bucket="old-bucket",
                s3_endpoint="https://s3.example.com",
                aws_access_key_id=f"AKIA-{kind}",
                aws_secret_access_key=f"secret-{kind}",
                aws_session_token=SESSION_TOKEN if kind == "source" else None,
            )
            rows[kind] = storage.pk
            assert raw_secrets(kind, storage.pk)["aws_secret_access_key"] == f"secret-{kind}"

        MigrationExecutor(connection).migrate([after])
        for kind, storage_id in rows.items():
            stored = raw_secrets(kind, storage_id)
            assert all(secret_store.is_encrypted(stored[f]) for f in ("aws_access_key_id", "aws_secret_access_key"))
            assert secret_store.reveal(stored["aws_access_key_id"]) == f"AKIA-{kind}"
            assert secret_store.reveal(stored["aws_secret_access_key"]) == f"secret-{kind}"
            assert f"secret-{kind}" not in raw_row_text(kind, storage_id)
        assert secret_store.reveal(raw_secrets("source", rows["source"])["aws_session_token"]) == SESSION_TOKEN
        assert raw_secrets("target", rows["target"])["aws_session_token"] is None

        MigrationExecutor(connection).migrate([before])
        assert raw_secrets("source", rows["source"]) == {
            "aws_access_key_id": "AKIA-source",
            "aws_secret_access_key": "secret-source",
            "aws_session_token": SESSION_TOKEN,
        }
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert secret_store.is_encrypted(raw_secrets("source", rows["source"])["aws_secret_access_key"])


# --- wrong, malformed and derived keys ------------------------------------------------------------
def test_wrong_key_is_a_clear_400_and_a_failed_sync_never_a_crash(api, project, cortx_s3, trust, settings):
    trust(cortx_s3)
    settings.CORTX_SECRETS_KEY = new_key()
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "a.jpg", b"x")
    source = create(api, cortx_s3, bucket, project, use_blob_urls=True)
    target = create(api, cortx_s3, bucket, project, kind="target", prefix="out")
    settings.CORTX_SECRETS_KEY = new_key()  # e.g. the admin lost or mistyped the key

    data = {k: v for k, v in payload(cortx_s3, bucket, project).items() if k not in SECRET_FIELDS}
    responses = [
        api.post(f"/api/storages/cortx/{source['id']}/sync"),
        api.post(f"/api/storages/export/cortx/{target['id']}/sync"),
        api.post("/api/storages/cortx/validate", {**data, "id": source["id"]}, format="json"),
        api.patch(f"/api/storages/cortx/{source['id']}", {"bucket": bucket}, format="json"),
    ]
    for response in responses:
        assert response.status_code == 400, response.content
        assert "cannot be decrypted with the keys in CORTX_SECRETS_KEY" in error_text(response)
        assert "Traceback" not in error_text(response)
    # Everything that does not need the secrets keeps working.
    assert api.get(f"/api/storages/cortx/{source['id']}").status_code == 200
    assert api.get(f"/api/storages/?project={project.id}").status_code == 200
    assert (
        api.patch(f"/api/storages/cortx/{source['id']}", {"title": "Still editable"}, format="json").status_code == 200
    )
    # Re-entering the keys fixes the storage under the current key.
    response = api.patch(
        f"/api/storages/cortx/{source['id']}",
        {"aws_access_key_id": cortx_s3.access_key, "aws_secret_access_key": cortx_s3.secret_key},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert api.post(f"/api/storages/cortx/{source['id']}/sync").status_code == 200

    # A sync that gets past the request (queued, then the key changes) is marked failed with the message.
    storage = model("target").objects.get(pk=target["id"])
    storage.sync()  # queues without a check (runs inline in the tests)
    storage.refresh_from_db()
    assert storage.status == "failed"
    assert "CORTX_SECRETS_KEY" in storage.traceback and "Traceback" not in storage.traceback


def test_malformed_key_answers_400_when_a_storage_is_checked(api, project, cortx_s3, trust, settings):
    trust(cortx_s3)
    settings.CORTX_SECRETS_KEY = "not-a-fernet-key"
    bucket = new_bucket(cortx_s3)
    response = api.post("/api/storages/cortx/", payload(cortx_s3, bucket, project), format="json")
    assert response.status_code == 400, response.content
    assert "CORTX_SECRETS_KEY is malformed" in error_text(response)
    assert "not-a-fernet-key" not in error_text(response)
    assert not model("source").objects.exists()


def test_system_check_warns_about_derived_and_malformed_keys(settings):
    from label_studio_cortx.apps import check_secrets_key

    settings.CORTX_SECRETS_KEY = ""
    (warning,) = check_secrets_key()
    assert warning.id == "io_storages_cortx.W001" and "derived from SECRET_KEY" in warning.msg
    settings.CORTX_SECRETS_KEY = "bad"
    (warning,) = check_secrets_key()
    assert warning.id == "io_storages_cortx.W002" and "CORTX_SECRETS_KEY is malformed" in warning.msg
    settings.CORTX_SECRETS_KEY = new_key()
    assert check_secrets_key() == []
    # Registered with Django: `manage.py check` shows it.
    settings.CORTX_SECRETS_KEY = ""
    err = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=err)
    assert "io_storages_cortx.W001" in err.getvalue()


def test_malformed_key_in_the_environment_does_not_stop_startup():
    env = {**os.environ, "CORTX_SECRETS_KEY": "this-is-not-a-key", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "io_storages_cortx.W002" in done.stderr and "CORTX_SECRETS_KEY is malformed" in done.stderr
    assert "this-is-not-a-key" not in done.stdout + done.stderr
