"""Routing trees for development stacks that are not the shipped example.

`BREACHES_TO_DEPARTMENTS`: every department hears of its own breaches on its Subscribe
stream at once (a receiver named after each department, no grouping delay); other kinds
(warnings, new legs) go to a receiver nobody subscribes to. Tests and the bench use it.
"""

from __future__ import annotations

from pathlib import Path

BREACHES_TO_DEPARTMENTS = """
receivers:
  - name: "{department}"
    channels: [{type: subscription}]
  - name: elsewhere
    channels: [{type: subscription}]
route:
  receiver: "{department}"
  group_wait: 0s
  routes:
    - matchers: ["kind!=breach"]
      receiver: elsewhere
"""


def write_routing(path: Path, text: str = BREACHES_TO_DEPARTMENTS) -> Path:
    """Write a routing file for notify (NOTIFY_ROUTING_FILE) and return its path."""
    path.write_text(text)
    return path
