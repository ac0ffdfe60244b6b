"""Kafka and the three services as one unit with `start` and `stop`.

Uses the broker named by KAFKA_BOOTSTRAP when given; otherwise runs a local one. Services
listen on free loopback ports and report them; `endpoints()` lists where everything is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common.localkafka import LocalKafka, create_topics, wait_for_kafka
from devstack.processes import ServiceFailed, ServiceProcess, start_service

# (name, module) in start order; stopped in reverse.
SERVICES = (("handoff", "handoff_svc"), ("sla", "sla"), ("notify", "notify"))
# Development tokens and pseudonymisation key; production sets its own (deploy/).
TOKENS_FILE = Path(__file__).resolve().parent.parent / "config" / "tokens.example.yaml"
DEV_CUSTOMER_REF_KEY = "dev-only-customer-ref-key"
ADMIN_TOKEN, AGENT_TOKEN = "dev-token-admin", "dev-token-agent"
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
    ) -> None:
        """`ports` maps a service to its (gRPC, metrics) ports; unlisted services take free ones.
        `env` adds settings every service process gets (e.g. SLA_CLOCK=event)."""
        self.workdir = workdir
        self._policy_file = policy_file.resolve()
        self._external_bootstrap = bootstrap
        self._log_level = log_level
        self._ports = ports or {}
        self._env = env or {}
        self.kafka: LocalKafka | None = None
        self.services: dict[str, ServiceProcess] = {}

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
            **self._env,
        }

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

    def start_service(self, name: str, instance: str | None = None) -> ServiceProcess:
        module = dict(SERVICES)[name]
        key = instance or name
        self.services[key] = start_service(key, module, self.service_env(name, instance), self.workdir / "logs")
        return self.services[key]

    def start(self) -> "Stack":
        try:
            self.start_kafka()
            for name, _module in SERVICES:
                self.start_service(name)
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
            listing[f"{name} gRPC"] = service.endpoints.get("grpc", "")
            listing[f"{name} metrics"] = service.endpoints.get("metrics", "")
        return listing

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
