"""Kafka and the three services as one unit with `start` and `stop`; optionally the channel
gateways (webhook, e-mail with a local SMTP sink, log) that notify delivers through.

Uses the broker named by KAFKA_BOOTSTRAP when given; otherwise runs a local one. Services
listen on free loopback ports and report them; `endpoints()` lists where everything is.
Every process is a child started and stopped by its pid.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from common import lifeline
from common.localkafka import LocalKafka, create_topics, wait_for_kafka
from devstack.gateways import KINDS as GATEWAY_KINDS
from devstack.gateways import DEV_GRPC_LIMITS, GATEWAY_READY_SECONDS, gateway_name, launch_gateway
from devstack.processes import (SERVICE_READY_SECONDS, ServiceFailed, ServiceProcess, launch_each, launch_service,
                                wait_ready)

# (name, module), launched in this order and stopped in reverse.
SERVICES = (("handoff", "handoff_svc"), ("sla", "sla"), ("notify", "notify"))
# Development tokens and pseudonymisation key; production sets its own (deploy/).
TOKENS_FILE = Path(__file__).resolve().parent.parent / "config" / "tokens.example.yaml"
DEV_CUSTOMER_REF_KEY = "dev-only-customer-ref-key"
ADMIN_TOKEN, AGENT_TOKEN = "dev-token-admin", "dev-token-agent"
# Notify calls the gateways as a service, with a token of its own and a rate to match
# (config/tokens.example.yaml).
SERVICE_TOKEN = "dev-token-notify"
ROUTING_FILE = Path(__file__).resolve().parent.parent / "config" / "routing.yaml"
# The departments handoff accepts; the test suite points this at a file of its own.
DEPARTMENTS_FILE = Path(__file__).resolve().parent.parent / "config" / "departments.yaml"
SMTP_SINK = "smtp-sink"
# The ports `make run` and `make up` use, so handoffctl's defaults reach them.
WELL_KNOWN_PORTS = {"handoff": (50051, 9461), "sla": (50052, 9462), "notify": (50053, 9463)}


class Stack:
    def __init__(
        self,
        workdir: Path,
        policy_file: Path,
        bootstrap: str | None = None,
        log_level: str = "INFO",
        ports: dict[str, tuple[int, int]] | None = None,
        env: dict[str, str] | None = None,
        gateways: bool = False,
        routing_file: Path | None = None,
    ) -> None:
        """`ports` maps a service to its (gRPC, metrics) ports; unlisted services take free ones.
        `env` adds settings every service process gets (e.g. SLA_CLOCK=event). `gateways`:
        also run the webhook, e-mail (with an SMTP sink) and log gateways for notify.
        `routing_file`: notify's routing tree (config/routing.yaml by default)."""
        self.workdir = workdir
        self._policy_file = policy_file.resolve()
        self._external_bootstrap = bootstrap
        self._log_level = log_level
        self._ports = ports or {}
        self._env = env or {}
        self._gateways = gateways
        self._routing_file = (routing_file or ROUTING_FILE).resolve()
        # (kind, replica) -> the port a gateway listens on, kept so a restart takes it again.
        self._gateway_ports: dict[tuple[str, int], str] = {}
        self.kafka: LocalKafka | None = None
        self.services: dict[str, ServiceProcess] = {}
        self._service_env: dict[str, dict[str, str]] = {}
        self._started_as: dict[str, tuple[str, str | None]] = {}  # key -> (service, instance)

    @property
    def bootstrap(self) -> str:
        if self._external_bootstrap:
            return self._external_bootstrap
        if self.kafka is None:
            raise RuntimeError("the stack is not started")
        return self.kafka.bootstrap

    def service_env(self, name: str, instance: str | None = None) -> dict[str, str]:
        """The environment a service process of this stack runs with."""
        instance = instance or f"{name}-1"
        grpc_port, metrics_port = self._ports.get(name, (0, 0)) if instance == f"{name}-1" else (0, 0)
        return {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "DATA_DIR": str(self.workdir / "data" / instance),
            "GRPC_PORT": str(grpc_port),
            "METRICS_PORT": str(metrics_port),
            "SLA_POLICY_FILE": str(self._policy_file),
            "LOG_LEVEL": self._log_level,
            "INSTANCE": instance,
            "AUTH_TOKENS_FILE": str(TOKENS_FILE),
            "CUSTOMER_REF_KEY": DEV_CUSTOMER_REF_KEY,
            "NOTIFY_ROUTING_FILE": str(self._routing_file),
            "DEPARTMENTS_FILE": str(DEPARTMENTS_FILE),
            **DEV_GRPC_LIMITS,
            **self._gateway_env(),
            **self._env,
        }

    def _gateway_env(self) -> dict[str, str]:
        """Where notify finds the gateways this stack runs (each replica of each kind), and the
        token it calls them with."""
        if not self._gateway_ports:
            return {}
        replicas: dict[str, list[str]] = {}
        for (kind, _), port in sorted(self._gateway_ports.items()):
            replicas.setdefault(kind, []).append(f"127.0.0.1:{port}")
        return {"NOTIFY_GATEWAY_TOKEN": SERVICE_TOKEN,
                **{f"NOTIFY_GATEWAY_{kind.upper()}": ",".join(addresses) for kind, addresses in replicas.items()}}

    def start_kafka(self) -> None:
        """Start (or reach) Kafka and create the project's topics."""
        if self._external_bootstrap:
            wait_for_kafka(self._external_bootstrap, timeout=60)
        else:
            # A local broker starts empty, so the services' local state from a former run
            # would claim changelog offsets the new broker never had: start that afresh too.
            shutil.rmtree(self.workdir / "data", ignore_errors=True)
            self.kafka = LocalKafka(self.workdir / "kafka").start()
        create_topics(self.bootstrap)

    def start_service(self, name: str, instance: str | None = None, env: dict[str, str] | None = None) -> ServiceProcess:
        """Start (or restart) a service; `env` adds settings, kept for its later restarts. It
        takes its place in `services` once ready: until then a restart leaves the old entry."""
        key, process = self._launch_service(name, instance, env)
        self._when_ready({key: process})
        return process

    def _launch_service(self, name: str, instance: str | None = None,
                        env: dict[str, str] | None = None) -> tuple[str, ServiceProcess]:
        module = dict(SERVICES)[name]
        key = instance or name
        if env is not None:
            self._service_env[key] = env
        service_env = {**self.service_env(name, instance), **self._service_env.get(key, {})}
        self._started_as[key] = (name, instance)
        return key, launch_service(key, module, service_env, self.workdir / "logs")

    def _launch_service_process(self, name: str) -> ServiceProcess:
        return self._launch_service(name)[1]

    def _when_ready(self, launched: dict[str, ServiceProcess], timeout: float = SERVICE_READY_SECONDS) -> None:
        """Wait for each launched process's ready line, then list it in `services`; on a failure,
        stop those not listed yet and raise."""
        pending = dict(launched)
        try:
            for key, process in launched.items():
                wait_ready(process, timeout)
                self.services[key] = pending.pop(key)
        except BaseException:
            for process in pending.values():
                process.stop()
            raise

    def restart_service(self, key: str) -> ServiceProcess:
        """Start again what ran under `key` (a service or an instance of one), as it was started."""
        name, instance = self._started_as[key]
        return self.start_service(name, instance)

    def start_gateway(self, kind: str, replica: int = 1) -> ServiceProcess:
        """Start (or restart) replica `replica` of the `kind` gateway (services key: gateway_name);
        a restart takes the port it had before. notify started afterwards calls every replica."""
        self._gateways_ready({(kind, replica): self._launch_gateway(kind, replica)})
        return self.services[gateway_name(kind, replica)]

    def _launch_gateway(self, kind: str, replica: int = 1) -> ServiceProcess:
        env = {"GRPC_HOST": "127.0.0.1"}
        if (kind, replica) in self._gateway_ports:
            env["GRPC_PORT"] = self._gateway_ports[kind, replica]
        if kind == "email":
            env.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.services[SMTP_SINK].endpoints["smtp"]})
        return launch_gateway(kind, self.workdir, env, replica)

    def _gateways_ready(self, launched: dict[tuple[str, int], ServiceProcess]) -> None:
        """Wait for the gateways launched, by (kind, replica), and keep their ports."""
        self._when_ready({gateway_name(*key): process for key, process in launched.items()}, GATEWAY_READY_SECONDS)
        for key, process in launched.items():
            self._gateway_ports[key] = process.grpc.rpartition(":")[2]

    def start_gateways(self) -> None:
        """An SMTP sink (aiosmtpd, printing each message to its log), then every gateway, side by side."""
        self.services[SMTP_SINK] = _start_smtp_sink(self.workdir / "logs")
        launched = launch_each({kind: partial(self._launch_gateway, kind) for kind in GATEWAY_KINDS})
        self._gateways_ready({(kind, 1): process for kind, process in launched.items()})

    def start(self) -> "Stack":
        """The broker (or the external one's topics), the gateways if asked, then the three
        services, started side by side: each waits only for its own ready line."""
        try:
            self.start_kafka()
            if self._gateways:
                self.start_gateways()
            self._when_ready(launch_each({name: partial(self._launch_service_process, name) for name, _ in SERVICES}))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every service (newest first), then the local broker; safe to call twice."""
        for name in reversed(list(self.services)):
            self.services.pop(name).stop()
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None

    def check_alive(self) -> None:
        """Raise ServiceFailed naming the first service that has exited on its own."""
        for service in self.services.values():
            if not service.is_running():
                raise ServiceFailed(
                    f"{service.name} exited with {service.process.returncode}; see {service.log_path}"
                )

    def endpoints(self) -> dict[str, str]:
        listing = {"kafka bootstrap": self.bootstrap}
        for name, service in self.services.items():
            for endpoint in ("grpc", "metrics", "smtp"):
                if endpoint in service.endpoints:
                    listing[f"{name} {'gRPC' if endpoint == 'grpc' else endpoint}"] = service.endpoints[endpoint]
        return listing

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_smtp_sink(log_dir: Path, timeout: float = 20) -> ServiceProcess:
    """A local SMTP server (aiosmtpd's Debugging handler: each message goes to its log)."""
    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{SMTP_SINK}.log"
    with log_path.open("a") as log:
        process = subprocess.Popen(lifeline.command([sys.executable, "-u", "-m", "aiosmtpd", "-n", "-l",
                                                     f"127.0.0.1:{port}"]),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sink = ServiceProcess(SMTP_SINK, process, log_path, {"smtp": str(port)})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return sink
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                sink.stop()
                raise ServiceFailed(f"{SMTP_SINK} did not start on port {port}; see {log_path}") from None
            time.sleep(0.1)
