"""Plots of a report (matplotlib, imported when drawing): learning curves and pre-clip gradient
norms per table cell, success rate against synthetic.length for synthetic sweeps; PNGs under
DIR/plots/ (:func:`write_plots`)."""

from __future__ import annotations

import pathlib
import re
import statistics

from rnnlm_jax.report.layout import LENGTH_KEY, SEED_KEY, cell_labels, setting
from rnnlm_jax.report.records import ENDED_STATES, finite, fmt_value, num


def _slug(i: int, label: str) -> str:
  return f"{i:02d}_" + re.sub(r"[^A-Za-z0-9._=-]+", "_", label).strip("_")[:80]


def _new_figure(ncols: int, title: str):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  import textwrap
  fig = Figure(figsize=(5 * ncols, 3.6))
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, ncols, squeeze=False)[0]
  fig.suptitle("\n".join(textwrap.wrap(title, width=60 * ncols)), fontsize=9)  # long labels fit
  return fig, axes


def series(events: list[dict], split: str, key: str) -> tuple[list[float], list[float]]:
  """(steps, values) of ``key`` in the events of ``split`` where both are finite."""
  pts = [(e.get("step"), num(e.get(key))) for e in events if e.get("split") == split]
  pts = [(s, v) for s, v in pts if finite(s) and finite(v)]
  return [s for s, _ in pts], [v for _, v in pts]


def _point_label(rec: dict) -> str:
  label = (f"seed {fmt_value(rec['settings'][SEED_KEY])}" if SEED_KEY in rec["settings"]
           else rec["name"])
  return label if rec["state"] == "finished" else f"{label} ({rec['state']})"


def _save(fig, path: pathlib.Path, axes) -> pathlib.Path:
  for ax in axes:
    if ax.get_legend() is None and ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=90, bbox_inches="tight")  # nothing cut off
  return path


def plot_curves(pts: list[dict], title: str, path: pathlib.Path, kind: str) -> pathlib.Path:
  """Train loss and the eval metric (LM: valid curve + final test; synthetic: test error
  rate) against step, one line per seed."""
  fig, (ax_loss, ax_eval) = _new_figure(2, title)
  for i, rec in enumerate(pts):
    color, label = f"C{i % 10}", _point_label(rec)
    ax_loss.plot(*series(rec["events"], "train", "loss"), color=color, lw=1, label=label)
    if kind == "synthetic":
      ax_eval.plot(*series(rec["events"], "test", "error_rate"), color=color, marker="o",
                   ms=3, lw=1, label=label)
      continue
    unit = rec.get("metric_unit", "perplexity")
    ax_eval.plot(*series(rec["events"], "valid", unit), color=color, marker="o", ms=3, lw=1,
                 label=f"{label} valid")
    ax_eval.plot(*series(rec["events"], "test", unit), color=color, marker="*", ms=9, ls="",
                 label=f"{label} test")
  threshold = pts[0]["flat"].get("synthetic.success_error_rate")
  if kind == "synthetic" and finite(threshold):
    ax_eval.axhline(threshold, color="k", ls="--", lw=0.8, label=f"success < {threshold:g}")
  ax_loss.set(xlabel="step", ylabel="train loss")
  ylabel = "test error rate" if kind == "synthetic" else pts[0].get("metric_unit", "perplexity")
  ax_eval.set(xlabel="step", ylabel=ylabel)
  return _save(fig, path, (ax_loss, ax_eval))


def plot_grad_norms(pts: list[dict], title: str, path: pathlib.Path) -> pathlib.Path:
  """Pre-clip gradient norm against step per seed: the interval median with a p50-p90 band
  (synthetic runs) or the interval mean (LM runs), and the clip threshold."""
  fig, (ax,) = _new_figure(1, title)
  thresholds = set()
  for i, rec in enumerate(pts):
    color, label = f"C{i % 10}", _point_label(rec)
    steps, p50 = series(rec["events"], "train", "grad_norm_p50")
    if steps:
      ax.plot(steps, p50, color=color, lw=1, label=f"{label} median")
      s90, p90 = series(rec["events"], "train", "grad_norm_p90")
      if s90 == steps:
        ax.fill_between(steps, p50, p90, color=color, alpha=0.2, lw=0)
    else:
      ax.plot(*series(rec["events"], "train", "grad_norm"), color=color, lw=1,
              label=f"{label} interval mean")
    flat = rec["flat"]
    if flat.get("optim.clip_mode") == "global_norm" and finite(flat.get("optim.clip_value")):
      thresholds.add(float(flat["optim.clip_value"]))
  for t in sorted(thresholds):
    ax.axhline(t, color="k", ls="--", lw=0.8, label=f"clip threshold {fmt_value(t)}")
  banded = any(series(p["events"], "train", "grad_norm_p50")[0] for p in pts)
  ax.set(xlabel="step", ylabel="pre-clip gradient norm"
         + (" (median, shaded to p90)" if banded else " (interval mean)"))
  if ax.get_lines() and all(v > 0 for line in ax.get_lines() for v in line.get_ydata()):
    from matplotlib.ticker import FormatStrFormatter
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
  return _save(fig, path, (ax,))


