"""deploy/prometheus: the rules load, every alert fires and stays quiet in promtool's unit
tests and has a runbook section; every dashboard panel's PromQL parses."""

from __future__ import annotations

import re
import subprocess

import yaml

from deploy import dashboards, tools
from tests.deploy.conftest import ROOT

RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
TESTS = ROOT / "deploy" / "prometheus" / "tests.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.promtool()), *args], capture_output=True, text=True, timeout=300, cwd=RULES.parent)


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_rules_load():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 20 rules found" in checked.stdout


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests():
    tested = promtool("test", "rules", str(TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])]
    for alert in alerts():
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{alert['alert']} never fires in tests.yaml"
        # a case with an empty list, or a firing case whose other series must stay quiet
        assert any(not case["exp_alerts"] for case in mine) or len(
            {tuple(sorted(a["exp_labels"].items())) for case in mine for a in case["exp_alerts"]}) == 1


def test_every_alert_has_a_runbook_section_in_the_operations_guide():
    headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in OPERATIONS.read_text().splitlines() if line.startswith("#")}
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        assert url.endswith(f"operations.md#{alert['alert'].lower()}")
        assert alert["alert"].lower() in headings, alert["alert"]
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}


def test_every_dashboard_panel_query_parses(tmp_path):
    exprs = [expr for make in dashboards.DASHBOARDS.values() for expr in dashboards.expressions(make())]
    rules = {"groups": [{"name": "dashboards", "rules": [{"record": f"panel:query_{index}", "expr": expr}
                                                          for index, expr in enumerate(exprs)]}]}
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout


def test_no_series_of_a_rule_or_panel_is_a_created_timestamp():
    text = RULES.read_text() + "".join(str(make()) for make in dashboards.DASHBOARDS.values())
    assert "_created" not in text
