"""handoffctl against the running services: every HandoffService command through the CLI,
run in-process with CliRunner, its JSON output read back; errors exit 1 with the gRPC code."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import Result
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from typer.testing import CliRunner

from devstack.stack import ADMIN_TOKEN, AGENT_TOKEN, Stack
from handoffctl.main import app
from tests.support import admin_channel, pseudonym, running_stack, unique, wait_for

pytestmark = pytest.mark.e2e

BILLING_TOKEN, CLAIMS_TOKEN = "dev-token-billing", "dev-token-claims"

Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("handoffctl")) as stack:
        yield stack


@pytest.fixture(scope="module")
def cli(stack: Stack) -> Cli:
    """`cli(*args, token=...)`: handoffctl run in-process against the stack."""
    runner = CliRunner()
    env = {
        "HANDOFF_GRPC": stack.services["handoff"].grpc,
        "NOTIFY_GRPC": stack.services["notify"].grpc,
        "HANDOFF_CA": None,
        # Wide enough that tables never fold an id.
        "COLUMNS": "200",
    }

    def run(*args: str, token: str | None = AGENT_TOKEN) -> Result:
        return runner.invoke(app, list(args), env={**env, "HANDOFF_TOKEN": token})

    return run


def ok(cli: Cli, *args: str, token: str | None = AGENT_TOKEN) -> dict:
    """The JSON a successful command prints."""
    result = cli(*args, "--json", token=token)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def failed(cli: Cli, *args: str, token: str | None = AGENT_TOKEN) -> str:
    """The stderr of a command that must fail with exit 1."""
    result = cli(*args, token=token)
    assert result.exit_code == 1, f"{args}: exit {result.exit_code}\n{result.stdout}{result.stderr}"
    assert result.stdout == ""
    return result.stderr


def create(cli: Cli, department: str = "billing", *extra: str, customer: str | None = None) -> dict:
    return ok(cli, "create", "--department", department, "--case", unique("case"),
              "--customer", customer or pseudonym(), *extra)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_leg_lives_through_every_command(cli) -> None:
    # given a leg an agent hands to billing
    leg = create(cli, "billing", "--priority", "high", "--category", "refund", "--summary", "refund missing")
    handoff_id = leg["handoff_id"]
    assert (leg["department"], leg["status"], leg["priority"]) == ("billing", "open", "high")
    assert (leg["category"], leg["summary"], leg["created_by"]) == ("refund", "refund missing", "agent-ada")
    # then get reads it back
    read = ok(cli, "get", handoff_id)
    assert read | {"breached": False} == leg | {"breached": False}  # the 3 s ack target may have passed
    # when billing works it: ack, start, wait on the customer, start again, escalate
    acknowledged = ok(cli, "ack", handoff_id, token=BILLING_TOKEN)
    assert acknowledged["status"] == "acknowledged" and acknowledged["acknowledged_at"]
    for typed, expected in [("in-progress", "IN_PROGRESS"), ("waiting-on-customer", "WAITING_ON_CUSTOMER"),
                            ("in-progress", "IN_PROGRESS")]:
        changed = ok(cli, "status", handoff_id, typed, "--note", f"now {typed}", token=BILLING_TOKEN)
        assert changed["status"] == expected.lower()
    assert ok(cli, "priority", handoff_id, "urgent", token=BILLING_TOKEN)["priority"] == "urgent"
    # and transfers it to claims
    moved = ok(cli, "transfer", handoff_id, "--to", "claims", "--reason", "needs a claim", token=BILLING_TOKEN)
    ended, opened = moved["ended"], moved["opened"]
    assert (ended["handoff_id"], ended["status"], ended["next_handoff_id"]) == (
        handoff_id, "transferred", opened["handoff_id"])
    assert (opened["department"], opened["status"], opened["previous_handoff_id"]) == (
        "claims", "open", handoff_id)
    assert (opened["priority"], opened["summary"], opened["case_id"]) == (
        "urgent", "needs a claim", leg["case_id"])
    # then claims lists the new leg, and only claims legs
    listed = ok(cli, "list", "--department", "claims", token=CLAIMS_TOKEN)["handoffs"]
    assert opened["handoff_id"] in [row["handoff_id"] for row in listed]
    assert {row["department"] for row in listed} == {"claims"}
    # when claims resolves it, it is reopened and then cancelled
    resolved = ok(cli, "resolve", opened["handoff_id"], "--resolution", "claim paid", token=CLAIMS_TOKEN)
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    reopened = ok(cli, "reopen", opened["handoff_id"], "--reason", "paid twice", token=CLAIMS_TOKEN)
    assert (reopened["status"], reopened["reopen_count"]) == ("reopened", 1)
    assert reopened["resolved_at"] is None
    cancelled = ok(cli, "cancel", opened["handoff_id"], "--reason", "raised in error", token=CLAIMS_TOKEN)
    assert cancelled["status"] == "cancelled"
    # then both legs read back in their final state
    assert ok(cli, "get", handoff_id)["status"] == "transferred"
    assert ok(cli, "get", opened["handoff_id"])["status"] == "cancelled"


def test_a_retried_command_with_the_same_request_id_changes_nothing_twice(cli) -> None:
    request_id = str(uuid.uuid4())
    args = ("create", "--department", "billing", "--case", unique("case"), "--customer", pseudonym(),
            "--request-id", request_id)
    first, second = ok(cli, *args), ok(cli, *args)
    assert second["handoff_id"] == first["handoff_id"]
    moved = ok(cli, "transfer", first["handoff_id"], "--to", "claims", "--request-id", request_id)
    again = ok(cli, "transfer", first["handoff_id"], "--to", "claims", "--request-id", request_id)
    assert again["opened"]["handoff_id"] == moved["opened"]["handoff_id"]
    # without --request-id each run is a new request: the leg is already transferred
    assert "error FAILED_PRECONDITION:" in failed(cli, "transfer", first["handoff_id"], "--to", "claims")


def test_create_takes_a_raw_customer_id_and_an_event_time(cli) -> None:
    at = (datetime.now(timezone.utc) - timedelta(minutes=10)).replace(microsecond=0)
    leg = ok(cli, "create", "--department", "billing", "--case", unique("case"),
             "--customer-id", f"raw {uuid.uuid4()}", "--at", at.isoformat())
    assert leg["customer_ref"].startswith("c-")
    assert instant(leg["created_at"]) == at


def test_list_pages_follow_the_token_and_filter_by_status_and_breach(cli) -> None:
    # given three legs of one department, the first acknowledged at once
    department = unique("accounts")
    legs = [create(cli, department)["handoff_id"] for _ in range(3)]
    ok(cli, "ack", legs[0], token=ADMIN_TOKEN)
    # when listed two at a time
    first = ok(cli, "list", "--department", department, "--page-size", "2", token=ADMIN_TOKEN)
    second = ok(cli, "list", "--department", department, "--page-size", "2",
                "--page-token", first["next_page_token"], token=ADMIN_TOKEN)
    every = ok(cli, "list", "--department", department, "--page-size", "2", "--all", token=ADMIN_TOKEN)
    # then pages follow creation order and --all reads them all
    assert [row["handoff_id"] for row in first["handoffs"] + second["handoffs"]] == legs
    assert second["next_page_token"] == ""
    assert [row["handoff_id"] for row in every["handoffs"]] == legs and every["next_page_token"] == ""
    # and filters select by status and by breach (the open legs breach their 3 s ack target)
    opened = ok(cli, "list", "--department", department, "--status", "open", token=ADMIN_TOKEN)
    assert [row["handoff_id"] for row in opened["handoffs"]] == legs[1:]

    def breached() -> list[str]:
        page = ok(cli, "list", "--department", department, "--breached", token=ADMIN_TOKEN)
        return [row["handoff_id"] for row in page.get("handoffs", [])]

    assert wait_for(lambda: breached() == legs[1:], timeout=30)
    calm = ok(cli, "list", "--department", department, "--not-breached", token=ADMIN_TOKEN)
    assert [row["handoff_id"] for row in calm["handoffs"]] == legs[:1]


def test_contacts_and_legs_make_one_timeline_in_time_order(cli) -> None:
    # given a contact an hour ago, then a handoff, then a contact now
    customer = pseudonym()
    earlier = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)
    first = ok(cli, "contact", "--customer", customer, "--channel", "call", "--reason", "refund missing",
               "--at", earlier.isoformat())
    assert (first["channel"], first["customer_ref"], instant(first["contacted_at"])) == (
        "call", customer, earlier)
    leg = create(cli, "billing", customer=customer)
    second = ok(cli, "contact", "--customer", customer, "--channel", "chat", "--case", leg["case_id"])
    assert second["case_id"] == leg["case_id"]
    # when the timeline is read
    timeline = ok(cli, "timeline", "--customer", customer)
    # then it holds the three in time order
    assert timeline["customer_ref"] == customer
    entries = [(entry.get("contact") or entry["handoff"]) for entry in timeline["entries"]]
    assert [e.get("contact_id") or e.get("handoff_id") for e in entries] == [
        first["contact_id"], leg["handoff_id"], second["contact_id"]]
    times = [instant(entry["at"]) for entry in timeline["entries"]]
    assert times == sorted(times)


def test_a_raw_customer_id_names_the_same_customer_everywhere(cli) -> None:
    raw = f"crm-{uuid.uuid4()}"
    contact = ok(cli, "contact", "--customer-id", raw, "--channel", "email")
    leg = ok(cli, "create", "--department", "billing", "--case", unique("case"), "--customer-id", raw)
    timeline = ok(cli, "timeline", "--customer-id", raw)
    assert contact["customer_ref"] == leg["customer_ref"] == timeline["customer_ref"]
    assert raw not in json.dumps(timeline)
    assert len(timeline["entries"]) == 2


def test_tables_show_what_json_shows(cli) -> None:
    leg = create(cli, "billing", "--summary", "refund [missing]")
    shown = cli("get", leg["handoff_id"])
    assert shown.exit_code == 0
    assert leg["handoff_id"] in shown.stdout and "open" in shown.stdout
    assert "refund [missing]" in shown.stdout  # user text, not rich markup
    moved = cli("transfer", leg["handoff_id"], "--to", "claims", token=BILLING_TOKEN)
    assert moved.exit_code == 0 and "ended leg" in moved.stdout and "opened leg" in moved.stdout
    listed = cli("list", "--department", "claims", "--page-size", "1", token=CLAIMS_TOKEN)
    assert listed.exit_code == 0 and "more: --page-token" in listed.stdout
    timeline = cli("timeline", "--customer", leg["customer_ref"])
    assert timeline.exit_code == 0 and leg["handoff_id"] in timeline.stdout and "billing" in timeline.stdout


def test_an_unknown_leg_is_not_found(cli) -> None:
    assert failed(cli, "get", "no-such-leg").startswith("error NOT_FOUND: handoff no-such-leg not found")
    assert failed(cli, "ack", "no-such-leg", token=ADMIN_TOKEN).startswith("error NOT_FOUND:")


def test_a_bad_department_is_invalid_argument_naming_the_field(cli) -> None:
    error = failed(cli, "create", "--department", "Billing Dept", "--case", "C-1", "--customer", pseudonym())
    assert error.startswith("error INVALID_ARGUMENT: department:")


def test_no_token_is_unauthenticated_with_a_hint(cli) -> None:
    error = failed(cli, "list", token=None)
    assert error.startswith("error UNAUTHENTICATED:")
    assert "HANDOFF_TOKEN" in error


def test_another_departments_leg_is_permission_denied(cli) -> None:
    leg = create(cli, "billing")
    assert failed(cli, "ack", leg["handoff_id"], token=CLAIMS_TOKEN).startswith("error PERMISSION_DENIED:")


def test_a_command_the_state_forbids_is_a_failed_precondition_naming_the_state(cli) -> None:
    leg = create(cli, "billing")
    error = failed(cli, "reopen", leg["handoff_id"], token=BILLING_TOKEN)
    assert error.startswith("error FAILED_PRECONDITION:") and "OPEN" in error


def test_naming_the_customer_twice_is_a_usage_error(cli) -> None:
    result = cli("timeline", "--customer", "cust-1", "--customer-id", "raw-1")
    assert result.exit_code == 2 and "exactly one" in result.stderr


def test_watch_prints_a_breach_as_a_json_line(cli, stack) -> None:
    # given a watcher on a fresh department
    department = unique("claims")
    results: list[Result] = []
    watcher = threading.Thread(
        target=lambda: results.append(cli("watch", department, "--count", "1", "--json", token=ADMIN_TOKEN)),
        daemon=True,
    )
    watcher.start()
    threading.Event().wait(1.5)  # the stream starts at the end; let it attach
    # when a leg of that department goes unacknowledged past its 3 s target
    with admin_channel(stack.services["handoff"].grpc) as channel:
        leg = api_grpc.HandoffServiceStub(channel).CreateHandoff(api.CreateHandoffRequest(
            request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(), department=department,
        ), timeout=10)
    watcher.join(timeout=30)
    # then watch printed its breach notification with a cursor and stopped
    assert results and results[0].exit_code == 0, results and results[0].stderr
    line = json.loads(results[0].stdout.strip())
    assert (line["handoff_id"], line["department"], line["kind"]) == (
        leg.handoff_id, department, "breach")
    assert line["cursor"]
