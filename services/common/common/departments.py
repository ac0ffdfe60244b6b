"""The departments file: the closed set of departments a handoff may go to.

Every department label in metrics comes from this file, so their number stays bounded;
reports use the display name and the cost centre. Errors read `file:line: reason`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.yamlfile import ConfigProblem, LineList, LineMap, read_yaml

DEFAULT_FILE = Path("config/departments.yaml")


class DepartmentsFileError(ValueError):
    """The departments file is unusable; the message reads `file:line: reason`."""


class _Duplicate(ValueError):
    """A name listed twice; `location` is where the second one sits."""

    def __init__(self, index: int, name: str) -> None:
        super().__init__(f"{name!r} is listed twice")
        self.location = ("departments", index, "name")


class Department(BaseModel):
    """One department: its label value, the name people read, the cost centre it is charged to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    display_name: str = Field(min_length=1, max_length=64)
    cost_centre: str = Field(min_length=1, max_length=32)


class Departments(BaseModel):
    """The departments in file order, looked up by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    departments: tuple[Department, ...] = Field(min_length=1)

    @field_validator("departments")
    @classmethod
    def _names_are_unique(cls, departments: tuple[Department, ...]) -> tuple[Department, ...]:
        seen: set[str] = set()
        for index, department in enumerate(departments):
            if department.name in seen:
                raise _Duplicate(index, department.name)
            seen.add(department.name)
        return departments

    @property
    def names(self) -> tuple[str, ...]:
        """Every department name, in file order."""
        return tuple(department.name for department in self.departments)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def get(self, name: str) -> Department | None:
        """The department called `name`, or None."""
        return next((department for department in self.departments if department.name == name), None)

    def display_name(self, name: str) -> str:
        """The name people read for `name` (`name` itself when unknown)."""
        department = self.get(name)
        return department.display_name if department else name

    def cost_centre(self, name: str) -> str | None:
        """The cost centre `name` is charged to, or None when unknown."""
        department = self.get(name)
        return department.cost_centre if department else None


def _line(document: Any, location: tuple[Any, ...]) -> int:
    """The line of the value at `location` in `document` (the nearest known one)."""
    line, node = getattr(document, "line", 0), document
    for step in location:
        if isinstance(node, LineMap) and step in node:
            line, node = node.line_of(step), node[step]
        elif isinstance(node, LineList) and isinstance(step, int) and 0 <= step < len(node):
            line, node = node.line_of(step), node[step]
        else:
            break
    return line


def load_departments(path: Path | str = DEFAULT_FILE) -> Departments:
    """Parse and validate the departments file, or raise DepartmentsFileError naming file and line."""
    try:
        document = read_yaml(Path(path))
    except ConfigProblem as problem:
        raise DepartmentsFileError(problem.located(path)) from None
    try:
        return Departments.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        cause = first.get("ctx", {}).get("error")
        location = cause.location if isinstance(cause, _Duplicate) else first["loc"]
        where = ".".join(str(step) for step in location) or "the file"
        reason = first["msg"].removeprefix("Value error, ")
        raise DepartmentsFileError(ConfigProblem(_line(document, location), f"{where}: {reason}").located(path)) from None
