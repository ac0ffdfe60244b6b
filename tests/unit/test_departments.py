"""Reading config/departments.yaml: the shipped file, lookups, and errors naming file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.departments import DepartmentsFileError, load_departments

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "departments.yaml"
POLICIES = Path(__file__).resolve().parents[2] / "config" / "sla-policies.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "departments.yaml"
    path.write_text(text)
    return path


def test_shipped_file_lists_every_department_of_the_sla_policies():
    departments = load_departments(SHIPPED)
    in_policies = set(re.findall(r"^\s+- department: ([a-z-]+)$", POLICIES.read_text(), re.MULTILINE))
    assert in_policies == {"billing", "field-service", "accounts", "claims"}
    assert set(departments.names) == in_policies


def test_lookups_by_name():
    departments = load_departments(SHIPPED)
    assert departments.names == ("billing", "field-service", "accounts", "claims")
    assert departments.get("field-service").display_name == "Field Service"
    assert departments.display_name("billing") == "Billing"
    assert departments.cost_centre("claims") == "CC-4400"
    assert "accounts" in departments and "collections" not in departments
    assert departments.get("collections") is None
    assert departments.cost_centre("collections") is None
    assert departments.display_name("collections") == "collections"


def test_cost_centres_are_distinct_in_the_shipped_file():
    departments = load_departments(SHIPPED).departments
    assert len({department.cost_centre for department in departments}) == len(departments)


@pytest.mark.parametrize("text, line, reason", [
    ("departments:\n  - name: billing\n    display_name: Billing\n    cost_centre: CC-1\n"
     "  - name: Billing Team\n    display_name: B\n    cost_centre: CC-2\n",
     5, "departments.1.name: String should match pattern"),
    ("departments:\n  - name: billing\n    display_name: Billing\n    cost_centre: CC-1\n"
     "  - name: billing\n    display_name: Again\n    cost_centre: CC-2\n",
     5, "departments.1.name: 'billing' is listed twice"),
    ("departments:\n  - name: billing\n    display_name: Billing\n",
     2, "departments.0.cost_centre: Field required"),
    ("departments:\n  - name: billing\n    display_name: Billing\n    cost_centre: CC-1\n    budget: 3\n",
     5, "departments.0.budget: Extra inputs are not permitted"),
    ("departments: []\n", 1, "departments: Tuple should have at least 1 item"),
    ("departments:\n  - name: [billing\n", 3, "not valid YAML"),
])
def test_errors_name_file_line_and_reason(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(DepartmentsFileError) as raised:
        load_departments(path)
    assert str(raised.value).startswith(f"{path}:{line}: {reason}")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DepartmentsFileError, match=r"departments\.yaml: cannot read"):
        load_departments(tmp_path / "departments.yaml")
