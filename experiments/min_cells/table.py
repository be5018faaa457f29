"""The quality table of experiments/min_cells/README.md from the archived run records.

    python experiments/min_cells/table.py experiments/min_cells/records

Each run directory ``{char,ptb}_{cell}_s{seed}`` holds ``metrics.jsonl``; its last ``test``
event (best-valid checkpoint) gives the test loss in nats. Per dataset and cell: mean ± std
(sample std, n seeds) of test bits/char (char) or test perplexity (ptb, ``exp`` of each run's
loss), and a Welch t-test of each min cell against its parameter-matched baseline (min_gru vs
gru, min_lstm vs lstm) on the per-run values; and the median over seeds of each run's median
logged training tokens/s.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import statistics
import sys

from scipy import stats

PAIRS = {"min_gru": "gru", "min_lstm": "lstm"}
CELL_ORDER = ("gru", "min_gru", "lstm", "min_lstm")


def read_events(run: pathlib.Path) -> list[dict]:
  return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l]


def final_test(events: list[dict]) -> dict | None:
  """The last test event of a run (None if it has none yet)."""
  tests = [e for e in events if e.get("split") == "test"]
  return tests[-1] if tests else None


def train_speed(events: list[dict]) -> float:
  """Median logged training tokens/s of a run."""
  return statistics.median(e["tokens_per_sec"] for e in events
                           if e.get("split") == "train" and "tokens_per_sec" in e)


def collect(records: pathlib.Path) -> dict:
  """``{(data, cell): [metric per seed]}`` with bits/char (char) or perplexity (ptb), and
  ``{(data, cell): [train tokens/s per seed]}``."""
  out: dict = {}
  speed: dict = {}
  for run in sorted(records.iterdir()):
    m = re.fullmatch(r"(char|ptb)_(\w+)_s(\d+)", run.name)
    if not m or not (run / "metrics.jsonl").is_file():
      continue
    events = read_events(run)
    ev = final_test(events)
    if ev is None:
      continue
    data, cell = m.group(1), m.group(2)
    value = ev["loss"] / math.log(2) if data == "char" else math.exp(ev["loss"])
    out.setdefault((data, cell), []).append(value)
    speed.setdefault((data, cell), []).append(train_speed(events))
  return out, speed


def fmt(values: list[float]) -> str:
  sd = statistics.stdev(values) if len(values) > 1 else float("nan")
  return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main(argv) -> None:
  results, speed = collect(pathlib.Path(argv[1]))
  print("| data (metric) | cell | n | test mean ± std | vs matched baseline (Welch) | train tok/s |")
  print("|---|---|---|---|---|---|")
  for data, metric in (("char", "bits/char"), ("ptb", "perplexity")):
    for cell in CELL_ORDER:
      vals = results.get((data, cell))
      if not vals:
        continue
      note = ""
      base = results.get((data, PAIRS.get(cell, "")))
      if base and len(vals) > 1 and len(base) > 1:
        t, p = stats.ttest_ind(vals, base, equal_var=False)
        diff = statistics.mean(vals) - statistics.mean(base)
        verdict = "differs" if p < 0.05 else "within the seed spread"
        note = f"{diff:+.3f} vs {PAIRS[cell]}, t = {t:.2f}, p = {p:.3f}: {verdict}"
      tok = statistics.median(speed[data, cell])
      print(f"| {data} ({metric}) | {cell} | {len(vals)} | {fmt(vals)} | {note} | {tok:,.0f} |")


if __name__ == "__main__":
  main(sys.argv)
