"""The clipping atlas's figures: ``rnnlm-report DIR --atlas`` (issue 21).

DIR is one sweep directory whose points vary ``model.cell``, the clipping setting
(``optim.clip_mode``, ``optim.clip_value``) and ``optim.learning_rate`` over seeds, or a
directory holding one such sweep per cell (``DIR/cell=lstm/``, ...; the cell is read from each
point's config.json, so it may be set on the command line rather than swept). Four PNGs
(:func:`write_atlas`), one per question:

    atlas_heatmap.png      per cell, validation perplexity (or bits/char) over clipping
                           setting x learning rate, mean over seeds, diverged seeds counted
    atlas_clip_rate.png    fraction of updates clipped against the global-norm threshold
    atlas_grad_norms.png   pre-clip gradient norm (interval p50, band to p90) against update
    atlas_best_curves.png  learning curves (train lines, validation markers) of the best point
                           per (cell, clip mode)

Every point is compared at the same budget: a halving search's first rung (sweep.json's
``"search"``; later rungs trained the promoted points longer), scored as the search scores it
(:func:`rnnlm_jax.sweeps.halving.value_at`: the best validation value logged up to the budget);
a plain sweep's points at the end of their runs.
"""

from __future__ import annotations

import math
import pathlib
import statistics
from typing import NamedTuple, Sequence

from rnnlm_jax.report import plots as plots_lib
from rnnlm_jax.report import records as records_lib
from rnnlm_jax.report.layout import CELL_KEY, REPLICATE_KEYS, setting, varies_within
from rnnlm_jax.report.records import ReportError, finite, fmt_value, num
from rnnlm_jax.report import stats as stats_lib
from rnnlm_jax.sweeps import halving

LR_KEY = "optim.learning_rate"
MODE_KEY = "optim.clip_mode"
VALUE_KEY = "optim.clip_value"
AXES = (CELL_KEY, MODE_KEY, VALUE_KEY, LR_KEY)
# Keys that may differ within a (cell, clip, lr) group: the seed and the run length (points
# promoted by a halving search were re-run longer).
IGNORED = (*REPLICATE_KEYS, "train.max_steps", "train.num_epochs")
FIGURES = ("heatmap", "clip_rate", "grad_norms", "best_curves")
UNIT_NAMES = {"perplexity": "perplexity", "bpc": "bits/char", "loss": "loss"}


# ----------------------------------------------------------------------------- records


def sweep_dirs(paths: Sequence[str | pathlib.Path]) -> list[pathlib.Path]:
  """The sweep directories of ``paths``: each one that is a sweep (sweep.json or run
  subdirectories with config.json), else its subdirectories that are (sorted by name).

  Raises:
    ReportError: a path that is not a directory or holds no sweep.
  """
  def is_sweep(d: pathlib.Path) -> bool:
    return (d / "sweep.json").is_file() or any((c / "config.json").is_file()
                                               for c in d.iterdir() if c.is_dir())
  out = []
  for p in map(pathlib.Path, paths):
    if not p.is_dir():
      raise ReportError(f"{p} is not a directory; pass a sweep directory or one holding a "
                        "sweep per cell")
    found = [p] if is_sweep(p) else sorted(c for c in p.iterdir() if c.is_dir() and is_sweep(c))
    if not found:
      raise ReportError(f"{p} holds no sweep (no sweep.json, no run subdirectories)")
    out += found
  return out


class Budget(NamedTuple):
  """Where points are compared: the budget key, the budget (None: the end of each run) and
  the validation metric / mode groups are ranked by (the halving search's; LM ``loss``)."""
  key: str
  budget: float | None
  metric: str = "loss"
  mode: str = "min"


def budget_of(dirs: Sequence[pathlib.Path]) -> Budget:
  """The :class:`Budget` every point is compared at: the first rung's budget of the halving
  searches in ``dirs`` (the smallest, if they differ) and their metric; the end of each run
  when none was searched.

  Raises:
    ReportError: searches that count their budgets in different keys (steps vs epochs).
  """
  firsts = {}
  for d in dirs:
    search = records_lib.load_search(d)
    if search and search.get("method") == "halving":
      rungs = search.get("rungs") or [{}]
      firsts[d] = (search.get("budget_key"), rungs[0].get("budget", search.get("min_budget")),
                   search.get("metric", "loss"), search.get("mode", "min"))
  kinds = {(k, m, o) for k, _, m, o in firsts.values()}
  if len(kinds) > 1:
    raise ReportError(f"--atlas: the searches differ in budget key or metric ({sorted(kinds)})")
  if not firsts:
    return Budget("train.max_steps", None)
  key, metric, mode = kinds.pop()
  return Budget(key, min(b for _, b, _, _ in firsts.values()), metric, mode)


