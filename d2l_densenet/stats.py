"""Paired comparisons for the exercises, under one policy.

Two variants trained on the same seeds (or scored on the same examples)
are compared pair by pair. The policy, stated once for every notebook: a
test needs at least ``MIN_PAIRS`` pairs; with fewer, the differences are
shown and no verdict is drawn. ``scipy.stats`` does the arithmetic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["MIN_PAIRS", "ALPHA", "PairedResult", "paired_test",
           "McNemarResult", "mcnemar"]

#: The fewest pairs a test is run on. With two seeds the t cutoff is
#: 12.71 and the Wilcoxon test cannot go below p = 0.5: no result could
#: decide anything.
MIN_PAIRS = 3
#: Two-sided significance level.
ALPHA = 0.05


@dataclass(frozen=True)
class PairedResult:
    """Per-seed paired t-test of ``a - b``; NaN fields were not tested."""

    n: int
    mean_diff: float
    t: float = math.nan
    t_cutoff: float = math.nan
    p: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p)

    def verdict(self, a: str = "a", b: str = "b") -> str:
        """One sentence: which is better, no difference, or no test."""
        if self.n < MIN_PAIRS:
            return (f"no test: {self.n} pair(s), a test needs at least "
                    f"{MIN_PAIRS}")
        if not self.tested:
            return "no test: the differences are all equal"
        if self.p < ALPHA:
            better = a if self.mean_diff > 0 else b
            return f"{better} better (p = {self.p:.3f} < {ALPHA})"
        return (f"no difference detectable with {self.n} pairs "
                f"(p = {self.p:.3f})")


def paired_test(a, b) -> PairedResult:
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel``) with its 95%
    confidence interval, run only under the policy (``MIN_PAIRS``)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and paired, got shapes "
                         f"{a.shape} and {b.shape}")
    d, n = a - b, len(a)
    mean = float(d.mean()) if n else math.nan
    if n < MIN_PAIRS or not d.std() > 0:
        return PairedResult(n, mean)
    r = stats.ttest_rel(a, b)
    ci = r.confidence_interval(1 - ALPHA)
    return PairedResult(n, mean, float(r.statistic),
                        float(stats.t.ppf(1 - ALPHA / 2, df=n - 1)),
                        float(r.pvalue), float(ci.low), float(ci.high))


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on the same test examples: ``only_a`` examples
    were right under variant a only, ``only_b`` under b only."""

    n: int
    only_a: int
    only_b: int
    p: float

    def verdict(self, a: str = "a", b: str = "b") -> str:
        if self.only_a + self.only_b == 0:
            return "no test: both variants got the same examples right"
        if self.p < ALPHA:
            better = a if self.only_a > self.only_b else b
            return f"{better} better (p = {self.p:.3g} < {ALPHA})"
        return f"no difference detectable (p = {self.p:.3g})"


def mcnemar(correct_a, correct_b) -> McNemarResult:
    """McNemar's exact test: only the examples the two variants disagree
    on count, and under no difference each is equally likely to favour
    either (``scipy.stats.binomtest`` with p = 1/2)."""
    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-D and of one "
                         f"length, got shapes {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    k = only_a + only_b
    p = 1.0 if k == 0 else float(
        stats.binomtest(only_a, k, 0.5).pvalue)
    return McNemarResult(len(a), only_a, only_b, p)
