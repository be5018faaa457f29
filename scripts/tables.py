"""Re-print an experiment's tables from its committed records, the paper's numbers beside ours.

    python scripts/tables.py zaremba2014            # print the tables (Markdown)
    python scripts/tables.py zaremba2014 --write    # also replace them in its README.md
    python scripts/tables.py --list                 # the experiments that have a paper.json
    python scripts/tables.py --costs --write        # every experiment's cost, summed, into
                                                    # experiments/README.md

Each experiment with records keeps ``experiments/<name>/paper.json``: its tables, for each row
the run directories behind it (text records archived by ``scripts/archive_runs.py``, paths
relative to the experiment directory) and the paper's numbers with their tolerance. Nothing is
typed in by hand but the paper's side: ours is read from the records with
:func:`rnnlm_jax.report.records.read_point` (the final metrics of every task, as
``rnnlm-report`` reads them), seeds are aggregated as mean ± sample std (n), and a row compared
with another row of ours carries Welch's t-test on the seed values
(:mod:`rnnlm_jax.report.stats`). A row whose runs were lost says "record lost" and shows the
number the README had, marked as not re-printable.

paper.json::

    {"title": str,
     "tables": [{"id": str, "title": str, "note": str (optional),
                 "kind": "runs" (default) | "bench" | "atlas" | "grid" | "select" |
                         "cost",
                 # kind "runs":
                 "metrics": [{"name": "test", "field": "test_perplexity", "format": ".2f"},
                             {"name": "solved", "field": "success", "kind": "count"}],
                 # kind "count": a yes/no field per run, shown as k/n (n: runs done,
                 # finished or diverged) and compared by Fisher's exact test; others:
                 # mean ± std, Welch's t-test
                 "tolerance": {"relative": 0.02 | "absolute": 0.3,
                               "side": "at_most" | "at_least" | "both"},
                 "rows": [{"label": str, "runs": [dir, ...], "paper": {name: value} | null,
                           "reference": label of another row (optional),
                           "lost": "the number the README had" (optional)}],
                 # kind "bench": a scripts/bench.py JSON file and its targets
                 "file": "cpu_f32.json",
                 "targets": [{"over": "torch" | "flax", "at_least": 1.2,
                              "workloads": [names] (optional: all)}],
                 # kind "atlas": a question of the clipping atlas answered from its records
                 # (rnnlm_jax/report/atlas_tables.py)
                 "records": "records/ptb_word", "question": "gain" | "threshold" | "bands" |
                 "modes" | "best", "below": 10000 (the uniform prediction's value),
                 "reference": {"clip": "global_norm 5", "lr": 1.0, "label": str} (optional)},
                 # kind "grid": rnnlm-report's table of a records directory (a sweep)
                 "records": "records/sweep", "row_keys": "model.cell", "col_keys":
                 "optim.learning_rate", "metric": "error_rate", "table_keys": "" (optional),
                 # kind "select": rnnlm-report --select's choice by validation; "records"
                 # may list several searches read as one, "config_keys" (optional) the keys
                 # fixed within each but not across them (report.select.search_records)
                 "records": "records/sweep", "group": ["model.cell"], "select": "valid",
                 "config_keys": ["optim.name"],
                 # kind "cost": what runs cost (rnnlm_jax/report/cost.py), one row per group
                 # of records directories (run directories or directories of them)
                 "rows": [{"label": str, "records": ["records/sweep", ...]}]}]}

In the README each table sits between ``<!-- tables:begin ID -->`` and ``<!-- tables:end
-->``; ``tests/test_experiment_tables.py`` checks that those blocks are what this prints.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "experiments"
sys.path.insert(0, str(REPO))

from rnnlm_jax.report import atlas_tables  # pylint: disable=wrong-import-position
from rnnlm_jax.report import cost as cost_lib  # pylint: disable=wrong-import-position
from rnnlm_jax.report import layout as layout_lib  # pylint: disable=wrong-import-position
from rnnlm_jax.report import records as records_lib  # pylint: disable=wrong-import-position
from rnnlm_jax.report import render as render_lib  # pylint: disable=wrong-import-position
from rnnlm_jax.report import select as select_lib  # pylint: disable=wrong-import-position
from rnnlm_jax.report import stats  # pylint: disable=wrong-import-position

BEGIN = "<!-- tables:begin {} -->"
END = "<!-- tables:end -->"


# ----------------------------------------------------------------------------- reading


def experiments() -> list[str]:
  """The experiments that have a paper.json, sorted."""
  return sorted(p.parent.name for p in EXPERIMENTS.glob("*/paper.json"))


def load_spec(name: str) -> dict:
  return json.loads((EXPERIMENTS / name / "paper.json").read_text())


def read_run(path: pathlib.Path) -> dict:
  """One run's record (settings, state, final metrics) from its text records."""
  if not (path / "config.json").is_file():
    raise FileNotFoundError(f"{path}: no config.json (records missing?)")
  return records_lib.read_point(path.parent, path.name, {}, [])


