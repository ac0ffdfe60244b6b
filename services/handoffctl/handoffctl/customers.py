"""Commands about a customer: record an inbound contact, show the customer's timeline.

A customer is named by the pseudonymous `--customer` ref or by a raw `--customer-id`,
which the service turns into that ref with a keyed hash and never stores.
"""

from __future__ import annotations

from typing import Annotated

import typer
from handoff.v1 import handoff_service_pb2 as handoff_pb2

from handoffctl.client import call
from handoffctl.handoffs import DEFAULT_HANDOFF
from handoffctl.options import (
    AsJson,
    At,
    CaFile,
    ChannelName,
    Customer,
    CustomerId,
    HandoffAddress,
    RequestId,
    Token,
    Wide,
    channel_pb,
    idempotency_key,
    one_customer,
    timestamp,
)
from handoffctl.output import show_contact, show_timeline

def contact(
    channel: Annotated[ChannelName, typer.Option(help="How the customer got in touch.", show_default=False)],
    customer: Customer = "",
    customer_id: CustomerId = "",
    case: Annotated[str, typer.Option(help="Case the contact is about, if known.")] = "",
    reason: Annotated[str, typer.Option(help="Why the customer got in touch.")] = "",
    at: At = "",
    request_id: RequestId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Record that a customer contacted the centre (for repeat-contact tracking)."""
    key = idempotency_key(request_id)
    request = handoff_pb2.RecordContactRequest(
        request_id=key, case_id=case, channel=channel_pb(channel), reason=reason,
        contacted_at=timestamp(at), **one_customer(customer, customer_id),
    )
    show_contact(call(handoff, token, ca, "RecordContact", request, key), as_json)


def timeline(
    customer: Customer = "",
    customer_id: CustomerId = "",
    handoff: HandoffAddress = DEFAULT_HANDOFF,
    token: Token = "",
    ca: CaFile = None,
    as_json: AsJson = False,
    wide: Wide = False,
) -> None:
    """Show a customer's contacts and legs in time order."""
    request = handoff_pb2.GetCustomerTimelineRequest(**one_customer(customer, customer_id))
    show_timeline(call(handoff, token, ca, "GetCustomerTimeline", request), as_json, wide)