def rung_budgets(dirs: Sequence[pathlib.Path]) -> dict[str, list[float]]:
  """{sweep directory: its halving search's rung budgets, ascending} (from sweep.json; empty
  for a plain sweep)."""
  out = {}
  for d in dirs:
    search = records_lib.load_search(d) or {}
    out[str(d)] = sorted(r["budget"] for r in search.get("rungs", []) if "budget" in r)
  return out


def budgets_of(points: Sequence[dict], rungs: dict[str, list[float]], b: Budget) -> list[float]:
  """The rung budgets, ascending, of the halving searches that ``points`` come from (``rungs``,
  :func:`rung_budgets`: a cell's points may span several sweep directories, e.g. a search and
  a plain sweep below its ladder); ``[b.budget]`` if none of them is a search."""
  budgets = {x for d in {str(r["sweep"]) for r in points} for x in rungs.get(d, [])}
  return sorted(budgets) or [b.budget]


def collect(dirs: Sequence[pathlib.Path]) -> list[dict]:
  """The records of every sweep in ``dirs`` (:func:`rnnlm_jax.report.records.collect`), each
  with ``"cell"``, ``"clip"`` (label, :func:`clip_label`), ``"mode"``, ``"lr"`` and
  ``"sweep"`` (its directory).

  A point that has not started (no config.json) takes its cell from its overrides, else from
  the started points of its sweep (one cell per directory); without either it is left out.

  Raises:
    ReportError: no point with a config, or a key other than the axes, the seed and the run
      length that varies within a (cell, clip setting, learning rate) group (it would be
      averaged over silently).
  """
  out = []
  for d in dirs:
    recs = records_lib.collect(d)
    started = {r["flat"].get(CELL_KEY) for r in recs if r["config"]}
    for r in recs:
      cell = r["flat"].get(CELL_KEY) if r["config"] else r["overrides"].get(
          CELL_KEY, next(iter(started)) if len(started) == 1 else None)
      if cell is None:
        continue
      mode = setting(r, MODE_KEY) or "none"
      r.update(cell=cell, mode=mode, clip=clip_label(mode, setting(r, VALUE_KEY)),
               lr=num(setting(r, LR_KEY)), sweep=d)
      out.append(r)
  if not any(r["config"] for r in out):
    raise ReportError("--atlas: no point has started (no config.json) in "
                      + ", ".join(map(str, dirs)))
  flats = [r["flat"] for r in out if r["config"]]
  for key in records_lib.varying_keys(flats):
    if key not in AXES + IGNORED and varies_within([r for r in out if r["config"]],
                                                   list(AXES), key):
      raise ReportError(f"--atlas: {key} varies within a (cell, clip setting, learning rate) "
                        "group; report those points separately")
  return out


def clip_label(mode: str, value) -> str:
  """A clipping setting's label: ``"none"``, ``"global_norm 5"``, ``"value 0.01"``."""
  return "none" if mode in ("none", None) else f"{mode} {fmt_value(value)}"


def _progress(rec: dict, key: str):
  return rec["epoch"] if key == "train.num_epochs" else rec["step"]


def events_until(rec: dict, split: str, key: str, budget: float | None) -> list[dict]:
  """The events of ``split`` logged up to the budget (all of them for None)."""
  field = "epoch" if key == "train.num_epochs" else "step"
  return [e for e in rec["events"] if e.get("split") == split
          and (budget is None or (finite(num(e.get(field)))
                                  and num(e.get(field)) <= budget + halving.EPS))]


