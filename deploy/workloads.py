"""The services' Kubernetes workloads, written by deploy.generate: one image, one pattern.

A process that runs a stream engine runs as a StatefulSet: its pod's stable name is the
worker's static group membership and transactional id, so a restarted pod takes its
partitions back without a rebalance and fences its own previous incarnation. The channel
gateways run as StatefulSets too: notify sends each delivery to the replica its id names, by
the pod's stable name, and that replica's delivery journal lives on a volume claim, so it
still knows what it sent after a move to another node (docs/gateways.md, Idempotency). Every pod: not
root, read-only root file system, no privilege escalation, no capabilities, resources set,
gRPC probes (liveness and start-up ask the `liveness` health name, readiness asks the
overall one, which turns SERVING only once tables and read models have recovered), spread
over zones and nodes, and a PodDisruptionBudget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGE = "handoff-tracking"
MAX_REPLICAS_ON_CPU = 12
CPU_TARGET_PERCENT = 70
# Scale-down waits this long after a peak, so a burst's replicas do not leave (and their read
# models have to be rebuilt) between two bursts.
SCALE_DOWN_WINDOW_S = 600
GRPC_PORT, METRICS_PORT = 50051, 9464
KAFKA_BOOTSTRAP = "handoff-kafka-kafka-bootstrap:9093"
CONFIG_DIR = "/etc/handoff/config"
# Replicas of each channel gateway; notify lists each by its pod's name (NOTIFY_GATEWAY_*), so
# a change of this count is a change of notify's settings too (a new rollout of both).
GATEWAY_REPLICAS = 2
PART_OF = "handoff-tracking"


def pods_service(name: str) -> str:
    """The headless Service that names a StatefulSet's pods (`<pod>.<it>` in the namespace)."""
    return f"{name}-pods"


def pod_addresses(name: str, replicas: int) -> str:
    """The gRPC address of each pod of the StatefulSet `name`, comma-separated."""
    return ",".join(f"{name}-{n}.{pods_service(name)}:{GRPC_PORT}" for n in range(replicas))


@dataclass(frozen=True)
class Workload:
    name: str
    module: str
    replicas: int
    env: dict[str, str] = field(default_factory=dict)
    # A stream worker: a StatefulSet, for the stable pod names its static group membership and
    # transactional id are made of (its stores live in memory, rebuilt from the changelogs).
    stateful: bool = False
    # A channel gateway: a StatefulSet too, its delivery journal (DATA_DIR) on a volume claim of
    # this size.
    journal_size: str | None = None
    kafka_user: str | None = None
    # Secret name -> (variable, key) pairs read from it.
    secret_env: tuple[tuple[str, str, str], ...] = ()
    cpu: str = "250m"
    memory: str = "512Mi"
    memory_limit: str = "1Gi"
    # Scaled by a HorizontalPodAutoscaler on CPU, from `replicas` up to MAX_REPLICAS_ON_CPU: the
    # gRPC-facing processes, whose work follows their callers rather than a consumer group's lag
    # (the stream workers are scaled on lag by KEDA: deploy.generate.SCALED_ON_LAG).
    scales_on_cpu: bool = False