# ----------------------------------------------------------------------------- numbers


def fmt(x: float | None, spec: str) -> str:
  return "—" if x is None else format(x, spec)


def counts(values: list) -> tuple[int, int]:
  """(successes, runs that have an answer) of a yes/no field (None: no answer yet)."""
  known = [bool(v) for v in values if v is not None]
  return sum(known), len(known)


def counts_as_numbers(values: list) -> list[float]:
  """A yes/no field as 1.0 / 0.0 (None left out): its mean is the success rate."""
  return [1.0 if v else 0.0 for v in values if v is not None]


def fmt_metric(row: dict, m: dict) -> str:
  """A row's cell of metric ``m``: ``"4/5"`` for a count, else mean ± std."""
  if m.get("kind") == "count":
    k, n = counts(row["_values"][m["name"]])
    return f"{k}/{n}" if n else "—"
  return fmt_summary(row["ours"][m["name"]], m.get("format", ".2f"))


def fmt_summary(s: stats.Summary, spec: str) -> str:
  """``"112.51 ± 0.76"`` (n >= 2), ``"113.04"`` (one run), ``"—"`` (none)."""
  if s.n == 0:
    return "—"
  return fmt(s.mean, spec) + ("" if s.std is None else f" ± {fmt(s.std, spec)}")


def within(ours: float, paper: float, tol: dict) -> bool:
  """Whether ``ours`` meets ``paper`` under ``tol``: ``side`` "at_most" (lower is better: ours
  <= paper + tolerance), "at_least" (higher is better, e.g. an accuracy target: ours >= paper -
  tolerance) or "both" (|ours - paper| <= tolerance); the tolerance is ``relative`` (a
  fraction of paper) or ``absolute``."""
  margin = tol["relative"] * abs(paper) if "relative" in tol else tol["absolute"]
  side = tol.get("side", "both")
  if side == "at_most":
    return ours <= paper + margin
  if side == "at_least":
    return ours >= paper - margin
  return abs(ours - paper) <= margin


def fmt_tolerance(tol: dict) -> str:
  amount = f"{100 * tol['relative']:g} %" if "relative" in tol else f"{tol['absolute']:g}"
  return {"at_most": f"≤ paper + {amount}", "at_least": f"≥ paper - {amount}"}.get(
      tol.get("side", "both"), f"paper ± {amount}")


def progress(runs: list[dict]) -> str | None:
  """``"in progress: epoch 2 of 39"`` if a run has not finished, else None."""
  for r in runs:
    if r["state"] != "finished":
      total = r["flat"].get("train.num_epochs")
      epoch = f"{r['epoch']:.1f}" if r["epoch"] is not None else "?"
      return (f"not a result yet: {r['state']} at epoch {epoch} of {total}" if total
              else f"not a result yet: {r['state']} at step {r['step']}")
  return None


