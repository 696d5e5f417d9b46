"""`rb env …`, `rb deploy`, `rb rollback`, `rb redeploy`, `rb incident …` and `rb metrics`."""

from __future__ import annotations

import argparse
from typing import Any

from .client import FAILED, OK, USAGE, Api, CliError
from .output import emit, follow, job_outcome, note, table

ENV_COLUMNS = ["name", "tier", "version", "state", "since", "locked", "pinned", "open_incidents"]
DEPLOYMENT_COLUMNS = ["id", "environment", "kind", "label", "sha", "state", "requested_by", "finished_at"]
INCIDENT_COLUMNS = ["id", "environment", "version", "open", "started_at", "resolved_at", "description"]
FIGURE_COLUMNS = ["key", "value", "numerator", "denominator", "band", "title"]


def _env_row(env: dict[str, Any]) -> dict[str, Any]:
    current = env["current"] or {}
    shown = env["active"] or current
    return {
        **env,
        "version": current.get("label"),
        "state": shown.get("state"),
        "since": current.get("finished_at"),
        "locked": env["locked_reason"] if env["locked"] else "",
        "pinned": "pinned" if env["pinned"] else "",
    }


def cmd_env_list(api: Api, args: argparse.Namespace) -> int:
    envs = api.request("GET", f"/repos/{args.repo}/environments")
    if args.output == "json":
        emit(envs, "json")
    else:
        table([_env_row(e) for e in envs], ENV_COLUMNS)
    return OK


def cmd_env_show(api: Api, args: argparse.Namespace) -> int:
    shown = api.request("GET", f"/repos/{args.repo}/environments/{args.env}", query={"limit": args.limit})
    if args.output == "json":
        emit(shown, "json")
        return OK
    table([_env_row(shown["environment"])], ENV_COLUMNS)
    print()
    table(shown["history"], DEPLOYMENT_COLUMNS)
    return OK


def cmd_env_lock(api: Api, args: argparse.Namespace) -> int:
    env = api.request("POST", f"/repos/{args.repo}/environments/{args.env}/lock", {"reason": args.reason})
    emit(env if args.output == "json" else _env_row(env), args.output, ENV_COLUMNS)
    return OK


def cmd_env_unlock(api: Api, args: argparse.Namespace) -> int:
    env = api.request("POST", f"/repos/{args.repo}/environments/{args.env}/unlock")
    emit(env if args.output == "json" else _env_row(env), args.output, ENV_COLUMNS)
    return OK


def _finish(api: Api, args: argparse.Namespace, started: dict[str, Any]) -> int:
    """Print the deployment; with --wait follow its job, read the deployment again and exit
    0 only when it succeeded (a failed deploy or smoke test exits 1 with its message)."""
    code = OK
    if args.wait and started.get("job"):
        job = follow(api, started["job"]["id"], quiet=args.quiet)
        job_outcome(job)
        started = api.request("GET", f"/repos/{args.repo}/deployments/{started['deployment']['id']}")
        deployment = started["deployment"]
        if deployment["state"] != "succeeded":
            code = FAILED
            note(f"Deployment #{deployment['id']} {deployment['state']}: {deployment['state_message']}".rstrip())
    emit(started if args.output == "json" else started["deployment"], args.output, DEPLOYMENT_COLUMNS)
    if args.output != "json" and not args.wait and started.get("job"):
        note(f"Job #{started['job']['id']} started; 'rb job logs {started['job']['id']} --follow' shows it.")
    return code


def cmd_deploy(api: Api, args: argparse.Namespace) -> int:
    body = {
        "version": args.version or "",
        "reason": args.reason or "",
        "override_reason": args.override_reason or "",
        "forward": args.forward,
    }
    return _finish(api, args, api.request("POST", f"/repos/{args.repo}/environments/{args.env}/deploy", body))


def cmd_rollback(api: Api, args: argparse.Namespace) -> int:
    body = {"to_version": args.to, "reason": args.reason}
    return _finish(api, args, api.request("POST", f"/repos/{args.repo}/environments/{args.env}/rollback", body))


def cmd_redeploy(api: Api, args: argparse.Namespace) -> int:
    return _finish(api, args, api.request("POST", f"/repos/{args.repo}/environments/{args.env}/redeploy"))


def cmd_incident_list(api: Api, args: argparse.Namespace) -> int:
    found = api.request("GET", f"/repos/{args.repo}/incidents", query={"open": "true" if args.open else None})
    emit(found, args.output, INCIDENT_COLUMNS)
    return OK


