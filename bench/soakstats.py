"""(l) The soak's rules: when a series sampled over a long steady load counts as bounded.

Each rule takes a series of (seconds since the load began, value) and returns the start
and end values, the rule as text, the figure it was judged on and whether it passed. The
report prints these; nothing here reads a process, a broker or a clock.

- Memory (RSS) may rise while caches, connection pools and the interpreter's arenas warm
  up, and while state fills up to its retention period, so only the tail of the run is
  judged: from its middle, or from the end of the retention period if that is later. The
  least-squares slope over the tail, times its length, must stay within a small fraction of
  the resident size at its start (with a floor, so a small process is not failed on a
  megabyte or two of allocator noise). State kept for longer than the retention grows at a
  steady rate to the end, and fails.
- Open file descriptors come back to where they were: a leaked socket or file per call
  would show as thousands over ten minutes, so a small slack is enough.
- Consumer lag is back near zero once the load has stopped and the services have had a
  moment: at most one record per partition the group reads (a transaction's commit
  marker at a partition's end is counted by the end offset and never consumed as a record).
- The p99 latency of the last window is not worse than that of the first by more than a
  factor plus an allowance for the noise of a shared machine.
"""

from __future__ import annotations

from bench.latency import percentile

Series = list[tuple[float, float]]

RSS_GROWTH_FRACTION = 0.03
RSS_GROWTH_FLOOR_MB = 3.0
MIN_TAIL_POINTS = 3
FD_SLACK = 8
P99_FACTOR = 2.0
API_P99_ALLOWANCE_MS = 25.0
BREACH_P99_ALLOWANCE_MS = 250.0


def slope(series: Series) -> float | None:
    """The least-squares slope of value over time; None with fewer than two distinct instants."""
    if len(series) < 2:
        return None
    mean_t = sum(t for t, _ in series) / len(series)
    mean_v = sum(v for _, v in series) / len(series)
    spread = sum((t - mean_t) ** 2 for t, _ in series)
    if spread == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in series) / spread


def tail(series: Series, settle_s: float = 0.0) -> Series:
    """The points at or after the middle of the series' time span, or `settle_s` if later."""
    if not series:
        return []
    start = max((series[0][0] + series[-1][0]) / 2, settle_s)
    return [(t, v) for t, v in series if t >= start]


def _judged(series: Series, rule: str, figure: float | None, passed: bool | None) -> dict:
    return {"start": series[0][1] if series else None, "end": series[-1][1] if series else None,
            "series": [[round(t, 1), v] for t, v in series], "rule": rule, "figure": figure, "passed": passed}


def rss_bounded(series: Series, settle_s: float = 0.0) -> dict:
    """RSS (MB): growth over the tail (after the middle and `settle_s`) within a fraction of its start, or
    the floor."""
    judged = tail(series, settle_s)
    rule = (f"growth (least-squares slope x length) from t = max(middle, {settle_s:g} s) to the end <= "
            f"max({RSS_GROWTH_FRACTION:.0%} of the RSS there, {RSS_GROWTH_FLOOR_MB:g} MB)")
    rate = slope(judged) if len(judged) >= MIN_TAIL_POINTS else None
    if rate is None:
        return _judged(series, rule, None, None)
    growth = rate * (judged[-1][0] - judged[0][0])
    bound = max(RSS_GROWTH_FRACTION * judged[0][1], RSS_GROWTH_FLOOR_MB)
    return _judged(series, rule, round(growth, 1), growth <= bound)


def reported(series: Series) -> dict:
    """A series shown beside the judged ones, with no rule of its own."""
    return {**_judged(series, "reported, not judged", max((v for _, v in series), default=None), None),
            "reported": True}


def fds_bounded(series: Series) -> dict:
    """Open file descriptors: the end no more than a small slack above the start."""
    rule = f"end <= start + {FD_SLACK}"
    if not series:
        return _judged(series, rule, None, None)
    growth = series[-1][1] - series[0][1]
    return _judged(series, rule, growth, growth <= FD_SLACK)


def lag_settled(series: Series, partitions: int) -> dict:
    """Consumer lag (records): at most one per partition read once the load has stopped."""
    rule = f"end <= {partitions} (one commit marker per partition read), after the load stopped"
    if not series:
        return _judged(series, rule, None, None)
    return _judged(series, rule, series[-1][1], series[-1][1] <= partitions)


def p99_not_worse(series: Series, allowance_ms: float) -> dict:
    """A windowed p99 (ms): the last window within a factor of the first plus an allowance."""
    measured = [(t, v) for t, v in series if v is not None]
    rule = f"end <= {P99_FACTOR:g} x start + {allowance_ms:g} ms"
    if len(measured) < 2:
        return _judged(measured, rule, None, None)
    start, end = measured[0][1], measured[-1][1]
    return _judged(measured, rule, round(end / start, 2) if start else None,
                   end <= P99_FACTOR * start + allowance_ms)


def window_p99s(stamped: list[tuple[float, float]], edges: list[float]) -> list[float | None]:
    """The p99 of the values stamped within each window (edges[i-1], edges[i]]; None when empty.

    One figure per edge after the first, so window i ends where sample i is taken."""
    figures: list[float | None] = []
    for low, high in zip(edges, edges[1:]):
        inside = [value for at, value in stamped if low < at <= high]
        figures.append(percentile(inside, 0.99) if inside else None)
    return figures
