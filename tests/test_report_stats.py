"""rnnlm_jax.report.stats against values known independently: closed forms of the t
distribution, textbook Fisher tables counted by hand, and scipy.stats (a dependency) as a
second implementation."""

import math

import pytest

from rnnlm_jax.report import stats


def test_summary_is_mean_sample_std_and_n_of_finite_values():
  s = stats.summary([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, float("nan"), None, True])
  assert s.n == 8 and s.mean == 5.0
  assert s.std == pytest.approx(math.sqrt(32 / 7))  # sum of squares 32, ddof 1
  assert stats.summary([3.5]) == (3.5, None, 1)
  assert stats.summary([]) == (None, None, 0)


def test_summary_of_blown_up_values_does_not_overflow():
  # Perplexities of diverged runs: their squares (and sum) are beyond a float's range.
  s = stats.summary([1e160, 3e160])
  assert s.mean == pytest.approx(2e160) and s.std == pytest.approx(math.sqrt(2) * 1e160)
  s = stats.summary([1.7e308, 1.7e308])
  assert s.mean == pytest.approx(1.7e308) and s.std == 0.0


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, -4.0, 12.0])
def test_t_tail_matches_the_closed_forms_for_one_and_two_degrees_of_freedom(t):
  # df = 1 is the Cauchy distribution; df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
  assert stats.t_sf_two_sided(t, 1.0) == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)))
  assert stats.t_sf_two_sided(t, 2.0) == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t))


def test_welch_by_hand():
  # Means 2 and 5, variances 1 and 1, n 3 and 3: t = -3 / sqrt(2/3), df = 4 exactly.
  w = stats.welch([1, 2, 3], [4, 5, 6])
  assert w.t == pytest.approx(-3 / math.sqrt(2 / 3))
  assert w.df == pytest.approx(4.0)
  # df = 4: F(t) = 1/2 + (3/8) x (1 - x^2/12 / (1 + ...)) in its standard form below.
  x = abs(w.t)
  cdf = 0.5 + (3 / 8) * (x / math.sqrt(1 + x * x / 4)) * (1 - x * x / (12 * (1 + x * x / 4)))
  assert w.p == pytest.approx(2 * (1 - cdf))


def test_welch_wikipedia_example_and_scipy():
  # Wikipedia, "Welch's t-test", example 1 (unequal variances): t = -2.46, df = 25.0,
  # p = 0.021 (reported to these digits).
  a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
  a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
  w = stats.welch(a1, a2)
  assert round(w.t, 2) == -2.46 and round(w.df, 1) == 25.0 and round(w.p, 3) == 0.021
  scipy_stats = pytest.importorskip("scipy.stats")
  ref = scipy_stats.ttest_ind(a1, a2, equal_var=False)
  assert w.t == pytest.approx(ref.statistic) and w.p == pytest.approx(ref.pvalue)


def test_welch_needs_two_values_per_side_and_handles_zero_variance():
  assert stats.welch([1.0], [2.0, 3.0]) is None
  assert stats.welch([1.0, float("nan")], [2.0, 3.0]) is None
  assert stats.welch([1.0, 1.0], [1.0, 1.0]).p == 1.0
  assert stats.welch([1.0, 1.0], [2.0, 2.0]).p == 0.0


def test_fisher_exact_textbook_tables():
  # Fisher's lady tasting tea, [[3, 1], [1, 3]]: the tables have weights 1, 16, 36, 16, 1 of
  # 70; two-sided p = (1 + 16 + 16 + 1) / 70.
  assert stats.fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70)
  # 4 of 5 against 0 of 5: weights 5, 50, 100, 50, 5 of 210; p = 10 / 210 (the one Pascanu
  # synthetic comparison issue 20 quotes at p ~ 0.05).
  assert stats.fisher_exact(4, 5, 0, 5) == pytest.approx(10 / 210)
  # 2 of 5 against 0 of 5: weights 10, 25, 10 of 45; p = 20 / 45.
  assert stats.fisher_exact(2, 5, 0, 5) == pytest.approx(20 / 45)
  assert stats.fisher_exact(0, 5, 0, 5) == 1.0
  assert stats.fisher_exact(5, 5, 0, 5) == pytest.approx(2 / 252)
  with pytest.raises(ValueError):
    stats.fisher_exact(6, 5, 0, 5)


@pytest.mark.parametrize("table", [(7, 12, 2, 9), (1, 10, 8, 10), (0, 3, 3, 3), (13, 40, 20, 41)])
def test_fisher_exact_matches_scipy(table):
  scipy_stats = pytest.importorskip("scipy.stats")
  k1, n1, k2, n2 = table
  ref = scipy_stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
  assert stats.fisher_exact(*table) == pytest.approx(ref, rel=1e-9)


def test_fmt_p():
  assert stats.fmt_p(None) == "—"
  assert stats.fmt_p(0.0004) == "p < 0.001"
  assert stats.fmt_p(0.0476) == "p = 0.048"
  assert stats.fmt_p(0.444) == "p = 0.44"


def _points(values=(), wins=None):
  """Finished points with test_perplexity ``values``; or ended synthetic points, ``wins`` of
  them successful out of len(values)."""
  pts = [{"state": "finished", "test_perplexity": v} for v in values]
  for i, p in enumerate(pts):
    if wins is not None:
      p["success"] = i < wins
  return pts


def test_row_tests_compare_each_row_with_the_first_per_column():
  from rnnlm_jax.report import layout, render
  table = {"label": "", "rows": ["lstm", "gru", "rnn_tanh"], "cols": ["50", "100"],
           "cells": {("lstm", "50"): _points([100.0, 102.0, 101.0]),
                     ("gru", "50"): _points([110.0, 111.0, 113.0]),
                     ("rnn_tanh", "50"): _points([130.0]),
                     ("gru", "100"): _points([1.0, 2.0])}}  # no first-row cell at 100: skipped
  got = layout.row_tests(table, "test_perplexity")
  assert [(c["row"], c["col"]) for c in got] == [("gru", "50"), ("rnn_tanh", "50")]
  assert got[0]["diff"] == pytest.approx(111.333333 - 101.0)
  assert got[0]["p"] == pytest.approx(stats.welch([110, 111, 113], [100, 102, 101]).p)
  assert got[1]["p"] is None  # one seed: no test
  md = render.tests_table({"tables": [table]}, "test_perplexity")
  assert "| gru | 50 | lstm | +10.33 | Welch t (n 3 vs 3) | p = 0.0" in md
  assert "| rnn_tanh | 50 | lstm | +29.00 | Welch t (n 1 vs 3) | — (n < 2 on a side) |" in md


def test_row_tests_use_fisher_on_success_counts():
  from rnnlm_jax.report import layout
  table = {"label": "", "rows": ["sgd", "sgd_cr"], "cols": ["50"],
           "cells": {("sgd", "50"): _points([0.5] * 5, wins=0),
                     ("sgd_cr", "50"): _points([0.0] * 5, wins=4)}}
  (c,) = layout.row_tests(table, "success")
  assert c["diff"] == pytest.approx(0.8) and c["test"] == "Fisher exact"
  assert c["p"] == pytest.approx(10 / 210)
