"""``cortx_rotate_secrets``: re-encrypt every CORTX storage's credentials under the first CORTX_SECRETS_KEY key.

    CORTX_SECRETS_KEY=<new>,<old> python -m label_studio.manage cortx_rotate_secrets
    # then CORTX_SECRETS_KEY=<new> alone

Also encrypts values still stored in plaintext and moves secrets off the SECRET_KEY-derived key once
CORTX_SECRETS_KEY is set. All or nothing: when any stored value cannot be decrypted with the keys
given, nothing is written and the command fails naming the storages (exit status 1).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from label_studio_cortx.connection import secrets as secret_store
from label_studio_cortx.models import CortxExportStorage, CortxImportStorage

FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
KINDS = (("source", CortxImportStorage), ("target", CortxExportStorage))


class Command(BaseCommand):
    help = "Re-encrypt the credentials of every CORTX storage under the first key of CORTX_SECRETS_KEY."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="check that every value decrypts; write nothing")

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        try:
            secret_store.check_keys()
        except secret_store.SecretStoreError as exc:
            raise CommandError(str(exc)) from None
        if secret_store.using_derived_key():
            self.stderr.write(
                "CORTX_SECRETS_KEY is not set: re-encrypting under the key derived from SECRET_KEY.", self.style.WARNING
            )

        failures: list[str] = []
        counts: list[str] = []
        # One transaction with the rows locked: a storage edited meanwhile must not get its new secret
        # overwritten by the rotated old one, and a failure leaves every row as it was.
        with transaction.atomic():
            for kind, model in KINDS:
                rows = values = encrypted = 0
                for storage in model.objects.select_for_update().order_by("pk").only("pk", "title", *FIELDS):
                    changes = {}
                    for field in FIELDS:
                        value = getattr(storage, field)
                        if not value:
                            continue
                        try:
                            changes[field] = secret_store.rotate(value)
                        except secret_store.SecretDecryptError:
                            failures.append(f"{kind} storage {storage.pk} ({storage.title or 'untitled'})")
                            break
                        encrypted += not secret_store.is_encrypted(value)
                    else:
                        if changes:
                            rows += 1
                            values += len(changes)
                            if not dry_run:
                                # update(), not save(): no signals, no other column rewritten.
                                model.objects.filter(pk=storage.pk).update(**changes)
                counts.append(f"{kind} storages: {rows} rows, {values} values re-encrypted ({encrypted} plaintext)")
            if failures:
                raise CommandError(
                    "Nothing was changed: the credentials of "
                    + ", ".join(failures)
                    + " cannot be decrypted with the keys in CORTX_SECRETS_KEY. Add the key they were encrypted "
                    "with to CORTX_SECRETS_KEY (after the new one) and run the command again, or re-enter those "
                    "storages' access keys."
                )
        for line in counts:
            self.stdout.write(("[dry run] " if dry_run else "") + line)