def success_lines(records: list[dict], layout: dict) -> dict[str, dict[str, dict[float, list]]]:
  """{panel: {line: {synthetic.length: [success of each ended run]}}}: a panel per table (label
  without synthetic.length), a line per row and column label without synthetic.length."""
  no_len = {k: [x for x in layout[k] if x != LENGTH_KEY] for k in ("tables", "rows", "cols",
                                                                     "split")}
  lay = dict(layout, **no_len)
  panels: dict[str, dict] = {}
  for r in records:
    x = num(setting(r, LENGTH_KEY))
    if r["state"] not in ENDED_STATES or not finite(x):
      continue
    t, row, col = cell_labels(r, lay)
    line = row if col == "all" else col if row == "all" else f"{row}, {col}"
    panels.setdefault(t, {}).setdefault(line, {}).setdefault(x, []).append(
        r.get("success") is True)
  return panels


def plot_success_vs_length(records: list[dict], layout: dict, path: pathlib.Path) -> pathlib.Path:
  """Success rate (among ended points) against synthetic.length: a panel per table (per task), one
  line per row and column (less synthetic.length) combination; a line keeps its style across
  panels."""
  panels = success_lines(records, layout)
  legend_title = ", ".join([k for k in layout["rows"] + layout["cols"] if k != LENGTH_KEY]
                           + [f"{layout['short'][k]}=" for k in layout["split"]
                              if k != LENGTH_KEY])
  fig, axes = _new_figure(max(len(panels), 1), "success rate vs synthetic.length (ended runs)")
  fig.set_size_inches(6 * max(len(panels), 1), 4.2)
  styles: dict[str, int] = {}
  for ax, (title, lines) in zip(axes, panels.items()):
    for label, by_len in lines.items():  # styles vary: equal lines stay visible
      i = styles.setdefault(label, len(styles))
      xs = sorted(by_len)
      ax.plot(xs, [statistics.fmean(by_len[x]) for x in xs], color=f"C{i % 10}", label=label,
              marker="osD^v<>"[i % 7], ms=8 - 1.2 * (i % 4), ls=("-", "--", ":", "-.")[i % 4],
              alpha=0.85)
    xs = sorted({x for by_len in lines.values() for x in by_len})
    ax.set(xlabel=LENGTH_KEY, ylabel="success rate", ylim=(-0.05, 1.05), xticks=xs,
           title=title or None)
    ax.legend(fontsize=7, title=legend_title or None, title_fontsize=7)
    ax.xaxis.set_major_formatter(lambda v, _: fmt_value(v))
  return _save(fig, path, axes)


def write_plots(sweep_dir: pathlib.Path, records: list[dict], tables: dict,
                kind: str, out: pathlib.Path | None = None) -> list[pathlib.Path]:
  """All PNGs under ``out`` (default DIR/plots/; cells without any metrics yet get none)."""
  out = sweep_dir / "plots" if out is None else out
  out.mkdir(parents=True, exist_ok=True)
  for pattern in ("curves_*.png", "gradnorm_*.png", "success_vs_length.png"):
    for old in out.glob(pattern):  # our figures of a previous report (another layout)
      old.unlink()
  lay = tables["layout"]
  paths, i = [], 0
  for t in tables["tables"]:
    for (r, c), pts in t["cells"].items():
      if not any(p["events"] for p in pts):
        continue
      parts = [t["label"], f"{', '.join(lay['rows'])}: {r}" if lay["rows"] else "",
               f"{', '.join(lay['cols'])}: {c}" if lay["cols"] else c if c != "all" else ""]
      title = "; ".join(p for p in parts if p) or sweep_dir.name
      slug = _slug(i, "_".join(p for p in (t["label"], r, c) if p))
      i += 1
      paths.append(plot_curves(pts, title, out / f"curves_{slug}.png", kind))
      paths.append(plot_grad_norms(pts, title, out / f"gradnorm_{slug}.png"))
  if kind == "synthetic" and LENGTH_KEY in records[0]["settings"]:
    if len({fmt_value(r["settings"][LENGTH_KEY]) for r in records}) > 1 and success_lines(
        records, lay):
      paths.append(plot_success_vs_length(records, lay, out / "success_vs_length.png"))
  return paths