def row_verdict(row: dict, ours: dict[str, stats.Summary], runs: list[dict], table: dict,
                rows_by_label: dict) -> str:
  """The verdict of one row: against the paper (within tolerance / miss, per metric), or
  against a reference row of ours (change of the last metric's mean and Welch's test)."""
  pending = progress(runs)
  if pending:
    return pending
  parts = []
  paper = row.get("paper") or {}
  tol = table.get("tolerance")
  for m in table["metrics"]:
    if m["name"] in paper and ours[m["name"]].n:
      mean, ref = ours[m["name"]].mean, paper[m["name"]]
      ok = within(mean, ref, tol)
      parts.append(f"{m['name']} {100 * (mean / ref - 1):+.1f} %: "
                   + ("within tolerance" if ok else "**miss**"))
  if "reference" in row:
    m = table["metrics"][-1]
    ref_row = rows_by_label[row["reference"]]
    a, b = ours[m["name"]], ref_row["ours"][m["name"]]
    if m.get("kind") == "count":
      (k1, n1), (k2, n2) = counts(row["_values"][m["name"]]), counts(ref_row["_values"][m["name"]])
      if n1 and n2:
        parts.append(f"{m['name']} {k1}/{n1} vs {k2}/{n2} of {row['reference']}; "
                     f"{stats.fmt_p(stats.fisher_exact(k1, n1, k2, n2))} (Fisher exact)")
    elif a.n and b.n:
      test = stats.welch(row["_values"][m["name"]], ref_row["_values"][m["name"]])
      how = (stats.fmt_p(test.p) + f" (Welch, n {a.n} vs {b.n})" if test
             else f"n {a.n} vs {b.n}: no test, compare with the seed spread")
      parts.append(f"{m['name']} {100 * (a.mean / b.mean - 1):+.1f} % vs {row['reference']}; "
                   + how)
  return "; ".join(parts) or "—"


# ----------------------------------------------------------------------------- tables


def runs_table(name: str, table: dict) -> str:
  """A table of rows of runs: n, ours (mean ± std per metric), the paper's, the verdict."""
  metrics = table["metrics"]
  rows_by_label: dict[str, dict] = {}
  for row in table["rows"]:
    runs = [read_run(EXPERIMENTS / name / d) for d in row.get("runs", [])]
    row["_runs"] = runs
    # counts: done runs only (finished, diverged)
    row["_values"] = {m["name"]: [r.get(m["field"]) if m.get("kind") != "count"
                                  or r["state"] in records_lib.DONE_STATES else None
                                  for r in runs] for m in metrics}
    row["ours"] = {m["name"]: stats.summary(counts_as_numbers(row["_values"][m["name"]])
                                            if m.get("kind") == "count"
                                            else row["_values"][m["name"]]) for m in metrics}
    rows_by_label[row["label"]] = row
  names = [m["name"] for m in metrics]
  with_paper = any(row.get("paper") for row in table["rows"])
  head = (["row", "n"] + [f"{n} (ours)" for n in names]
          + (["paper " + " / ".join(names)] if with_paper else []) + ["verdict"])
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for row in table["rows"]:
    paper = row.get("paper")
    paper_text = ("—" if not paper else
                  " / ".join(fmt(paper.get(n), m.get("paper_format", "g"))
                             for n, m in zip(names, metrics)))
    paper_cell = [paper_text] if with_paper else []
    if row.get("lost"):
      cells = (["0"] + ["record lost"] * len(names) + paper_cell
               + [f"record lost (README had {row['lost']}; not re-printable)"])
    else:
      cells = ([str(max(s.n for s in row["ours"].values()))]
               + [fmt_metric(row, m) for m in metrics]
               + paper_cell
               + [row_verdict(row, row["ours"], row["_runs"], table, rows_by_label)])
    lines.append("| " + " | ".join([row["label"]] + cells) + " |")
  return "\n".join(lines)


