"""Every process times its garbage collections (handoff_gc_pause_seconds), a cause of latency tails."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from common.metrics import time_gc


def collections(generation: str) -> float:
    return REGISTRY.get_sample_value("handoff_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_each_garbage_collection_is_timed_once_by_generation() -> None:
    time_gc()
    time_gc()  # installing twice times nothing twice
    automatic = gc.isenabled()
    gc.disable()  # no collection of the collector's own between the two readings but ours
    try:
        before = collections("2")
        gc.collect()
        after = collections("2")
    finally:
        if automatic:
            gc.enable()
    assert after == before + 1
    assert REGISTRY.get_sample_value("handoff_gc_pause_seconds_sum", {"generation": "2"}) > 0