WORKLOADS = (
    # The handoff API's gRPC edge does its work; its command owners are bounded by the partition
    # count like any consumer group.
    Workload("handoff", "handoff_svc", 3, {"DEPARTMENTS_FILE": f"{CONFIG_DIR}/departments.yaml"}, stateful=True,
             kafka_user="handoff", secret_env=(("CUSTOMER_REF_KEY", "handoff-customer-ref-key", "key"),),
             scales_on_cpu=True),
    # sla's clocks (SLA_ROLE=worker) and the SlaService its clients call (SLA_ROLE=api, Service
    # sla-api): a worker keeps its memory for the clocks, not for a read model of every leg.
    Workload("sla", "sla", 3, {"SLA_ROLE": "worker", "SLA_POLICY_FILE": f"{CONFIG_DIR}/sla-policies.yaml"},
             stateful=True, kafka_user="sla", memory="1Gi", memory_limit="2Gi"),
    Workload("sla-api", "sla", 2, {"SLA_ROLE": "api", "SLA_POLICY_FILE": f"{CONFIG_DIR}/sla-policies.yaml"},
             kafka_user="sla", memory="1Gi", memory_limit="2Gi", scales_on_cpu=True),
    # notify's pipeline (NOTIFY_ROLE=worker) and the NotificationService its clients call
    # (NOTIFY_ROLE=api, Service notify-api): each scaled on its own, and a worker does not read
    # every notification into a read model it would not serve.
    Workload("notify", "notify", 3, {
        "NOTIFY_ROLE": "worker",
        "NOTIFY_ROUTING_FILE": f"{CONFIG_DIR}/routing.yaml",
        **{f"NOTIFY_GATEWAY_{kind.upper()}": pod_addresses(f"gateway-{kind}", GATEWAY_REPLICAS)
           for kind in ("webhook", "email", "log")},
        "NOTIFY_GATEWAY_CA_FILE": "/etc/handoff/tls/ca.crt",
    }, stateful=True, kafka_user="notify", secret_env=(("NOTIFY_GATEWAY_TOKEN", "handoff-gateway-token", "token"),)),
    Workload("notify-api", "notify", 2, {"NOTIFY_ROLE": "api", "NOTIFY_ROUTING_FILE": f"{CONFIG_DIR}/routing.yaml"},
             kafka_user="notify", scales_on_cpu=True),
    Workload("gateway-webhook", "gateways", GATEWAY_REPLICAS,
             {"GATEWAY_KIND": "webhook", "WEBHOOK_SECRETS_FILE": "/etc/handoff/webhook/secrets.yaml"},
             cpu="100m", memory="128Mi", memory_limit="256Mi", journal_size="1Gi"),
    Workload("gateway-email", "gateways", GATEWAY_REPLICAS, {"GATEWAY_KIND": "email", "SMTP_STARTTLS": "require"},
             secret_env=(("SMTP_HOST", "handoff-smtp", "host"), ("SMTP_FROM", "handoff-smtp", "from"),
                         ("SMTP_USER", "handoff-smtp", "user"), ("SMTP_PASSWORD", "handoff-smtp", "password")),
             cpu="100m", memory="128Mi", memory_limit="256Mi", journal_size="1Gi"),
    Workload("gateway-log", "gateways", GATEWAY_REPLICAS, {"GATEWAY_KIND": "log"},
             cpu="100m", memory="128Mi", memory_limit="256Mi", journal_size="1Gi"),
)


# Policy-scanner findings accepted, each for its reason (checkov reads these annotations):
ACCEPTED_FINDINGS = {
    # The digest exists only once a release is built and pushed; overlays pin the release tag,
    # and a deployment pipeline sets `digest:` in the overlay's images entry.
    "checkov.io/skip1": "CKV_K8S_43=the release tag is pinned; its digest is set at deploy time",
    # Settings are read from the environment once at start-up (STYLE.md, settings); the values
    # come from Secrets and never appear in a manifest.
    "checkov.io/skip2": "CKV_K8S_35=settings are environment variables, filled from Secrets",
}


def _is_statefulset(workload: Workload) -> bool:
    """Stream workers and channel gateways: pods with stable names."""
    return workload.stateful or workload.journal_size is not None


