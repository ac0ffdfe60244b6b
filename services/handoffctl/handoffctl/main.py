"""handoffctl: the command line for handoffs; one command per HandoffService, SlaService and
NotificationService call, plus `watch`.

Commands live in modules by subject (handoffs, customers, sla, notifications, silences); this module
builds the app and lists them in the order `--help` shows them.
"""

from __future__ import annotations

import typer

from handoffctl import customers, dlq, handoffs, importing, notifications, report, silences, sla

# One line per paragraph: rich re-wraps help text to the terminal's width.
HELP = """Track handoffs between contact-centre departments: open legs, move them through their states, read them, record customer contacts, read SLA clocks, scorecards and breaches, watch, list and acknowledge notifications, and silence them.

Commands reach the handoff service at --handoff (or HANDOFF_GRPC; default 127.0.0.1:50051); `sla`, `scorecard` and `breaches` the sla service at --sla (or SLA_GRPC; default 127.0.0.1:50052); `watch`, `notifications`, `ack --notification` and `silence` the notify service at --notify (or NOTIFY_GRPC; default 127.0.0.1:50053). `ack` acknowledges a leg; `ack --notification` a notification. Every command needs --token (or HANDOFF_TOKEN); --ca (or HANDOFF_CA) turns on TLS. Output is a table, or JSON with --json. A failed call prints `error CODE: details` on stderr and exits 1.

Examples:

  export HANDOFF_TOKEN=dev-token-agent

  handoffctl create --department billing --case CASE-1 --customer-id cust-042

  handoffctl ack HANDOFF_ID --token dev-token-billing

  handoffctl status HANDOFF_ID in-progress --note "called the bank"

  handoffctl transfer HANDOFF_ID --to claims --reason "needs a claim"

  handoffctl list --department billing --status open --breached --all

  handoffctl contact --customer-id cust-042 --channel call --case CASE-1

  handoffctl timeline --customer-id cust-042 --json

  handoffctl sla HANDOFF_ID

  handoffctl scorecard --department billing --from 2025-03-01 --to 2025-04-01 --token dev-token-billing

  handoffctl breaches --department billing --since 2025-03-01 --all

  handoffctl report --from 2025-03-01 --to 2025-04-01 --out chargeback.html --token dev-token-admin

  handoffctl watch billing --count 1

  handoffctl watch billing --cursor CURSOR

  handoffctl notifications --department billing --token dev-token-billing

  handoffctl ack --notification NOTIFICATION_ID --token dev-token-billing

  handoffctl silence add --match department=billing --match 'priority=~"HIGH|URGENT"' --for 2h --comment "known outage" --token dev-token-admin

  handoffctl silence list --all

  handoffctl silence expire SILENCE_ID

  handoffctl import --handoffs legs.csv --contacts contacts.csv --kafka-bootstrap 127.0.0.1:9092

  handoffctl dlq list --topic contacts.v1 --since 2025-03-01T00:00:00Z
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)

COMMANDS = {
    "create": handoffs.create,
    "ack": handoffs.ack,
    "status": handoffs.status,
    "priority": handoffs.priority,
    "transfer": handoffs.transfer,
    "resolve": handoffs.resolve,
    "reopen": handoffs.reopen,
    "cancel": handoffs.cancel,
    "get": handoffs.get,
    "list": handoffs.list_handoffs,
    "contact": customers.contact,
    "timeline": customers.timeline,
    "sla": sla.sla,
    "scorecard": sla.scorecard,
    "breaches": sla.breaches,
    "report": report.report,
    "watch": notifications.watch,
    "notifications": notifications.notifications,
    "import": importing.import_history,
}
for name, command in COMMANDS.items():
    app.command(name)(command)
app.add_typer(silences.app, name="silence")
app.add_typer(dlq.app, name="dlq")


if __name__ == "__main__":
    app()
