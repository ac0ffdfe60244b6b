"""NotificationService requests -> checked values (INVALID_ARGUMENT names the field), and
the small rules the servicer applies: whose silence a department sees, page tokens.

Ids a request creates derive from the caller and its request id, so a retried
CreateSilence names the same silence while two callers never share one.
"""

from __future__ import annotations

from datetime import datetime

from common import request_fields
from common import validation as check
from common.ids import derived_event_id
from notify.adapters.api_codec import matcher_from_pb
from notify.adapters.notification_store import ListKey
from notify.domain.routing import LABELS, InvalidMatcher, Matcher
from notify.domain.silences import Silence, new_silence

MAX_COMMENT = 1000
MAX_MATCHERS = 20
DEFAULT_PAGE, MAX_PAGE = request_fields.DEFAULT_PAGE, request_fields.MAX_PAGE
page_size = request_fields.page_size


def request_id(request) -> str:
    return check.identifier("request_id", request.request_id)


def silence_id_for(actor: str, request_id_: str) -> str:
    """The id of the silence that request `request_id_` of `actor` creates."""
    return derived_event_id("silence", actor, request_id_)


def acknowledgement_event_id(actor: str, request_id_: str) -> str:
    """The event id of the acknowledgement request `request_id_` of `actor` writes."""
    return derived_event_id("acknowledge", actor, request_id_)


def matchers(request) -> tuple[Matcher, ...]:
    """The request's matchers; each must name a notification label and be well formed."""
    if len(request.matchers) > MAX_MATCHERS:
        raise check.InvalidField("matchers", f"{len(request.matchers)} given; at most {MAX_MATCHERS}")
    parsed = []
    for index, message in enumerate(request.matchers):
        if message.label not in LABELS:
            raise check.InvalidField(f"matchers[{index}].label", f"{message.label!r} is not one of {', '.join(LABELS)}")
        try:
            parsed.append(matcher_from_pb(message))
        except InvalidMatcher as error:
            raise check.InvalidField(f"matchers[{index}].value", str(error)) from None
    return tuple(parsed)


def new_silence_from(request, silence_id: str, actor: str, now: datetime) -> Silence:
    """The silence a CreateSilenceRequest asks for (InvalidField/InvalidSilence name the field)."""
    ends_at = request_fields.instant(request, "ends_at")
    if ends_at is None:
        raise check.InvalidField("ends_at", "is required: a silence must end")
    return new_silence(
        silence_id,
        matchers(request),
        request_fields.instant(request, "starts_at"),
        ends_at,
        actor,
        check.text("comment", request.comment, MAX_COMMENT, required=True),
        now,
    )


def concerns_department(silence: Silence, department: str) -> bool:
    """Whether the silence pins `department`: a positive matcher on department accepts it,
    and no department matcher refuses it."""
    on_department = [m for m in silence.matchers if m.label == "department"]
    labels = {"department": department}
    return any(not m.is_negative for m in on_department) and all(m.matches(labels) for m in on_department)


def encode_page_token(key: ListKey) -> str:
    """An opaque token for the page after the notification `key`."""
    occurred_at, notification_id = key
    return request_fields.encode_page_token(occurred_at.isoformat(), notification_id)


def _list_key(parts: list[str]) -> ListKey:
    occurred_at, notification_id = parts
    key = (datetime.fromisoformat(occurred_at), notification_id)
    if key[0].tzinfo is None or not notification_id:
        raise ValueError("not a notification's key")
    return key


def decode_page_token(token: str) -> ListKey | None:
    """The key an `encode_page_token` token names; None for no token; InvalidField otherwise."""
    return request_fields.decode_page_token(token, _list_key)
