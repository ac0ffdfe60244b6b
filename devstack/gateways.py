"""Start a channel gateway (webhook, email, log) as a child process, for tests and the dev stack.

Each gateway takes free loopback ports and reports them in its ready line; the returned
ServiceProcess stops it by its pid (SIGTERM, then SIGKILL after a timeout).
"""

from __future__ import annotations

from pathlib import Path

from devstack.processes import ServiceProcess, launch_service, wait_ready

KINDS = ("webhook", "email", "log")
# A gateway holds no state to restore: it is ready in seconds.
GATEWAY_READY_SECONDS = 30
# Development defaults only; production sets its own tokens and secrets (deploy/).
TOKENS_FILE = Path(__file__).resolve().parent.parent / "config" / "tokens.example.yaml"
DEV_WEBHOOK_SECRETS = '{"*": "dev-only-webhook-secret"}'
DEV_SMTP = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "1025", "SMTP_FROM": "handoff@localhost"}
# The simulator and the benchmarks call far faster than people, and hold a hundred Subscribe
# streams, on a few tokens and connections: the dev stack's servers allow that.
DEV_GRPC_LIMITS = {"GRPC_CALLS_PER_SECOND": "5000", "GRPC_MAX_STREAMS_PER_PRINCIPAL": "1000",
                   "GRPC_MAX_CONCURRENT_STREAMS": "1000"}


def gateway_name(kind: str, replica: int = 1) -> str:
    """The name of a `kind` gateway's process (its log, its data directory): `gateway-<kind>`,
    and `gateway-<kind>-<replica>` for a second replica and more."""
    return f"gateway-{kind}" if replica == 1 else f"gateway-{kind}-{replica}"


def gateway_env(kind: str, workdir: Path, replica: int = 1) -> dict[str, str]:
    """The environment a `kind` gateway (`replica` of them) of a dev stack under `workdir`
    runs with by default."""
    if kind not in KINDS:
        raise ValueError(f"unknown gateway kind {kind!r}; expected one of {', '.join(KINDS)}")
    data_dir = workdir / "data" / gateway_name(kind, replica)
    env = {
        "GATEWAY_KIND": kind,
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "DATA_DIR": str(data_dir),
        "INSTANCE": f"gateway-{kind}-{replica}",
        "AUTH_TOKENS_FILE": str(TOKENS_FILE),
        **DEV_GRPC_LIMITS,
    }
    if kind == "webhook":
        env["WEBHOOK_SECRETS"] = DEV_WEBHOOK_SECRETS
    elif kind == "email":
        env.update(DEV_SMTP)
    else:
        env["LOG_FILE"] = str(data_dir / "deliveries.jsonl")
    return env


def launch_gateway(kind: str, workdir: Path, env: dict[str, str] | None = None, replica: int = 1) -> ServiceProcess:
    """Run `python -m gateways` of `kind` with `env` over the defaults, without waiting for it
    (devstack.processes.wait_ready does); its log is `workdir/logs/<gateway_name>.log`."""
    settings = {**gateway_env(kind, workdir, replica), **(env or {})}
    return launch_service(gateway_name(kind, replica), "gateways", settings, workdir / "logs")


def start_gateway(
    kind: str, workdir: Path, env: dict[str, str] | None = None, timeout: float = GATEWAY_READY_SECONDS
) -> tuple[ServiceProcess, str]:
    """Run `python -m gateways` of `kind` with `env` over the defaults; returns it and its gRPC address.

    Raises devstack.processes.ServiceFailed, with the log's tail, when it exits or is not
    ready within `timeout`. Its log is `workdir/logs/gateway-<kind>.log`.
    """
    process = wait_ready(launch_gateway(kind, workdir, env), timeout)
    return process, process.grpc
