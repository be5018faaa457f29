"""Rendering a report: results.md, results.tex, results.csv, results_cells.csv, and
:func:`write_report`, which reads a sweep directory and writes them all (plots by
:mod:`rnnlm_jax.report.plots`)::

    DIR/results.csv        one row per point (every varying key, state, step, final metrics)
    DIR/results_cells.csv  one row per table cell (every varying key, seed aggregates)
    DIR/results.md         per metric, one rows x columns table per value combination of the
                           table keys: "mean ± std (n)" over seeds and counts, or for
                           ``--metric success`` "k/n" successes and the median success step;
                           then each row against the first, per column (the difference and
                           Welch's t-test over seeds, Fisher's exact test for success counts)
    DIR/results.tex        the main tables as LaTeX tabulars
    DIR/plots/*.png        learning curves, pre-clip gradient norms, success vs synthetic.length

Records come from :func:`rnnlm_jax.report.records.collect`, tables and cells from
:mod:`rnnlm_jax.report.layout`.
"""

from __future__ import annotations

import collections
import csv
import json
import pathlib
from typing import Any, Sequence

from rnnlm_jax.report import layout as layout_lib
from rnnlm_jax.report import plots as plots_lib
from rnnlm_jax.report import records as records_lib
from rnnlm_jax.report import stats as stats_lib
from rnnlm_jax.report.layout import CV_FOLD_KEY, SEED_KEY, SUCCESS_METRIC, setting
from rnnlm_jax.report.records import ENDED_STATES, fmt_value, num

KIND_NAMES = {"lm": "language model", "synthetic": "synthetic task",
              "seq": "whole-sequence task (music or classification)"}
# Number formats by metric-name suffix (first match wins).
METRIC_FORMATS = (("perplexity", ".2f"), ("bpc", ".3f"), ("error_rate", ".4f"), ("loss", ".4f"),
                  ("clip_rate", ".3f"), ("step", ".0f"), ("mse", ".4g"))
CSV_FIELDS = ("test_perplexity", "best_valid_perplexity", "test_bpc", "best_valid_bpc",
              "error_rate", "mse", "success", "success_step", "test_loss", "best_valid_loss",
              "final_train_loss", "clip_rate", "grad_norm_p50", "grad_norm_p90", "grad_norm_max")
NOT_RUN = "—"


def fmt_metric(x: float | None, metric: str) -> str:
  """Format a value of ``metric`` (precision by name: 2 decimals for perplexity, ...)."""
  if x is None:
    return "n/a"
  spec = next((f for suffix, f in METRIC_FORMATS if metric.endswith(suffix)), ".4g")
  return format(x, spec)


def cell_text(stats: dict | None, metric: str, kind: str) -> str:
  """A table cell: ``"mean ± std (n); counts"``; for ``success``: ``"k/n, median step S
  (counts)"`` with k successes among the n done (finished or
  diverged) points and the nonzero diverged, failed,
  running and missing counts; just the counts (``"5 running"``) when no point of the cell has
  ended; NOT_RUN for a combination not in the sweep."""
  if stats is None:
    return NOT_RUN
  c = stats["counts"]
  if metric == SUCCESS_METRIC:
    text = f"{stats['success']}/{stats['done']}"
    if stats["success_step_median"] is not None:
      text += f", median step {fmt_metric(stats['success_step_median'], 'success_step')}"
    extra = [f"{c[s]} {s}" for s in ("diverged", "failed") if c[s]]
    extra += [f"{c[s]} {s}" for s in sorted(c) if s not in ENDED_STATES and c[s]]
    return text + (f" ({', '.join(extra)})" if extra else "")
  if stats["n"] == 0 and not any(c[s] for s in ENDED_STATES) and stats["points"]:  # none ended
    return ", ".join(f"{c[s]} {s}" for s in sorted(c) if c[s])
  if stats["n"] == 0:
    value = "n/a (0)"
  elif stats["std"] is None:
    value = f"{fmt_metric(stats['mean'], metric)} (1)"
  else:
    value = (f"{fmt_metric(stats['mean'], metric)} ± {fmt_metric(stats['std'], metric)} "
             f"({stats['n']})")
  if kind == "synthetic":
    notes = [f"success {stats['success']}/{stats['done']}", f"{c['diverged']} diverged"]
    notes += [f"{c['failed']} failed"] if c["failed"] else []
  else:
    notes = [f"{c['diverged']} diverged", f"{c['failed']} failed"]
  notes += [f"{c[s]} {s}" for s in sorted(c) if s not in ENDED_STATES]
  return f"{value}; {', '.join(notes)}"


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


