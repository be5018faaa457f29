"""Sweep reports: tables (Markdown, LaTeX, CSV) and plots from a directory of runs.

A sweep directory holds ``sweep.json`` and one workdir (see :mod:`rnnlm_jax.workdir`) per
point::

    DIR/sweep.json   {"config": path, "keys": [dotted keys that vary],
                      "points": [{"name": str, "overrides": {dotted_key: value}}, ...]}
    DIR/<name>/      config.json, status.json, metrics.jsonl of one run

Without ``sweep.json`` the points are the subdirectories holding a ``config.json`` and the
varying keys are those whose values differ between their configs.

:func:`collect` reads one record per point; a point that has not started (no config.json)
gets its settings from the sweep file named in sweep.json (its ``get_config()`` with the point's
overrides; "(unset)" only if that file cannot be loaded). :func:`write_report` writes::

    DIR/results.csv        one row per point (every varying key, state, step, final metrics)
    DIR/results_cells.csv  one row per table cell (every varying key, seed aggregates)
    DIR/results.md         per metric, one rows x columns table per value combination of the
                           table keys: "mean ± std (n)" over seeds and counts, or for
                           ``--metric success`` "k/n" successes and the median success step
    DIR/results.tex        the main tables as LaTeX tabulars
    DIR/plots/*.png        learning curves, pre-clip gradient norms, success vs task.length

Rows, columns and tables are each a combination of one or more keys (:func:`choose_layout`).
Seeds (key ``seed``) are always aggregated. Every other varying key is split only where it must
be: it joins the column labels if it takes several values within one (table, row, column)
cell; otherwise it is constant within every cell and listed under the table ("settings fixed
within each cell"), so no two settings are merged silently.
"""

from __future__ import annotations

import collections
import csv
import itertools
import json
import math
import pathlib
import re
import statistics
from typing import Any, Iterable, Sequence

from rnnlm_jax import tasks
from rnnlm_jax.workdir import NON_COMPUTATION_KEYS, flatten

SEED_KEY = "seed"
LENGTH_KEY = "task.length"
TASK_KEY = "task.name"
CELL_KEY = "model.cell"
# --metric success: k successes of n ended runs and the median success step.
SUCCESS_METRIC = "success"
KIND_NAMES = {"lm": "language model", "synthetic": "synthetic task",
              "seq": "whole-sequence task (music or classification)"}
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
  """Dotted keys (sorted) whose values differ between configs, ignoring
  ``workdir.NON_COMPUTATION_KEYS``."""
  flats = list(flat_configs)
  keys = sorted(set().union(*flats)) if flats else []
  out = []
  for k in keys:
    if k in NON_COMPUTATION_KEYS:
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
  keys = varying_keys(flats)
  # Without sweep.json a point's overrides are its values of the keys that vary.
  return keys, [{"name": n, "overrides": {k: f[k] for k in keys if k in f}}
                for n, f in zip(names, flats)]


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

  Runs log per-interval p50/p90 of the pre-clip norm: the run's ``grad_norm_p50`` /
  ``grad_norm_p90`` are the medians over intervals of those. LM runs made before those fields
  existed log only the interval mean: then they are the median / 90th percentile over
  intervals of the interval means.
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


_SEQ_SKIP = ("step", "epoch", "checkpoint_step", "best")  # event fields that are not metrics


def _seq_metrics(events: list[dict]) -> dict:
  """Final metrics of a padded-sequence run (music, classification; rnnlm_jax.tasks.padded):
  ``test_<m>`` and ``valid_<m>`` for every metric ``m`` of its final test and valid events (both
  scored with the best-validation checkpoint), and ``best_valid_loss``."""
  out: dict[str, Any] = {"metric_unit": "loss"}
  for split in ("test", "valid"):
    final = [e for e in events if e.get("split") == split and e.get("checkpoint") == "best_valid"]
    for key, value in (final[-1].items() if final else ()):
      if key not in _SEQ_SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
        out[f"{split}_{key}"] = _num(value)
  losses = [v for v in (_num(e.get("loss")) for e in events if e.get("split") == "valid")
            if _finite(v)]
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


