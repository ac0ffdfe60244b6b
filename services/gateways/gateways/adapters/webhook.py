"""POST a signed notification to a webhook URL with aiohttp, and read the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from common.clock import Clock
from gateways.domain.delivery import Delivery, Rejected, Unavailable
from gateways.domain.webhook import (
    RESPONSE_ID_HEADERS,
    secret_for,
    webhook_body,
    webhook_headers,
    webhook_receipt,
)

USER_AGENT = "handoff-webhook-gateway/1"
# Requests under way at once, over all receivers; the others wait for a connection, within
# their deadline.
CONNECTIONS = 100


class WebhookChannel:
    """One HTTP client session (keep-alive, no proxies from the environment, no redirects)."""

    def __init__(self, secrets: Mapping[str, str], clock: Clock) -> None:
        self._secrets = secrets
        self._clock = clock
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, trust_env=False,
                                              connector=aiohttp.TCPConnector(limit=CONNECTIONS))

    async def deliver(self, delivery: Delivery, timeout: float) -> str:
        """POST the body; the receipt is the status and the receiver's response id, if any."""
        host = urlsplit(delivery.target).netloc
        secret = secret_for(delivery.target, self._secrets)
        if secret is None:
            raise Rejected(f"no webhook secret is configured for {host}; nothing sent unsigned")
        sent_at = self._clock.now()
        body = webhook_body(delivery, sent_at)
        headers = webhook_headers(delivery, body, secret, sent_at)
        try:
            async with self._session.post(
                delivery.target,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                response_id = next((response.headers[h] for h in RESPONSE_ID_HEADERS if h in response.headers), None)
                return webhook_receipt(response.status, response_id)
        except asyncio.TimeoutError:
            raise Unavailable(f"{host} did not answer within {timeout:.1f}s") from None
        except aiohttp.ClientConnectorError as error:
            raise Unavailable(f"cannot connect to {host}: {error.os_error.strerror or error.os_error}") from None
        except aiohttp.ClientError as error:
            raise Unavailable(f"{host}: {type(error).__name__}: {error}") from None

    async def close(self) -> None:
        await self._session.close()
