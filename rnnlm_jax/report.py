"""Sweep reports: tables (Markdown, LaTeX, CSV) and plots from a directory of runs.

A sweep directory holds ``sweep.json`` and one workdir (see :mod:`rnnlm_jax.workdir`) per
point::

    DIR/sweep.json   {"config": path, "keys": [dotted keys that vary],
                      "points": [{"name": str, "overrides": {dotted_key: value}}, ...]}
    DIR/<name>/      config.json, status.json, metrics.jsonl of one run

Without ``sweep.json`` the points are the subdirectories holding a ``config.json`` and the
varying keys are those whose values differ between their configs.

:func:`collect` reads one record per point; :func:`write_report` writes::

    DIR/results.csv        one row per point (swept keys, state, step, final metrics)
    DIR/results_cells.csv  one row per table cell (seed aggregates)
    DIR/results.md         rows x columns tables, "mean ± std (n)" over seeds, counts
    DIR/results.tex        the main table as a LaTeX tabular
    DIR/plots/*.png        learning curves, pre-clip gradient norms, success vs task.length

Seeds (key ``seed``) are always aggregated; every other varying key is a row, a column or part
of the column label, so no two settings are merged.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import pathlib
import re
import statistics
from typing import Any, Iterable

SEED_KEY = "seed"
LENGTH_KEY = "task.length"
# Config keys that do not change what a run computes: never treated as swept.
IGNORED_KEYS = ("data.dir", "data.tfds_dir", "train.progress_bar", "train.log_every",
                "train.checkpoint_every_steps", "train.checkpoint_keep")
ENDED_STATES = ("finished", "diverged", "failed")
# Number formats by metric-name suffix (first match wins).
METRIC_FORMATS = (("perplexity", ".2f"), ("bpc", ".3f"), ("error_rate", ".4f"), ("loss", ".4f"),
                  ("clip_rate", ".3f"), ("step", ".0f"), ("mse", ".4g"))
CSV_FIELDS = ("test_perplexity", "best_valid_perplexity", "test_bpc", "best_valid_bpc",
              "error_rate", "mse", "success", "success_step", "test_loss", "best_valid_loss",
              "final_train_loss", "clip_rate", "grad_norm_p50", "grad_norm_p90", "grad_norm_max")
NOT_RUN = "—"


class ReportError(ValueError):
  """A sweep directory that cannot be reported (missing, empty, malformed, bad option)."""


# ----------------------------------------------------------------------------- values


def flatten(d: dict, prefix: str = "") -> dict:
  """Nested dict -> {dotted key: leaf value}."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def fmt_value(v: Any) -> str:
  """A config value as shown in labels; ``1`` and ``1.0`` both give ``"1"``."""
  if v is None:
    return "(unset)"
  if isinstance(v, bool):
    return str(v).lower()
  if isinstance(v, float):
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
  if isinstance(v, (list, tuple, dict)):
    return json.dumps(v)
  return str(v)


def _num(v: Any) -> float | None:
  """A metric value as a float (NaN/inf kept; metrics.jsonl writes them as strings)."""
  if isinstance(v, bool) or v is None:
    return None
  if isinstance(v, (int, float)):
    return float(v)
  try:
    return float(v)
  except (TypeError, ValueError):
    return None


def _finite(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_metric(x: float | None, metric: str) -> str:
  """Format a value of ``metric`` (precision by name: 2 decimals for perplexity, ...)."""
  if x is None:
    return "n/a"
  spec = next((f for suffix, f in METRIC_FORMATS if metric.endswith(suffix)), ".4g")
  return format(x, spec)


def mean_std(values: list[float]) -> tuple[float | None, float | None, int]:
  """(mean, sample std (ddof=1, None for n < 2), n) of finite ``values``."""
  vals = [float(v) for v in values if _finite(v)]
  if not vals:
    return None, None, 0
  return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


# ----------------------------------------------------------------------------- reading


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ReportError(f"{path} is not valid JSON ({e}); fix or remove it") from e


def read_events(path: pathlib.Path) -> list[dict]:
  """Events of a metrics.jsonl; a torn last line (run still writing) is skipped."""
  if not path.exists():
    return []
  events = []
  for line in path.read_text().splitlines():
    try:
      ev = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(ev, dict):
      events.append(ev)
  return events


def varying_keys(flat_configs: Iterable[dict]) -> list[str]:
  """Dotted keys (sorted) whose values differ between configs, ignoring IGNORED_KEYS."""
  flats = list(flat_configs)
  keys = sorted(set().union(*flats)) if flats else []
  out = []
  for k in keys:
    if k in IGNORED_KEYS:
      continue
    if len({fmt_value(f.get(k)) for f in flats}) > 1:
      out.append(k)
  return out


def _discover(root: pathlib.Path) -> tuple[list[str], list[dict]]:
  """Points and varying keys of a directory without sweep.json."""
  names = sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())
  if not names and (root / "config.json").is_file():
    raise ReportError(f"{root} is a single run's workdir; pass the sweep directory holding "
                      "the runs (or a directory of workdirs)")
  if not names:
    raise ReportError(f"{root} has no sweep.json and no run subdirectories (with config.json); "
                      "is it a sweep directory?")
  flats = [flatten(_read_json(root / n / "config.json")) for n in names]
  return varying_keys(flats), [{"name": n, "overrides": {}} for n in names]