def read_point(root: pathlib.Path, name: str, overrides: dict, keys: list[str],
               resolved: dict | None = None) -> dict:
  """One point's record: settings of the swept keys, state, final metrics, events.

  ``resolved`` is the flat config of the point as the sweep file defines it, used for the
  settings of a point that has no config.json yet (not started).
  """
  wd = root / name
  config = _read_json(wd / "config.json") if (wd / "config.json").is_file() else None
  flat = tasks.normalise_task_key(flatten(config)) if config else dict(resolved or {})
  status = _read_json(wd / "status.json") if (wd / "status.json").is_file() else None
  events = read_events(wd / "metrics.jsonl")
  rec: dict[str, Any] = {
      "name": name, "path": str(wd), "overrides": dict(overrides),
      "settings": {k: overrides[k] if k in overrides else flat.get(k) for k in keys},
      "task": tasks.task_name(flat) if flat else None,
      "state": status.get("state", "unknown") if status else "missing",
      "step": status.get("step") if status else None,
      "epoch": status.get("epoch") if status else None,
      "reason": (status.get("reason") or "") if status else
                ("no workdir" if not wd.is_dir() else "no status.json (not started)"),
      "config": config, "flat": flat, "resolved": config is None and bool(resolved),
      "events": events}
  # how the final metrics are read: the padded-sequence tasks share one event layout
  rec["kind"] = {"music": "seq", "classify": "seq"}.get(rec["task"], rec["task"])
  train = [e for e in events if e.get("split") == "train"]
  rec.update(_train_stats(train))
  if rec["kind"] == "synthetic":
    rec.update(_synthetic_metrics(events, status, flat))
  elif rec["kind"] == "seq":
    rec.update(_seq_metrics(events))
  elif rec["kind"] == "lm":
    rec.update(_lm_metrics(events))
  return rec


def resolve_from_sweep_file(root: pathlib.Path,
                            points: list[dict]) -> tuple[dict[str, dict] | None, str]:
  """({point name: flat config} as the sweep file defines them, note) for ``points``.

  The sweep file is the ``config`` path of DIR/sweep.json, relative to the current directory,
  else to DIR's parent (or grandparent); it is imported, ``get_config()`` is called and each
  point's overrides applied. (None, why) when it cannot be found or loaded.
  """
  spec_file = root / "sweep.json"
  spec = _read_json(spec_file) if spec_file.is_file() else {}
  cfg = spec.get("config") if isinstance(spec, dict) else None
  if not isinstance(cfg, str) or not cfg:
    return None, "sweep.json names no sweep file"
  rel = pathlib.Path(cfg)
  tries = [rel] if rel.is_absolute() else [rel, root.resolve().parent / rel,
                                           root.resolve().parent.parent / rel]
  path = next((t for t in tries if t.is_file()), None)
  if path is None:
    return None, f"sweep file {cfg} not found (relative to the current directory or {root}'s parent)"
  try:
    from rnnlm_jax.sweeps import spec as sweep_lib
    base = sweep_lib.load_sweep_module(path).get_config()
    out = {p["name"]: flatten(sweep_lib.apply_overrides(base, p["overrides"]).to_dict())
           for p in points}
  except Exception as e:  # any failure of the user's file: fall back to "(unset)"
    msg = str(e).splitlines()[0] if str(e) else ""
    return None, f"sweep file {cfg} could not be loaded ({type(e).__name__}: {msg})"
  return out, f"resolved from the sweep file {cfg}"


def collect(sweep_dir: str | pathlib.Path) -> list[dict]:
  """One record per point of the sweep in ``sweep_dir`` (missing points included).

  Each record has ``name``, ``path``, ``overrides`` (the point's, as sweep.json lists them;
  without sweep.json its values of the varying keys), ``settings`` ({varying key: value}, the
  same keys in
  every record, ``seed`` included; a point without config.json takes them from the sweep file,
  see :func:`resolve_from_sweep_file`, else None), ``kind`` ("lm" | "synthetic" | None when
  its config is unknown), ``state`` (finished | diverged | failed | running | missing), ``step``,
  ``epoch``, ``reason``, the final metrics (LM: ``test_perplexity`` or ``test_bpc`` from the
  best-valid checkpoint, ``best_valid_*``, ``test_loss``; synthetic: ``error_rate``,
  ``success``, ``success_step``, ``test_loss``, ``mse``), the training summary (``clip_rate``,
  ``grad_norm_p50``, ``grad_norm_p90``, ``final_train_loss``), ``config`` (of config.json,
  None if absent), ``flat`` (the flat config: config.json's, else the sweep file's),
  ``resolve_note`` (for points without config.json: where their settings came from) and
  ``events``.
  """
  root = pathlib.Path(sweep_dir)
  keys, points = load_sweep(root)
  if not points:
    raise ReportError(f"{root / 'sweep.json'} lists no points")
  unstarted = [p for p in points if not (root / p["name"] / "config.json").is_file()]
  resolved, note = resolve_from_sweep_file(root, unstarted) if unstarted else ({}, "")
  records = [read_point(root, p["name"], p["overrides"], keys, (resolved or {}).get(p["name"]))
             for p in points]
  extra = [k for k in varying_keys(flatten(r["config"]) for r in records if r["config"])
           if k not in keys]
  if extra:  # keys that differ between the configs although sweep.json does not list them
    for r in records:
      r["settings"].update({k: r["flat"].get(k) for k in extra})
  for r in records:
    r["resolve_note"] = note if r["config"] is None else ""
  return records


