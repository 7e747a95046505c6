"""The BAU mix: which SRVs make up "all other SRVs" (SCTAD Table A2) and in what proportion.

The volume model gives the BAU *rate*; this file gives its *composition*,
from ``srv_templates/bau_mix.csv`` (variant, weight, source). The seeds state
some of it (SECMP0192's on-demand 4.3 / 4.4.3 for SMETS1 prepayment, the
SCTAD's daily top-up per prepayment meter); the rest is marked "assumption"
in the file so a test manager can see and change it. Picking is a bisect over
cumulative weights with a caller-seeded ``random.Random``: reproducible and
O(log n).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

from dcc_capacity.errors import InputError
from dcc_capacity.paths import data_dir

__all__ = ["GOLDEN_STEP", "BauMix"]

GOLDEN_STEP = 0.6180339887498949
"""(sqrt(5) - 1) / 2: the step of the low-discrepancy sequence behind ``picker(spread=True)``."""


@dataclass(frozen=True)
class BauMix:
    """Variants with weights, and where each weight came from."""

    variants: tuple[str, ...]
    weights: tuple[float, ...]
    sources: tuple[str, ...]

    @classmethod
    def load(cls, path: str | Path | None = None) -> BauMix:
        """Read and check a mix file (default ``srv_templates/bau_mix.csv``)."""
        from dcc_capacity.duis.templates import available_variants

        p = Path(path) if path else data_dir("srv_templates") / "bau_mix.csv"
        templated = set(available_variants())
        variants: list[str] = []
        weights: list[float] = []
        sources: list[str] = []
        try:
            fh = p.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the BAU mix: {exc.strerror}", file=p) from None
        with fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"variant", "weight"} <= set(reader.fieldnames):
                raise InputError("needs the columns variant, weight, source", file=p, line=1)
            for line, row in enumerate(reader, start=2):
                variant = (row["variant"] or "").strip()
                if variant not in templated:
                    raise InputError(f"'{variant}' has no SRV template", file=p, line=line, key="variant")
                if variant in variants:
                    raise InputError(f"'{variant}' is listed twice", file=p, line=line, key="variant")
                try:
                    weight = float(row["weight"])
                except (TypeError, ValueError):
                    weight = -1.0
                if not weight > 0:
                    raise InputError(f"must be a number > 0 (got {row['weight']!r})", file=p, line=line,
                                     key="weight")
                variants.append(variant)
                weights.append(weight)
                sources.append((row.get("source") or "").strip())
        if not variants:
            raise InputError("the BAU mix is empty", file=p)
        return cls(tuple(variants), tuple(weights), tuple(sources))

    def shares(self) -> dict[str, float]:
        """Each variant's share of BAU traffic (sums to 1)."""
        total = sum(self.weights)
        return {v: w / total for v, w in zip(self.variants, self.weights, strict=True)}

    def picker(self, rng: random.Random, *, spread: bool = False):  # noqa: ANN201 - zero-argument callable
        """A fast ``pick()`` drawing variants by weight from ``rng``.

        ``spread=True``: instead of independent draws, the golden-ratio sequence from a random start in
        ``rng``, so every stretch of picks holds each variant in its share to within a pick or two (a 10 s
        run then sends the modelled mix, not the mix give or take the binomial noise of a few thousand draws).
        """
        cumulative = list(itertools.accumulate(self.weights))
        total = cumulative[-1]
        variants = self.variants
        right = bisect.bisect_right
        last = len(variants) - 1
        if spread:
            state = [rng.random()]

            def pick_spread() -> str:
                u = state[0] = (state[0] + GOLDEN_STEP) % 1.0
                return variants[min(right(cumulative, u * total), last)]

            return pick_spread
        rand = rng.random

        def pick() -> str:
            return variants[min(right(cumulative, rand() * total), last)]

        return pick