def load_sweep(root: str | pathlib.Path) -> tuple[list[str], list[dict]]:
  """(varying keys, points) of a sweep directory, from sweep.json or by discovery."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise ReportError(f"{root} is not a directory; pass a sweep directory (with sweep.json)")
  spec_file = root / "sweep.json"
  if not spec_file.exists():
    return _discover(root)
  spec = _read_json(spec_file)
  if not isinstance(spec, dict) or not isinstance(spec.get("points"), list):
    raise ReportError(f"{spec_file} has no \"points\" list; expected "
                      "{\"config\", \"keys\", \"points\": [{\"name\", \"overrides\"}]}")
  points = []
  for p in spec["points"]:
    if not isinstance(p, dict) or not isinstance(p.get("name"), str):
      raise ReportError(f"{spec_file}: every point needs a \"name\" string, got {p!r}")
    points.append({"name": p["name"], "overrides": dict(p.get("overrides") or {})})
  keys = list(spec.get("keys") or [])
  return keys, points


def _train_stats(train: list[dict]) -> dict:
  """Clip rate and pre-clip gradient-norm summary of a run's train events.

  Synthetic runs log per-interval p50/p90 of the pre-clip norm: the run's ``grad_norm_p50`` /
  ``grad_norm_p90`` are the medians over intervals of those. LM runs log only the interval
  mean: then they are the median / 90th percentile over intervals of the interval means.
  """
  out: dict[str, Any] = {}
  clip = [_num(e.get("clip_rate", e.get("clipped"))) for e in train]
  clip = [c for c in clip if _finite(c)]
  if clip:
    out["clip_rate"] = statistics.fmean(clip)
  p50 = [v for v in (_num(e.get("grad_norm_p50")) for e in train) if _finite(v)]
  p90 = [v for v in (_num(e.get("grad_norm_p90")) for e in train) if _finite(v)]
  if p50:
    out["grad_norm_p50"] = statistics.median(p50)
    out["grad_norm_p90"] = statistics.median(p90) if p90 else None
    out["grad_norm_source"] = "interval_p50_p90"
  else:
    means = sorted(v for v in (_num(e.get("grad_norm")) for e in train) if _finite(v))
    if means:
      out["grad_norm_p50"] = statistics.median(means)
      out["grad_norm_p90"] = _quantile(means, 0.9)
      out["grad_norm_source"] = "interval_mean"
  gmax = [v for v in (_num(e.get("grad_norm_max")) for e in train) if _finite(v)]
  if gmax:
    out["grad_norm_max"] = max(gmax)
  losses = [_num(e.get("loss")) for e in train]
  if losses:
    out["final_train_loss"] = losses[-1]
  return out


def _quantile(sorted_vals: list[float], q: float) -> float:
  """Linear-interpolation quantile (numpy's default) of sorted values."""
  pos = q * (len(sorted_vals) - 1)
  lo = int(math.floor(pos))
  hi = min(lo + 1, len(sorted_vals) - 1)
  return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _lm_metrics(events: list[dict]) -> dict:
  """Final test metric (best-valid checkpoint) and best valid metric of an LM run."""
  unit = "bpc" if any("bpc" in e for e in events) else "perplexity"
  out: dict[str, Any] = {"metric_unit": unit}
  valid = [e for e in events if e.get("split") == "valid"]
  test = [e for e in events if e.get("split") == "test"]
  if test:
    out[f"test_{unit}"] = _num(test[-1].get(unit))
    out["test_loss"] = _num(test[-1].get("loss"))
  vals = [v for v in (_num(e.get(unit)) for e in valid) if _finite(v)]
  if vals:
    out[f"best_valid_{unit}"] = min(vals)
  losses = [v for v in (_num(e.get("loss")) for e in valid) if _finite(v)]
  if losses:
    out["best_valid_loss"] = min(losses)
  return out


def _synthetic_metrics(events: list[dict], status: dict | None, flat: dict) -> dict:
  """Final test error rate, loss, mse and success of a synthetic-task run."""
  status = status or {}
  out: dict[str, Any] = {"metric_unit": "error_rate"}
  test = [e for e in events if e.get("split") == "test"]
  last = test[-1] if test else {}
  err = _num(last.get("error_rate"))
  out["error_rate"] = err if err is not None else _num(status.get("error_rate"))
  for key in ("loss", "mse"):
    if key in last:
      out["test_loss" if key == "loss" else key] = _num(last[key])
  success = status.get("success")
  if success is None and status.get("state") in ENDED_STATES and _finite(out["error_rate"]):
    threshold = flat.get("task.success_error_rate")
    success = out["error_rate"] < threshold if _finite(threshold) else None
  out["success"] = success
  out["success_step"] = status.get("success_step")
  return out


def read_point(root: pathlib.Path, name: str, overrides: dict, keys: list[str]) -> dict:
  """One point's record: settings of the swept keys, state, final metrics, events."""
  wd = root / name
  config = _read_json(wd / "config.json") if (wd / "config.json").is_file() else None
  flat = flatten(config) if config else {}
  status = _read_json(wd / "status.json") if (wd / "status.json").is_file() else None
  events = read_events(wd / "metrics.jsonl")
  rec: dict[str, Any] = {
      "name": name, "path": str(wd),
      "settings": {k: overrides[k] if k in overrides else flat.get(k) for k in keys},
      "kind": None if config is None else ("synthetic" if "task" in config else "lm"),
      "state": status.get("state", "unknown") if status else "missing",
      "step": status.get("step") if status else None,
      "epoch": status.get("epoch") if status else None,
      "reason": (status.get("reason") or "") if status else
                ("no workdir" if not wd.is_dir() else "no status.json (not started)"),
      "config": config, "events": events}
  train = [e for e in events if e.get("split") == "train"]
  rec.update(_train_stats(train))
  if rec["kind"] == "synthetic":
    rec.update(_synthetic_metrics(events, status, flat))
  elif rec["kind"] == "lm":
    rec.update(_lm_metrics(events))
  return rec


def collect(sweep_dir: str | pathlib.Path) -> list[dict]:
  """One record per point of the sweep in ``sweep_dir`` (missing points included).

  Each record has ``name``, ``path``, ``settings`` ({varying key: value}, the same keys in
  every record, ``seed`` included), ``kind`` ("lm" | "synthetic" | None when there is no
  config.json), ``state`` (finished | diverged | failed | running | missing), ``step``,
  ``epoch``, ``reason``, the final metrics (LM: ``test_perplexity`` or ``test_bpc`` from the
  best-valid checkpoint, ``best_valid_*``, ``test_loss``; synthetic: ``error_rate``,
  ``success``, ``success_step``, ``test_loss``, ``mse``), the training summary (``clip_rate``,
  ``grad_norm_p50``, ``grad_norm_p90``, ``final_train_loss``), ``config`` and ``events``.
  """
  root = pathlib.Path(sweep_dir)
  keys, points = load_sweep(root)
  if not points:
    raise ReportError(f"{root / 'sweep.json'} lists no points")
  records = [read_point(root, p["name"], p["overrides"], keys) for p in points]
  extra = [k for k in varying_keys(flatten(r["config"]) for r in records if r["config"])
           if k not in keys]
  if extra:  # keys that differ between the configs although sweep.json does not list them
    for r in records:
      flat = flatten(r["config"]) if r["config"] else {}
      r["settings"].update({k: flat.get(k) for k in extra})
  return records


def sweep_kind(records: list[dict]) -> str:
  """"lm" or "synthetic" (from the configs present; "lm" if there are none)."""
  kinds = {r["kind"] for r in records if r["kind"]}
  if len(kinds) > 1:
    raise ReportError("the sweep mixes language-model and synthetic-task runs; report them "
                      "separately")
  return kinds.pop() if kinds else "lm"


# ----------------------------------------------------------------------------- layout


def choose_layout(keys: list[str], rows: str | None = None,
                  cols: str | None = None) -> tuple[str | None, list[str]]:
  """(row key, column keys) for the varying ``keys``.

  Rows default to ``model.cell`` if it varies, else the first varying key; columns to every
  remaining non-seed key. A user-picked column key comes first in the column keys, followed
  by every other varying key that is neither the row nor a seed (so nothing is merged).
  """
  for picked in (rows, cols):
    if picked == SEED_KEY:
      raise ReportError("seeds are always aggregated; pick another key for --rows/--cols")
  if rows is not None and rows == cols:
    raise ReportError(f"--rows and --cols are both {rows!r}; pick two different keys")
  free = [k for k in keys if k != SEED_KEY and k not in (rows, cols)]
  if rows is None:
    rows = "model.cell" if "model.cell" in free else (free[0] if free else None)
    free = [k for k in free if k != rows]
  return rows, ([cols] if cols else []) + free


def _check_key(key: str | None, records: list[dict], option: str) -> None:
  """A --rows/--cols key must be swept or present in some config."""
  if key is None or key in records[0]["settings"]:
    return
  if any(key in flatten(r["config"]) for r in records if r["config"]):
    return
  swept = ", ".join(k for k in records[0]["settings"] if k != SEED_KEY) or "none"
  raise ReportError(f"{option} {key!r} is not a config key of these runs; varying keys: {swept}")


def _setting(rec: dict, key: str) -> Any:
  if key in rec["settings"]:
    return rec["settings"][key]
  return flatten(rec["config"]).get(key) if rec["config"] else None


def col_label(rec: dict, col_keys: list[str]) -> str:
  """Column label of a record: ``key=value,key=value`` ("all" without column keys)."""
  return ",".join(f"{k}={fmt_value(_setting(rec, k))}" for k in col_keys) or "all"


def row_label(rec: dict, row_key: str | None) -> str:
  return fmt_value(_setting(rec, row_key)) if row_key else "all"


def group_cells(records: list[dict], row_key: str | None,
                col_keys: list[str]) -> tuple[list[str], list[str], dict]:
  """(row labels, column labels, {(row, col): [records]}) in order of first appearance."""
  rows, cols, cells = [], [], collections.defaultdict(list)
  for r in records:
    rl, cl = row_label(r, row_key), col_label(r, col_keys)
    rows += [rl] if rl not in rows else []
    cols += [cl] if cl not in cols else []
    cells[(rl, cl)].append(r)
  return rows, cols, dict(cells)


# ----------------------------------------------------------------------------- aggregates


def cell_stats(points: list[dict], metric: str) -> dict:
  """Seed aggregate of one cell: mean/std/n of ``metric`` over finished points, state
  counts, success k of n ended points, mean clip rate and gradient-norm p50/p90."""
  counts = collections.Counter(p["state"] for p in points)
  mean, std, n = mean_std([p.get(metric) for p in points if p["state"] == "finished"])
  ended = [p for p in points if p["state"] in ENDED_STATES]
  out = {"points": len(points), "counts": counts, "mean": mean, "std": std, "n": n,
         "success": sum(p.get("success") is True for p in ended), "ended": len(ended)}
  for key in ("clip_rate", "grad_norm_p50", "grad_norm_p90"):
    out[key] = mean_std([p.get(key) for p in points])[0]
  return out


def cell_text(stats: dict | None, metric: str, kind: str) -> tuple[str, str]:
  """(value, notes) of a table cell: ``"mean ± std (n)"`` and the counts."""
  if stats is None:
    return NOT_RUN, "not in the sweep"
  if stats["n"] == 0:
    value = "n/a (0)"
  elif stats["std"] is None:
    value = f"{fmt_metric(stats['mean'], metric)} (1)"
  else:
    value = (f"{fmt_metric(stats['mean'], metric)} ± {fmt_metric(stats['std'], metric)} "
             f"({stats['n']})")
  c = stats["counts"]
  if kind == "synthetic":
    notes = [f"success {stats['success']}/{stats['ended']}", f"{c['diverged']} diverged"]
    notes += [f"{c['failed']} failed"] if c["failed"] else []
  else:
    notes = [f"{c['diverged']} diverged", f"{c['failed']} failed"]
  notes += [f"{c[s]} {s}" for s in sorted(c) if s not in ENDED_STATES]
  return value, ", ".join(notes)


def default_metrics(kind: str, records: list[dict], metric: str | None) -> list[str]:
  """Metrics to tabulate: the user's, else LM test + best valid perplexity (bpc for
  character-level runs), synthetic error_rate."""
  if metric is not None:
    return [_resolve_metric(metric, records)]
  if kind == "synthetic":
    return ["error_rate"]
  units = list(dict.fromkeys(r["metric_unit"] for r in records if r.get("metric_unit")))
  units = units or ["perplexity"]  # mixed word/char runs: a table per unit
  return [f"test_{u}" for u in units] + [f"best_valid_{u}" for u in units]


def _resolve_metric(metric: str, records: list[dict]) -> str:
  """A --metric name as a record field (``perplexity`` -> ``test_perplexity``)."""
  numeric = sorted({k for r in records for k, v in r.items()
                    if k not in ("settings", "config", "events", "epoch")
                    and isinstance(v, (int, float)) and not isinstance(v, bool)})
  for name in (metric, f"test_{metric}"):
    if name in numeric:
      return name
  raise ReportError(f"--metric {metric!r} is not a metric of these runs; choose one of "
                    f"{', '.join(numeric) or '(none: no run has metrics yet)'}")


# ----------------------------------------------------------------------------- writers


def _md_escape(s: str) -> str:
  return s.replace("|", "\\|")


TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
               "|": r"\textbar{}"}