def sweep_kind(records: list[dict]) -> str:
  """"lm", "synthetic" or "seq" (from the configs present; "lm" if there are none)."""
  kinds = {r["kind"] for r in records if r["kind"]}
  if len(kinds) > 1:
    raise ReportError(f"the sweep mixes kinds of runs ({', '.join(sorted(kinds))}); report "
                      "them separately")
  return kinds.pop() if kinds else "lm"


# ----------------------------------------------------------------------------- layout


def parse_keys(option: str | Sequence[str] | None) -> list[str] | None:
  """A --tables/--rows/--cols value as a list of keys: ``"a,b"`` -> ``["a", "b"]``; None stays
  None (use the default), ``""`` gives ``[]`` (explicitly none)."""
  if option is None:
    return None
  parts = option.split(",") if isinstance(option, str) else list(option)
  return [k.strip() for k in parts if k.strip()]


def _setting(rec: dict, key: str) -> Any:
  if key in rec["settings"]:
    return rec["settings"][key]
  return rec["flat"].get(key)


def _values(rec: dict, keys: Sequence[str]) -> tuple[str, ...]:
  return tuple(fmt_value(_setting(rec, k)) for k in keys)


def varies_within(records: list[dict], group_keys: Sequence[str], key: str) -> bool:
  """Whether ``key`` takes more than one value among the records of one group of
  ``group_keys`` (records with equal values of all of them)."""
  seen: dict[tuple, str] = {}
  for r in records:
    v = fmt_value(_setting(r, key))
    if seen.setdefault(_values(r, group_keys), v) != v:
      return True
  return False


def needed_keys(records: list[dict], group_keys: Sequence[str],
                candidates: Sequence[str]) -> list[str]:
  """The ``candidates`` that must split the groups of ``group_keys``, in order: a key joins
  when it varies within a group of ``group_keys`` plus the keys joined before it. Every other
  candidate is then constant within each group of the result (groups only get finer)."""
  out: list[str] = []
  for k in candidates:
    if varies_within(records, list(group_keys) + out, k):
      out.append(k)
  return out


def _check_key(key: str, records: list[dict], option: str) -> None:
  """A --tables/--rows/--cols key must not be the seed and must be swept or in some config."""
  if key == SEED_KEY:
    raise ReportError(f"seeds are always aggregated; pick another key for {option}")
  if key in records[0]["settings"] or any(key in r["flat"] for r in records):
    return
  swept = ", ".join(k for k in records[0]["settings"] if k != SEED_KEY) or "none"
  raise ReportError(f"{option} {key!r} is not a config key of these runs; varying keys: {swept}")


def _short_names(keys: Sequence[str], all_keys: Sequence[str]) -> dict[str, str]:
  """Label names of ``keys``: the last dotted part when no other key ends the same way."""
  last = collections.Counter(k.rsplit(".", 1)[-1] for k in all_keys)
  return {k: k.rsplit(".", 1)[-1] if last[k.rsplit(".", 1)[-1]] == 1 else k for k in keys}


