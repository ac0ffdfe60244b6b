"""deploy/k8s: every overlay builds; what is generated from the code is current; workloads,
Kafka topics and users, scaling and network policies say what the architecture needs."""

from __future__ import annotations

import pytest
import yaml

from common.streams.engine import EngineSettings, transactional_id
from common.topics import CATALOGUE, TABLES, changelog_name
from deploy import generate, workloads
from tests.deploy.conftest import ROOT

SERVICE_PORTS = {"grpc": 50051, "metrics": 9464}


def of_kind(items: list[dict], kind: str) -> dict[str, dict]:
    return {item["metadata"]["name"]: item for item in items if item["kind"] == kind}


def test_generated_manifests_match_the_code_they_come_from():
    stale = [str(path.relative_to(ROOT)) for path, text in generate.files().items()
             if not path.exists() or path.read_text() != text]
    assert stale == [], "run `make deploy-manifests` and commit the result"


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_every_topic_of_the_catalogue_has_its_kafka_topic(objects, overlay):
    topics = {item["spec"]["topicName"]: item["spec"] for item in objects[overlay] if item["kind"] == "KafkaTopic"}
    expected = {spec.name for spec in CATALOGUE} | {spec.dlq for spec in CATALOGUE} | {
        changelog_name(app, table) for app, tables in TABLES.items() for table in tables}
    assert set(topics) == expected
    replicas, insync = (1, 1) if overlay == "dev" else (3, 2)
    for spec in CATALOGUE:
        topic = topics[spec.name]
        assert (topic["partitions"], topic["replicas"], topic["config"]["min.insync.replicas"]) == (12, replicas, insync)
        assert topic["config"]["cleanup.policy"] == ("compact" if spec.compacted else "delete")
        retention = -1 if spec.retention_hours is None else spec.retention_hours * 3_600_000
        assert topic["config"]["retention.ms"] == retention
    for app, tables in TABLES.items():
        for table in tables:
            config = topics[changelog_name(app, table)]["config"]
            # compacted, rolled hourly so the cleaner reaches superseded values within the hour
            assert (config["cleanup.policy"], config["segment.ms"], config["delete.retention.ms"]) == (
                "compact", 3_600_000, 3_600_000)


def test_the_catalogue_lists_every_topic_each_service_reads():
    from handoff_svc.adapters.legstore import FEEDS as HANDOFF_FEEDS
    from notify.entrypoints.grpc_api import SILENCES, NOTIFICATIONS
    from sla.adapters.readmodel import FEEDS as SLA_FEEDS

    for service, read in (("handoff", HANDOFF_FEEDS), ("sla", SLA_FEEDS), ("notify", (SILENCES, NOTIFICATIONS))):
        assert all(service in spec.readers for spec in read), service


def test_each_service_user_may_write_only_what_it_writes_and_read_only_what_it_reads(objects):
    users = of_kind(objects["production"], "KafkaUser")
    assert set(users) == {"handoff", "sla", "notify", "keda-lag-reader"}
    for service in ("handoff", "sla", "notify"):
        acls = users[service]["spec"]["authorization"]["acls"]
        grants = {(acl["resource"]["type"], acl["resource"]["name"]): set(acl["operations"]) for acl in acls}
        for spec in CATALOGUE:
            operations = grants.get(("topic", spec.name), set())
            assert ("Write" in operations) == (spec.writer == service), (service, spec.name)
            assert ("Read" in operations) == (service in spec.readers), (service, spec.name)
        assert grants[("group", generate.APPS[service])] == {"Read", "Describe"}
        others = {app for name, app in generate.APPS.items() if name != service}
        assert not [name for kind, name in grants if any(name.startswith(f"{app}-") or name == app for app in others)]
        assert users[service]["spec"]["authentication"]["type"] == "scram-sha-512"
    reader = users["keda-lag-reader"]["spec"]["authorization"]["acls"]
    assert {op for acl in reader for op in acl["operations"]} == {"Describe"}