def tex_escape(s: str) -> str:
  """Text safe inside a LaTeX tabular (``±`` becomes ``$\\pm$``, ``—`` becomes ``--``)."""
  out = "".join(TEX_ESCAPES.get(ch, ch) for ch in s)
  return out.replace("±", r"$\pm$").replace(NOT_RUN, "--")


def markdown_table(table: dict, metric: str, kind: str) -> str:
  """Rows x columns Markdown table of ``metric``; each cell "mean ± std (n); counts"."""
  head = [_md_escape(table["row_key"] or "")] + [_md_escape(c) for c in table["cols"]]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in table["rows"]:
    cells = []
    for c in table["cols"]:
      value, notes = cell_text(table["stats"][metric].get((r, c)), metric, kind)
      cells.append(value if value == NOT_RUN else f"{value}; {notes}")
    lines.append("| " + " | ".join([_md_escape(r)] + [_md_escape(x) for x in cells]) + " |")
  return "\n".join(lines)


def latex_table(table: dict, metric: str, kind: str, caption: str) -> str:
  """The main table as a LaTeX tabular (needs no extra packages)."""
  ncols = len(table["cols"])
  lines = [f"% {tex_escape(caption)}", f"\\begin{{tabular}}{{l|{'l' * ncols}}}", r"\hline",
           " & ".join([tex_escape(table["row_key"] or "")]
                      + [tex_escape(c) for c in table["cols"]]) + r" \\", r"\hline"]
  for r in table["rows"]:
    cells = []
    for c in table["cols"]:
      value, notes = cell_text(table["stats"][metric].get((r, c)), metric, kind)
      cells.append(tex_escape(value if value == NOT_RUN else f"{value}; {notes}"))
    lines.append(" & ".join([tex_escape(r)] + cells) + r" \\")
  lines += [r"\hline", r"\end{tabular}"]
  return "\n".join(lines) + "\n"