def at_budget(rec: dict, key: str, budget: float | None, metric: str | None = None,
              mode: str = "min") -> tuple[str, float | None]:
  """A point at the comparison budget: ``("value", v)`` with ``v`` its best (``mode``)
  validation value of ``metric`` (default its unit, perplexity / bpc) logged up to the
  budget (halving's score,
  :func:`rnnlm_jax.sweeps.halving.value_at`); ``("diverged", None)`` when it diverged by then
  or reached the budget with no finite value; ``("pending", None)`` when it has not reached
  the budget (running, not started, failed). ``budget`` None: at the end of the run."""
  unit = metric or rec.get("metric_unit") or "perplexity"
  progress = _progress(rec, key)
  if rec["state"] == "diverged" and (budget is None or not finite(progress)
                                     or progress <= budget + halving.EPS):
    return "diverged", None
  if budget is None:
    reached = rec["state"] in records_lib.DONE_STATES
  else:
    status = {"state": rec["state"], "step": rec["step"], "epoch": rec["epoch"]}
    reached = halving.reached(status, rec["config"], key, budget)
  if not reached:
    return "pending", None
  v = halving.value_at(rec["events"], unit, mode, key, math.inf if budget is None else budget)
  if math.isfinite(v):
    return "value", v
  if rec["state"] in ("running", "stale") and not events_until(rec, "valid", key, budget):
    return "pending", None  # at the budget, its validation not written yet
  return "diverged", None


def _order(values) -> list:
  return list(dict.fromkeys(values))


def unit_of(recs: list[dict]) -> str:
  units = _order(r["metric_unit"] for r in recs if r.get("metric_unit"))
  units = [u for u in units if u != "loss"] or units  # "loss": no validation yet
  if len(units) > 1:
    raise ReportError(f"--atlas: the points mix evaluation units ({', '.join(units)})")
  return units[0] if units else "perplexity"


# ----------------------------------------------------------------------------- the data


def heatmap_grid(recs: list[dict], key: str, budget: float | None) -> dict:
  """The numbers of the heatmaps: {"unit", "cells", "clips" (rows, sweep order), "lrs"
  (columns, ascending), "grid": {(cell, clip, lr): {"mean", "std", "n" (points with a value),
  "diverged", "pending", "points"}}}; mean / std (ddof 1, None for n < 2) over the seeds with a
  value at the budget (:func:`at_budget`)."""
  grid: dict[tuple, dict] = {}
  vals: dict[tuple, list[float]] = {}
  for r in recs:
    k = (r["cell"], r["clip"], r["lr"])
    g = grid.setdefault(k, {"diverged": 0, "pending": 0, "points": 0})
    vals.setdefault(k, [])
    g["points"] += 1
    what, v = at_budget(r, key, budget)
    if what == "value":
      vals[k].append(v)
    else:
      g[what] += 1
  for k, g in grid.items():
    g.update(stats_lib.summary(vals[k])._asdict())
  return {"unit": unit_of(recs), "cells": _order(r["cell"] for r in recs),
          "clips": _order(r["clip"] for r in recs),
          "lrs": sorted({r["lr"] for r in recs if finite(r["lr"])}), "grid": grid}


def clip_rate_lines(recs: list[dict], key: str, budget: float | None) -> dict:
  """{cell: {lr: [(threshold, mean clip rate over seeds)]}} of the global-norm points that
  reached the budget (or diverged before it, :func:`at_budget`): the fraction of updates
  clipped (:func:`rnnlm_jax.report.records.train_stats`) over the train events logged up to
  the budget; thresholds ascending."""
  acc: dict = {}
  for r in recs:
    if (r["mode"] != "global_norm" or not finite(num(setting(r, VALUE_KEY)))
        or at_budget(r, key, budget)[0] == "pending"):
      continue
    rate = records_lib.train_stats(events_until(r, "train", key, budget)).get("clip_rate")
    if finite(rate):
      acc.setdefault(r["cell"], {}).setdefault(r["lr"], {}).setdefault(
          num(setting(r, VALUE_KEY)), []).append(rate)
  return {cell: {lr: [(t, statistics.fmean(v)) for t, v in sorted(by_t.items())]
                 for lr, by_t in sorted(by_lr.items())} for cell, by_lr in acc.items()}