def choose_layout(records: list[dict], rows: str | Sequence[str] | None = None,
                  cols: str | Sequence[str] | None = None,
                  tables: str | Sequence[str] | None = None) -> dict:
  """The report layout: {"tables", "rows", "cols", "split", "fixed": [keys], "short": {key:
  label name}}.

  One table per value combination of the ``tables`` keys, one row / column per combination of
  the ``rows`` / ``cols`` keys; seeds are always aggregated. Defaults: tables = task.name when
  it varies (and is not a row or column key); rows = model.cell when it varies, else the first
  varying key; columns = task.length when it varies.

  Every other varying key is split only where it must be: in order, it is added to the labels
  ("split") if it takes more than one value among the points of one (table, row, column) cell,
  so no two settings are merged; the remaining keys ("fixed") are constant within every cell
  and are listed under each table. Split keys join the column labels (as ``name=value``);
  when neither rows nor columns are given and task.length is the column, they join the rows
  instead (rows like "rnn_tanh, global_norm, 4"), and when columns are not given they become
  column keys.

  Raises:
    ReportError: the seed or an unknown key picked, or a key picked twice.
  """
  tables_l, rows_l, cols_l = parse_keys(tables), parse_keys(rows), parse_keys(cols)
  picked: dict[str, str] = {}
  for option, ks in (("--tables", tables_l), ("--rows", rows_l), ("--cols", cols_l)):
    for k in ks or []:
      _check_key(k, records, option)
      if k in picked:
        raise ReportError(f"{k!r} is picked twice ({picked[k]} and {option}); use a key once")
      picked[k] = option
  all_keys = [k for k in records[0]["settings"] if k != SEED_KEY]
  free = [k for k in all_keys if k not in picked]
  if tables_l is None:
    tables_l = [TASK_KEY] if TASK_KEY in free else []
    free = [k for k in free if k not in tables_l]
  rows_default = rows_l is None
  if rows_l is None:
    rows_l = [CELL_KEY] if CELL_KEY in free else free[:1]
    free = [k for k in free if k not in rows_l]
  split: list[str] = []
  if cols_l is None:
    base = [LENGTH_KEY] if LENGTH_KEY in free else []
    free = [k for k in free if k not in base]
    needed = needed_keys(records, tables_l + rows_l + base, free)
    if rows_default and base:
      rows_l, cols_l = rows_l + needed, base
    else:
      cols_l = base + needed
  else:
    needed = split = needed_keys(records, tables_l + rows_l + cols_l, free)
  fixed = [k for k in free if k not in needed]
  return {"tables": tables_l, "rows": rows_l, "cols": cols_l, "split": split, "fixed": fixed,
          "short": _short_names(split, list(records[0]["settings"]) + tables_l + rows_l + cols_l)}


def cell_labels(rec: dict, layout: dict) -> tuple[str, str, str]:
  """(table, row, column) labels of a record: ``"task.name=addition"`` (``""`` without table
  keys), ``"rnn_tanh, global_norm, 4"``, ``"100"`` plus ``", name=value"`` per split key
  (``"all"`` for no keys)."""
  table = ", ".join(f"{k}={v}" for k, v in zip(layout["tables"], _values(rec, layout["tables"])))
  row = ", ".join(_values(rec, layout["rows"])) or "all"
  col = ", ".join(list(_values(rec, layout["cols"]))
                  + [f"{layout['short'][k]}={v}"
                     for k, v in zip(layout["split"], _values(rec, layout["split"]))]) or "all"
  return table, row, col


def describe_fixed(records: list[dict], layout: dict, key: str) -> str:
  """How a key that is constant within each cell takes its values in one table, by the
  smallest set of row/column keys that determines it: ``"model.init: smart_tanh where
  model.cell is rnn_tanh; uniform where model.cell is lstm or gru"`` (``"key=value"`` when
  constant over the table)."""
  dets = layout["rows"] + layout["cols"] + layout["split"]
  val = {id(r): fmt_value(_setting(r, key)) for r in records}
  for size in range(len(dets) + 1):
    for subset in itertools.combinations(dets, size):
      by: dict[tuple, str] = {}
      if all(by.setdefault(_values(r, subset), val[id(r)]) == val[id(r)] for r in records):
        break
    else:
      continue
    break
  else:  # not a function of the labels: cannot happen for a fixed key
    return f"{key}: " + ", ".join(sorted(set(val.values())))
  if not subset:
    return f"{key}={next(iter(by.values()))}" if by else f"{key}"
  groups: dict[str, list[tuple]] = {}
  for combo, v in by.items():
    groups.setdefault(v, []).append(combo)
  if len(subset) == 1:
    what = subset[0]
    show = lambda combo: combo[0]
  else:
    what = "(" + ", ".join(subset) + ")"
    show = lambda combo: "(" + ", ".join(combo) + ")"
  return f"{key}: " + "; ".join(f"{v} where {what} is " + " or ".join(show(c) for c in combos)
                                for v, combos in groups.items())


# ----------------------------------------------------------------------------- aggregates


def cell_stats(points: list[dict], metric: str) -> dict:
  """Seed aggregate of one cell: mean/std/n of ``metric`` over finished points (for
  ``success``: the success rate among the ended points, n = their number), state counts,
  success k of n ended points and the median success step, mean clip rate and gradient-norm
  p50/p90."""
  counts = collections.Counter(p["state"] for p in points)
  ended = [p for p in points if p["state"] in ENDED_STATES]
  won = [p for p in ended if p.get("success") is True]
  steps = [s for s in (_num(p.get("success_step")) for p in won) if _finite(s)]
  if metric == SUCCESS_METRIC:
    mean, std, n = (len(won) / len(ended) if ended else None), None, len(ended)
  else:
    mean, std, n = mean_std([p.get(metric) for p in points if p["state"] == "finished"])
  out = {"points": len(points), "counts": counts, "mean": mean, "std": std, "n": n,
         "success": len(won), "ended": len(ended),
         "success_step_median": statistics.median(steps) if steps else None}
  for key in ("clip_rate", "grad_norm_p50", "grad_norm_p90"):
    out[key] = mean_std([p.get(key) for p in points])[0]
  return out


