"""Which keys are tables, rows and columns, which metrics, and the seed aggregates per cell.

Rows, columns and tables are each a combination of one or more keys (:func:`choose_layout`).
Seeds (key ``seed``) are always aggregated. Every other varying key is split only where it must
be: it joins the column labels if it takes several values within one (table, row, column)
cell; otherwise it is constant within every cell and listed under the table ("settings fixed
within each cell"), so no two settings are merged silently. :func:`build_tables` groups the
records (:mod:`rnnlm_jax.report.records`) into those cells with their :func:`cell_stats`.
"""

from __future__ import annotations

import collections
import itertools
import statistics
from typing import Any, Sequence

from rnnlm_jax.report import stats as stats_lib
from rnnlm_jax.report.records import DONE_STATES, ENDED_STATES, ReportError, finite, fmt_value, num
from rnnlm_jax.sweeps.spec import REPLICATE_KEYS  # seeds and rnnlm-sweep --cv's folds

SEED_KEY = "seed"
CV_FOLD_KEY = "data.cv_fold"
LENGTH_KEY = "synthetic.length"
TASK_KEY = "synthetic.problem"
CELL_KEY = "model.cell"
# --metric success: k successes of n ended runs and the median success step.
SUCCESS_METRIC = "success"


def parse_keys(option: str | Sequence[str] | None) -> list[str] | None:
  """A --tables/--rows/--cols value as a list of keys: ``"a,b"`` -> ``["a", "b"]``; None stays
  None (use the default), ``""`` gives ``[]`` (explicitly none)."""
  if option is None:
    return None
  parts = option.split(",") if isinstance(option, str) else list(option)
  return [k.strip() for k in parts if k.strip()]


def setting(rec: dict, key: str) -> Any:
  """A record's value of ``key``: its swept setting, else its config's."""
  if key in rec["settings"]:
    return rec["settings"][key]
  return rec["flat"].get(key)


def _values(rec: dict, keys: Sequence[str]) -> tuple[str, ...]:
  return tuple(fmt_value(setting(rec, k)) for k in keys)


def varies_within(records: list[dict], group_keys: Sequence[str], key: str) -> bool:
  """Whether ``key`` takes more than one value among the records of one group of
  ``group_keys`` (records with equal values of all of them)."""
  seen: dict[tuple, str] = {}
  for r in records:
    v = fmt_value(setting(r, key))
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
  if key in REPLICATE_KEYS:
    what = "seeds" if key == SEED_KEY else "cross-validation folds"
    raise ReportError(f"{what} are always aggregated; pick another key for {option}")
  if key in records[0]["settings"] or any(key in r["flat"] for r in records):
    return
  swept = ", ".join(k for k in records[0]["settings"] if k not in REPLICATE_KEYS) or "none"
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
  the ``rows`` / ``cols`` keys; seeds are always aggregated. Defaults: tables = synthetic.problem when
  it varies (and is not a row or column key); rows = model.cell when it varies, else the first
  varying key; columns = synthetic.length when it varies.

  Every other varying key is split only where it must be: in order, it is added to the labels
  ("split") if it takes more than one value among the points of one (table, row, column) cell,
  so no two settings are merged; the remaining keys ("fixed") are constant within every cell
  and are listed under each table. Split keys join the column labels (as ``name=value``);
  when neither rows nor columns are given and synthetic.length is the column, they join the rows
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
  all_keys = [k for k in records[0]["settings"] if k not in REPLICATE_KEYS]
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
  """(table, row, column) labels of a record: ``"synthetic.problem=addition"`` (``""`` without table
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
  val = {id(r): fmt_value(setting(r, key)) for r in records}
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


def mean_std(values: list[float]) -> tuple[float | None, float | None, int]:
  """(mean, sample std (ddof=1, None for n < 2), n) of finite ``values``."""
  return tuple(stats_lib.summary(values))


def cell_stats(points: list[dict], metric: str) -> dict:
  """Seed aggregate of one cell: mean/std/n of ``metric`` over finished points (for
  ``success``: the success rate among the done points, finished or diverged, n = their
  number; a failed run answers nothing), state counts, success k of n done points and the
  median success step, mean clip rate and gradient-norm p50/p90."""
  counts = collections.Counter(p["state"] for p in points)
  done = [p for p in points if p["state"] in DONE_STATES]
  won = [p for p in done if p.get("success") is True]
  steps = [s for s in (num(p.get("success_step")) for p in won) if finite(s)]
  if metric == SUCCESS_METRIC:
    mean, std, n = (len(won) / len(done) if done else None), None, len(done)
  else:
    mean, std, n = mean_std([p.get(metric) for p in points if p["state"] == "finished"])
  out = {"points": len(points), "counts": counts, "mean": mean, "std": std, "n": n,
         "success": len(won), "done": len(done),
         "success_step_median": statistics.median(steps) if steps else None}
  for key in ("clip_rate", "grad_norm_p50", "grad_norm_p90"):
    out[key] = mean_std([p.get(key) for p in points])[0]
  return out


def metric_values(points: list[dict], metric: str) -> list[float]:
  """The values of ``metric`` over the finished points (the ones :func:`cell_stats` averages)."""
  return [v for v in (num(p.get(metric)) for p in points if p["state"] == "finished")
          if finite(v)]


def row_tests(table: dict, metric: str) -> list[dict]:
  """Each row of a table against its first row, column by column, over seeds: [{"row",
  "col", "ref", "diff", "test", "p"}].

  ``success``: the difference of the success rates and Fisher's exact test on the k/n counts
  of done points (finished or diverged); any other metric: the difference of the means over
  finished points and Welch's t-test on the seed values (``p`` None when a side has fewer than
  2 values).
  Cells missing on either side are skipped.
  """
  out = []
  ref_row = table["rows"][0] if table["rows"] else None
  for col in table["cols"]:
    ref = table["cells"].get((ref_row, col))
    for row in table["rows"][1:]:
      pts = table["cells"].get((row, col))
      if not ref or not pts:
        continue
      if metric == SUCCESS_METRIC:
        a, b = cell_stats(pts, metric), cell_stats(ref, metric)
        if not a["done"] or not b["done"]:
          continue
        diff = a["mean"] - b["mean"]
        test = "Fisher exact"
        p = stats_lib.fisher_exact(a["success"], a["done"], b["success"], b["done"])
      else:
        a, b = stats_lib.summary(metric_values(pts, metric)), stats_lib.summary(
            metric_values(ref, metric))
        if not a.n or not b.n:
          continue
        diff = a.mean - b.mean
        w = stats_lib.welch(metric_values(pts, metric), metric_values(ref, metric))
        test, p = f"Welch t (n {a.n} vs {b.n})", (w.p if w else None)
      out.append({"row": row, "col": col, "ref": ref_row, "diff": diff, "test": test, "p": p})
  return out


def default_metrics(kind: str, records: list[dict], metric: str | None) -> list[str]:
  """Metrics to tabulate: the user's, else LM test + best valid perplexity (bpc for
  character-level runs), synthetic error_rate, classification test + valid accuracy, music
  test + valid loss."""
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
