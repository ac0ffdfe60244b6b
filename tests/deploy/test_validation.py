"""Every object of every overlay validated offline: core objects strictly against the
Kubernetes schemas, Strimzi, KEDA and Prometheus Operator objects against the schemas those
projects publish, and the whole against a policy scanner with no unexplained finding."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from deploy import tools, workloads

KUBERNETES = "1.32.0"
OPERATOR_GROUPS = ("kafka.strimzi.io", "keda.sh", "monitoring.coreos.com")


def is_operators(item: dict) -> bool:
    return item["apiVersion"].split("/")[0] in OPERATOR_GROUPS


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_core_objects_are_valid_kubernetes_strictly(objects, overlay, tmp_path):
    core = [item for item in objects[overlay] if not is_operators(item)]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    checked = subprocess.run([str(tools.checkers_bin() / "kubernetes-validate"), "--strict", "-k", KUBERNETES,
                              "--quiet", str(path)], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert {item["kind"] for item in core} >= {"StatefulSet", "Deployment", "Service", "ConfigMap", "NetworkPolicy",
                                               "PodDisruptionBudget", "HorizontalPodAutoscaler", "Namespace"}


def validate_operators(items: list[dict]) -> subprocess.CompletedProcess[str]:
    schemas = tools.crd_schemas()
    return subprocess.run(["node", str(schemas / "validate.mjs"), str(schemas)], input=json.dumps(items),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_operator_objects_match_their_published_schemas(objects, overlay):
    operators = [item for item in objects[overlay] if is_operators(item)]
    assert {item["kind"] for item in operators} == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "ScaledObject",
                                                     "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}
    checked = validate_operators(operators)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(operators)} objects checked, 0 invalid" in checked.stdout


def test_the_schema_check_rejects_a_malformed_object(objects):
    topic = next(item for item in objects["production"] if item["kind"] == "KafkaTopic")
    broken = {**topic, "spec": {**topic["spec"], "partitions": "twelve"}}
    checked = validate_operators([broken])
    assert checked.returncode == 1
    assert "/spec/partitions must be integer" in checked.stdout


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_the_policy_scanner_finds_nothing_but_the_accepted_findings(built, overlay, tmp_path):
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(built[overlay])
    scanned = subprocess.run([str(tools.checkers_bin() / "checkov"), "--file", str(path), "--framework", "kubernetes",
                              "--skip-download", "--compact", "--output", "json"],
                             capture_output=True, text=True, timeout=600, env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin"})
    report = json.loads(scanned.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [(check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 100
    accepted = {value.split("=")[0] for value in workloads.ACCEPTED_FINDINGS.values()}
    assert {check["check_id"] for check in report["results"]["skipped_checks"]} <= accepted
