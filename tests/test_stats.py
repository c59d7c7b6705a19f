"""The one test policy of the exercises (d2l_densenet.stats)."""
import math

import numpy as np
import pytest
from scipy import stats as st

from d2l_densenet import stats


def test_too_few_pairs_give_no_test():
    r = stats.paired_test([0.9, 0.8], [0.1, 0.2])
    assert r.n == 2 and not r.tested
    assert "at least 3" in r.verdict()
    assert r.mean_diff == pytest.approx(0.7)


def test_paired_t_matches_hand_computation():
    a = np.array([0.91, 0.90, 0.92, 0.89])
    b = np.array([0.88, 0.89, 0.90, 0.87])
    r = stats.paired_test(a, b)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert r.t == pytest.approx(t)
    assert r.p == pytest.approx(2 * st.t.sf(abs(t), df=3))
    assert r.t_cutoff == pytest.approx(3.182, abs=1e-3)
    assert r.ci_low < d.mean() < r.ci_high
    assert r.verdict("avg", "max").startswith("avg better")


def test_no_difference_and_equal_differences():
    r = stats.paired_test([0.5, 0.6, 0.7], [0.6, 0.5, 0.7])
    assert r.tested and "no difference" in r.verdict()
    same = stats.paired_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert not same.tested and "all equal" in same.verdict()


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="paired"):
        stats.paired_test([1, 2, 3], [1, 2])


def test_mcnemar_counts_only_disagreements():
    a = np.array([1] * 30 + [0] * 5 + [1] * 60, bool)
    b = np.array([0] * 30 + [1] * 5 + [1] * 60, bool)
    r = stats.mcnemar(a, b)
    assert (r.only_a, r.only_b, r.n) == (30, 5, 95)
    # exact two-sided binomial: 2 * P(X <= 5), X ~ Bin(35, 1/2)
    p = 2 * sum(math.comb(35, i) for i in range(6)) / 2 ** 35
    assert r.p == pytest.approx(p)
    assert r.verdict("avg", "max").startswith("avg better")
    tie = stats.mcnemar(a, a)
    assert tie.p == 1.0 and "same examples" in tie.verdict()


def test_lower_is_better_for_errors():
    err_a = [0.130, 0.128, 0.131, 0.129]
    err_b = [0.140, 0.139, 0.142, 0.138]
    r = stats.paired_test(err_a, err_b, lower_is_better=True)
    assert r.mean_diff < 0 and r.p < 0.05
    assert r.verdict("A", "B").startswith("A better")
    assert stats.paired_test(err_a, err_b).verdict("A", "B").startswith(
        "B better")


def test_verdicts_speak_the_readers_language(monkeypatch):
    """Without ``lang=``: the reader's language setting."""
    monkeypatch.setenv("D2L_DENSENET_LANG", "zh")
    assert stats.paired_test([1, 2], [0, 1]).verdict() == (
        "无法检验：只有2对，一次检验至少需要3对")
    r = stats.paired_test([0.91, 0.90, 0.92, 0.89], [0.88, 0.89, 0.9, 0.87])
    assert r.verdict("平均", "最大").startswith("平均更好")
    a = np.array([1] * 30 + [0] * 5, bool)
    assert stats.mcnemar(a, ~a).verdict("平均", "最大").startswith("平均更好")


def test_verdict_language_is_passed_not_global(monkeypatch):
    from d2l_densenet.messages import language

    monkeypatch.setenv("D2L_DENSENET_LANG", "en")
    assert language() == "en"
    r = stats.paired_test([0.9, 0.8, 0.7], [0.5, 0.4, 0.45])
    assert "更好" in r.verdict("甲", "乙", lang="zh")
    assert "better" in r.verdict("a", "b", lang="en")
    m = stats.mcnemar([1, 1, 0, 1], [0, 1, 0, 0])
    assert "差异" in m.verdict(lang="zh")
    monkeypatch.setenv("D2L_DENSENET_LANG", "zh")   # a passed lang wins
    assert "better" in r.verdict("a", "b", lang="en")
    assert "detectable" in m.verdict(lang="en")
