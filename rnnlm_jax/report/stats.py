"""Statistics for comparing runs over seeds: mean ± std (n), Welch's t-test, Fisher's exact test.

Pure functions of plain numbers, used by ``rnnlm-report`` (:mod:`rnnlm_jax.report.layout`) and
by ``scripts/tables.py``:

- :func:`summary`: mean, sample standard deviation (ddof = 1) and n of the finite values;
- :func:`welch`: Welch's unequal-variance t-test on two sets of seed values (two-sided p;
  the Student t CDF through the regularized incomplete beta function ``scipy.special.betainc``,
  scipy being a dependency already);
- :func:`fisher_exact`: Fisher's exact test on a 2×2 table of success counts (two-sided p: the
  sum of the hypergeometric probabilities of every table with the observed margins that is no
  more likely than the observed one; exact integer arithmetic, no scipy).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable, NamedTuple

# Tables whose probability is within this relative distance of the observed one count as
# "as likely" (R's fisher.test uses 1 + 1e-7 on floating-point probabilities; the
# probabilities here are exact fractions, so this only matters for equal ones).
_TIES = Fraction(1, 10**7)


class Summary(NamedTuple):
  """Mean, sample standard deviation (None for n < 2) and n of a set of values."""
  mean: float | None
  std: float | None
  n: int


class Welch(NamedTuple):
  """Welch's t statistic (a - b), its Welch–Satterthwaite degrees of freedom, the two-sided p."""
  t: float
  df: float
  p: float


def _finite(values: Iterable) -> list[float]:
  return [float(v) for v in values
          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def summary(values: Iterable) -> Summary:
  """Mean, sample std (ddof = 1) and n of the finite numbers in ``values`` (others skipped)."""
  vals = _finite(values)
  n = len(vals)
  if n == 0:
    return Summary(None, None, 0)
  # Scaled by the largest magnitude, so a blown-up run's perplexity (1e160: its square
  # overflows a float) still has a mean and std.
  scale = max(abs(v) for v in vals) or 1.0
  scaled = [v / scale for v in vals]
  mean = math.fsum(scaled) / n
  std = (scale * math.sqrt(math.fsum((v - mean) ** 2 for v in scaled) / (n - 1))
         if n > 1 else None)
  return Summary(scale * mean, std, n)


def t_sf_two_sided(t: float, df: float) -> float:
  """P(|T| >= |t|) for Student's t with ``df`` (> 0, may be fractional) degrees of freedom:
  I_{df/(df+t²)}(df/2, 1/2), the regularized incomplete beta function."""
  from scipy.special import betainc  # pylint: disable=import-outside-toplevel
  if math.isinf(t):
    return 0.0
  return float(betainc(df / 2.0, 0.5, df / (df + t * t)))


def welch(a: Iterable, b: Iterable) -> Welch | None:
  """Welch's t-test of mean(a) = mean(b) on the finite values of ``a`` and ``b``.

  Returns None when either side has fewer than 2 values (no variance to test with). Two sets
  with zero variance give t = ±inf and p = 0 if their means differ, t = 0 and p = 1 if not.
  """
  sa, sb = summary(a), summary(b)
  if sa.n < 2 or sb.n < 2:
    return None
  va, vb = sa.std ** 2 / sa.n, sb.std ** 2 / sb.n
  diff = sa.mean - sb.mean
  if va + vb == 0:
    return Welch(0.0, math.nan, 1.0) if diff == 0 else Welch(math.copysign(math.inf, diff),
                                                             math.nan, 0.0)
  t = diff / math.sqrt(va + vb)
  df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
  return Welch(t, df, t_sf_two_sided(t, df))


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
  """Two-sided p of Fisher's exact test: ``k1`` successes of ``n1`` runs against ``k2`` of
  ``n2`` (the 2×2 table [[k1, n1 - k1], [k2, n2 - k2]]).

  With the margins fixed, the successes of the first group follow a hypergeometric
  distribution; p is the sum of the probabilities of all its values that are no more likely
  than the observed ``k1`` (the rule of R's ``fisher.test`` and scipy's ``fisher_exact``).
  """
  if not (0 <= k1 <= n1 and 0 <= k2 <= n2):
    raise ValueError(f"need 0 <= k <= n for both groups, got {k1}/{n1} and {k2}/{n2}")
  k, n = k1 + k2, n1 + n2
  total = math.comb(n, k)
  lo, hi = max(0, k - n2), min(k, n1)
  prob = {x: Fraction(math.comb(n1, x) * math.comb(n2, k - x), total) for x in range(lo, hi + 1)}
  cut = prob[k1] * (1 + _TIES)
  return float(min(Fraction(1), sum(p for p in prob.values() if p <= cut)))


def fmt_p(p: float | None) -> str:
  """A p-value as shown in tables: ``p = 0.041``, ``p < 0.001``; ``"—"`` for None."""
  if p is None or (isinstance(p, float) and math.isnan(p)):
    return "—"
  return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"