def bench_table(name: str, table: dict) -> str:
  """A scripts/bench.py JSON file as a table: tokens/s per implementation, ours over each
  peer, and the targets met or missed."""
  data = json.loads((EXPERIMENTS / name / table["file"]).read_text())
  impls = ["rnnlm_jax", "flax", "torch"]
  peak = (data.get("meta", {}).get("peaks") or {}).get("jax")
  head = (["workload", "cell"] + [f"{i} tok/s" for i in impls] + ["ours / torch", "ours / flax",
                                                                  "ours % of matmul peak"]
          + (["target", "verdict"] if table.get("targets") else []))
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in data["rows"]:
    res = r["results"]
    tps = {i: (res.get(i) or {}).get("tokens_per_s") for i in impls}
    ratio = {i: tps["rnnlm_jax"] / tps[i] if tps["rnnlm_jax"] and tps[i] else None
             for i in ("torch", "flax")}
    cells = [r["workload"], r["cell"]] + [fmt(tps[i], ",.0f") if tps[i] else "failed"
                                          for i in impls]
    spread = r.get("ratios", {})  # scripts/bench.py --runs N: median ratio over runs, range
    for i in ("torch", "flax"):
      if i in spread and spread[i]["min"] != spread[i]["max"]:
        ratio[i] = spread[i]["median"]
        cells.append(f"{ratio[i]:.2f}× ({spread[i]['min']:.2f}–{spread[i]['max']:.2f})")
      else:
        cells.append("—" if ratio[i] is None else f"{ratio[i]:.2f}×")
    gflops = (res.get("rnnlm_jax") or {}).get("gflops")
    cells.append(f"{100 * gflops / peak:.1f} %" if gflops and peak else "—")
    if table.get("targets"):
      mine = [t for t in table["targets"] if r["workload"] in t.get("workloads", [r["workload"]])]
      cells.append("; ".join(f"≥ {t['at_least']:g}× {t['over']}" for t in mine))
      cells.append("; ".join(
          ("met" if ratio[t["over"]] is not None and ratio[t["over"]] >= t["at_least"]
           else "**missed**") for t in mine))
    lines.append("| " + " | ".join(cells) + " |")
  meta = data.get("meta", {})
  runs = f"{meta['runs']} runs, each " if meta.get("runs", 1) > 1 else ""
  lines += ["", f"n = {runs}median of {meta.get('repeats', '?')} interleaved blocks per "
            f"implementation{'; ratios: median over runs (range)' if runs else ''}; "
            f"`{meta.get('command', '?')}`; {meta.get('hardware', '?')}"]
  return "\n".join(lines)


def records_dirs(name: str, table: dict) -> list[pathlib.Path]:
  """The records directories a table of kind "atlas", "grid" or "select" reads ("records": one
  path or a list, relative to experiments/NAME)."""
  roots = table["records"] if isinstance(table["records"], list) else [table["records"]]
  return [EXPERIMENTS / name / r for r in roots]


def sweep_table(name: str, table: dict) -> str:
  """A records directory as rnnlm-report tabulates it: its grid of one metric (kind "grid")
  or its choice by validation (kind "select")."""
  recs = select_lib.search_records(records_dirs(name, table), table.get("config_keys", ()))
  kind = records_lib.sweep_kind(recs)
  if table["kind"] == "select":
    valid, test, mode = select_lib.metric_pair(recs, kind, table.get("select", "valid"))
    rows = select_lib.choose(recs, table["group"], valid, test, mode)
    return select_lib.table(rows, table["group"], valid, test)
  lay = layout_lib.choose_layout(recs, table["row_keys"], table["col_keys"],
                                 table.get("table_keys", ""))
  built = layout_lib.build_tables(recs, lay, [table["metric"]])
  return render_lib.metric_section(built, table["metric"], kind).rstrip("\n")


COST_HEAD = ["runs", "CPU hours", "wall hours (open)", "training hours (kept steps)",
             "from .. to", "not counted"]


def cost_cells(dirs: list[pathlib.Path]) -> list[str]:
  """The cells of :data:`COST_HEAD` for the runs in ``dirs`` (report.cost)."""
  c = cost_lib.cost(dirs)
  missing = cost_lib.not_counted(c)
  span = f"{(c.start or '-')[:16]} .. {(c.end or '-')[:16]}".replace("T", " ")
  cpu = f"{c.cpu_s / 3600:.2f}" if c.counted > c.without_cpu else "—"
  train_s, unrated = cost_lib.training_time(dirs)
  missing += [f"{unrated} logged interval(s) without a rate"] if unrated else []
  return [str(c.runs), cpu, f"{c.wall_s / 3600:.2f}", f"{train_s / 3600:.2f}", span,
          "; ".join(missing) or "—"]


def cost_dirs(name: str, row: dict) -> list[pathlib.Path]:
  """The run directories of one row of a kind "cost" table."""
  return [d for r in row["records"] for d in cost_lib.run_dirs(EXPERIMENTS / name / r)]


def cost_table(name: str, table: dict) -> str:
  """What each row's runs cost: runs, CPU hours, wall hours open, training hours of the kept
  steps, first start .. last end, and the invocations that could not be counted."""
  lines = ["| row | " + " | ".join(COST_HEAD) + " |", "|" + "---|" * (len(COST_HEAD) + 1)]
  for row in table["rows"]:
    lines.append(f"| {row['label']} | " + " | ".join(cost_cells(cost_dirs(name, row))) + " |")
  return "\n".join(lines)