def grad_table(table: dict, metric: str) -> str:
  """Markdown table: per cell, points, mean clip rate, mean pre-clip grad-norm p50 / p90."""
  head = [table["row_key"] or "row", "columns", "points", "clip rate", "grad-norm p50",
          "grad-norm p90"]
  lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
  for (r, c), s in table["stats"][metric].items():
    vals = [fmt_metric(s["clip_rate"], "clip_rate"), fmt_metric(s["grad_norm_p50"], "g"),
            fmt_metric(s["grad_norm_p90"], "g")]
    lines.append("| " + " | ".join(_md_escape(x) for x in [r, c, str(s["points"])] + vals)
                 + " |")
  return "\n".join(lines)


def points_table(records: list[dict], metrics: list[str]) -> str:
  """Markdown table of every point: settings, state, step, metrics, reason."""
  keys = list(records[0]["settings"])
  head = ["name"] + keys + ["state", "step"] + metrics + ["reason"]
  lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
  for r in records:
    row = ([r["name"]] + [fmt_value(r["settings"][k]) for k in keys]
           + [r["state"], "" if r["step"] is None else str(r["step"])]
           + [fmt_metric(_num(r.get(m)), m) for m in metrics] + [r["reason"] or ""])
    lines.append("| " + " | ".join(_md_escape(x) for x in row) + " |")
  return "\n".join(lines)


