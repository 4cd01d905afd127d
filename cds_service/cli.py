"""`cds-service` command line.

    cds-service serve [--host H] [--port P] [--workers N]   run under gunicorn
    cds-service check                                       validate hook files, settings, packs
    cds-service evaluate FILE [--order F] [--today D] [--json]
                                                            evaluate a saved request offline
    cds-service audit [--limit N]                           recent decisions, override rates
    cds-service report [--since D] [--until D] [--csv]      override / acceptance rates
    cds-service dev-token [--path P]                        a local signed token (auth on)
    cds-service policy lint PACK [PACK ...]                 check policy packs, exit 1 on errors
    cds-service policy show PACK [--format markdown]        a pack's decision tree
    cds-service policy checks [--format markdown]           the check kinds and their parameters

Each subcommand is a function `cmd_<name>(args) -> int` registered in `build_parser`.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cds_service.config import (
    SettingsError,
    auth_warning,
    check_database,
    load_settings,
    one_line,
    validate_startup,
)
from cds_service.cpus import usable_cpus
from cds_service.json_logs import (
    DropQueryStrings,
    JsonLineFormatter,
    drop_exception_echo,
    print_line,
)


def refuse(message: str, code: int) -> int:
    """A start-up refusal: one JSON line on standard error whose `message` is the one-line
    human message naming the setting and the fix; returns the exit code."""
    print_line(
        message,
        level="error",
        logger="cds_service.startup",
        stream=sys.stderr,
        event="refused",
        exit_code=code,
    )
    return code


def configure_logging(level: str = "INFO") -> None:
    from cds_service.request_id import RequestIdFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def freeze_before_fork(server: Any, worker: Any) -> None:
    """gunicorn `pre_fork`, in the master: what it loaded (the app, the policy, the FHIR
    models: about 110,000 objects) is moved out of the garbage collector's sight. Workers
    no longer walk it in every full collection (a 5,000-resource call triggers about one:
    some 80 ms of it was that walk), nor write to its memory pages, which they share with
    the master, when they collect."""
    gc.freeze()


def cmd_serve(args: argparse.Namespace) -> int:
    from cds_service.server import exec_patched, gevent_patched

    if not gevent_patched():
        # The settings first, with the same checks as `cds-service check`, and nothing
        # heavy imported yet: a bad setting is reported at once.
        try:
            validate_startup(load_settings(os.environ))
        except SettingsError as exc:
            return refuse(f"cds-service: cannot start: {exc}", 2)
        # The settings are good: go on in a process made cooperative (gevent) before
        # anything else is imported; it checks hooks and packs.
        serve = ["serve", "--host", args.host, "--port", str(args.port)]
        exec_patched([*serve, *(["--workers", str(args.workers)] if args.workers else [])])

    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger as GunicornLogger

    from cds_service import create_app
    from cds_service.hooks import HookFileError
    from cds_service.policy.definition import PolicyFileError
    from cds_service.request_id import RequestIdFilter, access_fields
    from cds_service.server import gunicorn_options, served_app

    try:
        settings = load_settings(os.environ)
        configure_logging(settings.log_level)
        app = create_app()
    except (SettingsError, HookFileError, PolicyFileError) as exc:
        return refuse(f"cds-service: cannot start: {one_line(str(exc))}", 2)
    except SQLAlchemyError as exc:  # the database went away since it was checked
        reason = f"{type(exc).__name__}: check it and start again"
        return refuse(f"cds-service: cannot start: CDS_DATABASE_URL: {reason}", 2)

    workers = args.workers or usable_cpus()  # the container's CPU quota, not the machine's
    options = gunicorn_options(settings, host=args.host, port=args.port, workers=workers)
    options["pre_fork"] = freeze_before_fork
    wsgi_app = served_app(app, settings)

    class JsonGunicornLogger(GunicornLogger):  # type: ignore[misc]
        """gunicorn's error and access logs as JSON lines on standard error, each with
        its request id (docs/operations.md "Logs")."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in [*self.error_log.handlers, *self.access_log.handlers]:
                handler.setFormatter(JsonLineFormatter())
                handler.addFilter(RequestIdFilter())
                handler.addFilter(DropQueryStrings())
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                    handler.setStream(sys.stderr)

        def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
            super().exception(msg, *args, **kwargs)
            drop_exception_echo()

        def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
            if not self.access_log_enabled:
                return
            seconds = request_time.total_seconds()
            status = getattr(resp, "status_code", None)
            fields = access_fields(environ, status, getattr(resp, "sent", None), seconds)
            self.access_log.info("access", extra=fields)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("logger_class", JsonGunicornLogger)

        def load(self) -> Any:
            return wsgi_app

    host_shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host_shown}:{args.port}/cds-services"
    print_line(
        f"cds-service listening on {url} ({workers} worker{'s' if workers != 1 else ''})",
        level="info",
        logger="cds_service.serve",
        stream=sys.stdout,
        event="listening",
        url=url,
        workers=workers,
    )
    Server().run()
    return 0


