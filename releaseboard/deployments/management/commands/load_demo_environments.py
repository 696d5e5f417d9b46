"""`manage.py load_demo_environments`: the demo repository's staging and production
environments, and about 90 days of made-up delivery history (idempotent; load_demo runs it)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from releaseboard.deployments import demo, history, services
from releaseboard.deployments.models import Deployment, Environment, Source, Tier
from releaseboard.releases.models import Repository

HISTORY_DAYS = 90


class Command(BaseCommand):
    help = "Add staging and production environments and a delivery history to the demo repository."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--repository", default="shop")

    def handle(self, *args: Any, **options: Any) -> None:
        repository = Repository.objects.filter(name=options["repository"]).first()
        if repository is None:
            raise CommandError(f"No repository {options['repository']}; run load_demo first.")
        admin = User.objects.filter(is_superuser=True).order_by("pk").first()
        ops = User.objects.filter(username="ops").first() or admin
        root = Path(settings.VAR_DIR) / "demo" / "environments"
        root.mkdir(parents=True, exist_ok=True)
        envs = {}
        for position, (name, tier, source, auto) in enumerate(
            [
                ("staging", Tier.STAGING, Source.STAGING_HEAD, True),
                ("production", Tier.PRODUCTION, Source.RELEASES, False),
            ]
        ):
            env = Environment.objects.filter(repository=repository, name=name).first()
            if env is None:
                env = Environment(
                    repository=repository,
                    name=name,
                    tier=tier,
                    source=source,
                    auto_deploy=auto,
                    position=position,
                    deploy_command=demo.deploy_command(root),
                    check_command=demo.check_command(root),
                    timeout=60,
                )
                services.save_environment(env, actor=admin)
                self.stdout.write(f"Added environment {name} (deploys write {root / name / 'VERSION'})")
            envs[name] = env
        if Deployment.objects.filter(repository=repository, demo_history=True).exists():
            self.stdout.write("Kept the demo delivery history")
            return
        with transaction.atomic():
            built = history.build(
                envs["staging"],
                envs["production"],
                days=HISTORY_DAYS,
                now=timezone.now() - timedelta(days=1),
                actor=ops,
            )
        self.stdout.write(
            f"Wrote {HISTORY_DAYS} days of demo delivery history: {built.releases} releases, {built.deployments} "
            f"deployments, {built.commits} commits, {built.incidents} incident, {built.rollbacks} rollback "
            "(marked \u201cdemo history\u201d; no job ran for them). "
            f"Touch {root}/<name>/FAIL to see a deploy fail."
        )
