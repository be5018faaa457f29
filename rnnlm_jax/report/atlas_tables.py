"""The clipping atlas's results tables (issue 21): its README's questions answered from the
records, as Markdown, re-printed by ``python scripts/tables.py clipping`` (tables of kind
``"atlas"`` in ``experiments/clipping/paper.json``).

Every group is a (cell, clipping setting, learning rate) of a halving search per cell
(:mod:`rnnlm_jax.report.atlas`), its seeds scored at the search's first rung, where every point
has the same budget (:func:`rnnlm_jax.report.atlas.at_budget`). A group **trains** when every
seed reached the budget with a validation value below ``below`` (the uniform prediction's: a
perplexity of the vocabulary size, log2 of it in bits/char); it **blew up** when a seed
diverged or ended at or above it. Two groups that both train are compared by Welch's t-test on
their seeds' values (:func:`rnnlm_jax.report.stats.welch`): "better" / "worse" at p < 0.05,
else "within the seed spread".

The tables (:data:`TABLES`, one per question):

    gain         per cell: the best unclipped group, the best clipped one, the rates each trains at
    threshold    per cell and global-norm threshold, at each rate: value, clip rate, verdict
                 against the unclipped group of that rate
    bands        the same verdicts counted per band of clip rate (how often the threshold fires)
    modes        per cell and rate: value, per-layer and adaptive clipping against the best
                 global-norm threshold of that rate
    best         per cell: the groups of the search's last rung (trained longest), valid and
                 test, and a reference setting (Zaremba's) at its furthest rung
"""

from __future__ import annotations

import math
import pathlib
import statistics
from typing import Callable, NamedTuple, Sequence

from rnnlm_jax.report import atlas
from rnnlm_jax.report import records as records_lib
from rnnlm_jax.report import stats
from rnnlm_jax.report.layout import setting
from rnnlm_jax.report.records import ReportError, finite, fmt_value, num

SIGNIFICANT = 0.05  # Welch p below which a difference is called better / worse
BANDS = ((0.9, 1.01, "fires on ≥ 90 % of updates"), (0.1, 0.9, "fires on 10-90 %"),
         (0.0, 0.1, "fires on < 10 %"))


class Group(NamedTuple):
  """A (cell, clipping setting, learning rate) group at the comparison budget."""
  cell: str
  clip: str  # label, atlas.clip_label: "none", "global_norm 5"
  mode: str  # optim.clip_mode
  threshold: float | None  # optim.clip_value (None unclipped)
  lr: float
  values: tuple[float, ...]  # the seeds' validation values (perplexity / bpc) at the budget
  diverged: int  # seeds diverged by the budget, or with no finite value there
  pending: int  # seeds not at the budget yet
  clip_rate: float | None  # fraction of updates clipped up to the budget, mean over seeds
  norm_p50: float | None  # the runs' median pre-clip gradient norm up to the budget, median
  #                         over seeds


def groups(recs: list[dict], b: atlas.Budget) -> dict[tuple, Group]:
  """{(cell, clip, lr): Group} of the atlas records ``recs`` (:func:`atlas.collect`) at the
  budget ``b``, in sweep order."""
  acc: dict[tuple, dict] = {}
  for r in recs:
    k = (r["cell"], r["clip"], r["lr"])
    g = acc.setdefault(k, {"values": [], "diverged": 0, "pending": 0, "rates": [], "norms": [],
                           "mode": r["mode"], "threshold": None if r["mode"] == "none"
                           else num(setting(r, atlas.VALUE_KEY))})
    what, v = atlas.at_budget(r, b.key, b.budget)
    if what == "value":
      g["values"].append(v)
    else:
      g[what] += 1
    if what != "pending":
      train = records_lib.train_stats(atlas.events_until(r, "train", b.key, b.budget))
      for field, out in (("clip_rate", "rates"), ("grad_norm_p50", "norms")):
        if finite(train.get(field)):
          g[out].append(train[field])
  return {k: Group(k[0], k[1], g["mode"], g["threshold"], k[2], tuple(g["values"]),
                   g["diverged"], g["pending"],
                   statistics.fmean(g["rates"]) if g["rates"] else None,
                   statistics.median(g["norms"]) if g["norms"] else None)
          for k, g in acc.items()}