def cell_text(stats: dict | None, metric: str, kind: str) -> str:
  """A table cell: ``"mean ± std (n); counts"``; for ``success``: ``"k/n, median step S
  (counts)"`` with k successes among the n ended points and the nonzero diverged, failed,
  running and missing counts; just the counts (``"5 running"``) when no point of the cell has
  ended; NOT_RUN for a combination not in the sweep."""
  if stats is None:
    return NOT_RUN
  c = stats["counts"]
  if metric == SUCCESS_METRIC:
    text = f"{stats['success']}/{stats['ended']}"
    if stats["success_step_median"] is not None:
      text += f", median step {fmt_metric(stats['success_step_median'], 'success_step')}"
    extra = [f"{c[s]} {s}" for s in ("diverged", "failed") if c[s]]
    extra += [f"{c[s]} {s}" for s in sorted(c) if s not in ENDED_STATES and c[s]]
    return text + (f" ({', '.join(extra)})" if extra else "")
  if stats["n"] == 0 and stats["ended"] == 0 and stats["points"]:  # nothing ended yet
    return ", ".join(f"{c[s]} {s}" for s in sorted(c) if c[s])
  if stats["n"] == 0:
    value = "n/a (0)"
  elif stats["std"] is None:
    value = f"{fmt_metric(stats['mean'], metric)} (1)"
  else:
    value = (f"{fmt_metric(stats['mean'], metric)} ± {fmt_metric(stats['std'], metric)} "
             f"({stats['n']})")
  if kind == "synthetic":
    notes = [f"success {stats['success']}/{stats['ended']}", f"{c['diverged']} diverged"]
    notes += [f"{c['failed']} failed"] if c["failed"] else []
  else:
    notes = [f"{c['diverged']} diverged", f"{c['failed']} failed"]
  notes += [f"{c[s]} {s}" for s in sorted(c) if s not in ENDED_STATES]
  return f"{value}; {', '.join(notes)}"


def default_metrics(kind: str, records: list[dict], metric: str | None) -> list[str]:
  """Metrics to tabulate: the user's, else LM test + best valid perplexity (bpc for
  character-level runs), synthetic error_rate."""
  if metric is not None:
    return [_resolve_metric(metric, records, kind)]
  if kind == "synthetic":
    return ["error_rate"]
  if kind == "seq":  # classification: accuracy; music: NLL per time step (loss)
    metric = "accuracy" if any("test_accuracy" in r for r in records) and not any(
        r.get("task") == "music" for r in records) else "loss"
    return [f"test_{metric}", f"valid_{metric}"]
  units = list(dict.fromkeys(r["metric_unit"] for r in records if r.get("metric_unit")))
  units = units or ["perplexity"]  # mixed word/char runs: a table per unit
  return [f"test_{u}" for u in units] + [f"best_valid_{u}" for u in units]


def _resolve_metric(metric: str, records: list[dict], kind: str) -> str:
  """A --metric name as a record field (``perplexity`` -> ``test_perplexity``)."""
  if metric == SUCCESS_METRIC:
    if kind != "synthetic":
      raise ReportError("--metric success is for synthetic-task sweeps (runs with a task)")
    return metric
  numeric = sorted({k for r in records for k, v in r.items()
                    if k not in ("settings", "config", "flat", "events", "epoch")
                    and isinstance(v, (int, float)) and not isinstance(v, bool)})
  for name in (metric, f"test_{metric}"):
    if name in numeric:
      return name
  choices = numeric + ([SUCCESS_METRIC] if kind == "synthetic" else [])
  raise ReportError(f"--metric {metric!r} is not a metric of these runs; choose one of "
                    f"{', '.join(choices) or '(none: no run has metrics yet)'}")


def build_tables(records: list[dict], layout: dict, metrics: list[str]) -> dict:
  """{"layout", "tables": [{"label", "rows", "cols", "cells": {(row, col): [records]},
  "stats": {metric: {(row, col): cell_stats}}, "fixed": [(key, description)]}]}; tables, rows
  and columns in order of first appearance in the sweep."""
  row_order: list[str] = []
  col_order: list[str] = []
  groups: dict[str, dict] = {}
  for r in records:
    t, rl, cl = cell_labels(r, layout)
    row_order += [rl] if rl not in row_order else []
    col_order += [cl] if cl not in col_order else []
    groups.setdefault(t, {}).setdefault((rl, cl), []).append(r)
  out = []
  for label, cells in groups.items():
    rows = [x for x in row_order if any(rc[0] == x for rc in cells)]
    cols = [x for x in col_order if any(rc[1] == x for rc in cells)]
    cells = {(r, c): cells[(r, c)] for r in rows for c in cols if (r, c) in cells}
    pts = [p for ps in cells.values() for p in ps]
    out.append({"label": label, "rows": rows, "cols": cols, "cells": cells,
                "stats": {m: {rc: cell_stats(ps, m) for rc, ps in cells.items()}
                          for m in metrics},
                "fixed": [(k, describe_fixed(pts, layout, k)) for k in layout["fixed"]]})
  return {"layout": layout, "tables": out}


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


