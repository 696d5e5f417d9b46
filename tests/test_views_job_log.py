"""How a job's log reads in the browser: separators, colours, folded git steps, and a
git command held back until its output arrives."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job, JobLogLine, JobState
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


def test_a_git_command_waits_for_its_output_before_it_is_sent(client: Client, developer: Any) -> None:
    job = make_job(lines=("one\n", "$ git fetch origin\n"))
    client.force_login(developer)
    first = client.get(reverse("web:job_log", args=[job.pk]), {"after": 0}, HTTP_HX_REQUEST="true").content.decode()
    assert "one" in first and "git fetch" not in first
    assert f"/jobs/{job.pk}/log/?after=1" in first
    JobLogLine.objects.create(job=job, seq=3, text="From origin\n")
    second = client.get(reverse("web:job_log", args=[job.pk]), {"after": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert "<summary>$ git fetch origin</summary>" in second and "From origin" in second
