"""Who may do what with legs.

Agents and systems hand cases over and record contacts; a department works its own legs;
admins and services may do anything. A department sees only its own legs.
"""

from __future__ import annotations

from common.auth import Role

_HANDING_OVER = {Role.AGENT, Role.SERVICE, Role.ADMIN}
_WORKING = {Role.DEPARTMENT, Role.SERVICE, Role.ADMIN}
_ANYONE = set(Role)

RULES: dict[str, set[Role]] = {
    "create": _HANDING_OVER,
    "record_contact": _HANDING_OVER,
    "timeline": _HANDING_OVER,
    "acknowledge": _WORKING,
    "update_status": _WORKING,
    "resolve": _WORKING,
    # Re-routing, re-prioritising, reopening and cancelling happen on both sides.
    "transfer": _ANYONE,
    "change_priority": _ANYONE,
    "reopen": _ANYONE,
    "cancel": _ANYONE,
    "read": _ANYONE,
}
