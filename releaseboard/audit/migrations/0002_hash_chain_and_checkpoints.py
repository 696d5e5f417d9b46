"""The hash chain (seq, prev_hash, hash), the listing's keyset indexes, checkpoints.

Events written before this migration are numbered in id order and chained here, so an
existing log becomes verifiable from its first event on. This runs before 0003 adds
the append-only triggers, which would refuse the backfill's UPDATEs.
"""

from typing import Any

import django.utils.timezone
from django.db import migrations, models

from releaseboard.audit import chain


def chain_existing_events(apps: Any, schema_editor: Any) -> None:
    AuditEvent = apps.get_model("audit", "AuditEvent")
    prev_hash = chain.GENESIS
    for seq, event in enumerate(AuditEvent.objects.order_by("id").iterator(chunk_size=2000), start=1):
        event.seq = seq
        event.details = chain.normalize_details(event.details)
        digest = chain.event_hash(event, prev_hash)
        AuditEvent.objects.filter(pk=event.pk).update(seq=seq, prev_hash=prev_hash, hash=digest,
                                                      details=event.details)
        prev_hash = digest


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="repository_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AlterModelOptions(
            name="auditevent",
            options={"ordering": ["-seq"]},
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["repository_id", "seq"], name="audit_repository_seq"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor_name", "seq"], name="audit_actor_seq"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["action", "seq"], name="audit_action_seq"),
        ),
        migrations.CreateModel(
            name="Checkpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField()),
                ("seq", models.BigIntegerField()),
                ("count", models.BigIntegerField()),
                ("head_hash", models.CharField(max_length=64)),
                ("file_name", models.CharField(max_length=200, unique=True)),
                ("signature", models.CharField(max_length=64)),
                ("created_by", models.CharField(max_length=150)),
            ],
            options={"ordering": ["-id"]},
        ),
    ]
