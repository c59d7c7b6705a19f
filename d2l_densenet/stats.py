"""Paired comparisons for the exercises, under one policy.

Two variants trained on the same seeds (or scored on the same examples)
are compared pair by pair. The policy, stated once for every notebook: a
test needs at least ``MIN_PAIRS`` pairs; with fewer, the differences are
shown and no verdict is drawn. ``scipy.stats`` does the arithmetic.

A verdict is said in the reader's language, passed in
(``result.verdict(a, b, lang=LANG)``); its words are in the message
table (``messages.MESSAGES``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .messages import text

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
    #: True for errors and losses: the smaller mean is then "better".
    lower_is_better: bool = False

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p)

    def verdict(self, a: str = "a", b: str = "b",
                lang: str | None = None) -> str:
        """One sentence in ``lang`` (``"en"`` or ``"zh"``; None: the
        reader's language, :func:`~d2l_densenet.messages.language`):
        which is better, no difference detectable, or no test."""
        if self.n < MIN_PAIRS:
            return text("stats.too_few", lang, n=self.n,
                        min_pairs=MIN_PAIRS)
        if not self.tested:
            return text("stats.all_equal", lang)
        if self.p < ALPHA:
            better = a if (self.mean_diff > 0) != self.lower_is_better \
                else b
            return text("stats.better", lang, better=better, p=self.p,
                        alpha=ALPHA)
        return text("stats.undetectable_n", lang, n=self.n, p=self.p)


def paired_test(a, b, lower_is_better: bool = False) -> PairedResult:
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel``) with its 95%
    confidence interval, run only under the policy (``MIN_PAIRS``).
    ``lower_is_better=True`` for errors: the verdict then favours the
    smaller mean."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and paired, got shapes "
                         f"{a.shape} and {b.shape}")
    d, n = a - b, len(a)
    mean = float(d.mean()) if n else math.nan
    if n < MIN_PAIRS or not d.std() > 0:
        return PairedResult(n, mean, lower_is_better=lower_is_better)
    r = stats.ttest_rel(a, b)
    ci = r.confidence_interval(1 - ALPHA)
    return PairedResult(n, mean, float(r.statistic),
                        float(stats.t.ppf(1 - ALPHA / 2, df=n - 1)),
                        float(r.pvalue), float(ci.low), float(ci.high),
                        lower_is_better)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on the same test examples: ``only_a`` examples
    were right under variant a only, ``only_b`` under b only."""

    n: int
    only_a: int
    only_b: int
    p: float

    def verdict(self, a: str = "a", b: str = "b",
                lang: str | None = None) -> str:
        """One sentence in ``lang`` (None: the reader's language)."""
        if self.only_a + self.only_b == 0:
            return text("stats.same_right", lang)
        if self.p < ALPHA:
            better = a if self.only_a > self.only_b else b
            return text("stats.better_g", lang, better=better, p=self.p,
                        alpha=ALPHA)
        return text("stats.undetectable", lang, p=self.p)


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
