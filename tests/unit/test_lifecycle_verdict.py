"""The lifecycle phase's verdict (bench.lifecycle): state is flat from the steady state on."""

from __future__ import annotations

from bench.lifecycle import judge, reference


def sample(t: float, legs: int, rss: tuple[float, float, float], logs: tuple[float, float, float],
           **extra: object) -> dict:
    return {"t": t, "legs_written": legs, "rss_mb": dict(zip(("handoff", "sla", "notify"), rss)),
            "changelog_mb": dict(zip(("handoff-legs", "handoff-sla", "handoff-notify"), logs)), **extra}


def test_the_steady_state_is_the_first_sample_twice_the_retention_into_the_load() -> None:
    samples = [sample(t, t * 10, (100, 100, 100), (0, 0, 0)) for t in (0, 60, 120, 180, 240)]
    assert reference(samples, 90)["t"] == 180
    # a load shorter than that: its last sample
    assert reference(samples + [sample(900, 2400, (100, 100, 100), (0, 0, 0), after_retention=True)], 200)["t"] == 240


def test_state_that_levels_off_is_flat_and_state_that_keeps_growing_is_not() -> None:
    # given sla's memory and notify's changelogs level off, and handoff's memory keeps growing
    samples = [sample(0, 0, (70, 70, 70), (0, 0, 0)),
               sample(200, 200_000, (200, 400, 120), (0, 50, 40)),
               sample(400, 400_000, (300, 410, 125), (0, 55, 45)),
               sample(900, 400_000, (400, 380, 125), (0, 14, 30), after_retention=True)]
    verdicts = judge(samples, retention_s=90)
    assert {name: verdict["flat"] for name, verdict in verdicts.items()} == {
        "handoff": False, "sla": True, "notify": True}
    assert (verdicts["sla"]["rss_mb_steady"], verdicts["sla"]["rss_mb_at_end"], verdicts["sla"]["rss_mb_peak"]) == (
        400, 380, 410)


def test_changelogs_that_keep_growing_are_not_flat() -> None:
    samples = [sample(0, 0, (70, 70, 70), (0, 0, 0)),
               sample(200, 200_000, (100, 100, 100), (0, 50, 40)),
               sample(900, 400_000, (100, 100, 100), (0, 100, 41), after_retention=True)]
    verdicts = judge(samples, retention_s=90)
    assert (verdicts["sla"]["flat"], verdicts["notify"]["flat"]) == (False, True)