def test_only_notify_reads_a_dead_letter_topic_the_silences_one_its_read_model_sends_to(objects):
    users = of_kind(objects["production"], "KafkaUser")
    readable = {(service, acl["resource"]["name"]) for service in ("handoff", "sla", "notify")
                for acl in users[service]["spec"]["authorization"]["acls"]
                if acl["resource"]["name"].endswith(".dlq") and "Read" in acl["operations"]}
    assert readable == {("notify", "notify.silences.v1.dlq")}


def test_stream_workers_run_as_statefulsets_without_volumes_and_gateways_with_their_journal_on_one(objects):
    items = objects["production"]
    stateful, stateless = of_kind(items, "StatefulSet"), of_kind(items, "Deployment")
    gateways = {"gateway-webhook", "gateway-email", "gateway-log"}
    assert set(stateful) == {"handoff", "sla", "notify"} | gateways
    assert set(stateless) == {"sla-api", "notify-api"}
    for name, item in [*stateful.items(), *stateless.items()]:
        volumes = {volume["name"]: volume for volume in item["spec"]["template"]["spec"]["volumes"]}
        mounts = item["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "data", "mountPath": "/var/lib/handoff", "readOnly": False} in mounts
        if name in gateways:
            # the delivery journal survives a move to another node: a volume claim per pod
            [claim] = item["spec"]["volumeClaimTemplates"]
            assert claim["metadata"]["name"] == "data" and "data" not in volumes
        else:
            # stores in memory: no claim that would pin a pod to its volume's zone
            assert "volumeClaimTemplates" not in item["spec"]
            assert "emptyDir" in volumes["data"]


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_notify_calls_each_gateway_replica_by_its_pod_s_name(objects, overlay):
    items = objects[overlay]
    statefulsets = of_kind(items, "StatefulSet")
    env = {e["name"]: e.get("value") for e in statefulsets["notify"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    headless = {item["metadata"]["name"] for item in of_kind(items, "Service").values()
                if item["spec"].get("clusterIP") == "None"}
    for kind in ("webhook", "email", "log"):
        name = f"gateway-{kind}"
        replicas = statefulsets[name]["spec"]["replicas"]
        assert statefulsets[name]["spec"]["serviceName"] == f"{name}-pods" and f"{name}-pods" in headless
        assert env[f"NOTIFY_GATEWAY_{kind.upper()}"] == ",".join(
            f"{name}-{n}.{name}-pods:50051" for n in range(replicas))


def test_every_pod_is_locked_down_probed_sized_spread_and_budgeted(objects):
    items = objects["production"]
    budgets = {item["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for item in items if item["kind"] == "PodDisruptionBudget"}
    modules = {item.name: item.module for item in workloads.WORKLOADS}
    for item in items:
        if item["kind"] not in ("StatefulSet", "Deployment"):
            continue
        pod = item["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert container["image"] == "handoff-tracking:0.1.0"
        assert container["args"] == [modules[item["metadata"]["name"]]]
        assert list(ROOT.glob(f"services/*/{container['args'][0]}/__main__.py"))
        assert container["livenessProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
        assert container["startupProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
        assert container["readinessProbe"]["grpc"] == {"port": 50051}  # the overall status: ready
        assert set(container["resources"]) == {"requests", "limits"}
        assert {rule["topologyKey"] for rule in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        assert item["metadata"]["name"] in budgets


def test_secrets_are_referenced_never_committed(objects):
    for overlay, items in objects.items():
        assert not [item for item in items if item["kind"] == "Secret"], overlay
    text = yaml.safe_dump(objects["production"])
    for secret in ("handoff-tokens", "handoff-customer-ref-key", "handoff-grpc-tls", "handoff-kafka-cluster-ca-cert"):
        assert secret in text


def test_config_maps_hold_the_config_files_as_they_are(objects):
    config = of_kind(objects["production"], "ConfigMap")["handoff-config"]["data"]
    for name in ("sla-policies.yaml", "routing.yaml", "departments.yaml"):
        assert config[name] == (ROOT / "config" / name).read_text()


def test_workers_scale_on_lag_within_their_replicas_and_the_partition_count_and_the_api_on_cpu(objects):
    items = objects["production"]
    scaled = of_kind(items, "ScaledObject")
    assert set(scaled) == {"sla", "notify"}
    for name, item in scaled.items():
        (trigger,) = item["spec"]["triggers"]
        assert trigger["type"] == "kafka" and trigger["metadata"]["allowIdleConsumers"] == "false"
        assert trigger["metadata"]["consumerGroup"] == generate.APPS[name]
        assert item["spec"]["maxReplicaCount"] == generate.PARTITIONS
    hpas = of_kind(items, "HorizontalPodAutoscaler")
    assert {name: hpa["spec"]["scaleTargetRef"]["name"] for name, hpa in hpas.items()} == {
        "handoff": "handoff", "sla-api": "sla-api", "notify-api": "notify-api"}
    assert all(hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu" for hpa in hpas.values())
    # One autoscaler per workload: KEDA's and a CPU autoscaler on the same target would fight.
    assert not {item["spec"]["scaleTargetRef"]["name"] for item in scaled.values()} & {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas.values()}


def test_no_autoscaler_takes_a_workload_below_the_replicas_it_is_deployed_with(objects):
    for overlay, items in objects.items():
        targets = {(item["kind"], item["metadata"]["name"]): item for item in items}
        scalers = [item for item in items if item["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")]
        assert len(scalers) == 5, overlay
        for scaler in scalers:
            spec = scaler["spec"]
            target = targets[(spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"])]
            minimum = spec["minReplicaCount"] if scaler["kind"] == "ScaledObject" else spec["minReplicas"]
            assert minimum == target["spec"]["replicas"], (overlay, scaler["metadata"]["name"])


@pytest.mark.parametrize(("service", "variable"), [("sla", "SLA_ROLE"), ("notify", "NOTIFY_ROLE")])
def test_sla_and_notify_run_as_workers_and_an_api_that_only_the_api_clients_reach(objects, service, variable):
    items = objects["production"]
    role = {item["metadata"]["name"]: env["value"] for item in items if item["kind"] in ("StatefulSet", "Deployment")
            for env in item["spec"]["template"]["spec"]["containers"][0]["env"] if env["name"] == variable}
    assert role == {service: "worker", f"{service}-api": "api"}
    policies = of_kind(items, "NetworkPolicy")
    reached = policies["api-clients"]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert f"{service}-api" in reached and service not in reached
    talking = policies["services-to-kafka"]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert {service, f"{service}-api"} <= set(talking)


def test_network_policies_deny_by_default_and_allow_only_the_architectures_flows(objects):
    policies = of_kind(objects["production"], "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert set(policies) == {"default-deny", "dns", "services-to-kafka", "kafka-cluster", "api-clients",
                             "notify-to-gateways", "gateways-from-notify", "webhook-out", "email-out",
                             "prometheus-scrapes"}
    assert not [name for name, policy in policies.items()
                if name != "default-deny" and not policy["spec"].get("ingress") and not policy["spec"].get("egress")]


def test_dev_runs_one_kafka_node_and_production_separate_controllers_and_brokers(objects):
    dev = of_kind(objects["dev"], "KafkaNodePool")
    assert list(dev) == ["dual"] and dev["dual"]["spec"]["replicas"] == 1
    assert set(dev["dual"]["spec"]["roles"]) == {"controller", "broker"}
    production = of_kind(objects["production"], "KafkaNodePool")
    assert {name: pool["spec"]["roles"] for name, pool in production.items()} == {
        "controller": ["controller"], "broker": ["broker"]}
    assert all(item["metadata"].get("namespace") == "handoff-tracking"
               for items in objects.values() for item in items if item["kind"] != "Namespace")


def test_each_stream_engine_may_use_the_transactional_ids_its_workers_take(objects):
    users = of_kind(objects["production"], "KafkaUser")
    for service in ("handoff", "sla", "notify"):
        granted = [acl["resource"] for acl in users[service]["spec"]["authorization"]["acls"]
                   if acl["resource"]["type"] == "transactionalId"]
        # a worker's id, as the engine makes it from its group and its pod's name
        taken = transactional_id(EngineSettings(bootstrap="kafka:9092", group=generate.APPS[service],
                                                instance=f"{service}-0"))
        assert [r for r in granted if r["patternType"] == "prefix" and taken.startswith(r["name"])], (service, granted)
