"""How a job's log reads in the browser: separators, colours, folded git steps, and a
git command held back until its output arrives."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.review.models import TestReport
from releaseboard.web import logview


def make_job(state: str = JobState.RUNNING, lines: tuple[str, ...] = ()) -> Job:
    job = Job.objects.create(kind="sync", title="Refresh shop", state=state, scope_name="shop")
    for seq, text in enumerate(lines, start=1):
        JobLogLine.objects.create(job=job, seq=seq, text=text)
    return job


def test_git_log_separators_are_shown_readably(client: Client, developer: Any) -> None:
    job = make_job(JobState.SUCCEEDED, ("abc123\x1fAda\x1fAdd login\x1edef456\x1fBob\x1fFix cart\x1e\n",))
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert "\x1f" not in page and "\x1e" not in page
    assert "abc123 · Ada · Add login\ndef456 · Bob · Fix cart\n" in page


def test_other_control_characters_are_dropped_and_carriage_returns_break_lines() -> None:
    assert logview.readable("a\x07b\x00c\r\nd\re") == "abc\nd\ne"


def test_ansi_colours_become_classes_and_other_sequences_go() -> None:
    html = logview.ansi_html("\x1b[31mFAILED\x1b[0m ok \x1b[1;32mPASSED\x1b[2K <b>")
    assert html == (
        '<span class="ansi-fg-red">FAILED</span> ok <span class="ansi-bold ansi-fg-green">PASSED &lt;b&gt;</span>'
    )
    assert "style=" not in html  # the CSP allows no inline styles


def test_git_steps_fold_and_test_output_does_not() -> None:
    html = logview.render(["\n== Fetch ==\n", "$ git fetch origin\n", "From origin\n", "$ make test\n", "1 passed\n"])
    assert '<details class="log-git"><summary>$ git fetch origin</summary>' in html
    assert "From origin" in html.split("</details>")[0]
    assert "$ make test\n1 passed\n" in html.split("</details>")[1]


def test_a_git_command_is_sent_at_once_and_its_later_output_marked_for_its_fold(client: Client, developer: Any) -> None:
    job = make_job(lines=("one\n", "$ git fetch origin\n"))
    client.force_login(developer)
    first = client.get(reverse("web:job_log", args=[job.pk]), {"after": 0}, HTTP_HX_REQUEST="true").content.decode()
    assert "<summary>$ git fetch origin</summary>" in first  # a slow fetch shows what it is doing
    assert f"/jobs/{job.pk}/log/?after=2" in first
    JobLogLine.objects.create(job=job, seq=3, text="From origin\n")
    second = client.get(reverse("web:job_log", args=[job.pk]), {"after": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert '<span class="log-git-output" data-git-output="1">From origin\n</span>' in second


# -- The failure summary on top of the log ------------------------------------------------------


def test_failed_job_without_a_report_shows_its_last_lines_on_top(client: Client, developer: Any) -> None:
    lines = tuple(f"line {i}\n" for i in range(40)) + ("AssertionError: 4 != 5\n",)
    job = make_job(JobState.FAILED, lines)
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    summary = page.split('class="failure-summary"')[1].split('class="log"')[0]
    assert "AssertionError: 4 != 5" in summary and "line 39" in summary and "line 5\n" not in summary


def test_failing_tests_from_the_junit_report_are_listed_on_top(client: Client, developer: Any) -> None:
    job = make_job(JobState.FAILED, ("FAILED\n",))
    TestReport.objects.create(
        job=job,
        data={
            "tests": 3,
            "failures": 1,
            "errors": 0,
            "skipped": 0,
            "failed": [
                {"name": "test_cart.CartTest.test_total", "kind": "failure", "message": "4 != 5", "detail": "Trace"}
            ],
        },
    )
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    summary = page.split('class="failure-summary"')[1].split('class="log"')[0]
    assert "1 of 3 tests failed" in summary and "test_cart.CartTest.test_total" in summary and "4 != 5" in summary


def test_the_summary_arrives_with_the_last_poll(client: Client, developer: Any) -> None:
    job = make_job(JobState.RUNNING, ("one\n",))
    client.force_login(developer)
    url = reverse("web:job_log", args=[job.pk])
    running = client.get(url, {"after": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert "failure-summary" not in running
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED)
    JobLogLine.objects.create(job=job, seq=2, text="Error: boom\n")
    final = client.get(url, {"after": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert f'id="failure-{job.pk}" class="failure-summary" hx-swap-oob="true"' in final and "Error: boom" in final


def test_a_running_log_is_marked_to_follow_its_tail(client: Client, developer: Any) -> None:
    client.force_login(developer)
    running = client.get(reverse("web:job_detail", args=[make_job(JobState.RUNNING).pk])).content.decode()
    done = client.get(reverse("web:job_detail", args=[make_job(JobState.SUCCEEDED).pk])).content.decode()
    assert 'data-follow="1"' in running and 'data-follow="1"' not in done
