"""Store the credentials of every CORTX storage encrypted (label_studio_cortx/connection/secrets.py).

The data step runs before the fields are altered and the reverse step after they are altered back,
so that both always see plain TextFields: the historical EncryptedTextField would otherwise
re-encrypt the plaintext the reverse step writes back.
"""

from django.db import migrations

import label_studio_cortx.connection.secrets

MODELS = ("cortximportstorage", "cortxexportstorage")
FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
HELP = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def _convert(apps, schema_editor, convert, wanted):
    from label_studio_cortx.connection import secrets as secret_store

    db = schema_editor.connection.alias
    failed = []
    for name in MODELS:
        model = apps.get_model("io_storages_cortx", name)
        for row in list(model.objects.using(db).values("pk", *FIELDS)):
            changes = {}
            for field in FIELDS:
                value = row[field]
                if value and secret_store.is_encrypted(value) != wanted:
                    try:
                        changes[field] = convert(value)
                    except secret_store.SecretDecryptError:
                        failed.append(f"{name} {row['pk']}")
                        break
            if changes:
                model.objects.using(db).filter(pk=row["pk"]).update(**changes)
    if failed:
        raise secret_store.SecretDecryptError(
            "Cannot decrypt the credentials of " + ", ".join(failed) + ": CORTX_SECRETS_KEY does not hold "
            "the key they were encrypted with. Add it to CORTX_SECRETS_KEY and migrate again."
        )


def encrypt_rows(apps, schema_editor):
    from label_studio_cortx.connection import secrets as secret_store

    _convert(apps, schema_editor, secret_store.encrypt, wanted=True)


def decrypt_rows(apps, schema_editor):
    from label_studio_cortx.connection import secrets as secret_store

    _convert(apps, schema_editor, secret_store.reveal, wanted=False)


class Migration(migrations.Migration):

    dependencies = [
        ("io_storages_cortx", "0004_export_link_unique"),
    ]

    operations = [
        migrations.RunPython(encrypt_rows, decrypt_rows),
        *(
            migrations.AlterField(
                model_name=model,
                name=field,
                field=label_studio_cortx.connection.secrets.EncryptedTextField(
                    blank=True, help_text=HELP[field], null=True, verbose_name=field
                ),
            )
            for model in MODELS
            for field in FIELDS
        ),
    ]
