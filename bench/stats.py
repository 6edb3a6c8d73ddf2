"""Small, dependency-free summaries: median with its spread, percentiles."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Spread:
    """The median of repeated runs and how noisy they were."""

    median: float
    minimum: float
    maximum: float
    mad: float  # median absolute deviation
    runs: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fmt(self, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
        """``123.4 ms (min 120.1, max 130.2, MAD 2.0, n=5)``."""
        return (
            f"{self.median * scale:.{digits}f}{unit} "
            f"(min {self.minimum * scale:.{digits}f}, max {self.maximum * scale:.{digits}f}, "
            f"MAD {self.mad * scale:.{digits}f}, n={self.runs})"
        )


def spread(values: Sequence[float]) -> Spread:
    """Median, min, max and MAD of ``values`` (at least one)."""
    if not values:
        raise ValueError("spread() needs at least one value")
    median = statistics.median(values)
    mad = statistics.median(abs(value - median) for value in values)
    return Spread(median, min(values), max(values), mad, len(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100) of ``values``."""
    if not values:
        raise ValueError("percentile() needs at least one value")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, ``inf`` for a zero denominator."""
    return numerator / denominator if denominator else float("inf")