def _csv_value(v: Any) -> Any:
  if v is None:
    return ""
  if isinstance(v, bool):
    return str(v).lower()
  if isinstance(v, (list, tuple, dict)):
    return json.dumps(v)
  return v


def write_points_csv(path: pathlib.Path, records: list[dict]) -> None:
  """results.csv: one row per point."""
  keys = list(records[0]["settings"])
  fields = [f for f in CSV_FIELDS if any(f in r for r in records)]
  with path.open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["name"] + keys + ["kind", "state", "step", "epoch", "reason"] + fields)
    for r in records:
      w.writerow([r["name"]] + [_csv_value(r["settings"][k]) for k in keys]
                 + [_csv_value(r[k]) for k in ("kind", "state", "step", "epoch", "reason")]
                 + [_csv_value(r.get(k)) for k in fields])


def write_cells_csv(path: pathlib.Path, table: dict, metrics: list[str], kind: str) -> None:
  """results_cells.csv: one row per (row, column) cell with its seed aggregates (success k of
  ended n for synthetic tasks)."""
  states = ["finished", "diverged", "failed", "running", "missing"]
  success = ["success", "ended"] if kind == "synthetic" else []
  head = [table["row_key"] or "row"] + table["col_keys"] + ["column", "points"] + states + success
  for m in metrics:
    head += [f"{m}_mean", f"{m}_std", f"{m}_n"]
  head += ["clip_rate_mean", "grad_norm_p50_mean", "grad_norm_p90_mean"]
  first = table["stats"][metrics[0]]
  with path.open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(head)
    for (r, c), s in first.items():
      rec = table["cells"][(r, c)][0]
      row = ([r] + [fmt_value(_setting(rec, k)) for k in table["col_keys"]]
             + [c, s["points"]] + [s["counts"][st] for st in states] + [s[k] for k in success])
      for m in metrics:
        sm = table["stats"][m][(r, c)]
        row += [_csv_value(sm["mean"]), _csv_value(sm["std"]), sm["n"]]
      row += [_csv_value(s[k]) for k in ("clip_rate", "grad_norm_p50", "grad_norm_p90")]
      w.writerow(row)