def costs_summary() -> str:
  """Every experiment's cost table summed into one row, and all of them together (for
  experiments/README.md's ``costs`` block)."""
  lines = ["| experiment | " + " | ".join(COST_HEAD) + " |",
           "|" + "---|" * (len(COST_HEAD) + 1)]
  everything = []
  for name in experiments():
    dirs = [d for t in load_spec(name)["tables"] if t.get("kind") == "cost"
            for row in t["rows"] for d in cost_dirs(name, row)]
    if dirs:
      everything += dirs
      lines.append(f"| [{name}]({name}/README.md#cost) | " + " | ".join(cost_cells(dirs)) + " |")
  lines.append("| **all** | " + " | ".join(cost_cells(everything)) + " |")
  return "\n".join(lines)


def render_table(name: str, table: dict) -> str:
  """One table with its title and note (no markers)."""
  kind = table.get("kind", "runs")
  if kind in ("grid", "select"):
    body = sweep_table(name, table)
  elif kind == "atlas":
    body = atlas_tables.render(table["question"], records_dirs(name, table),
                               table["below"], table.get("reference"))
  elif kind == "cost":
    body = cost_table(name, table)
  else:
    body = bench_table(name, table) if kind == "bench" else runs_table(name, table)
  out = [f"**{table['title']}**", ""]
  if table.get("tolerance"):
    out[0] += f" (tolerance: {fmt_tolerance(table['tolerance'])})"
  out.append(body)
  if table.get("note"):
    out += ["", table["note"]]
  return "\n".join(out)


def render(name: str) -> dict[str, str]:
  """{table id: its Markdown} of experiment ``name``, in paper.json's order."""
  spec = load_spec(name)
  return {t["id"]: render_table(name, t) for t in spec["tables"]}


# ----------------------------------------------------------------------------- README


def blocks(readme: str) -> dict[str, str]:
  """{id: the text between the README's markers of that table}."""
  pat = re.compile(re.escape(BEGIN).replace(r"\{\}", r"(\S+)") + r"\n(.*?)" + re.escape(END),
                   re.S)
  return {m.group(1): m.group(2).removesuffix("\n") for m in pat.finditer(readme)}


def write_readme(name: str, tables: dict[str, str]) -> list[str]:
  """Replace each table's block in the experiment's README (the markers must be there)."""
  return write_blocks(EXPERIMENTS / name / "README.md", tables)


def write_blocks(path: pathlib.Path, tables: dict[str, str]) -> list[str]:
  """Replace each table's block in the Markdown file ``path`` (the markers must be there)."""
  text = path.read_text()
  missing = [i for i in tables if BEGIN.format(i) not in text]
  if missing:
    raise SystemExit(f"error: {path} has no marker {BEGIN.format(missing[0])}; add the begin "
                     f"and end markers where the table goes")
  for i, md in tables.items():
    pat = re.compile(re.escape(BEGIN.format(i)) + r"\n.*?" + re.escape(END), re.S)
    text = pat.sub(lambda _m, i=i, md=md: f"{BEGIN.format(i)}\n{md}\n{END}", text)
  path.write_text(text)
  return list(tables)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("experiment", nargs="?", help="a directory under experiments/ with paper.json")
  ap.add_argument("--write", action="store_true", help="also replace the tables in its README")
  ap.add_argument("--list", action="store_true", help="list the experiments with a paper.json")
  ap.add_argument("--costs", action="store_true",
                  help="what every experiment's runs cost, summed (with --write: into "
                       "experiments/README.md)")
  args = ap.parse_args(argv)
  if args.costs:
    md = costs_summary()
    print(md)
    if args.write:
      write_blocks(EXPERIMENTS / "README.md", {"costs": md})
    return 0
  if args.list or not args.experiment:
    print("\n".join(experiments()))
    return 0
  if args.experiment not in experiments():
    print(f"error: experiments/{args.experiment}/paper.json not found; one of: "
          f"{', '.join(experiments())}", file=sys.stderr)
    return 2
  tables = render(args.experiment)
  print("\n\n".join(tables.values()))
  if args.write:
    write_readme(args.experiment, tables)
  return 0


if __name__ == "__main__":
  sys.exit(main())