def trains(g: Group, below: float) -> bool:
  """Every seed at the budget with a value below ``below``."""
  return (not g.pending and not g.diverged and bool(g.values)
          and max(g.values) < below)


def blew_up(g: Group, below: float) -> bool:
  """Every seed at the budget, and one diverged or at / above ``below``."""
  return not g.pending and (g.diverged > 0 or any(v >= below for v in g.values))


def compare(a: Group, ref: Group, below: float) -> tuple[str, float | None, float | None]:
  """(verdict, change of the mean in %, Welch p) of ``a`` against ``ref``: "better" /
  "worse" (p < :data:`SIGNIFICANT`), "within the seed spread" (also when a side has one seed:
  no test), "trains, the other blew up", "blew up, the other trains", "both blew up",
  "to do"."""
  if a.pending or ref.pending:
    return "to do", None, None
  ta, tr = trains(a, below), trains(ref, below)
  if not ta or not tr:
    return ({(True, False): "trains, the other blew up", (False, True): "blew up, the other trains"}
            .get((ta, tr), "both blew up" if blew_up(a, below) and blew_up(ref, below)
                 else "to do"), None, None)
  change = 100 * (statistics.fmean(a.values) / statistics.fmean(ref.values) - 1)
  test = stats.welch(a.values, ref.values)
  if test is None or test.p >= SIGNIFICANT:
    return "within the seed spread", change, None if test is None else test.p
  return ("better" if change < 0 else "worse"), change, test.p


# ----------------------------------------------------------------------------- formatting


def fmt_group(g: Group | None) -> str:
  """``"812 ± 3.1"`` (the seeds' mean ± std), ``"812 (n=1)"``, ``"1 of 2 div"`` for blown-up
  seeds, ``"to do"``."""
  if g is None:
    return "—"
  if g.pending:
    return "to do"
  s = stats.summary(g.values)
  text = fmt_summary(s) if s.n else ""
  if g.diverged:
    text += ("; " if text else "") + f"{g.diverged} of {g.diverged + s.n} div"
  return text


def fmt_summary(s: stats.Summary) -> str:
  """``"812 ± 3.1"``, ``"812 (n=1)"``, ``"—"`` (no value)."""
  if not s.n:
    return "—"
  return atlas.fmt_number(s.mean) + (f" ± {atlas.fmt_number(s.std, 2)}" if s.std is not None
                                     else " (n=1)")


def fmt_verdict(verdict: tuple[str, float | None, float | None]) -> str:
  """``"better, -12.3 % (p = 0.012)"``, ``"within the seed spread (+1.0 %, p = 0.41)"``."""
  what, change, p = verdict
  if change is None:
    return what
  detail = f"{change:+.1f} %" + ("" if p is None else f", {stats.fmt_p(p)}")
  return f"{what}, {detail}" if what in ("better", "worse") else f"{what} ({detail})"


def fmt_lrs(lrs: Sequence[float]) -> str:
  return ", ".join(fmt_value(x) for x in sorted(lrs)) or "none"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                   + ["| " + " | ".join(r) + " |" for r in rows])


def _cells(gs: dict[tuple, Group]) -> list[str]:
  return list(dict.fromkeys(k[0] for k in gs))


def _lrs(gs: dict[tuple, Group]) -> list[float]:
  return sorted({k[2] for k in gs if finite(k[2])})


def _best(candidates: Sequence[Group], below: float) -> Group | None:
  """The group of lowest mean among those that train (None if none trains)."""
  ok = [g for g in candidates if trains(g, below)]
  return min(ok, key=lambda g: statistics.fmean(g.values)) if ok else None


def _label(g: Group | None) -> str:
  return "—" if g is None else f"{g.clip}, lr {fmt_value(g.lr)}"


# ----------------------------------------------------------------------------- the tables