def seed_series(recs: list[dict], split: str, field: str,
                reduce=statistics.median) -> tuple[list[float], list[float]]:
  """(steps, values): per step logged by any of ``recs`` (seeds) in ``split``, ``reduce``
  (median, mean) of their finite values of ``field`` there."""
  by_step: dict[float, list[float]] = {}
  for r in recs:
    for s, v in zip(*plots_lib.series(r["events"], split, field)):
      by_step.setdefault(s, []).append(v)
  steps = sorted(by_step)
  return steps, [reduce(by_step[s]) for s in steps]


def grad_norm_series(recs: list[dict]) -> dict:
  """{(cell, lr): {clip: (steps, p50, p90)}}: per train event, the median over seeds of the
  interval's pre-clip gradient-norm p50 and p90 (the interval mean and max for runs that log
  no percentiles), over the whole run."""
  groups: dict = {}
  for r in recs:
    groups.setdefault((r["cell"], r["lr"]), {}).setdefault(r["clip"], []).append(r)
  out: dict = {}
  for k, by_clip in groups.items():
    for clip, pts in by_clip.items():
      steps, p50 = seed_series(pts, "train", "grad_norm_p50")
      s90, p90 = seed_series(pts, "train", "grad_norm_p90")
      if not steps:
        steps, p50 = seed_series(pts, "train", "grad_norm")
        s90, p90 = seed_series(pts, "train", "grad_norm_max")
      if steps:
        out.setdefault(k, {})[clip] = (steps, p50, p90 if s90 == steps else None)
  return out


def best_groups(recs: list[dict], b: Budget, rungs: dict[str, list[float]]) -> list[dict]:
  """Per (cell, clip mode), the (learning rate, clip value) group the search trained furthest
  and best there: at the largest rung budget of its searches (:func:`budgets_of`) at which
  some group of that mode has a seed with a value, the group with the best score, scored as
  the halving search scores groups (its ``b.metric``, LM ``loss``;
  :func:`rnnlm_jax.sweeps.halving.mean_score`: the mean over its seeds that reached the
  budget, the worst if one diverged; ties to the first). Returns [{"cell", "mode", "clip",
  "lr", "budget" (that rung's budget, None for the runs' ends), "score", "value" (the mean of
  the seeds' unit there, as in the heatmap), "n" (seeds counted), "points"}] in sweep order
  of (cell, mode)."""
  groups: dict = {}
  for r in recs:
    groups.setdefault((r["cell"], r["mode"]), {}).setdefault((r["lr"], r["clip"]), []).append(r)
  out = []
  for (cell, mode), by_group in groups.items():
    points = [r for pts in by_group.values() for r in pts]
    for budget in reversed(budgets_of(points, rungs, b)):
      scored = []
      for (lr, clip), pts in by_group.items():
        seen = [(at_budget(r, b.key, budget, b.metric, b.mode), r) for r in pts]
        seen = [(what, v, r) for (what, v), r in seen if what != "pending"]
        if not seen:
          continue
        vals = [v if what == "value" else halving.worst(b.mode) for what, v, _ in seen]
        score = halving.mean_score(vals, b.mode)
        if math.isfinite(score):
          units = [at_budget(r, b.key, budget)[1] for _, _, r in seen]
          scored.append((score, lr, clip, len(vals), units, pts))
      if scored:
        scores = {i: sc[0] for i, sc in enumerate(scored)}
        score, lr, clip, n, units, pts = scored[halving.rank(scores, list(scores), b.mode)[0]]
        out.append({"cell": cell, "mode": mode, "clip": clip, "lr": lr, "budget": budget,
                    "score": score, "value": stats_lib.summary(units).mean, "n": n,
                    "points": pts})
        break
  return out


# ----------------------------------------------------------------------------- drawing


def _budget_text(b: Budget) -> str:
  """``"after 258 updates"`` or ``"at the end of each run"``."""
  if b.budget is None:
    return "at the end of each run"
  return f"after {fmt_value(b.budget)} {'updates' if b.key == 'train.max_steps' else 'epochs'}"


def fmt_number(v: float, digits: int = 4) -> str:
  """``1.234``, ``12.34``, ``382``, ``12345``, ``5.1e+17``."""
  if abs(v) >= 1e5:
    return f"{v:.1e}"
  return f"{v:.0f}" if abs(v) >= 100 else f"{v:.{digits}g}"


