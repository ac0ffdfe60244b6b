"""Which targets each kind of gateway accepts: one check per kind, named after its field."""

from __future__ import annotations

from collections.abc import Callable

from gateways.domain.delivery import Delivery, check_delivery
from gateways.domain.logline import log_target
from gateways.domain.mail import recipients
from gateways.domain.webhook import webhook_url

_TARGET_CHECKS: dict[str, Callable[[str, str], object]] = {
    "webhook": webhook_url,
    "email": recipients,
    "log": log_target,
}


def valid_delivery(kind: str, delivery: Delivery) -> Delivery:
    """The delivery when a `kind` gateway can make it; else InvalidField naming the field."""
    check_delivery(kind, delivery)
    _TARGET_CHECKS[kind]("target", delivery.target)
    return delivery
