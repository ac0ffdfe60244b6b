"""`handoffctl import`: historical handoffs and contacts from CSV, straight onto Kafka."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from aiokafka.errors import KafkaError

from common.kafkaio import MissingTopic
from common.kafkasecurity import kafka_security
from common.settings import SettingsError
from handoff_svc.entrypoints.importer import ImportInterrupted, ImportRejected, import_files

errors = Console(stderr=True, highlight=False)

Handoffs = Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, readable=True,
                                                  help="CSV of legs, one row per leg.")]
Contacts = Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, readable=True,
                                                  help="CSV of contacts, one row per contact.")]


def import_history(
    handoffs: Handoffs = None,
    contacts: Contacts = None,
    kafka_bootstrap: Annotated[
        str, typer.Option("--kafka-bootstrap", envvar="KAFKA_BOOTSTRAP", help="Kafka to write to (host:port).")
    ] = "127.0.0.1:9092",
    customer_ref_key: Annotated[
        str, typer.Option(envvar="CUSTOMER_REF_KEY", help="Key that pseudonymises a customer_id column.")
    ] = "",
    quiet: Annotated[bool, typer.Option("--quiet", metavar="", help="No progress bar.")] = False,
    notify: Annotated[bool, typer.Option(
        "--notify", metavar="",
        help="Have notify deliver the imported legs' warnings and breaches however old they are "
             "(without it, those older than NOTIFY_HISTORY_AGE are recorded, not delivered).")] = False,
) -> None:
    """Import historical legs (--handoffs) and contacts (--contacts) from CSV files.

    Every row of both files is checked first; if any is bad, nothing is written and each problem is listed as file:line: column: reason. Events keep their original times, so the SLA engine can replay them on event time. Re-running an import is safe. Formats: docs/csv-import.md.
    """
    if handoffs is None and contacts is None:
        raise typer.BadParameter("give --handoffs, --contacts or both")
    key = customer_ref_key.encode() or None
    try:
        security = kafka_security()  # KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*, as the services
    except SettingsError as error:
        errors.print(f"[red]error[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    try:
        report = asyncio.run(_cancellable(import_files(kafka_bootstrap, handoffs, contacts, customer_ref_key=key,
                                                       progress=not quiet, security=security,
                                                       notify=notify)))
    except ImportRejected as rejected:
        for line in rejected.listing():
            errors.print(line, markup=False)  # rows are echoed; [..] in them is not markup
        errors.print(f"[red]error[/red] {rejected}")
        raise typer.Exit(1) from None
    except ImportInterrupted as interrupted:
        errors.print(f"[red]error[/red] {interrupted}")
        raise typer.Exit(1) from None
    except (MissingTopic, KafkaError, ValueError) as error:
        errors.print(f"[red]error[/red] {type(error).__name__}: {error}; nothing was written", markup=False)
        raise typer.Exit(1) from None
    print(report)


async def _cancellable(work):
    """Run `work`, turning SIGTERM into a cancellation (reported as ImportInterrupted)."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task
