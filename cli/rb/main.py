"""The `rb` command: argparse in front of the public API. See cli/README.md."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import FAILED, OK, REFUSED, USAGE, Api, CliError, load_login, save_login
from .output import emit, follow, job_outcome, note, table
from .parser import build_parser

JOB_COLUMNS = ["id", "kind", "state", "reason", "repository", "title"]
BRANCH_COLUMNS = ["id", "name", "state", "head_sha", "behind", "ahead", "requested_by"]
PROMOTION_COLUMNS = ["id", "branch", "state", "merge_check", "merge_sha", "title"]
Handler = Callable[[Api, argparse.Namespace], int]


def _finish(api: Api, args: argparse.Namespace, started: dict[str, Any], key: str | None, refetch: str = "") -> int:
    """Print what a command started; with --wait follow its job and exit with its outcome.

    `started` is the API's answer: a job, or {key: object, "job": job}. With --wait the
    object is read again (refetch) after the job ends, so the output shows its final state.
    """
    job = started if key is None else started.get("job")
    code = OK
    if args.wait and job:
        job = follow(api, job["id"], quiet=args.quiet)
        code = job_outcome(job)
        if key is None:
            started = job
        else:
            started = {**started, "job": job}
            if refetch:
                started[key] = api.request("GET", refetch.format(**started[key]))
                if key in ("promotion", "release"):  # these endpoints answer {<key>, job}
                    started[key] = started[key][key]
    if args.output == "json":
        emit(started, "json")
    elif key is None:
        table([started], JOB_COLUMNS)
    else:
        columns = {"branch": BRANCH_COLUMNS, "promotion": PROMOTION_COLUMNS}.get(key)
        emit(started[key], "table", columns)
        if started.get("job") and not args.wait:
            note(f"Job #{started['job']['id']} started; 'rb job logs {started['job']['id']} --follow' shows it.")
    return code


def cmd_login(api: Api | None, args: argparse.Namespace) -> int:
    if not args.with_token:
        raise CliError("Pass --with-token and the token on stdin, e.g. rb login --url URL --with-token < token", USAGE)
    token = sys.stdin.readline().strip()
    if not token:
        raise CliError("No token on stdin. Make one under Settings → Tokens (it starts with rbp_).", USAGE)
    checked = Api(args.url.rstrip("/"), token)
    me = checked.request("GET", "/me")
    path = save_login(checked.url, token)
    note(f"Logged in to {checked.url} as {me['username']} (token {me['token']!r}); saved in {path}.")
    return OK


def cmd_me(api: Api, args: argparse.Namespace) -> int:
    emit(api.request("GET", "/me"), args.output)
    return OK


def cmd_repo_list(api: Api, args: argparse.Namespace) -> int:
    repos = api.request("GET", "/repos")
    emit(repos, args.output, ["name", "master_branch", "staging_branch", "latest_version", "synced_at"])
    return OK


def cmd_board(api: Api, args: argparse.Namespace) -> int:
    board = api.request("GET", f"/repos/{args.repo}/board")
    if args.output == "json":
        emit(board, "json")
        return OK
    for lane in ("master", "staging"):
        head = board[lane]
        print(f"{lane:8} {head['name'] + ' ' + head['sha'][:10] + ' test: ' + str(head['test']) if head else '-'}")
    branches = board["features"] + board["hotfixes"]
    promotions = {p["branch"]: p for p in board["promotions"]}
    print()
    rows = [{**b, "promotion": _promotion_cell(promotions.get(b["name"]))} for b in branches]
    table(rows, [*BRANCH_COLUMNS, "promotion"])
    radar = board["radar"]
    print(f"\nradar: {radar['conflicting_pairs']} conflicting pair(s), {radar['pending_pairs']} pending")
    if board["active_jobs"]:
        print()
        table(board["active_jobs"], JOB_COLUMNS)
    return OK


def _promotion_cell(promotion: dict[str, Any] | None) -> str:
    return f"#{promotion['id']} {promotion['state']}" if promotion else "-"


def cmd_branch_request(api: Api, args: argparse.Namespace) -> int:
    kind, name = ("feature", args.feature) if args.feature else ("hotfix", args.hotfix)
    body = {"kind": kind, "name": name, "purpose": args.purpose or name, "ticket_url": args.ticket or ""}
    started = api.request("POST", f"/repos/{args.repo}/branches", body)
    return _finish(api, args, started, "branch", f"/repos/{args.repo}/branches/{{id}}")


def _branch_id(api: Api, repo: str, name: str) -> int:
    if name.isdigit():
        return int(name)
    found = api.request("GET", f"/repos/{repo}/branches", query={"name": name})
    if not found:
        raise CliError(f"{repo} has no branch named {name!r}; 'rb board {repo}' lists them.", REFUSED)
    return int(found[0]["id"])


def cmd_branch_update(api: Api, args: argparse.Namespace) -> int:
    branch_id = _branch_id(api, args.repo, args.branch)
    return _finish(api, args, api.request("POST", f"/repos/{args.repo}/branches/{branch_id}/update"), None)


def cmd_promotion_request(api: Api, args: argparse.Namespace) -> int:
    body = {"branch": args.branch, "title": args.title or "", "description": args.description or ""}
    started = api.request("POST", f"/repos/{args.repo}/promotions", body)
    return _finish(api, args, started, "promotion", f"/repos/{args.repo}/promotions/{{id}}")


def cmd_promotion_show(api: Api, args: argparse.Namespace) -> int:
    shown = api.request("GET", f"/repos/{args.repo}/promotions/{args.id}")
    emit(shown if args.output == "json" else shown["promotion"], args.output, PROMOTION_COLUMNS)
    return OK


def cmd_promotion_action(action: str) -> Handler:
    def run(api: Api, args: argparse.Namespace) -> int:
        return _finish(api, args, api.request("POST", f"/repos/{args.repo}/promotions/{args.id}/{action}"), None)

    return run


def cmd_promotion_promote(api: Api, args: argparse.Namespace) -> int:
    """Promote to staging. With --wait, follow the promotion to its end: when staging moved
    since the test, the promote job has it merged and tested again and then promotes in a
    new job; those are followed too. Exit 0 only when the promotion is on staging."""
    base = f"/repos/{args.repo}/promotions/{args.id}"
    job = api.request("POST", f"{base}/promote")
    if not args.wait:
        return _finish(api, args, job, None)
    while True:
        job = follow(api, job["id"], quiet=args.quiet)
        shown = api.request("GET", base)
        latest = shown["job"]
        # A newer job of this promotion is followed even when it has ended already: the
        # promote job after a retest may finish before this loop looks.
        if latest is None or latest["id"] <= job["id"]:
            break
        if latest["kind"] == "test_promotion":
            note(f"Staging moved since the test: following job #{latest['id']} (merge and test again).")
        else:
            note(f"Following job #{latest['id']} ({latest['kind']}).")
        job = latest
    job_outcome(job)
    promoted = shown["promotion"]["state"] == "promoted"
    if not promoted:
        note(f"Promotion #{args.id} is {shown['promotion']['state']}: {shown['promotion']['state_message']}".rstrip())
    emit(job, args.output, JOB_COLUMNS)
    return OK if promoted else FAILED


def cmd_release_preview(api: Api, args: argparse.Namespace) -> int:
    preview = api.request("GET", f"/repos/{args.repo}/release-preview")
    if args.output == "json":
        emit(preview, "json")
        return OK
    print(f"{preview['current_version']} -> {preview['proposed_version']}")
    print(f"master {preview['master_sha'][:10]}  staging {preview['staging_sha'][:10]}  test: {preview['test']}")
    table(preview["promotions"], PROMOTION_COLUMNS)
    if preview["refusal"]:
        note(f"Cannot release now: {preview['refusal']}")
        return FAILED
    return OK


def cmd_release_create(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"version": args.version or ""}
    if args.notes_file:
        try:
            body["notes"] = Path(args.notes_file).read_text()
        except OSError as exc:
            raise CliError(f"Cannot read {args.notes_file}: {exc.strerror}.", USAGE) from None
    started = api.request("POST", f"/repos/{args.repo}/releases", body)
    return _finish(api, args, started, "release", f"/repos/{args.repo}/releases/{{id}}")


def cmd_repo_job(path: str) -> Handler:
    def run(api: Api, args: argparse.Namespace) -> int:
        return _finish(api, args, api.request("POST", path.format(repo=args.repo)), None)

    return run


def cmd_job_show(api: Api, args: argparse.Namespace) -> int:
    job = api.request("GET", f"/jobs/{args.id}")
    if args.output == "json":
        emit(job, "json")
    else:
        table([job], JOB_COLUMNS)
        print()
        table(job["steps"], ["seq", "name", "exit_code", "outcome"])
    return OK


def cmd_job_logs(api: Api, args: argparse.Namespace) -> int:
    if args.follow:
        return job_outcome(follow(api, args.id))
    after = 0
    while True:
        page = api.request("GET", f"/jobs/{args.id}/log", query={"after": after})
        for line in page["lines"]:
            sys.stdout.write(line["text"] if line["text"].endswith("\n") else line["text"] + "\n")
        if not page["lines"]:
            return OK
        after = page["next_after"]


def cmd_job_action(action: str) -> Handler:
    def run(api: Api, args: argparse.Namespace) -> int:
        return _finish(api, args, api.request("POST", f"/jobs/{args.id}/{action}"), None)

    return run


def cmd_audit_list(api: Api, args: argparse.Namespace) -> int:
    query = {"repo": args.repo, "actor": args.actor, "action": args.action, "size": args.limit}
    page = api.request("GET", "/audit", query=query)
    if args.output == "json":
        emit(page, "json")
    else:
        table(page["events"], ["seq", "created_at", "actor", "action", "repository", "object_repr"])
    return OK


def cmd_audit_export(api: Api, args: argparse.Namespace) -> int:
    data = api.raw("GET", "/audit/export", query={"format": args.format, "repo": args.repo, "action": args.action})
    sys.stdout.buffer.write(data)
    return OK


def cmd_audit_verify(api: Api, args: argparse.Namespace) -> int:
    result = api.request("GET", "/audit/verify")
    if args.output == "json":
        emit(result, "json")
    else:
        print(result["report"]["summary"])
        for problem in result["report"]["problems"]:
            print(f"- {problem['text']}")
    return OK if result["ok"] else FAILED


def cmd_completion(api: Api | None, args: argparse.Namespace) -> int:
    from .completion import bash_script

    print(bash_script(build_parser()))
    return OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return USAGE
    try:
        api = None if args.handler in (cmd_login, cmd_completion) else Api(*load_login())
        return int(args.handler(api, args))
    except CliError as exc:
        note(f"rb: {exc.message}")
        if getattr(args, "output", "") == "json" and exc.problem:
            emit(exc.problem, "json")
        return exc.exit_code
    except BrokenPipeError:  # e.g. `rb audit export | head`
        return OK
    except KeyboardInterrupt:
        note("rb: interrupted (a started job goes on; 'rb job show ID' tells how it ends).")
        return 130


if __name__ == "__main__":
    sys.exit(main())