def build_table(records: list[dict], row_key: str | None, col_keys: list[str],
                metrics: list[str]) -> dict:
  """Cells and their per-metric aggregates."""
  rows, cols, cells = group_cells(records, row_key, col_keys)
  stats = {m: {rc: cell_stats(pts, m) for rc, pts in cells.items()} for m in metrics}
  return {"row_key": row_key, "col_keys": col_keys, "rows": rows, "cols": cols, "cells": cells,
          "stats": stats}


def _describe(metric: str, kind: str) -> str:
  if metric.startswith("test_") and kind == "lm":
    return f"final test {metric[5:]} (best-valid checkpoint)"
  if metric.startswith("best_valid_"):
    return f"best validation {metric[11:]}"
  if metric == "error_rate":
    return "final test error rate"
  return metric


def render_markdown(sweep_dir: pathlib.Path, records: list[dict], table: dict,
                    metrics: list[str], kind: str) -> str:
  """The whole results.md."""
  counts = collections.Counter(r["state"] for r in records)
  seeds = sorted({fmt_value(r["settings"][SEED_KEY]) for r in records}) \
      if SEED_KEY in records[0]["settings"] else []
  parts = [f"# Sweep report: {sweep_dir.name}", "",
           f"- kind: {'synthetic task' if kind == 'synthetic' else 'language model'}",
           f"- points: {len(records)} ("
           + ", ".join(f"{counts[s]} {s}" for s in sorted(counts)) + ")",
           f"- varying keys: {', '.join(records[0]['settings']) or 'none'}",
           f"- rows: {table['row_key'] or '(one row)'}; columns: "
           f"{', '.join(table['col_keys']) or '(one column)'}",
           f"- seeds aggregated: {', '.join(seeds) if seeds else 'no seed key varies'}",
           "", "Cells: mean ± sample std (n) over the *finished* points of the cell (n = their "
           "number; one point shows no std), then the counts of diverged/failed points"
           + (" and successes k/n among the ended (finished, diverged or failed) points"
              if kind == "synthetic" else "")
           + "; running and missing points are counted as such. "
           f"{NOT_RUN} = that combination is not in the sweep.", ""]
  for m in metrics:
    parts += [f"## {_describe(m, kind)} (`{m}`)", "", markdown_table(table, m, kind), ""]
  src = {r.get("grad_norm_source") for r in records} - {None}
  how = ("median over log intervals of the interval p50 / p90"
         if src == {"interval_p50_p90"} else
         "median / 90th percentile over log intervals of the interval mean"
         if src == {"interval_mean"} else "see results.csv")
  parts += ["## Clipping and pre-clip gradient norms", "",
            "Per cell, the mean over its points of: the fraction of updates where clipping "
            f"fired; the pre-clip global gradient norm p50 / p90 ({how}).", "",
            grad_table(table, metrics[0]), "", "## Points", "",
            points_table(records, metrics), ""]
  return "\n".join(parts)


