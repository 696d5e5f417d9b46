"""The periodic check for pushes made outside Releaseboard (developers push with plain git)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from releaseboard import branching, vcs
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import services
from releaseboard.releases.models import Branch, BranchState, Repository

log = logging.getLogger(__name__)


def poll_remotes() -> int:
    """ls-remote each repository (cheap) and queue a sync job only where heads changed.

    Returns the number of sync jobs queued.
    """
    queued = 0
    for repository in Repository.objects.all():
        try:
            credentials = vcs.credentials_for(repository.remote_url, settings.CREDENTIALS_FILE or None)
            refs = vcs.ls_remote(
                repository.remote_url,
                allow_local=settings.ALLOW_LOCAL_REPOSITORIES,
                credentials=credentials,
                timeout=settings.GIT_NETWORK_TIMEOUT_SECONDS,
            )
        except (vcs.GitError, vcs.CredentialsError) as exc:
            Repository.objects.filter(pk=repository.pk).update(sync_error=str(exc)[:2000])
            continue
        remote = {
            ref.removeprefix("refs/heads/"): sha
            for ref, sha in refs.items()
            if ref.startswith("refs/heads/") and branching.classify(repository.names, ref.removeprefix("refs/heads/"))
        }
        recorded = dict(
            Branch.objects.filter(
                repository=repository, state__in=[BranchState.ACTIVE, BranchState.PROMOTED]
            ).values_list("name", "head_sha")
        )
        if remote == recorded:
            continue
        with transaction.atomic():
            if Job.objects.filter(scope_id=repository.pk, kind="sync", state__in=JobState.active()).exists():
                continue
            services._sync_job(repository, None)
            queued += 1
    return queued
