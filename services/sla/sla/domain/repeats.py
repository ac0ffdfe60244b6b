"""Repeat contacts: a customer contacting again, attributed to the leg that made them call.

A contact repeats the customer's most recent earlier contact when that one lies more than
`transfer_grace` and at most `window` before it (within the grace it is the same
interaction, passed on). The repeat is blamed on one leg: the most recently created leg
open at the contact, else the most recently resolved leg resolved within the window, among
the legs of the contact's case when that case has live legs, else among all the customer's
legs. Its cause says whether the customer called because the leg had breached (avoidable
failure demand), while it was still within its SLA, or after it was resolved.

Only legs live at the contact count: created by then and open, or ended within the window
before it. So pruning what is no longer live (`prune_legs`, `prune_contacts`) never
changes a later detection. Every function takes its instants as arguments.
"""

from __future__ import annotations

import re
from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from common.ids import derived_event_id

SLA_BREACHED, WITHIN_SLA, AFTER_RESOLUTION, UNATTRIBUTED = (
    "sla_breached", "within_sla", "after_resolution", "unattributed"
)
CAUSES = (SLA_BREACHED, WITHIN_SLA, AFTER_RESOLUTION, UNATTRIBUTED)
RESOLVED, REOPENED, TRANSFERRED, CANCELLED = "resolved", "reopened", "transferred", "cancelled"
CHANGES = (RESOLVED, REOPENED, TRANSFERRED, CANCELLED)
# The ContactChannel names, lower-case and without prefix (CONTACT_CHANNEL_CALL -> "call").
CHANNELS = ("call", "chat", "email", "messaging")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ZERO = timedelta(0)


class InvalidRules(ValueError):
    """Repeat rules out of bounds; `where` is the field (and channel) at fault; the field leads the message."""

    def __init__(self, reason: str, field_name: str, *below: object) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.where = (field_name, *below)


@dataclass(frozen=True)
class RepeatRules:
    """When a contact counts as a repeat, and what one costs per channel (in minor units)."""

    window: timedelta = timedelta(days=7)
    transfer_grace: timedelta = timedelta(minutes=15)
    currency: str = "EUR"
    # Left out of the hash: a dict is unhashable, and equal rules still hash alike.
    cost_per_contact: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # A private copy, so a caller changing its dict later cannot change frozen rules.
        object.__setattr__(self, "cost_per_contact", dict(self.cost_per_contact))
        if self.window <= _ZERO:
            raise InvalidRules(f"{self.window} must be longer than zero", "window")
        if not _ZERO <= self.transfer_grace < self.window:
            raise InvalidRules(f"{self.transfer_grace} must be at least zero and shorter than the window "
                               f"({self.window})", "transfer_grace")
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise InvalidRules(f"{self.currency!r} is not an ISO 4217 code such as EUR", "currency")
        # Read as what a file may hold: the checks below are what refuses anything else.
        costs: Mapping[str, object] = self.cost_per_contact
        for channel, cost in costs.items():
            if channel not in CHANNELS:
                raise InvalidRules(f"unknown channel {channel!r}; use {', '.join(CHANNELS)}", "cost_per_contact",
                                   channel)
            if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
                raise InvalidRules(f"{channel}: {cost!r} is not a whole, non-negative number of minor units",
                                   "cost_per_contact", channel)

    def cost_of(self, channel: str) -> int:
        """What one contact on `channel` costs, in minor units; 0 for a channel without a cost."""
        return self.cost_per_contact.get(channel, 0)


@dataclass(frozen=True)
class Contact:
    """One inbound customer interaction."""

    contact_id: str
    customer_ref: str
    case_id: str
    channel: str
    contacted_at: datetime


@dataclass(frozen=True)
class LegHistory:
    """What attribution needs to know of one leg."""

    handoff_id: str
    case_id: str
    department: str
    created_at: datetime
    # (instant, RESOLVED|REOPENED|TRANSFERRED|CANCELLED) in time order.
    changes: tuple[tuple[datetime, str], ...] = ()
    # The earliest instant any of the leg's clocks breached.
    breached_at: datetime | None = None

    def is_open_at(self, at: datetime) -> bool:
        """Created by `at` and not ended (resolved, transferred, cancelled) at `at`; a reopen opens it again."""
        return self.created_at <= at and self._ending_at(at) is None

    def resolved_at(self, at: datetime) -> datetime | None:
        """The resolution in force at `at` (resolved and not reopened since), else None."""
        ending = self._ending_at(at)
        return ending[0] if ending is not None and ending[1] == RESOLVED else None

    def ended_at(self, at: datetime) -> datetime | None:
        """When the ending in force at `at` (resolution, transfer or cancellation) happened, else None."""
        ending = self._ending_at(at)
        return None if ending is None else ending[0]

    def with_change(self, at: datetime, what: str) -> LegHistory:
        """This leg with `what` happened at `at`, kept in time order; a change already known is ignored."""
        if what not in CHANGES:
            raise ValueError(f"unknown change {what!r}; use {', '.join(CHANGES)}")
        if (at, what) in self.changes:
            return self
        changes = list(self.changes)
        # Changes at one instant keep their arrival order, which on one partition is the order they happened.
        insort(changes, (at, what), key=lambda change: change[0])
        return replace(self, changes=tuple(changes))

    def with_breach(self, at: datetime) -> LegHistory:
        """This leg with a clock breached at `at`; the earliest breach is kept."""
        if self.breached_at is not None and self.breached_at <= at:
            return self
        return replace(self, breached_at=at)

    def _ending_at(self, at: datetime) -> tuple[datetime, str] | None:
        """The change that ended the leg and is still in force at `at`, or None while open."""
        ending: tuple[datetime, str] | None = None
        for instant, what in self.changes:
            if instant > at:
                break
            if what == REOPENED:
                ending = None
            elif ending is None or ending[1] != what:
                # A resolution repeated without a reopen in between keeps its first instant.
                ending = (instant, what)
        return ending