def _log_labels(axis) -> None:
  """Plain numbers (``2``, ``30``, ``0.05``, ``1e+06``) on a log axis, on the ticks matplotlib
  labels."""
  from matplotlib.ticker import LogFormatterSciNotation

  class Plain(LogFormatterSciNotation):
    def __call__(self, x, pos=None):
      return f"{x:g}" if super().__call__(x, pos) else ""

  axis.set_major_formatter(Plain())
  axis.set_minor_formatter(Plain(labelOnlyBase=False))


def _figure(nrows: int, ncols: int, w: float, h: float, title: str, **kw):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  import textwrap
  width = max(w * ncols, 6.5)  # room for the title
  fig = Figure(figsize=(width, h * nrows + 0.6), layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
  fig.suptitle("\n".join(textwrap.wrap(title, width=int(11 * width))), fontsize=10)
  return fig, axes


def _save(fig, path: pathlib.Path) -> pathlib.Path:
  fig.savefig(path, dpi=100)
  return path


def plot_heatmap(data: dict, title: str, path: pathlib.Path) -> pathlib.Path:
  """One panel per cell: rows clipping settings, columns learning rates, colour the mean (log
  scale, capped at 10x the best so blown-up points do not wash out the rest), text mean ±
  std (or n), the number of diverged seeds ("k div", hatched when no seed has a value) and of
  points not at the budget yet; the best mean with no diverged seed outlined in red."""
  from matplotlib.colors import LogNorm
  from matplotlib import colormaps
  cells, clips, lrs, grid = data["cells"], data["clips"], data["lrs"], data["grid"]
  means = [g["mean"] for g in grid.values() if g["n"]]
  lo = min(means) if means else 1.0
  hi = max(min(max(means), 10 * lo), 1.01 * lo) if means else 10.0
  norm = LogNorm(lo, hi, clip=True)
  cmap = colormaps["viridis"]
  fig, axes = _figure(1, len(cells), 0.9 * len(lrs) + 1.4, 0.42 * len(clips) + 1.2, title)
  for ax, cell in zip(axes[0], cells):
    ax.set(xlim=(-0.5, len(lrs) - 0.5), ylim=(len(clips) - 0.5, -0.5), title=cell,
           xlabel="learning rate", xticks=range(len(lrs)), yticks=range(len(clips)))
    ax.set_xticklabels([fmt_value(x) for x in lrs])
    ax.set_yticklabels(clips if ax is axes[0][0] else [])
    for i, clip in enumerate(clips):
      for j, lr in enumerate(lrs):
        g = grid.get((cell, clip, lr))
        if g is None:
          continue
        lines, colour, hatch = [], "white", None
        if g["n"]:
          colour = cmap(norm(g["mean"]))
          lines.append(fmt_number(g["mean"]))
          lines.append(f"±{fmt_number(g['std'], 2)}" if g["std"] is not None else f"n={g['n']}")
        elif g["diverged"]:
          colour, hatch = "0.85", "xx"
        if g["diverged"]:
          lines.append(f"{g['diverged']} div")
        if g["pending"]:
          lines.append(f"{g['pending']} to do" if g["n"] or g["diverged"] else "to do")
        ax.add_patch(_rect(j, i, colour, hatch))
        dark = g["n"] and sum(colour[:3]) < 1.5
        ax.text(j, i, "\n".join(lines), ha="center", va="center", fontsize=6.5,
                color="white" if dark else "black", linespacing=0.95)
    ok = [(g["mean"], k) for k, g in grid.items() if k[0] == cell and g["n"] and not g["diverged"]]
    if ok:
      _, (_, clip, lr) = min(ok)
      ax.add_patch(_rect(lrs.index(lr), clips.index(clip), "none", None, edge="red", lw=2))
  if means:
    from matplotlib.cm import ScalarMappable
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=axes[0].tolist(), shrink=0.8, pad=0.01,
                       extend="max" if max(means) > hi else "neither")
    bar.set_label(f"validation {UNIT_NAMES.get(data['unit'], data['unit'])}")
    _log_labels(bar.ax.yaxis)
  return _save(fig, path)


