"""Run one channel gateway: `python -m gateways webhook|email|log` (or GATEWAY_KIND).

Serves ChannelGateway with health and reflection, /metrics, and prints the ready line;
SIGTERM or SIGINT stops intake, lets running deliveries finish, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from handoff.v1 import channel_gateway_pb2_grpc

from common import logs
from common.clock import Clock, WallClock
from common.grpcserver import start_server
from common.metrics import serve_metrics
from common.runtime import announce_ready, fail_start
from common.security import ServerSecurity, server_security
from common.settings import SettingsError, security_settings
from gateways import metrics
from gateways.adapters.codec import SERVICE_NAME
from gateways.adapters.logfile import LogChannel
from gateways.adapters.smtp import SmtpChannel
from gateways.adapters.webhook import WebhookChannel
from gateways.domain.delivery import KINDS, Channel
from gateways.adapters.journal import DeliveryJournal
from gateways.entrypoints.servicer import GatewayServicer
from gateways.settings import GatewaySettings, gateway_settings

GRACE_SECONDS = 5.0
LOG_WRITE_TIMEOUT = 5.0

SETTINGS_HELP = """\
settings (environment):
  GATEWAY_KIND           webhook | email | log, when not given on the command line
  GRPC_HOST, GRPC_PORT   where ChannelGateway listens (127.0.0.1, 0 = a free port)
  METRICS_PORT           the /metrics port (0 = a free port)
  AUTH_TOKENS_FILE       the token file (or AUTH_TOKENS inline); callers need role service or admin
  TLS_CERT_FILE, TLS_KEY_FILE, TLS_CLIENT_CA_FILE   optional TLS
  LOG_LEVEL, INSTANCE, DATA_DIR
  DEDUP_CAPACITY         delivery ids remembered for idempotency (10000)
  DEDUP_FILE             where they are kept across restarts (DATA_DIR/dedup-<kind>.jsonl)
webhook:
  WEBHOOK_SECRETS        JSON {"<url prefix>" or "*": "<secret>"}, or
  WEBHOOK_SECRETS_FILE   a YAML file of that mapping
  WEBHOOK_TIMEOUT        seconds a POST may take (10), cut to the call's deadline
email:
  SMTP_HOST, SMTP_PORT (25), SMTP_FROM, SMTP_STARTTLS (auto|true|false),
  SMTP_USER + SMTP_PASSWORD (need SMTP_STARTTLS=true), SMTP_CA_FILE, SMTP_TIMEOUT (30),
  SMTP_CONNECTIONS (10)   messages handed to the relay at once
log:
  LOG_FILE               the JSON-lines file (DATA_DIR/deliveries.jsonl)

docs/gateways.md explains each setting, the webhook signature and the status codes.
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateways",
        description="Run a channel gateway: the ChannelGateway.Deliver gRPC service for one channel.",
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", nargs="?", choices=KINDS, help="the channel this process delivers to")
    return parser.parse_args(argv)


def open_channel(settings: GatewaySettings, clock: Clock) -> tuple[Channel, float]:
    """The kind's channel and the longest one delivery through it may take."""
    if settings.webhook is not None:
        return WebhookChannel(settings.webhook.secrets, clock), settings.webhook.timeout
    if settings.smtp is not None:
        return SmtpChannel(settings.smtp, clock), settings.smtp.timeout
    assert settings.log_file is not None
    return LogChannel(settings.log_file, clock), LOG_WRITE_TIMEOUT


def stop_signal() -> asyncio.Future[str]:
    """A future that SIGTERM or SIGINT completes with the signal's name."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: stopped.done() or stopped.set_result(s.name))
    return stopped


async def serve(settings: GatewaySettings, security: ServerSecurity) -> None:
    """Serve until a stop signal; OSError when a port or the log file cannot be had."""
    name, host = f"gateway-{settings.kind}", settings.service.grpc_host
    log = logs.configure(name, settings.service.log_level)
    stopped = stop_signal()
    channel, timeout = open_channel(settings, WallClock())
    try:
        metrics.expose(settings.kind)
        metrics_port = serve_metrics(host, settings.service.metrics_port)
        journal = DeliveryJournal(settings.dedup_file, settings.dedup_capacity)
        log.info("delivery journal read", receipts=len(journal.ledger), in_doubt=len(journal.in_doubt))
        servicer = GatewayServicer(settings.kind, channel, journal, timeout, log)
        add = channel_gateway_pb2_grpc.add_ChannelGatewayServicer_to_server
        server = await start_server(host, settings.service.grpc_port, [(add, servicer, SERVICE_NAME)], security)
        announce_ready(name, grpc=f"{host}:{server.port}", metrics=f"http://{host}:{metrics_port}/metrics")
        log.info("serving", grpc_port=server.port, metrics_port=metrics_port)
        log.info("stopping", signal=await stopped)
        await server.stop(GRACE_SECONDS)
        await servicer.drain(GRACE_SECONDS)
        journal.close()
    finally:
        await channel.close()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = gateway_settings(args.kind)
        security = server_security(security_settings())
    except SettingsError as error:
        fail_start(str(error))
    try:
        asyncio.run(serve(settings, security))
    except OSError as error:
        fail_start(f"gateway-{settings.kind} cannot start: {error}")


if __name__ == "__main__":
    main()
