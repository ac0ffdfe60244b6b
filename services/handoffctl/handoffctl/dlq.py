"""`handoffctl dlq list|show|replay`: the dead letters of every topic, read and replayed straight on Kafka.

Dead letters are records a consumer could not process, kept in `<topic>.dlq` with the reason
in their headers (docs/operations.md). After the cause is fixed, `replay` sends chosen
records back to their source topic, each once (handoffctl.deadletters says how).
"""

from __future__ import annotations

import base64
import getpass
import json
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from common.codec import MalformedRecord, decode
from common.kafkasecurity import kafka_security
from common.settings import SettingsError
from common.topics import CATALOGUE
from handoffctl.deadletters import SOURCE_TOPICS, DeadLetter, DeadLetterError, DeadLetterQueue, Filter, parse_id
from handoffctl.options import AsJson, timestamp
from handoffctl.fit import Column
from handoffctl.output import cells, console, fields_table, short_time, show_rows

HELP = """Read dead letters (records a consumer could not process, kept in <topic>.dlq with the reason) and replay them to their source topic once the cause is fixed. These commands talk to Kafka directly (--kafka-bootstrap, KAFKA_BOOTSTRAP and the services' KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* settings), not to a service.

Examples:

  handoffctl dlq list --topic contacts.v1 --since 2025-03-01T00:00:00Z --reason "unknown department"

  handoffctl dlq show contacts.v1.dlq:2:15

  handoffctl dlq replay contacts.v1.dlq:2:15 contacts.v1.dlq:2:16

  handoffctl dlq replay --topic contacts.v1 --consumer handoff-sla --all-matching
"""

app = typer.Typer(help=HELP, short_help="List, show and replay dead letters (<topic>.dlq).",
                  no_args_is_help=True, add_completion=False)
errors = Console(stderr=True, highlight=False)
_SPECS = {spec.name: spec for spec in CATALOGUE}

Bootstrap = Annotated[
    str, typer.Option("--kafka-bootstrap", envvar="KAFKA_BOOTSTRAP", help="Kafka to read (host:port).")
]
Topics = Annotated[Optional[list[str]], typer.Option(
    "--topic", help=f"Source topic (repeatable): {', '.join(SOURCE_TOPICS)}. Default: all.")]
ConsumerName = Annotated[str, typer.Option("--consumer", help="Only records this consumer group dead-lettered.")]
Since = Annotated[str, typer.Option("--since", help="Only records dead-lettered at or after this ISO 8601 time.")]
Until = Annotated[str, typer.Option("--until", help="Only records dead-lettered before this ISO 8601 time.")]
Reason = Annotated[str, typer.Option("--reason", help="Only records whose reason contains this text (any case).")]


def _filter(topics: list[str] | None, consumer: str, since: str, until: str, reason: str) -> Filter:
    unknown = sorted(set(topics or ()) - set(SOURCE_TOPICS))
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: not a topic of the catalogue ({', '.join(SOURCE_TOPICS)})",
                                 param_hint="--topic")
    bounds = [timestamp(text, option) for text, option in ((since, "--since"), (until, "--until"))]
    start, end = (bound.ToDatetime(tzinfo=timezone.utc) if bound else None for bound in bounds)
    return Filter(tuple(topics or ()), consumer, start, end, reason)


def _queue(bootstrap: str) -> DeadLetterQueue:
    try:
        return DeadLetterQueue(bootstrap, kafka_security().librdkafka())
    except SettingsError as error:
        errors.print(f"[red]error[/red] {escape(str(error))}")
        raise typer.Exit(2) from None


def _fail(error: Exception) -> typer.Exit:
    errors.print(f"[red]error[/red] {error}", markup=False)
    return typer.Exit(1)


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _plain(letter: DeadLetter, with_value: bool = False) -> dict:
    """A dead letter as JSON (docs/cli-json.md): times RFC 3339, bytes base64, unset as null."""
    plain = {
        "id": letter.id, "dlq_topic": letter.dlq_topic, "partition": letter.partition, "offset": letter.offset,
        "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
        "dead_lettered_at": _time(letter.timestamp), "source_topic": letter.source_topic,
        "source_partition": letter.source_partition, "source_offset": letter.source_offset,
        "consumer": letter.consumer, "reason": letter.reason,
        "replayed": letter.replay is not None,
        "replayed_at": _time(letter.replay.at if letter.replay else None),
        "replayed_by": letter.replay.by if letter.replay else "",
    }
    if with_value:
        plain["value_base64"] = base64.b64encode(letter.value).decode() if letter.value is not None else None
        plain["decoded"] = _decoded(letter)
    return plain