NOT_SHOWN = "does not show coverage information: a criteria-met order also gets its card"


def cmd_check(args: argparse.Namespace) -> int:
    try:  # the settings first, as `serve` checks them (nothing heavy imported yet)
        settings = load_settings(os.environ)
        issuers = validate_startup(settings, database=False)
    except SettingsError as exc:
        return refuse(f"cds-service check: FAILED: {exc}", 1)

    from cds_service.hooks import HookFileError, load_catalog
    from cds_service.policy.packs import PolicyFileError, load_packs

    try:
        catalog = load_catalog(settings.hooks_dir)
        registry = load_packs(settings.policy_packs_dir)
        database = check_database(settings)
    except (SettingsError, HookFileError, PolicyFileError) as exc:
        return refuse(f"cds-service check: FAILED: {one_line(str(exc))}", 1)
    print(f"settings: ok (auth {settings.auth}, hooks in {settings.hooks_dir})")
    print(f"audit database: ok ({database})")
    if issuers is not None:
        print(f"trusted issuers: {len(issuers)} (from {settings.trusted_issuers})")
        for issuer in issuers:
            pinned = ", ".join(issuer.fhir_servers) or "none (prefetch only)"
            print(f"  {issuer.iss}: FHIR servers that may be read: {pinned}")
            if not issuer.shows_coverage_information:
                print(f"  {issuer.iss}: {NOT_SHOWN}")
    warning = auth_warning(settings)
    if warning:
        print(warning)
        servers = ", ".join(settings.fhir_servers) or "loopback hosts only"
        print(f"FHIR servers that may be read: {servers}")
        if settings.client_shows_coverage_information:
            print("clients show coverage information (CDS_CLIENT_SHOWS_COVERAGE_INFORMATION)")
        else:
            print(f"clients: {NOT_SHOWN} (CDS_CLIENT_SHOWS_COVERAGE_INFORMATION=false)")
    for service in catalog.services.values():
        required = ", ".join(sorted(service.required_prefetch))
        print(
            f"service {service.id}: hook {service.hook}, {len(service.prefetch)} prefetch keys "
            f"(required: {required})"
        )
    print(f"schemas: {', '.join(sorted(catalog.schemas))}")
    for pack in registry.packs.values():
        print(f"policy pack {pack.id} version {pack.version}: {pack.title} ({pack.directory})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cds_service.evaluate_file import InputError, evaluate_file
    from cds_service.hooks import HookFileError
    from cds_service.policy.definition import PolicyFileError

    try:
        today = date.fromisoformat(args.today) if args.today else date.today()
    except ValueError:
        message = f"cds-service evaluate: --today must be YYYY-MM-DD, got {args.today!r}"
        print(message, file=sys.stderr)
        return 2
    try:
        settings = load_settings(os.environ)
        report = evaluate_file(
            Path(args.file),
            Path(args.order) if args.order else None,
            today,
            settings.hooks_dir,
            settings.policy_packs_dir,
        )
    except (InputError, SettingsError, HookFileError, PolicyFileError) as exc:
        print(f"cds-service evaluate: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.to_text())
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from cds_service.store import AuditStore, format_audit_report

    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"cds-service audit: {exc}", file=sys.stderr)
        return 2
    store = AuditStore(settings.database_url)
    try:
        store.create_schema()
        print(format_audit_report(store, limit=max(1, args.limit)))
    finally:
        store.dispose()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cds_service.reports import build_report, default_period, format_table, to_csv
    from cds_service.store import AuditStore

    try:
        settings = load_settings(os.environ)
        since, until = default_period(datetime.now(UTC).date())
        until = date.fromisoformat(args.until) if args.until else until
        if not args.since:
            since, _ = default_period(until)
        since = date.fromisoformat(args.since) if args.since else since
    except SettingsError as exc:
        print(f"cds-service report: {exc}", file=sys.stderr)
        return 2
    except ValueError:
        print("cds-service report: --since and --until must be YYYY-MM-DD", file=sys.stderr)
        return 2
    if since > until:
        print("cds-service report: --since must not be after --until", file=sys.stderr)
        return 2
    store = AuditStore(settings.database_url)
    try:
        store.create_schema()
        report = build_report(store, since, until)
    finally:
        store.dispose()
    print(to_csv(report) if args.csv else format_table(report), end="" if args.csv else "\n")
    return 0


def cmd_dev_token(args: argparse.Namespace) -> int:
    import time

    from cds_service import dev_token

    base_url = args.base_url or os.environ.get("CDS_PUBLIC_BASE_URL") or "http://127.0.0.1:8080"
    servers = tuple(args.fhir_server or dev_token.DEFAULT_FHIR_SERVERS)
    try:
        issuer = dev_token.prepare(Path(args.dir), servers)
    except (OSError, ValueError) as exc:
        print(f"cds-service dev-token: {exc}", file=sys.stderr)
        return 1
    if issuer.created:
        print(dev_token.start_hint(issuer, base_url), file=sys.stderr)
    audience = dev_token.audience_for(base_url, args.path)
    print(dev_token.sign(issuer, audience, time.time()))
    return 0


def cmd_policy_lint(args: argparse.Namespace) -> int:
    from cds_service.policy.lint import has_errors, lint_pack

    failed = False
    for folder in args.packs:
        path = Path(folder)
        if not path.is_dir():
            print(f"error: {folder}: not a folder", file=sys.stderr)
            failed = True
            continue
        findings = lint_pack(path)
        for finding in findings:
            print(f"{path.name}: {finding.line()}")
        errors = sum(1 for f in findings if f.severity == "error")
        warnings = len(findings) - errors
        print(f"{path.name}: {errors} error(s), {warnings} warning(s)")
        failed = failed or has_errors(findings)
    return 1 if failed else 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    from cds_service.policy.definition import PolicyFileError, read_policy_file
    from cds_service.policy.show import show

    try:
        policy = read_policy_file(Path(args.pack) / "policy.yaml")
    except PolicyFileError as exc:
        print(f"cds-service policy show: {exc} (run cds-service policy lint)", file=sys.stderr)
        return 1
    print(show(policy, args.format), end="")
    return 0


def cmd_policy_checks(args: argparse.Namespace) -> int:
    from cds_service.policy.show import check_catalogue, replace_catalogue

    if args.write_into:
        path = Path(args.write_into)
        try:
            text = replace_catalogue(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"cds-service policy checks: {path}: {exc}", file=sys.stderr)
            return 1
        path.write_text(text, encoding="utf-8")
        print(f"{path}: check catalogue regenerated")
        return 0
    print(check_catalogue(args.format), end="")
    return 0


def _add_policy_commands(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="policy pack authoring: lint, show, checks",
        description="Tools for writing policy packs (see docs/policy-packs.md).",
    )
    sub = policy.add_subparsers(dest="policy_command", required=True)
    lint = sub.add_parser(
        "lint",
        help="check packs: schemas, codes, value sets, clauses, reachability, cards, cases",
        description=(
            "Check policy pack folders and print one finding a line (severity: file: place: "
            "problem). Exit 1 when any pack has an error."
        ),
    )
    lint.add_argument("packs", nargs="+", metavar="PACK", help="a pack folder")
    lint.set_defaults(handler=cmd_policy_lint)
    formats = ("text", "markdown")
    show = sub.add_parser("show", help="the pack's decision tree as a readable table")
    show.add_argument("pack", metavar="PACK", help="a pack folder")
    show.add_argument("--format", choices=formats, default="text")
    show.set_defaults(handler=cmd_policy_show)
    checks = sub.add_parser("checks", help="the check kinds, their parameters and statuses")
    checks.add_argument("--format", choices=formats, default="text")
    checks.add_argument(
        "--write-into",
        metavar="FILE",
        help="replace the Markdown catalogue between the checks:begin / checks:end markers "
        "of FILE (docs/policy-packs.md)",
    )
    checks.set_defaults(handler=cmd_policy_checks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cds-service",
        description="CDS Hooks service for health plan drug policies (policy packs).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: the CPUs the container may use)",
    )
    serve.set_defaults(handler=cmd_serve)

    check = commands.add_parser(
        "check", help="validate the hook files, the settings and the policy packs"
    )
    check.set_defaults(handler=cmd_check)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a saved CDS Hooks request (or a FHIR Bundle plus an order) offline",
        description=(
            "Run the policy on a saved CDS Hooks request (its context and prefetch), or on a "
            "FHIR Bundle of the patient's record plus --order, a draft MedicationRequest. "
            "Nothing is fetched: data that is absent makes criteria unknown."
        ),
    )
    evaluate.add_argument("file", help="CDS Hooks request JSON, or a FHIR Bundle with --order")
    evaluate.add_argument("--order", help="draft MedicationRequest JSON (with a Bundle FILE)")
    evaluate.add_argument(
        "--today",
        help="the evaluation date, YYYY-MM-DD (default: today); orders with an "
        "authoredOn are judged on that date",
    )
    evaluate.add_argument("--json", action="store_true", help="print machine-readable decisions")
    evaluate.set_defaults(handler=cmd_evaluate)

    audit = commands.add_parser("audit", help="recent decisions and override rates")
    audit.add_argument("--limit", type=int, default=20, help="decisions to list (default 20)")
    audit.set_defaults(handler=cmd_audit)
    report = commands.add_parser(
        "report",
        help="override and acceptance rates per card type and criterion over a period",
        description=(
            "How prescribers answered the cards shown in a period (UTC days, both ends "
            "included; default the last 30 days), from the audit store (CDS_DATABASE_URL): "
            "per card type and per criterion, cards shown, answered, accepted, overridden "
            "(warning and critical cards only) and dismissed (info cards closed)."
        ),
    )
    report.add_argument("--since", help="first day, YYYY-MM-DD (default: 29 days before --until)")
    report.add_argument("--until", help="last day, YYYY-MM-DD (default: today)")
    report.add_argument("--csv", action="store_true", help="CSV instead of a table")
    report.set_defaults(handler=cmd_report)
    dev = commands.add_parser(
        "dev-token",
        help="a signed client token for trying the service with authentication on (local)",
        description=(
            "Create (once) a local signing key and a trusted-issuers file trusting it under "
            "--dir, and print one fresh token (5 minutes, new jti) for a call to --path. "
            "Start the service with CDS_TRUSTED_ISSUERS=<dir>/trusted-issuers.json. Local "
            "testing only."
        ),
    )
    dev.add_argument(
        "--path",
        default="/cds-services",
        help="the path the token is for (its aud is the base URL plus it); default "
        "/cds-services (discovery); e.g. /cds-services/prior-auth-order-sign",
    )
    dev.add_argument(
        "--base-url",
        default=None,
        help="the service's URL as callers reach it (default: CDS_PUBLIC_BASE_URL, else "
        "http://127.0.0.1:8080)",
    )
    dev.add_argument("--dir", default="var/dev-issuer", help="where the key and the file are kept")
    dev.add_argument(
        "--fhir-server",
        action="append",
        help="a FHIR base URL calls may make the service read (repeatable; default: the "
        "FHIR sandbox at http://127.0.0.1:8090/fhir)",
    )
    dev.set_defaults(handler=cmd_dev_token)
    _add_policy_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