# ----------------------------------------------------------------------------- plots


def _slug(i: int, label: str) -> str:
  return f"{i:02d}_" + re.sub(r"[^A-Za-z0-9._=-]+", "_", label).strip("_")[:80]


def _new_figure(ncols: int, title: str):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(5 * ncols, 3.6))
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, ncols, squeeze=False)[0]
  fig.suptitle(title, fontsize=9)
  return fig, axes


def _series(events: list[dict], split: str, key: str) -> tuple[list[float], list[float]]:
  pts = [(e.get("step"), _num(e.get(key))) for e in events if e.get("split") == split]
  pts = [(s, v) for s, v in pts if _finite(s) and _finite(v)]
  return [s for s, _ in pts], [v for _, v in pts]


def _point_label(rec: dict) -> str:
  label = (f"seed {fmt_value(rec['settings'][SEED_KEY])}" if SEED_KEY in rec["settings"]
           else rec["name"])
  return label if rec["state"] == "finished" else f"{label} ({rec['state']})"


def _save(fig, path: pathlib.Path, axes) -> pathlib.Path:
  for ax in axes:
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  return path


def plot_curves(pts: list[dict], title: str, path: pathlib.Path, kind: str) -> pathlib.Path:
  """Train loss and the eval metric (LM: valid curve + final test; synthetic: test error
  rate) against step, one line per seed."""
  fig, (ax_loss, ax_eval) = _new_figure(2, title)
  for i, rec in enumerate(pts):
    color, label = f"C{i % 10}", _point_label(rec)
    ax_loss.plot(*_series(rec["events"], "train", "loss"), color=color, lw=1, label=label)
    if kind == "synthetic":
      ax_eval.plot(*_series(rec["events"], "test", "error_rate"), color=color, marker="o",
                   ms=3, lw=1, label=label)
      continue
    unit = rec.get("metric_unit", "perplexity")
    ax_eval.plot(*_series(rec["events"], "valid", unit), color=color, marker="o", ms=3, lw=1,
                 label=f"{label} valid")
    ax_eval.plot(*_series(rec["events"], "test", unit), color=color, marker="*", ms=9, ls="",
                 label=f"{label} test")
  threshold = flatten(pts[0]["config"] or {}).get("task.success_error_rate")
  if kind == "synthetic" and _finite(threshold):
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
    steps, p50 = _series(rec["events"], "train", "grad_norm_p50")
    if steps:
      ax.plot(steps, p50, color=color, lw=1, label=f"{label} median")
      s90, p90 = _series(rec["events"], "train", "grad_norm_p90")
      if s90 == steps:
        ax.fill_between(steps, p50, p90, color=color, alpha=0.2, lw=0)
    else:
      ax.plot(*_series(rec["events"], "train", "grad_norm"), color=color, lw=1,
              label=f"{label} interval mean")
    flat = flatten(rec["config"]) if rec["config"] else {}
    if flat.get("optim.clip_mode") == "global_norm" and _finite(flat.get("optim.clip_value")):
      thresholds.add(float(flat["optim.clip_value"]))
  for t in sorted(thresholds):
    ax.axhline(t, color="k", ls="--", lw=0.8, label=f"clip threshold {fmt_value(t)}")
  banded = any(_series(p["events"], "train", "grad_norm_p50")[0] for p in pts)
  ax.set(xlabel="step", ylabel="pre-clip gradient norm"
         + (" (median, shaded to p90)" if banded else " (interval mean)"))
  if ax.get_lines() and all(v > 0 for line in ax.get_lines() for v in line.get_ydata()):
    from matplotlib.ticker import FormatStrFormatter
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
  return _save(fig, path, (ax,))