def _decoded(letter: DeadLetter) -> str | None:
    """The value as protobuf text when it decodes as its topic's type, else None."""
    if letter.source_topic not in _SPECS:
        return None
    try:
        return str(decode(_SPECS[letter.source_topic], letter.value))
    except MalformedRecord:
        return None


def _status(letter: DeadLetter) -> Text:
    if letter.replay is None:
        return Text("waiting", style="yellow")
    return Text(f"replayed {_time(letter.replay.at)}", style="dim")


DEAD_LETTER_COLUMNS = (Column("id"), Column("dead lettered", 2, short=short_time), Column("consumer", 3),
                       Column("status", 1), Column("reason", flexible=True))


def _table(letters: list[DeadLetter], title: str) -> None:
    show_rows(title, DEAD_LETTER_COLUMNS,
              [cells((letter.id, _time(letter.timestamp) or "", letter.consumer, _status(letter),
                      letter.reason.splitlines()[0] if letter.reason else "")) for letter in letters])


@app.command("list")
def list_letters(
    topic: Topics = None, consumer: ConsumerName = "", since: Since = "", until: Until = "", reason: Reason = "",
    kafka_bootstrap: Bootstrap = "127.0.0.1:9092", as_json: AsJson = False,
) -> None:
    """List dead letters, oldest first per partition, with whether each was replayed."""
    chosen = _filter(topic, consumer, since, until, reason)
    try:
        letters = [letter for letter in _queue(kafka_bootstrap).read(chosen.topics or SOURCE_TOPICS)
                   if chosen.matches(letter)]
    except DeadLetterError as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps({"dead_letters": [_plain(letter) for letter in letters]}, indent=2))
        return
    _table(letters, f"{len(letters)} dead letters")


@app.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="<topic>.dlq:<partition>:<offset>, as `list` shows.")],
    kafka_bootstrap: Bootstrap = "127.0.0.1:9092", as_json: AsJson = False,
) -> None:
    """One dead letter: where it came from, why, its key and value (decoded when it can be)."""
    try:
        place = parse_id(letter_id)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="ID") from None
    try:
        found = [letter for letter in _queue(kafka_bootstrap).read([place[0].removesuffix(".dlq")])
                 if (letter.dlq_topic, letter.partition, letter.offset) == place]
    except DeadLetterError as error:
        raise _fail(error) from None
    if not found:
        raise _fail(DeadLetterError(f"no dead letter {letter_id}"))
    plain = _plain(found[0], with_value=True)
    if as_json:
        print(json.dumps(plain, indent=2))
        return
    rows = [(name, "" if value is None else str(value)) for name, value in plain.items() if name != "decoded"]
    console.print(fields_table(f"dead letter {letter_id}", rows))
    console.print(plain["decoded"] or "(the value does not decode as its topic's type)", markup=False)


@app.command("replay")
def replay(
    ids: Annotated[Optional[list[str]], typer.Argument(metavar="[ID]...", help="Dead letters to replay.")] = None,
    topic: Topics = None, consumer: ConsumerName = "", since: Since = "", until: Until = "", reason: Reason = "",
    all_matching: Annotated[bool, typer.Option(
        "--all-matching", metavar="", help="Replay every dead letter the filters match (instead of IDs).")] = False,
    by: Annotated[str, typer.Option("--by", help="Who replays, for the audit headers. Default: the login name.")] = "",
    kafka_bootstrap: Bootstrap = "127.0.0.1:9092", as_json: AsJson = False,
) -> None:
    """Send dead letters back to their source topic, each once: a record already replayed is skipped.

    The replayed record carries the headers dlq.replayed-from (its ID), dlq.replayed-by and dlq.replayed-at.
    """
    if bool(ids) == all_matching:
        raise typer.BadParameter("give IDs, or filters with --all-matching", param_hint="ID / --all-matching")
    chosen = _filter(topic, consumer, since, until, reason)
    queue = _queue(kafka_bootstrap)
    try:
        for text in ids or ():
            parse_id(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="ID") from None
    try:
        if all_matching:
            ids = [letter.id for letter in queue.read(chosen.topics or SOURCE_TOPICS)
                   if chosen.matches(letter) and letter.replay is None]
        replayed, skipped = queue.replay(ids or [], by or getpass.getuser(), datetime.now(timezone.utc))
    except DeadLetterError as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps({"replayed": [_plain(letter) for letter in replayed],
                          "skipped": [_plain(letter) for letter in skipped]}, indent=2))
        return
    _table(replayed, f"{len(replayed)} replayed")
    if skipped:
        _table(skipped, f"{len(skipped)} skipped: already replayed")