def _corner(layout: dict) -> str:
  """Top-left header cell: ``"row keys \\ column keys"`` (split keys name themselves in the
  column labels)."""
  rows = ", ".join(layout["rows"])
  return f"{rows} \\ {', '.join(layout['cols'])}" if layout["cols"] else rows


def markdown_table(table: dict, metric: str, kind: str, layout: dict) -> str:
  """Rows x columns Markdown table of ``metric`` for one table (see :func:`cell_text`)."""
  head = [_md_escape(_corner(layout))] + [_md_escape(c) for c in table["cols"]]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in table["rows"]:
    cells = [cell_text(table["stats"][metric].get((r, c)), metric, kind) for c in table["cols"]]
    lines.append("| " + " | ".join([_md_escape(r)] + [_md_escape(x) for x in cells]) + " |")
  return "\n".join(lines)


def metric_section(tables: dict, metric: str, kind: str) -> str:
  """The tables of one metric: per table a heading (with table keys), the table and the
  settings fixed within each cell."""
  parts = []
  for t in tables["tables"]:
    if t["label"]:
      parts += [f"### {t['label']}", ""]
    parts += [markdown_table(t, metric, kind, tables["layout"]), ""]
    if t["fixed"]:
      parts += ["settings fixed within each cell:"] + [f"- {d}" for _, d in t["fixed"]] + [""]
  return "\n".join(parts)