def tests_table(tables: dict, metric: str) -> str:
  """Markdown table of :func:`rnnlm_jax.report.layout.row_tests` for every table ("" when no
  table has two rows to compare)."""
  with_table = any(t["label"] for t in tables["tables"])
  head = (["table"] if with_table else []) + ["row", "column", "against", "difference", "test",
                                              "two-sided p"]
  lines = []
  for t in tables["tables"]:
    for c in layout_lib.row_tests(t, metric):
      diff = (f"{100 * c['diff']:+.0f} points" if metric == SUCCESS_METRIC
              else fmt_signed(c["diff"], metric))
      p = stats_lib.fmt_p(c["p"]) if c["p"] is not None else "— (n < 2 on a side)"
      cells = ([t["label"]] if with_table else []) + [c["row"], c["col"], c["ref"], diff,
                                                      c["test"], p]
      lines.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
  if not lines:
    return ""
  return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + lines)


def fmt_signed(x: float, metric: str) -> str:
  """A difference of ``metric`` values with its sign, in the metric's format."""
  return ("+" if x >= 0 else "-") + fmt_metric(abs(x), metric)


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
             fmt_value(r.get(m)) if m == SUCCESS_METRIC else fmt_metric(num(r.get(m)), m)
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
  (success k of done n and the median success step for synthetic tasks)."""
  lay = tables["layout"]
  keys = lay["tables"] + lay["rows"] + lay["cols"] + lay["split"] + lay["fixed"]
  states = ["finished", "diverged", "failed", "interrupted", "running", "stale", "missing"]
  success = ["success", "done", "success_step_median"] if kind == "synthetic" else []
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
        row = ([_csv_value(setting(rec, k)) for k in keys] + [t["label"], r, c, s["points"]]
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
    return "successes among done runs"
  return metric


def halving_section(search: dict | None) -> str:
  """The rungs of a successive-halving search (sweep.json's ``"search"``) as a Markdown
  section: rung, budget, groups, points, promoted (best first); "" for a plain grid."""
  if not search or search.get("method") != "halving":
    return ""
  key = search.get("budget_key", "budget")
  lines = ["## Successive halving", "",
           f"eta {search.get('eta')}, first budget {search.get('min_budget')}, full budget "
           f"{search.get('full_budget')} (`{key}`); groups (points that differ only in seed) "
           f"ranked by the mean over their seeds of the best validation "
           f"`{search.get('metric')}` ({search.get('mode')}) logged up to the rung's budget; "
           "the best max(1, n // eta) are promoted. Points not promoted keep the budget "
           "of their last rung (their metrics below are at that budget).", "",
           f"| rung | budget ({key}) | groups | points | promoted (best first) |",
           "|---|---|---|---|---|"]
  rungs = search.get("rungs") or []
  for r in rungs:
    if "promoted" in r:
      promoted = ", ".join(r["promoted"])
    elif r.get("complete"):
      promoted = "(full budget)"
    else:
      promoted = "(in progress)"
    lines.append("| " + " | ".join(_md_escape(str(x)) for x in (
        r.get("rung", 0) + 1, fmt_value(r.get("budget")), len(r.get("groups", [])),
        len(r.get("points", [])), promoted)) + " |")
  return "\n".join(lines) + "\n"


def render_markdown(sweep_dir: pathlib.Path, records: list[dict], tables: dict,
                    metrics: list[str], kind: str, search: dict | None = None,
                    selected: str = "") -> tuple[str, str]:
  """(the whole results.md, the section of the first metric); ``search``: sweep.json's
  halving record (:func:`halving_section`); ``selected``: the selection-by-validation
  section (:func:`rnnlm_jax.report.select.markdown`)."""
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
  parts += [f"- seeds aggregated: {', '.join(seeds) if seeds else 'no seed key varies'}"]
  folds = sorted({fmt_value(r["settings"][CV_FOLD_KEY]) for r in records}) \
      if CV_FOLD_KEY in records[0]["settings"] else []
  if folds:
    parts += [f"- cross-validation folds aggregated (rnnlm-sweep --cv): {', '.join(folds)}; "
              "each mean ± std (n) is over seeds x folds"]
  parts += [""]
  if metrics[0] == SUCCESS_METRIC:
    parts.append("Cells: k/n = runs that reached the success criterion / runs done "
                 "(finished or diverged; a failed run answers nothing), then the median step "
                 "of success over the successful runs; the diverged, failed, running and "
                 "missing counts follow in "
                 f"parentheses when nonzero. {NOT_RUN} = that combination is not in the sweep.")
  else:
    parts.append(
        "Cells: mean ± sample std (n) over the *finished* points of the cell (n = their "
        "number; one point shows no std), then the counts of diverged/failed points"
        + (" and successes k/n among the done (finished or diverged) points"
           if kind == "synthetic" else "")
        + "; running and missing points are counted as such. "
        f"{NOT_RUN} = that combination is not in the sweep.")
  parts.append("")
  first = ""
  for m in metrics:
    section = f"## {_describe(m, kind)} (`{m}`)\n\n" + metric_section(tables, m, kind)
    first = first or section
    parts += [section]
  tests = tests_table(tables, metrics[0])
  if tests:
    parts += [f"## Each row against the first row (`{metrics[0]}`)", "",
              "Per column, the row's " + ("success rate minus the first row's, and Fisher's "
                                          "exact test on the k/n counts of done points"
                                          if metrics[0] == SUCCESS_METRIC else
                                          "mean minus the first row's mean, and Welch's t-test "
                                          "on the values of the finished seeds")
              + ". A difference whose p is large is within the seed spread.", "", tests, ""]
  src = {r.get("grad_norm_source") for r in records} - {None}
  how = ("median over log intervals of the interval p50 / p90"
         if src == {"interval_p50_p90"} else
         "median / 90th percentile over log intervals of the interval mean"
         if src == {"interval_mean"} else "see results.csv")
  for extra in (selected, halving_section(search)):
    if extra:
      parts += [extra]
  parts += ["## Clipping and pre-clip gradient norms", "",
            "Per cell, the mean over its points of: the fraction of updates where clipping "
            f"fired; the pre-clip global gradient norm p50 / p90 ({how}).", "",
            grad_table(tables, metrics[0]), "", "## Points", "",
            points_table(records, metrics), ""]
  return "\n".join(parts), first.rstrip("\n")


# ----------------------------------------------------------------------------- entry point


def write_report(sweep_dir: str | pathlib.Path, rows: str | Sequence[str] | None = None,
                 cols: str | Sequence[str] | None = None, metric: str | None = None,
                 plots: bool = True, tables: str | Sequence[str] | None = None,
                 select: str | None = None, group: str | Sequence[str] | None = None,
                 out: str | pathlib.Path | None = None) -> dict:
  """Write results.csv, results_cells.csv, results.md, results.tex and plots/ into ``out``
  (default ``sweep_dir``: a committed records directory is left as it is when ``out`` is
  elsewhere); ``rows``, ``cols``, ``tables``: keys, comma-separated or a list (see
  :func:`rnnlm_jax.report.layout.choose_layout`). ``select`` (``"valid"`` or a validation
  field) and ``group`` (keys): add the selection-by-validation section
  (:mod:`rnnlm_jax.report.select`); a halving search's rungs are added from sweep.json.
  Returns {"csv", "cells_csv", "md", "tex": path, "plots": [paths], "summary": the Markdown
  section of the first metric, "selected": the selection section ("" without ``select``)}.

  Raises:
    records.ReportError: not a sweep directory, a malformed sweep.json, an unknown key or metric.
  """
  root = pathlib.Path(sweep_dir)
  records = records_lib.collect(root)
  kind = records_lib.sweep_kind(records)
  layout = layout_lib.choose_layout(records, rows, cols, tables)
  metrics = layout_lib.default_metrics(kind, records, metric)
  built = layout_lib.build_tables(records, layout, metrics)
  dest = pathlib.Path(out) if out is not None else root
  dest.mkdir(parents=True, exist_ok=True)
  paths: dict[str, Any] = {"csv": dest / "results.csv", "cells_csv": dest / "results_cells.csv",
                           "md": dest / "results.md", "tex": dest / "results.tex"}
  write_points_csv(paths["csv"], records)
  write_cells_csv(paths["cells_csv"], built, metrics, kind)
  paths["selected"] = ""
  if select:
    from rnnlm_jax.report import select as select_lib  # pylint: disable=import-outside-toplevel
    paths["selected"] = select_lib.select_section(records, kind, select, group)[0]
  md, paths["summary"] = render_markdown(root, records, built, metrics, kind,
                                         records_lib.load_search(root), paths["selected"])
  paths["md"].write_text(md)
  what = "k/n successes among done runs" if metrics[0] == SUCCESS_METRIC else \
      "mean ± std (n) over seeds"
  caption = f"{root.name}: {_describe(metrics[0], kind)}, {what}"
  paths["tex"].write_text(latex_table(built, metrics[0], kind, caption))
  paths["plots"] = (plots_lib.write_plots(root, records, built, kind, dest / "plots") if plots
                    else [])
  return paths
