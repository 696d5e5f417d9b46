"""The job page, its live log endpoint, and cancelling."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.releases.models import Repository


def make_job(state: str = JobState.RUNNING, lines: tuple[str, ...] = ()) -> Job:
    job = Job.objects.create(kind="sync", title="Refresh shop", state=state, scope_name="shop")
    for seq, text in enumerate(lines, start=1):
        JobLogLine.objects.create(job=job, seq=seq, text=text)
    return job


def log_after(client: Client, job: Job, after: int) -> Any:
    return client.get(reverse("web:job_log", args=[job.pk]), {"after": after}, HTTP_HX_REQUEST="true")


def test_log_returns_only_lines_after_the_cursor_and_a_poller_with_the_new_cursor(
    client: Client, developer: Any
) -> None:
    job = make_job(lines=("one\n", "two\n", "three\n"))
    client.force_login(developer)
    response = log_after(client, job, 1)
    body = response.content.decode()
    assert response.status_code == 200
    assert "one" not in body and "two\nthree\n" in body
    assert f'hx-get="/jobs/{job.pk}/log/?after=3"' in body and 'hx-trigger="every 500ms"' in body


def test_log_escapes_html_in_log_text(client: Client, developer: Any) -> None:
    job = make_job(lines=("<script>alert(1)</script>\n",))
    client.force_login(developer)
    body = log_after(client, job, 0).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>" not in body


def test_log_of_a_running_job_with_nothing_new_keeps_polling(client: Client, developer: Any) -> None:
    job = make_job(lines=("one\n",))
    client.force_login(developer)
    response = log_after(client, job, 1)
    assert response.status_code == 200
    assert "?after=1" in response.content.decode()


def test_log_of_a_finished_job_sends_its_last_lines_without_a_poller(client: Client, developer: Any) -> None:
    job = make_job(state=JobState.SUCCEEDED, lines=("one\n", "done\n"))
    client.force_login(developer)
    response = log_after(client, job, 1)
    body = response.content.decode()
    assert response.status_code == 200, "htmx must get the last lines with a status it swaps"
    assert "done" in body and "hx-trigger" not in body
    assert 'hx-swap-oob="true"' in body and "Succeeded" in body


def test_log_of_a_finished_job_with_nothing_new_stops_polling_with_286(client: Client, developer: Any) -> None:
    job = make_job(state=JobState.FAILED, lines=("one\n",))
    client.force_login(developer)
    response = log_after(client, job, 1)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()


def test_log_treats_a_bad_cursor_as_the_start(client: Client, developer: Any) -> None:
    job = make_job(lines=("one\n",))
    client.force_login(developer)
    assert "one" in client.get(reverse("web:job_log", args=[job.pk]), {"after": "x"}).content.decode()


def test_job_page_shows_the_whole_log_without_javascript(client: Client, developer: Any) -> None:
    job = make_job(state=JobState.SUCCEEDED, lines=("$ git fetch\n", "done\n"))
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    # Releaseboard's own git step folds away with its output; both are in the page.
    assert '<details class="log-git"><summary>$ git fetch</summary><span class="log-git-output">done\n</span>' in page
    assert "log/?after=" not in page, "a finished job's page does not poll"


def test_job_page_of_a_running_job_polls_its_log_from_the_last_line(client: Client, developer: Any) -> None:
    job = make_job(lines=("one\n", "two\n"))
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert f"/jobs/{job.pk}/log/?after=2" in page


def test_cancel_button_is_shown_to_release_manager_for_an_active_job_only(client: Client, release_manager: Any) -> None:
    client.force_login(release_manager)
    active = client.get(reverse("web:job_detail", args=[make_job(state=JobState.QUEUED).pk]))
    final = client.get(reverse("web:job_detail", args=[make_job(state=JobState.SUCCEEDED).pk]))
    assert "Cancel job" in active.content.decode()
    assert "Cancel job" not in final.content.decode()


def test_release_manager_cancels_a_queued_job(client: Client, release_manager: Any) -> None:
    job = make_job(state=JobState.QUEUED)
    client.force_login(release_manager)
    response = client.post(reverse("web:job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.cancel_requested_by == release_manager


def test_developer_cannot_cancel_a_job(client: Client, developer: Any) -> None:
    job = make_job(state=JobState.QUEUED)
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert "Cancel job" not in page
    assert client.post(reverse("web:job_cancel", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


def test_jobs_list_filters_by_state(client: Client, developer: Any) -> None:
    make_job(state=JobState.QUEUED)
    failed = make_job(state=JobState.FAILED)
    client.force_login(developer)
    response = client.get(reverse("web:job_list"), {"state": "failed"})
    assert [job.pk for job in response.context["page"]] == [failed.pk]


def test_jobs_list_filters_by_repository(client: Client, developer: Any) -> None:
    shop = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    ours = Job.objects.create(kind="sync", title="Refresh shop", scope_id=shop.pk, scope_name="shop")
    Job.objects.create(kind="sync", title="Refresh other", scope_id=shop.pk + 1, scope_name="other")
    client.force_login(developer)
    response = client.get(reverse("web:job_list"), {"repository": shop.pk})
    assert [job.pk for job in response.context["page"]] == [ours.pk]


def test_job_page_polling_gets_only_its_summary(client: Client, developer: Any) -> None:
    job = make_job(lines=("one\n",))
    client.force_login(developer)
    body = client.get(reverse("web:job_detail", args=[job.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<section id="job-summary"') and "one\n" not in body
