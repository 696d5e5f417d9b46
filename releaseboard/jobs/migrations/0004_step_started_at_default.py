import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """JobStep.started_at is set when the step starts, by the worker, rather than when its
    row is inserted (steps are written in bulk). The column is unchanged: only Django's
    state changes, so no table is rebuilt."""

    dependencies = [
        ("jobs", "0003_alter_job_reason"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="jobstep",
                    name="started_at",
                    field=models.DateTimeField(default=django.utils.timezone.now),
                ),
            ],
            database_operations=[],
        ),
    ]