def cmd_incident_open(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"deployment": args.deployment, "description": args.description, "link": args.link or ""}
    if args.started_at:
        body["started_at"] = args.started_at
    emit(api.request("POST", f"/repos/{args.repo}/incidents", body), args.output, INCIDENT_COLUMNS)
    return OK


def cmd_incident_resolve(api: Api, args: argparse.Namespace) -> int:
    closed = api.request("POST", f"/repos/{args.repo}/incidents/{args.id}/close", {"note": args.note})
    emit(closed, args.output, INCIDENT_COLUMNS)
    return OK


def cmd_metrics(api: Api, args: argparse.Namespace) -> int:
    if bool(args.repo) == bool(args.all):
        raise CliError("Name a repository, or pass --all for every repository.", USAGE)
    path = "/metrics" if args.all else f"/repos/{args.repo}/metrics"
    report = api.request("GET", path, query={"days": args.days})
    if args.output == "json":
        emit(report, "json")
        return OK
    print(f"{report['repository'] or 'all repositories'}, last {report['days']} days")
    table(report["figures"], FIGURE_COLUMNS)
    note("Lead time and time to restore are in seconds; frequency is per week.")
    return OK


def add_commands(top: Any, leaf: Any) -> None:
    """Called by parser.build_parser with its subparsers and its `leaf` helper."""
    env = top.add_parser("env", help="environments and what runs there").add_subparsers(
        dest="sub", metavar="SUBCOMMAND"
    )
    leaf(env, "list", cmd_env_list, "a repository's environments: what runs where").add_argument("repo")
    show = leaf(env, "show", cmd_env_show, "one environment and its deployments, newest first")
    show.add_argument("repo")
    show.add_argument("env")
    show.add_argument("--limit", type=int, default=20)
    lock = leaf(env, "lock", cmd_env_lock, "stop deployments to an environment")
    lock.add_argument("repo")
    lock.add_argument("env")
    lock.add_argument("--reason", required=True, help="others read it")
    unlock = leaf(env, "unlock", cmd_env_unlock, "allow deployments again")
    unlock.add_argument("repo")
    unlock.add_argument("env")

    deploy = leaf(top, "deploy", cmd_deploy, "deploy a release to an environment (token scope: deploy)", wait=True)
    deploy.add_argument("repo")
    deploy.add_argument("env")
    deploy.add_argument("--version", dest="version", metavar="X.Y.Z", help="default: the latest release")
    deploy.add_argument("--reason", help="why (shown in the history)")
    deploy.add_argument("--override-reason", help="production without a staging deployment (release managers, Ops)")
    deploy.add_argument("--forward", action="store_true", help="deploy a newer version over a rollback")
    rollback = leaf(top, "rollback", cmd_rollback, "deploy an earlier release and pin the environment", wait=True)
    rollback.add_argument("repo")
    rollback.add_argument("env")
    rollback.add_argument("--to", required=True, metavar="X.Y.Z", help="the earlier release")
    rollback.add_argument("--reason", required=True, help="shown while the environment is pinned")
    redeploy = leaf(top, "redeploy", cmd_redeploy, "deploy what runs there once more", wait=True)
    redeploy.add_argument("repo")
    redeploy.add_argument("env")

    incident = top.add_parser("incident", help="incidents caused by production deployments").add_subparsers(
        dest="sub", metavar="SUBCOMMAND"
    )
    ilist = leaf(incident, "list", cmd_incident_list, "a repository's incidents, newest first")
    ilist.add_argument("repo")
    ilist.add_argument("--open", action="store_true", help="only open ones")
    iopen = leaf(incident, "open", cmd_incident_open, "mark a production deployment as an incident's cause (Ops)")
    iopen.add_argument("repo")
    iopen.add_argument("deployment", type=int, help="the deployment's id ('rb env show REPO ENV' lists them)")
    iopen.add_argument("--description", required=True)
    iopen.add_argument("--link", help="https://… to the status page or ticket")
    iopen.add_argument("--started-at", metavar="ISO", help="e.g. 2026-12-02T14:05:00Z (default: now)")
    resolve = leaf(incident, "resolve", cmd_incident_resolve, "close an incident by hand (Ops)")
    resolve.add_argument("repo")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--note", required=True, help="how it was resolved")

    metrics = leaf(top, "metrics", cmd_metrics, "DORA metrics with numerators, denominators and weekly series")
    metrics.add_argument("repo", nargs="?")
    metrics.add_argument("--all", action="store_true", help="every repository")
    metrics.add_argument("--days", type=int, default=90, help="the window (1-365, default 90)")
