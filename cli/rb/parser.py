"""The command line's shape: every command, its arguments and its handler."""

from __future__ import annotations

import argparse

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    from . import main as m  # the handlers; imported here so main can import this module

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", choices=["table", "json"], default="table", help="table (default) or json")
    common.add_argument("-q", "--quiet", action="store_true", help="no log lines; a spinner while waiting")
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument("--wait", action="store_true", help="follow the job's log and exit with its outcome")

    parser = argparse.ArgumentParser(
        prog="rb",
        description="Releaseboard from the command line. Exit codes: 0 ok, 1 job or check failed, "
        "2 usage error, 3 refused by the server, 4 not authenticated.",
    )
    parser.add_argument("--version", action="version", version=f"rb {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: object,
        help: str,
        wait: bool = False,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help, parents=[common, waits] if wait else [common])
        sub.set_defaults(handler=handler)
        return sub

    login = leaf(top, "login", m.cmd_login, "save the server URL and a token (read from stdin)")
    login.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000")
    login.add_argument("--with-token", action="store_true", help="read the token from stdin")
    leaf(top, "me", m.cmd_me, "who the token belongs to, its roles and scopes")

    repo = top.add_parser("repo", help="repositories").add_subparsers(dest="sub", metavar="SUBCOMMAND")
    leaf(repo, "list", m.cmd_repo_list, "list repositories")
    leaf(top, "board", m.cmd_board, "show a repository's board").add_argument("repo")

    branch = top.add_parser("branch", help="feature and hotfix branches").add_subparsers(dest="sub")
    request = leaf(branch, "request", m.cmd_branch_request, "request a feature or hotfix branch", wait=True)
    request.add_argument("repo")
    kind = request.add_mutually_exclusive_group(required=True)
    kind.add_argument("--feature", metavar="NAME")
    kind.add_argument("--hotfix", metavar="NAME")
    request.add_argument("--purpose", help="what the branch is for (default: its name)")
    request.add_argument("--ticket", help="a link to the ticket")
    update = leaf(branch, "update", m.cmd_branch_update, "merge the current staging into a branch", wait=True)
    update.add_argument("repo")
    update.add_argument("branch", help="its full name (feature/x) or id")

    promotion = top.add_parser("promotion", help="promotions to staging").add_subparsers(dest="sub")
    prequest = leaf(promotion, "request", m.cmd_promotion_request, "request promotion; tests the merge", wait=True)
    prequest.add_argument("repo")
    prequest.add_argument("branch", help="its full name, e.g. feature/search")
    prequest.add_argument("--title")
    prequest.add_argument("--description")
    leaf(promotion, "show", m.cmd_promotion_show, "show a promotion").add_argument("repo")
    for name, handler, text in (
        ("retest", m.cmd_promotion_action("retest"), "merge with the current staging and test again"),
        ("promote", m.cmd_promotion_promote, "promote the tested merge to staging"),
    ):
        sub = leaf(promotion, name, handler, text, wait=True)
        sub.add_argument("repo")
        sub.add_argument("id", type=int)
    promotion.choices["show"].add_argument("id", type=int)

    release = top.add_parser("release", help="releases (promote to master)").add_subparsers(dest="sub")
    leaf(release, "preview", m.cmd_release_preview, "what a release would ship").add_argument("repo")
    create = leaf(release, "create", m.cmd_release_create, "release staging to master with a tag", wait=True)
    create.add_argument("repo")
    create.add_argument("--version", dest="version", help="X.Y.Z (default: the proposed one)")
    create.add_argument("--notes-file", help="Markdown notes (default: the proposed notes)")

    staging = top.add_parser("staging", help="the staging branch").add_subparsers(dest="sub")
    reset = "/repos/{repo}/staging/copy-master"
    leaf(staging, "reset", m.cmd_repo_job(reset), "copy master to staging", wait=True).add_argument("repo")
    test = "/repos/{repo}/staging/test"
    leaf(staging, "test", m.cmd_repo_job(test), "test the staging head", wait=True).add_argument("repo")

    job = top.add_parser("job", help="jobs").add_subparsers(dest="sub")
    leaf(job, "show", m.cmd_job_show, "a job and its steps").add_argument("id", type=int)
    logs = leaf(job, "logs", m.cmd_job_logs, "a job's log")
    logs.add_argument("id", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="stream until the job ends")
    leaf(job, "cancel", m.cmd_job_action("cancel"), "cancel a job", wait=True).add_argument("id", type=int)
    leaf(job, "retry", m.cmd_job_action("retry"), "retry a failed job", wait=True).add_argument("id", type=int)

    audit = top.add_parser("audit", help="the audit log").add_subparsers(dest="sub")
    alist = leaf(audit, "list", m.cmd_audit_list, "newest audit events")
    alist.add_argument("--repo")
    alist.add_argument("--actor")
    alist.add_argument("--action")
    alist.add_argument("--limit", type=int, default=50)
    export = leaf(audit, "export", m.cmd_audit_export, "export events to stdout")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--repo")
    export.add_argument("--action")
    leaf(audit, "verify", m.cmd_audit_verify, "verify the hash chain (exit 1 if broken)")

    from . import deployments, integrations

    integrations.add_commands(top, leaf)
    deployments.add_commands(top, leaf)

    completion = leaf(top, "completion", m.cmd_completion, "print a shell completion script")
    completion.add_argument("shell", choices=["bash"])
    return parser