@dataclass(frozen=True)
class RepeatContact:
    """A contact that repeats an earlier one, with its cause, its leg and what it cost."""

    event_id: str
    contact: Contact
    previous_contact_id: str
    cause: str
    leg: LegHistory | None
    cost_minor: int
    currency: str

    @property
    def avoidable(self) -> bool:
        """Did the customer call because the leg had already breached (failure demand)?"""
        return self.cause == SLA_BREACHED


def _recency(contact: Contact) -> tuple[datetime, str]:
    return contact.contacted_at, contact.contact_id


def previous_contact(contact: Contact, earlier: Iterable[Contact]) -> Contact | None:
    """The most recent other contact strictly before `contact` (ties: the greatest contact_id)."""
    before = [
        other
        for other in earlier
        if other.contact_id != contact.contact_id and other.contacted_at < contact.contacted_at
    ]
    return max(before, key=_recency, default=None)


def is_repeat_gap(gap: timedelta, rules: RepeatRules) -> bool:
    """Does a contact `gap` after the previous one repeat it (past the grace, within the window)?"""
    return rules.transfer_grace < gap <= rules.window


def _is_live(leg: LegHistory, at: datetime, rules: RepeatRules) -> bool:
    """Created by `at`, and open or ended at most the window before it."""
    if leg.created_at > at:
        return False
    ended = leg.ended_at(at)
    return ended is None or at - ended <= rules.window


def attribute(contact: Contact, legs: Iterable[LegHistory], rules: RepeatRules) -> tuple[str, LegHistory | None]:
    """The cause of a repeat contact and the leg it is blamed on (None when unattributed)."""
    at = contact.contacted_at
    live = [leg for leg in legs if _is_live(leg, at, rules)]
    of_case = [leg for leg in live if contact.case_id and leg.case_id == contact.case_id]
    scope = of_case or live
    open_legs = [leg for leg in scope if leg.is_open_at(at)]
    resolved = [leg for leg in scope if leg.resolved_at(at) is not None]
    if open_legs:
        cause, leg = WITHIN_SLA, max(open_legs, key=lambda leg: (leg.created_at, leg.handoff_id))
    elif resolved:
        cause, leg = AFTER_RESOLUTION, max(resolved, key=lambda leg: (leg.resolved_at(at), leg.created_at,
                                                                       leg.handoff_id))
    else:
        return UNATTRIBUTED, None
    # A clock breaches by running past its deadline: a contact at the breach's very instant came before it.
    if leg.breached_at is not None and leg.breached_at < at:
        cause = SLA_BREACHED
    return cause, leg


def detect(
    contact: Contact, earlier: Iterable[Contact], legs: Iterable[LegHistory], rules: RepeatRules
) -> RepeatContact | None:
    """The repeat `contact` makes of the customer's `earlier` contacts, or None when it is none."""
    previous = previous_contact(contact, earlier)
    if previous is None or not is_repeat_gap(contact.contacted_at - previous.contacted_at, rules):
        return None
    cause, leg = attribute(contact, legs, rules)
    return RepeatContact(
        event_id=derived_event_id(contact.contact_id, "repeat"),
        contact=contact,
        previous_contact_id=previous.contact_id,
        cause=cause,
        leg=leg,
        cost_minor=rules.cost_of(contact.channel),
        currency=rules.currency,
    )


def prune_contacts(contacts: Iterable[Contact], now: datetime, rules: RepeatRules) -> list[Contact]:
    """The contacts a contact from `now` on can still repeat (at most the window old), and always the latest.

    One per contact_id (a redelivered contact is kept once), in time order.
    """
    unique = sorted({contact.contact_id: contact for contact in contacts}.values(), key=_recency)
    return [c for i, c in enumerate(unique) if i == len(unique) - 1 or now - c.contacted_at <= rules.window]


def prune_legs(legs: Iterable[LegHistory], now: datetime, rules: RepeatRules) -> list[LegHistory]:
    """The legs a contact from `now` on can still be attributed to: open, or ended within the window."""
    # A leg that never changed is open from its creation on: always kept (the common case, checked inline).
    return [leg for leg in legs if not leg.changes or _may_be_live_from(leg, now, rules)]


def _may_be_live_from(leg: LegHistory, now: datetime, rules: RepeatRules) -> bool:
    # A change after `now` (out of order) may reopen the leg later, so such a leg stays too.
    if leg.created_at > now or (leg.changes and leg.changes[-1][0] > now):
        return True
    return _is_live(leg, now, rules)
