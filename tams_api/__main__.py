"""`tams-api serve` runs the API (with its worker, unless TAMS_RUN_WORKER=false) in one process, or in
TAMS_WORKERS processes sharing the port (tams_api.serving); `tams-api worker` runs
the background worker alone, for deployments where API replicas scale and one worker serves the store;
`tams-api provision s3|vast|postgres` creates what the configured stores need; `tams-api migrate` brings the
metadata store's schema to this release's version (as starting the API or the worker does) and exits;
`tams-api backup` writes a backup of an embedded store to the S3 folder of the TAMS_BACKUP_* settings, and
`tams-api restore` makes a new store from one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from .config import BackupSettings, Settings
from .errors import ConfigurationError

# Each command imports what it uses: provisioning and backups import boto3 (~24 MB resident), which a server does
# without unless a media backend is on S3, and `serve` with TAMS_WORKERS > 1 supervises processes that import the
# app, which it does not.
PROVISION_TARGETS = ("postgres", "s3", "vast")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tams-api", description="TAMS API 8.2 service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", help="default TAMS_LOG_LEVEL (info)")
    worker = commands.add_parser("worker", help="run the background worker alone")
    worker.add_argument("--log-level", help="default TAMS_LOG_LEVEL (info)")
    provision = commands.add_parser("provision", help="create what the configured stores need (idempotent)")
    provision.add_argument(
        "target",
        choices=PROVISION_TARGETS,
        help="s3: the bucket of TAMS_S3_BUCKET; vast: schema and tables in TAMS_VAST_BUCKET; postgres: schema and "
        "tables in the database of TAMS_POSTGRES_URL",
    )
    commands.add_parser("migrate", help="bring the metadata store's schema to this release's version (idempotent)")
    backup = commands.add_parser("backup", help="write a backup of the store to the folder of TAMS_BACKUP_S3_*")
    backup.add_argument("--summary-file", type=Path, help="also write the backup's summary (JSON) to this file")
    commands.add_parser(
        "restore", help="make this new store a copy of the backup in the folder of TAMS_BACKUP_S3_* (idempotent)"
    )
    args = parser.parse_args(argv)
    if args.command in ("backup", "restore"):
        run_backup_command(args)
        return

    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"tams-api: bad configuration: {describe(error)}")
    try:
        if args.command == "provision":
            from . import provision

            provisioned = getattr(provision, f"provision_{args.target}")(settings)
            print(f"tams-api: {provisioned}")
            return
        if args.command == "migrate":
            from .app import open_metadata

            store = open_metadata(settings)  # opening a store creates or migrates its schema
            store.close()
            print(f"tams-api: {store.schema_upgrade}")
            return
        if args.command == "worker":
            run_worker(settings, args.log_level or settings.log_level)
            return
        log_level = args.log_level or settings.log_level
        if settings.workers > 1:
            from .serving import serve_processes

            serve_processes(settings, args.host, args.port, log_level)
            return
        from .app import create_app
        from .coalescing import CoalescingHttpToolsProtocol
        from .serving import freeze_startup

        app = create_app(settings)
        freeze_startup()
    except ConfigurationError as error:
        sys.exit(f"tams-api: bad configuration: {error}")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=log_level,
        access_log=settings.access_log,
        http=CoalescingHttpToolsProtocol,
    )


def run_backup_command(args: argparse.Namespace) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from .backup import BackupError, back_up, restore

    try:
        settings = Settings()
        location = BackupSettings()
    except ValidationError as error:
        prefix = "TAMS_BACKUP_" if error.title == BackupSettings.__name__ else "TAMS_"
        sys.exit(f"tams-api: bad configuration: {describe(error, prefix)}")
    try:
        if args.command == "restore":
            print(f"tams-api: {restore(settings, location)}")
            return
        summary = json.dumps(back_up(settings, location), separators=(",", ":"))
    except ConfigurationError as error:
        sys.exit(f"tams-api: bad configuration: {error}")
    except BackupError as error:
        sys.exit(f"tams-api: {error}")
    except (ClientError, BotoCoreError) as error:
        sys.exit(f"tams-api: {location.url}: {error}")
    print(summary)
    if args.summary_file:
        args.summary_file.write_text(summary)


def describe(error: ValidationError, prefix: str = "TAMS_") -> str:
    """Settings errors in one line, each after the setting it is about (checks across settings name theirs)."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        setting = "_".join(map(str, item["loc"])).upper()
        problems.append(f"{prefix}{setting}: {message}" if setting else message)
    return "; ".join(problems)


def run_worker(settings: Settings, log_level: str) -> None:
    """Work until SIGTERM or SIGINT, then finish the step under way and stop."""
    from prometheus_client import start_http_server

    from .app import open_services
    from .worker import Worker

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = open_services(settings)
    if settings.worker_metrics_port:
        # Webhook deliveries are counted where the worker runs; the store's gauges come from the API's /metrics.
        start_http_server(settings.worker_metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Worker(services.store, services.media, settings).run(stop)

    try:
        asyncio.run(main())
    finally:
        services.store.close()


if __name__ == "__main__":
    main()