def plot_success_vs_length(records: list[dict], path: pathlib.Path) -> pathlib.Path:
  """Success rate (among ended points) against task.length, one line per setting of the
  other varying keys (cell, clip setting, ...)."""
  others = [k for k in records[0]["settings"] if k not in (SEED_KEY, LENGTH_KEY)]
  groups: dict[str, dict] = collections.defaultdict(lambda: collections.defaultdict(list))
  for r in records:
    if r["state"] in ENDED_STATES and _finite(_num(r["settings"][LENGTH_KEY])):
      groups[col_label(r, others)][_num(r["settings"][LENGTH_KEY])].append(r.get("success") is True)
  fig, (ax,) = _new_figure(1, "success rate vs task.length (ended runs)")
  for i, (label, by_len) in enumerate(groups.items()):  # styles vary: equal lines stay visible
    xs = sorted(by_len)
    ax.plot(xs, [statistics.fmean(by_len[x]) for x in xs], color=f"C{i % 10}", label=label,
            marker="osD^v"[i % 5], ms=8 - 1.5 * (i % 4), ls=("-", "--", ":", "-.")[i % 4])
  ax.set(xlabel="task.length", ylabel="success rate", ylim=(-0.05, 1.05))
  return _save(fig, path, (ax,))


def write_plots(sweep_dir: pathlib.Path, records: list[dict], table: dict,
                kind: str) -> list[pathlib.Path]:
  """All PNGs under DIR/plots/ (cells without any metrics yet get none)."""
  out = sweep_dir / "plots"
  out.mkdir(exist_ok=True)
  for pattern in ("curves_*.png", "gradnorm_*.png", "success_vs_length.png"):
    for old in out.glob(pattern):  # our figures of a previous report (another layout)
      old.unlink()
  paths = []
  for i, ((r, c), pts) in enumerate(table["cells"].items()):
    if not any(p["events"] for p in pts):
      continue
    title = f"{table['row_key']}={r}, {c}" if table["row_key"] else f"{sweep_dir.name}: {c}"
    slug = _slug(i, f"{r}_{c}")
    paths.append(plot_curves(pts, title, out / f"curves_{slug}.png", kind))
    paths.append(plot_grad_norms(pts, title, out / f"gradnorm_{slug}.png"))
  if kind == "synthetic" and LENGTH_KEY in records[0]["settings"]:
    if len({fmt_value(r["settings"][LENGTH_KEY]) for r in records}) > 1:
      paths.append(plot_success_vs_length(records, out / "success_vs_length.png"))
  return paths


# ----------------------------------------------------------------------------- entry point


def write_report(sweep_dir: str | pathlib.Path, rows: str | None = None, cols: str | None = None,
                 metric: str | None = None, plots: bool = True) -> dict:
  """Write results.csv, results_cells.csv, results.md, results.tex and plots/ into
  ``sweep_dir``; returns {"csv", "cells_csv", "md", "tex": path, "plots": [paths]}.

  Raises:
    ReportError: not a sweep directory, a malformed sweep.json, an unknown key or metric.
  """
  root = pathlib.Path(sweep_dir)
  records = collect(root)
  kind = sweep_kind(records)
  _check_key(rows, records, "--rows")
  _check_key(cols, records, "--cols")
  row_key, col_keys = choose_layout(list(records[0]["settings"]), rows, cols)
  metrics = default_metrics(kind, records, metric)
  table = build_table(records, row_key, col_keys, metrics)
  paths = {"csv": root / "results.csv", "cells_csv": root / "results_cells.csv",
           "md": root / "results.md", "tex": root / "results.tex"}
  write_points_csv(paths["csv"], records)
  write_cells_csv(paths["cells_csv"], table, metrics, kind)
  paths["md"].write_text(render_markdown(root, records, table, metrics, kind))
  caption = f"{root.name}: {_describe(metrics[0], kind)}, mean ± std (n) over seeds"
  paths["tex"].write_text(latex_table(table, metrics[0], kind, caption))
  paths["plots"] = write_plots(root, records, table, kind) if plots else []
  return paths