def labels(workload: Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": workload.name, "app.kubernetes.io/part-of": PART_OF}


def _env(workload: Workload) -> list[dict[str, Any]]:
    plain = {
        "GRPC_HOST": "0.0.0.0", "GRPC_PORT": str(GRPC_PORT), "METRICS_PORT": str(METRICS_PORT),
        "DATA_DIR": "/var/lib/handoff", "LOG_LEVEL": "INFO",
        "AUTH_TOKENS_FILE": "/etc/handoff/tokens/tokens.yaml",
        "TLS_CERT_FILE": "/etc/handoff/tls/tls.crt", "TLS_KEY_FILE": "/etc/handoff/tls/tls.key",
    }
    if workload.kafka_user:
        plain.update({"KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                      "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": workload.kafka_user,
                      "KAFKA_SSL_CA_FILE": "/etc/kafka-ca/ca.crt"})
    plain.update(workload.env)
    env: list[dict[str, Any]] = [
        # The pod's name: a stable, unique instance id (static group membership, transactional id).
        {"name": "INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *({"name": name, "value": value} for name, value in plain.items()),
    ]
    secrets = list(workload.secret_env)
    if workload.kafka_user:
        # Strimzi's User Operator keeps each KafkaUser's password in a Secret of the user's name.
        secrets.append(("KAFKA_SASL_PASSWORD", workload.kafka_user, "password"))
    env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for name, secret, key in secrets]
    return env


def _volumes(workload: Workload) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): config, tokens, TLS, Kafka's CA, scratch space. A stream worker's
    stores live in memory and are restored from their changelogs at every start: no volume
    keeps them (one would only pin the pod to its volume's zone)."""
    sources = [
        ("config", CONFIG_DIR, {"configMap": {"name": "handoff-config"}}),
        ("tokens", "/etc/handoff/tokens", {"secret": {"secretName": "handoff-tokens"}}),
        ("tls", "/etc/handoff/tls", {"secret": {"secretName": "handoff-grpc-tls"}}),
        ("tmp", "/tmp", {"emptyDir": {"sizeLimit": "64Mi"}}),
    ]
    if workload.kafka_user:
        sources.append(("kafka-ca", "/etc/kafka-ca", {"secret": {"secretName": "handoff-kafka-cluster-ca-cert"}}))
    if workload.name == "gateway-webhook":
        sources.append(("webhook", "/etc/handoff/webhook", {"secret": {"secretName": "handoff-webhook-secrets"}}))
    if workload.journal_size is None:
        sources.append(("data", "/var/lib/handoff", {"emptyDir": {"sizeLimit": "256Mi"}}))
    volumes = [{"name": name, **source} for name, _, source in sources]
    mounts = [{"name": name, "mountPath": path, "readOnly": name not in ("tmp", "data")} for name, path, _ in sources]
    if workload.journal_size is not None:  # the volume claim's
        mounts.append({"name": "data", "mountPath": "/var/lib/handoff", "readOnly": False})
    return volumes, mounts


def _probe(service: str, period: int, failures: int) -> dict[str, Any]:
    grpc = {"port": GRPC_PORT, **({"service": service} if service else {})}
    return {"grpc": grpc, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 2}


def _container(workload: Workload) -> dict[str, Any]:
    volumes_and_mounts = _volumes(workload)
    return {
        "name": workload.name,
        "image": IMAGE,
        "imagePullPolicy": "Always",
        "args": [workload.module],
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "metrics", "containerPort": METRICS_PORT}],
        "env": _env(workload),
        "volumeMounts": volumes_and_mounts[1],
        "resources": {"requests": {"cpu": workload.cpu, "memory": workload.memory},
                      "limits": {"cpu": "2", "memory": workload.memory_limit}},
        # Start-up allows 30 minutes to restore tables from changelogs before liveness counts.
        "startupProbe": _probe("liveness", 10, 180),
        "livenessProbe": _probe("liveness", 10, 3),
        "readinessProbe": _probe("", 5, 2),
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _pod(workload: Workload) -> dict[str, Any]:
    spread = [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": rule,
               "labelSelector": {"matchLabels": labels(workload)}}
              for key, rule in (("topology.kubernetes.io/zone", "ScheduleAnyway"),
                                ("kubernetes.io/hostname", "DoNotSchedule"))]
    return {
        "metadata": {"labels": labels(workload)},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 60,
            "securityContext": {"runAsNonRoot": True, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "topologySpreadConstraints": spread,
            "containers": [_container(workload)],
            "volumes": _volumes(workload)[0],
        },
    }


def workload(item: Workload) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": item.replicas, "selector": {"matchLabels": labels(item)},
                            "template": _pod(item)}
    if _is_statefulset(item):
        spec |= {"serviceName": pods_service(item.name), "podManagementPolicy": "Parallel"}
    if item.journal_size is not None:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": item.journal_size}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet" if _is_statefulset(item) else "Deployment",
            "metadata": {"name": item.name, "labels": labels(item), "annotations": ACCEPTED_FINDINGS}, "spec": spec}


def services(item: Workload) -> list[dict[str, Any]]:
    """The Service clients call, and for a StatefulSet the headless one that names its pods."""
    ports = [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"},
             {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}]
    made = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": item.name, "labels": labels(item)},
             "spec": {"selector": labels(item), "ports": ports}}]
    if _is_statefulset(item):
        made.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": pods_service(item.name), "labels": labels(item)},
                     "spec": {"clusterIP": "None", "selector": labels(item), "ports": ports}})
    return made


def disruption_budget(item: Workload) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": item.name},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(item)}}}


def service_monitor(item: Workload) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": item.name, "labels": labels(item)},
            "spec": {"selector": {"matchLabels": labels(item)},
                     "endpoints": [{"port": "metrics", "interval": "15s", "scheme": "http"}]}}


def manifests() -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for item in WORKLOADS:
        made += [workload(item), *services(item), disruption_budget(item)]
    return made


def monitors() -> list[dict[str, Any]]:
    return [service_monitor(item) for item in WORKLOADS]


def autoscaler(item: Workload) -> dict[str, Any]:
    """A HorizontalPodAutoscaler on CPU: never below the workload's own replica count."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": item.name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet" if _is_statefulset(item) else "Deployment",
                                   "name": item.name},
                "minReplicas": item.replicas,
                "maxReplicas": MAX_REPLICAS_ON_CPU,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S}},
            }}


def autoscalers() -> list[dict[str, Any]]:
    return [autoscaler(item) for item in WORKLOADS if item.scales_on_cpu]