def latex_table(tables: dict, metric: str, kind: str, caption: str) -> str:
  """The main tables as LaTeX tabulars (need no extra packages), one per table."""
  out = [f"% {tex_escape(caption)}"]
  for t in tables["tables"]:
    ncols = len(t["cols"])
    if t["label"]:
      out.append(f"% {tex_escape(t['label'])}")
    lines = [f"\\begin{{tabular}}{{l|{'l' * ncols}}}", r"\hline",
             " & ".join([tex_escape(_corner(tables["layout"]))]
                        + [tex_escape(c) for c in t["cols"]]) + r" \\", r"\hline"]
    for r in t["rows"]:
      cells = [cell_text(t["stats"][metric].get((r, c)), metric, kind) for c in t["cols"]]
      lines.append(" & ".join([tex_escape(r)] + [tex_escape(x) for x in cells]) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    out += lines + [f"% fixed within each cell: {tex_escape(d)}" for _, d in t["fixed"]]
  return "\n".join(out) + "\n"


def grad_table(tables: dict, metric: str) -> str:
  """Markdown table: per cell, points, mean clip rate, mean pre-clip grad-norm p50 / p90."""
  with_table = any(t["label"] for t in tables["tables"])
  head = ((["table"] if with_table else [])
          + [", ".join(tables["layout"]["rows"]) or "row", "column", "points", "clip rate",
             "grad-norm p50", "grad-norm p90"])
  lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
  for t in tables["tables"]:
    for (r, c), s in t["stats"][metric].items():
      vals = [fmt_metric(s["clip_rate"], "clip_rate"), fmt_metric(s["grad_norm_p50"], "g"),
              fmt_metric(s["grad_norm_p90"], "g")]
      cells = ([t["label"]] if with_table else []) + [r, c, str(s["points"])] + vals
      lines.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
  return "\n".join(lines)


def points_table(records: list[dict], metrics: list[str]) -> str:
  """Markdown table of every point: settings, state, step, metrics, reason."""
  keys = list(records[0]["settings"])
  head = ["name"] + keys + ["state", "step"] + metrics + ["reason"]
  lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
  for r in records:
    shown = ["n/a" if m == SUCCESS_METRIC and r.get(m) is None else
             fmt_value(r.get(m)) if m == SUCCESS_METRIC else fmt_metric(_num(r.get(m)), m)
             for m in metrics]
    row = ([r["name"]] + [fmt_value(r["settings"][k]) for k in keys]
           + [r["state"], "" if r["step"] is None else str(r["step"])]
           + shown + [r["reason"] or ""])
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


def write_cells_csv(path: pathlib.Path, tables: dict, metrics: list[str], kind: str) -> None:
  """results_cells.csv: one row per (table, row, column) cell: the value of every varying key
  in the cell (table, row, column, split and fixed keys), its labels and seed aggregates
  (success k of ended n and the median success step for synthetic tasks)."""
  lay = tables["layout"]
  keys = lay["tables"] + lay["rows"] + lay["cols"] + lay["split"] + lay["fixed"]
  states = ["finished", "diverged", "failed", "running", "missing"]
  success = ["success", "ended", "success_step_median"] if kind == "synthetic" else []
  head = keys + ["table", "row", "column", "points"] + states + success
  for m in metrics:
    head += [f"{m}_mean", f"{m}_std", f"{m}_n"]
  head += ["clip_rate_mean", "grad_norm_p50_mean", "grad_norm_p90_mean"]
  with path.open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(head)
    for t in tables["tables"]:
      for (r, c), s in t["stats"][metrics[0]].items():
        rec = t["cells"][(r, c)][0]
        row = ([_csv_value(_setting(rec, k)) for k in keys] + [t["label"], r, c, s["points"]]
               + [s["counts"][st] for st in states] + [_csv_value(s[k]) for k in success])
        for m in metrics:
          sm = t["stats"][m][(r, c)]
          row += [_csv_value(sm["mean"]), _csv_value(sm["std"]), sm["n"]]
        row += [_csv_value(s[k]) for k in ("clip_rate", "grad_norm_p50", "grad_norm_p90")]
        w.writerow(row)


def _describe(metric: str, kind: str) -> str:
  if metric.startswith("test_") and kind == "lm":
    return f"final test {metric[5:]} (best-valid checkpoint)"
  if metric.startswith("best_valid_"):
    return f"best validation {metric[11:]}"
  if metric == "error_rate":
    return "final test error rate"
  if metric == SUCCESS_METRIC:
    return "successes among ended runs"
  return metric


def render_markdown(sweep_dir: pathlib.Path, records: list[dict], tables: dict,
                    metrics: list[str], kind: str) -> tuple[str, str]:
  """(the whole results.md, the section of the first metric)."""
  lay = tables["layout"]
  counts = collections.Counter(r["state"] for r in records)
  seeds = sorted({fmt_value(r["settings"][SEED_KEY]) for r in records}) \
      if SEED_KEY in records[0]["settings"] else []
  unstarted = [r for r in records if r["config"] is None]
  notes = sorted({r["resolve_note"] for r in unstarted if r["resolve_note"]})
  resolved = sum(r["resolved"] for r in unstarted)
  parts = [f"# Sweep report: {sweep_dir.name}", "",
           f"- kind: {KIND_NAMES.get(kind, 'language model')}",
           f"- points: {len(records)} ("
           + ", ".join(f"{counts[s]} {s}" for s in sorted(counts)) + ")",
           f"- varying keys: {', '.join(records[0]['settings']) or 'none'}",
           f"- tables: {', '.join(lay['tables']) or '(one table)'}; rows: "
           f"{', '.join(lay['rows']) or '(one row)'}; columns: "
           f"{', '.join(lay['cols']) or '(one column)'}"]
  if lay["split"]:
    parts.append("- also in the column labels (they vary within a cell otherwise): "
                 + ", ".join(k if lay["short"][k] == k else f"{lay['short'][k]} ({k})"
                             for k in lay["split"]))
  if lay["fixed"]:
    parts.append("- fixed within each cell (values listed under each table): "
                 + ", ".join(lay["fixed"]))
  if unstarted:
    how = "; ".join(notes) if notes else "no sweep file to resolve them from"
    parts.append(f"- points without config.json (not started): {len(unstarted)}; their settings "
                 + (f"were {how}" if resolved == len(unstarted) else
                    f"show (unset) where sweep.json does not give them ({how})"))
  parts += [f"- seeds aggregated: {', '.join(seeds) if seeds else 'no seed key varies'}", ""]
  if metrics[0] == SUCCESS_METRIC:
    parts.append("Cells: k/n = runs that reached the success criterion / runs that ended "
                 "(finished, diverged or failed), then the median step of success over the "
                 "successful runs; the diverged, failed, running and missing counts follow in "
                 f"parentheses when nonzero. {NOT_RUN} = that combination is not in the sweep.")
  else:
    parts.append(
        "Cells: mean ± sample std (n) over the *finished* points of the cell (n = their "
        "number; one point shows no std), then the counts of diverged/failed points"
        + (" and successes k/n among the ended (finished, diverged or failed) points"
           if kind == "synthetic" else "")
        + "; running and missing points are counted as such. "
        f"{NOT_RUN} = that combination is not in the sweep.")
  parts.append("")
  first = ""
  for m in metrics:
    section = f"## {_describe(m, kind)} (`{m}`)\n\n" + metric_section(tables, m, kind)
    first = first or section
    parts += [section]
  src = {r.get("grad_norm_source") for r in records} - {None}
  how = ("median over log intervals of the interval p50 / p90"
         if src == {"interval_p50_p90"} else
         "median / 90th percentile over log intervals of the interval mean"
         if src == {"interval_mean"} else "see results.csv")
  parts += ["## Clipping and pre-clip gradient norms", "",
            "Per cell, the mean over its points of: the fraction of updates where clipping "
            f"fired; the pre-clip global gradient norm p50 / p90 ({how}).", "",
            grad_table(tables, metrics[0]), "", "## Points", "",
            points_table(records, metrics), ""]
  return "\n".join(parts), first.rstrip("\n")


# ----------------------------------------------------------------------------- plots


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
  threshold = pts[0]["flat"].get("task.success_error_rate")
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
    flat = rec["flat"]
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


def success_lines(records: list[dict], layout: dict) -> dict[str, dict[str, dict[float, list]]]:
  """{panel: {line: {task.length: [success of each ended run]}}}: a panel per table (label
  without task.length), a line per row and column label without task.length."""
  no_len = {k: [x for x in layout[k] if x != LENGTH_KEY] for k in ("tables", "rows", "cols",
                                                                     "split")}
  lay = dict(layout, **no_len)
  panels: dict[str, dict] = {}
  for r in records:
    x = _num(_setting(r, LENGTH_KEY))
    if r["state"] not in ENDED_STATES or not _finite(x):
      continue
    t, row, col = cell_labels(r, lay)
    line = row if col == "all" else col if row == "all" else f"{row}, {col}"
    panels.setdefault(t, {}).setdefault(line, {}).setdefault(x, []).append(
        r.get("success") is True)
  return panels


def plot_success_vs_length(records: list[dict], layout: dict, path: pathlib.Path) -> pathlib.Path:
  """Success rate (among ended points) against task.length: a panel per table (per task), one
  line per row and column (less task.length) combination; a line keeps its style across
  panels."""
  panels = success_lines(records, layout)
  legend_title = ", ".join([k for k in layout["rows"] + layout["cols"] if k != LENGTH_KEY]
                           + [f"{layout['short'][k]}=" for k in layout["split"]
                              if k != LENGTH_KEY])
  fig, axes = _new_figure(max(len(panels), 1), "success rate vs task.length (ended runs)")
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
                kind: str) -> list[pathlib.Path]:
  """All PNGs under DIR/plots/ (cells without any metrics yet get none)."""
  out = sweep_dir / "plots"
  out.mkdir(exist_ok=True)
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