def gain_table(gs: dict[tuple, Group], below: float) -> str:
  """Which cell gains most from clipping: per cell, the best unclipped group and the best
  clipped one (any setting), each with the learning rates at which it trains; the change and
  Welch's test between the two."""
  rows = []
  for cell in _cells(gs):
    mine = [g for g in gs.values() if g.cell == cell]
    bare = [g for g in mine if g.mode == "none"]
    clipped = [g for g in mine if g.mode != "none"]
    best_bare, best_clipped = _best(bare, below), _best(clipped, below)
    verdict = ("—" if best_clipped is None or best_bare is None
               else fmt_verdict(compare(best_clipped, best_bare, below)))
    if best_bare is None and best_clipped is not None:
      verdict = "clipped trains, unclipped never does"
    rows.append([cell, _label(best_bare), fmt_group(best_bare),
                 fmt_lrs({g.lr for g in bare if trains(g, below)}),
                 _label(best_clipped), fmt_group(best_clipped),
                 fmt_lrs({g.lr for g in clipped if trains(g, below)}), verdict])
  return _table(["cell", "best unclipped", "valid", "rates it trains at", "best clipped",
                 "valid", "rates some clipping trains at", "clipped vs unclipped"], rows)


def threshold_table(gs: dict[tuple, Group], below: float) -> str:
  """Global-norm clipping per threshold (rows) and learning rate (columns): the value, the
  fraction of updates clipped, the threshold over the run's median pre-clip norm, and the
  verdict against the unclipped group of the same rate and cell."""
  lrs = _lrs(gs)
  rows = []
  for cell in _cells(gs):
    gn = sorted((g for g in gs.values() if g.cell == cell and g.mode == "global_norm"),
                key=lambda g: g.threshold)
    for t in dict.fromkeys(g.threshold for g in gn):
      row = [cell, fmt_value(t)]
      for lr in lrs:
        g = gs.get((cell, atlas.clip_label("global_norm", t), lr))
        bare = gs.get((cell, "none", lr))
        if g is None:
          row.append("—")
          continue
        text = fmt_group(g)
        if g.clip_rate is not None:
          text += f"; clips {100 * g.clip_rate:.0f} %"
        if g.norm_p50:
          text += f", t/norm {t / g.norm_p50:.2g}"
        if bare is not None and not g.pending:
          text += "; " + fmt_verdict(compare(g, bare, below))
        row.append(text)
      rows.append(row)
  return _table(["cell", "threshold"] + [f"lr {fmt_value(x)}" for x in lrs], rows)


def band_table(gs: dict[tuple, Group], below: float) -> str:
  """The threshold table's verdicts counted per cell and band of clip rate (how often the
  threshold fired): better / within the seed spread / worse than unclipped at the same rate,
  trains where unclipped blew up, blew up; and the range of threshold / median norm in the
  band."""
  rows = []
  for cell in _cells(gs):
    gn = [g for g in gs.values() if g.cell == cell and g.mode == "global_norm"
          and not g.pending and g.clip_rate is not None]
    for lo, hi, name in BANDS:
      inband = [g for g in gn if lo <= g.clip_rate < hi]
      counts = dict.fromkeys(("better", "within the seed spread", "worse",
                              "trains, the other blew up", "blew up"), 0)
      for g in inband:
        bare = gs.get((cell, "none", g.lr))
        what = "blew up" if blew_up(g, below) else (
            compare(g, bare, below)[0] if bare is not None else "to do")
        if what in counts:
          counts[what] += 1
      ratios = [g.threshold / g.norm_p50 for g in inband if g.norm_p50]
      span = (f"{min(ratios):.2g}–{max(ratios):.2g}" if ratios else "—")
      rows.append([cell, name, str(len(inband)), span] + [str(c) for c in counts.values()])
  return _table(["cell", "threshold", "groups", "threshold / median norm", "better", "within "
                 "the seed spread", "worse", "trains, unclipped blew up", "blew up"], rows)


def modes_table(gs: dict[tuple, Group], below: float) -> str:
  """Per cell and learning rate: the best global-norm threshold, and each other clipping mode
  (value, per-layer norm, adaptive) against it."""
  modes = list(dict.fromkeys(g.clip for g in gs.values()
                             if g.mode not in ("none", "global_norm")))
  rows = []
  for cell in _cells(gs):
    for lr in _lrs(gs):
      gn = [g for g in gs.values() if g.cell == cell and g.lr == lr and g.mode == "global_norm"]
      if not gn:
        continue
      best = _best(gn, below)
      row = [cell, fmt_value(lr), ("none trains" if best is None else
                                   f"{fmt_value(best.threshold)}: {fmt_group(best)}")]
      for clip in modes:
        g = gs.get((cell, clip, lr))
        if g is None:
          row.append("—")
          continue
        text = fmt_group(g)
        if best is not None and not g.pending:
          text += "; " + fmt_verdict(compare(g, best, below))
        row.append(text)
      rows.append(row)
  return _table(["cell", "lr", "best global norm"] + modes, rows)