def _rect(j: int, i: int, colour, hatch, edge="0.6", lw=0.5):
  from matplotlib.patches import Rectangle
  return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=colour, hatch=hatch, edgecolor=edge,
                   lw=lw, zorder=3 if colour == "none" else 1)


def _lr_colours(lrs) -> dict:
  from matplotlib import colormaps
  lrs = sorted(set(lrs))
  cmap = colormaps["plasma"]
  return {lr: cmap(0.85 * i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}


def plot_clip_rate(lines: dict, title: str, path: pathlib.Path) -> pathlib.Path:
  """Clip rate against the global-norm threshold (log x), a panel per cell, a line per
  learning rate (the same colour in every panel)."""
  from matplotlib.ticker import NullFormatter
  colours = _lr_colours(lr for by_lr in lines.values() for lr in by_lr)
  fig, axes = _figure(1, len(lines), 3.6, 3.0, title, sharey=True)
  for ax, (cell, by_lr) in zip(axes[0], lines.items()):
    for lr, pts in by_lr.items():
      ax.plot([t for t, _ in pts], [c for _, c in pts], marker="o", ms=4, color=colours[lr],
              label=f"lr {fmt_value(lr)}")
    ts = sorted({t for pts in by_lr.values() for t, _ in pts})
    ax.set(xscale="log", title=cell, xlabel="global-norm threshold", ylim=(-0.03, 1.03))
    ax.set_xticks(ts, [fmt_value(t) for t in ts])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  axes[0][0].set_ylabel("fraction of updates clipped")
  return _save(fig, path)


def plot_grad_norms(series: dict, title: str, path: pathlib.Path) -> pathlib.Path:
  """Pre-clip gradient norm against update: a row per cell, a column per learning rate, a line
  per clipping setting (interval p50, shaded to p90; medians over seeds), log y."""
  cells = _order(c for c, _ in series)
  lrs = sorted({lr for _, lr in series})
  clips = _order(c for by_clip in series.values() for c in by_clip)
  fig, axes = _figure(len(cells), len(lrs), 3.4, 2.5, title, sharey=True)
  for i, cell in enumerate(cells):
    for j, lr in enumerate(lrs):
      ax = axes[i][j]
      for clip, (steps, p50, p90) in series.get((cell, lr), {}).items():
        colour = f"C{clips.index(clip) % 10}"
        ax.plot(steps, p50, color=colour, lw=1.2, label=clip)
        if p90 is not None:
          ax.fill_between(steps, p50, p90, color=colour, alpha=0.12, lw=0)
      if (cell, lr) not in series:
        ax.text(0.5, 0.5, "no records yet", ha="center", va="center", color="0.5",
                transform=ax.transAxes)
        ax.set_xticks([])
      ax.set_title(f"{cell}, lr {fmt_value(lr)}", fontsize=9)
      ax.set_yscale("log")
      _log_labels(ax.yaxis)
      ax.grid(alpha=0.3)
      if i == len(cells) - 1:
        ax.set_xlabel("update")
      if j == 0:
        ax.set_ylabel("pre-clip grad norm")
  handles = {}
  for ax in axes.flat:
    handles.update(zip(*reversed(ax.get_legend_handles_labels())))
  fig.legend(list(handles.values()), list(handles), loc="outside lower center",
             ncols=min(len(handles), 8), fontsize=8)
  return _save(fig, path)


def plot_best_curves(best: list[dict], unit: str, b: Budget, title: str,
                     path: pathlib.Path) -> pathlib.Path:
  """Learning curves of the best group per (cell, clip mode) on one axis: the training
  ``unit`` per logged interval (lines) and the validation ``unit`` (markers), means over seeds;
  colour by clip mode, line style and marker by cell, the group's validation value at its
  furthest budget in the label; the first rung's budget dotted; the y axis up to 20x the
  lowest value (blown-up curves leave it)."""
  modes = _order(g["mode"] for g in best)
  cells = _order(g["cell"] for g in best)
  fig, axes = _figure(1, 1, 9.0, 5.0, title)
  ax = axes[0][0]
  values = []
  for g in best:
    i = cells.index(g["cell"])
    colour, marker = f"C{modes.index(g['mode']) % 10}", "os^Dv"[i % 5]
    steps, train = seed_series(g["points"], "train", unit, statistics.fmean)
    vsteps, valid = seed_series(g["points"], "valid", unit, statistics.fmean)
    values += train + valid
    ax.plot(steps, train, color=colour, ls=("-", "--", ":", "-.")[i % 4], lw=1.0, alpha=0.8)
    ax.plot(vsteps, valid, color=colour, marker=marker, ms=6, ls="none",
            label=f"{g['cell']}, {g['clip']}, lr {fmt_value(g['lr'])}: {fmt_number(g['value'])}"
            + ("" if g["budget"] is None else f" at {fmt_value(g['budget'])}")
            + (f" ({g['n']} of {len(g['points'])} seeds)" if g["n"] < len(g["points"]) else ""))
  if b.budget is not None and b.key == "train.max_steps":
    ax.axvline(b.budget, color="k", lw=0.8, ls=":",
               label=f"first rung ({fmt_value(b.budget)})")
  ax.set(xlabel="update", ylabel=f"{UNIT_NAMES.get(unit, unit)}: train (lines), "
                                 "validation (markers)")
  if unit == "perplexity":
    ax.set_yscale("log")
    _log_labels(ax.yaxis)
  finite_values = [v for v in values if math.isfinite(v)]
  if finite_values and max(finite_values) > 20 * min(finite_values):
    ax.set_ylim(min(finite_values) / 1.25, 20 * min(finite_values))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
  return _save(fig, path)


# ----------------------------------------------------------------------------- entry point


def write_atlas(paths: Sequence[str | pathlib.Path],
                out: str | pathlib.Path | None = None) -> tuple[list[pathlib.Path], list[str]]:
  """Draw the atlas figures of the sweeps in ``paths`` (:func:`sweep_dirs`) into ``out``
  (default: the one path's ``plots/``). Returns (PNG paths, notes on figures not drawn for
  lack of records).

  Raises:
    ReportError: see :func:`sweep_dirs`, :func:`budget_of`, :func:`collect`; several paths and
      no ``out``.
  """
  if out is None:
    if len(paths) != 1:
      raise ReportError("--atlas with several directories needs --out DIR for the figures")
    out = pathlib.Path(paths[0]) / "plots"
  dirs = sweep_dirs(paths)
  b = budget_of(dirs)
  recs = collect(dirs)
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  for name in FIGURES:  # this report's figures of an earlier call
    (out / f"atlas_{name}.png").unlink(missing_ok=True)
  at = _budget_text(b)
  same = "" if b.budget is None else (" (halving rung 0: every point at the same budget, "
                                      "promoted points' later training not counted)")
  data = heatmap_grid(recs, b.key, b.budget)
  unit = UNIT_NAMES.get(data["unit"], data["unit"])
  written, notes = [], []
  written.append(plot_heatmap(
      data, f"Validation {unit} {at}{same}: mean over seeds, ± std (or n); 'div': seeds "
      "diverged; 'to do': not at the budget yet; red: the cell's best",
      out / "atlas_heatmap.png"))
  lines = clip_rate_lines(recs, b.key, b.budget)
  if lines:
    written.append(plot_clip_rate(
        lines, f"Fraction of updates clipped (global norm) {at}, mean over seeds",
        out / "atlas_clip_rate.png"))
  else:
    notes.append("no clip-rate figure: no global_norm point has logged train events")
  series = grad_norm_series([r for r in recs if r["events"]])
  if series:
    written.append(plot_grad_norms(
        series, "Pre-clip global gradient norm over training: interval median, shaded to the "
        "90th percentile (median over seeds)", out / "atlas_grad_norms.png"))
  else:
    notes.append("no gradient-norm figure: no point has logged train events")
  best = best_groups(recs, b, rung_budgets(dirs))
  if best:
    written.append(plot_best_curves(
        best, data["unit"], b, f"Learning curves of the best (lr, threshold) per (cell, clip "
        f"mode): of the groups trained furthest, the best there by the mean validation "
        f"{b.metric}, as the halving search ranks; train {unit} per logged interval (lines), "
        f"validation (markers), means over seeds; the label gives the validation {unit} at "
        f"that furthest budget", out / "atlas_best_curves.png"))
  else:
    notes.append("no best-curves figure: no group has a finite validation value at the budget")
  return written, notes