# ----------------------------------------------------------------------------- entry point


def write_report(sweep_dir: str | pathlib.Path, rows: str | Sequence[str] | None = None,
                 cols: str | Sequence[str] | None = None, metric: str | None = None,
                 plots: bool = True, tables: str | Sequence[str] | None = None) -> dict:
  """Write results.csv, results_cells.csv, results.md, results.tex and plots/ into
  ``sweep_dir``; ``rows``, ``cols``, ``tables``: keys, comma-separated or a list (see
  :func:`choose_layout`). Returns {"csv", "cells_csv", "md", "tex": path, "plots": [paths],
  "summary": the Markdown section of the first metric}.

  Raises:
    ReportError: not a sweep directory, a malformed sweep.json, an unknown key or metric.
  """
  root = pathlib.Path(sweep_dir)
  records = collect(root)
  kind = sweep_kind(records)
  layout = choose_layout(records, rows, cols, tables)
  metrics = default_metrics(kind, records, metric)
  built = build_tables(records, layout, metrics)
  paths: dict[str, Any] = {"csv": root / "results.csv", "cells_csv": root / "results_cells.csv",
                           "md": root / "results.md", "tex": root / "results.tex"}
  write_points_csv(paths["csv"], records)
  write_cells_csv(paths["cells_csv"], built, metrics, kind)
  md, paths["summary"] = render_markdown(root, records, built, metrics, kind)
  paths["md"].write_text(md)
  what = "k/n successes among ended runs" if metrics[0] == SUCCESS_METRIC else \
      "mean ± std (n) over seeds"
  caption = f"{root.name}: {_describe(metrics[0], kind)}, {what}"
  paths["tex"].write_text(latex_table(built, metrics[0], kind, caption))
  paths["plots"] = write_plots(root, records, built, kind) if plots else []
  return paths