def furthest_budget(points: list[dict], budgets: Sequence[float], key: str) -> float:
  """The largest of ``budgets`` that every seed of a group (``points``) reached or diverged
  before (-inf if none)."""
  done = [x for x in budgets
          if all(atlas.at_budget(r, key, x)[0] != "pending" for r in points)]
  return max(done) if done else -math.inf


def best_table(recs: list[dict], dirs: Sequence[pathlib.Path], b: atlas.Budget, below: float,
               reference: dict | None = None) -> str:
  """Per cell, the groups that reached the search's furthest rung (trained longest), best
  first by the mean validation value there: valid and test (its best-valid checkpoint) mean ±
  std; and the ``reference`` setting ({"clip", "lr", "label"}) at the furthest rung it
  reached, with its rank among the cell's groups at the first rung (the groups that train,
  by mean)."""
  rungs = atlas.rung_budgets(dirs)
  first = groups(recs, b)
  rows = []
  for cell in _cells(first):
    mine = [r for r in recs if r["cell"] == cell]
    budgets = atlas.budgets_of(mine, rungs, b)
    unit = atlas.unit_of(mine)
    by_group: dict[tuple, list[dict]] = {}
    for r in mine:
      by_group.setdefault((r["clip"], r["lr"]), []).append(r)

    def at(points: list[dict], budget: float) -> Group:
      (g,) = groups(points, atlas.Budget(b.key, budget, b.metric, b.mode)).values()
      return g

    def row(label: str, points: list[dict], budget: float, rank: str = "—") -> list[str]:
      tests = stats.summary(r.get(f"test_{unit}") for r in points)
      return [cell, label, fmt_value(budget), fmt_group(at(points, budget)),
              fmt_summary(tests), rank]

    reached = {k: furthest_budget(p, budgets, b.key) for k, p in by_group.items()}
    top = max(reached.values(), default=-math.inf)
    if not math.isfinite(top):
      continue
    final = {k: at(by_group[k], top) for k in by_group if reached[k] == top}
    for k in sorted(final, key=lambda k: (statistics.fmean(final[k].values)
                                          if trains(final[k], below) else math.inf)):
      rows.append(row(_label(final[k]), by_group[k], top))
    ref_key = reference and (reference["clip"], reference["lr"])
    if ref_key in by_group and math.isfinite(reached[ref_key]):
      ranked = sorted((g for g in first.values() if g.cell == cell and trains(g, below)),
                      key=lambda g: statistics.fmean(g.values))
      g0 = first[(cell, *ref_key)]
      total = sum(1 for g in first.values() if g.cell == cell)
      rank = f"{ranked.index(g0) + 1} of {total}" if g0 in ranked else "blew up"
      rows.append(row(reference.get("label", _label(g0)), by_group[ref_key], reached[ref_key],
                      rank))
  return _table(["cell", "group", "updates", "valid", "test", "reference's rank at the first "
                 "rung"], rows)


TABLES: dict[str, Callable] = {"gain": gain_table, "threshold": threshold_table,
                               "bands": band_table, "modes": modes_table}


def render(question: str, paths: Sequence[str | pathlib.Path], below: float,
           reference: dict | None = None) -> str:
  """The Markdown table answering ``question`` (:data:`TABLES` or "best") from the atlas
  sweeps under ``paths`` (:func:`rnnlm_jax.report.atlas.sweep_dirs`).

  Raises:
    ReportError: an unknown question; see :func:`rnnlm_jax.report.atlas.collect`.
  """
  dirs = atlas.sweep_dirs(paths)
  b = atlas.budget_of(dirs)
  recs = atlas.collect(dirs)
  if question == "best":
    return best_table(recs, dirs, b, below, reference)
  if question not in TABLES:
    raise ReportError(f"unknown atlas question {question!r}; one of "
                      f"{', '.join([*TABLES, 'best'])}")
  return TABLES[question](groups(recs, b), below)
