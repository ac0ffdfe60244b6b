"""Send a notification as an e-mail through one SMTP relay with aiosmtplib."""

from __future__ import annotations

import asyncio
import logging

import aiosmtplib

from common.clock import Clock
from gateways.domain.delivery import Delivery, Rejected, Unavailable
from gateways.domain.mail import email_message, recipients, smtp_failure
from gateways.settings import SmtpSettings

log = logging.getLogger(__name__)


class SmtpChannel:
    """A connection per message: notifications are few, and a relay may drop idle sessions.
    At most `settings.connections` at once: the deliveries of a batch beyond them wait their
    turn, within their deadline."""

    def __init__(self, settings: SmtpSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._connections = asyncio.Semaphore(settings.connections)

    async def deliver(self, delivery: Delivery, timeout: float) -> str:
        """Hand the message to the relay; the receipt is its Message-ID."""
        to = recipients("target", delivery.target)
        message = email_message(delivery, self._settings.sender, to, self._clock.now())
        relay = f"{self._settings.host}:{self._settings.port}"
        try:
            # aiosmtplib's timeout is per command; wait_for bounds the whole transaction.
            refused, _reply = await asyncio.wait_for(self._send(message, [addr for _, addr in to], timeout), timeout)
        except aiosmtplib.SMTPRecipientsRefused as error:
            failures = [smtp_failure(r.code, f"for {r.recipient}: {r.message}") for r in error.recipients]
            raise next((f for f in failures if f.retryable), failures[0]) from None
        except aiosmtplib.SMTPResponseException as error:
            raise smtp_failure(error.code, error.message) from None
        except aiosmtplib.SMTPNotSupported as error:
            raise Rejected(f"SMTP relay {relay}: {error.message}") from None
        except (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError):
            raise Unavailable(f"SMTP relay {relay} did not finish within {timeout:.1f}s") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise Unavailable(f"SMTP relay {relay}: {error}") from None
        if refused:
            # Some recipients took the message; the others are reported, not retried.
            codes = ", ".join(f"{addr} ({reply.code})" for addr, reply in refused.items())
            log.warning("delivery %s: recipients refused: %s", delivery.delivery_id, codes)
        return str(message["Message-ID"])

    async def _send(self, message, addresses: list[str], timeout: float):
        settings = self._settings
        async with self._connections:
            return await aiosmtplib.send(
                message,
                sender=settings.sender,
                recipients=addresses,
                hostname=settings.host,
                port=settings.port,
                start_tls=settings.starttls,
                username=settings.user,
                password=settings.password,
                cert_bundle=str(settings.ca_file) if settings.ca_file else None,
                timeout=timeout,
            )

    async def close(self) -> None:
        """Nothing is held open between messages."""
