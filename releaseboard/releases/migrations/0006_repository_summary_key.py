from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0005_branch_facts_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="repository",
            name="summary_key",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
