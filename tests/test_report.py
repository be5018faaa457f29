"""rnnlm-report on hand-written sweep directories: aggregates, counts, escaping, plots, CLI."""

from __future__ import annotations

import csv
import json
import math
import pathlib
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest

from rnnlm_jax import report

REPO = pathlib.Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- fake language-model sweep
# (cell, clip_mode, clip_value) x seeds 0, 1; final test perplexity per point, None = diverged,
# "missing" = no workdir.
LM_CLIPS = [("global_norm", 1), ("value", 5)]
LM_TEST = {("lstm", "global_norm", 0): 100.0, ("lstm", "global_norm", 1): 110.0,
           ("lstm", "value", 0): 120.0, ("lstm", "value", 1): 124.0,
           ("gru", "global_norm", 0): 130.0, ("gru", "global_norm", 1): None,
           ("gru", "value", 0): 140.0, ("gru", "value", 1): "missing"}
LM_KEYS = ["model.cell", "optim.clip_mode", "optim.clip_value", "seed"]


def _write_run(path: pathlib.Path, config: dict, status: dict, events: list[dict]) -> None:
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps(config))
  (path / "status.json").write_text(json.dumps(status))
  (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _lm_name(cell, mode, seed):
  return f"{cell}_{mode}_s{seed}"


def _lm_train_events(seed: int, diverged: bool) -> list[dict]:
  """Interval-mean grad norms (2, 4, 6) * (1 + seed); clipped fractions 0.5, 0.25, 0."""
  ev = [{"split": "train", "step": 10 * (i + 1), "epoch": 0.1 * (i + 1), "loss": 6.0 - i,
         "perplexity": math.exp(6.0 - i), "grad_norm": g * (1 + seed), "grad_norm_max": 20.0,
         "clipped": c, "lr": 1.0} for i, (g, c) in enumerate([(2, 0.5), (4, 0.25), (6, 0.0)])]
  if diverged:
    ev.append({"split": "train", "step": 40, "epoch": 0.4, "loss": "nan", "perplexity": "nan",
               "grad_norm": "inf", "clipped": 1.0, "lr": 1.0})
  return ev


def make_lm_sweep(root: pathlib.Path, with_spec: bool = True) -> pathlib.Path:
  points = []
  for cell in ("lstm", "gru"):
    for mode, value in LM_CLIPS:
      for seed in (0, 1):
        name = _lm_name(cell, mode, seed)
        points.append({"name": name, "overrides": {"model.cell": cell, "optim.clip_mode": mode,
                                                   "optim.clip_value": value, "seed": seed}})
        test = LM_TEST[(cell, mode, seed)]
        if test == "missing":
          continue
        config = {"seed": seed, "data": {"name": "ptb", "dir": f"/data/{seed}", "bptt": 20},
                  "model": {"cell": cell, "hidden_size": 8},
                  "optim": {"clip_mode": mode, "clip_value": float(value)},
                  "train": {"log_every": 10}}
        events = _lm_train_events(seed, diverged=test is None)
        if test is None:
          status = {"state": "diverged", "step": 40, "epoch": 0.4, "reason": "loss is nan"}
        else:
          events += [{"split": "valid", "step": 20, "loss": 5.0, "perplexity": test * 1.1},
                     {"split": "valid", "step": 30, "loss": 4.9, "perplexity": test * 1.05},
                     {"split": "test", "step": 30, "loss": math.log(test), "perplexity": test,
                      "checkpoint": "best_valid"}]
          status = {"state": "finished", "step": 30, "epoch": 0.3, "reason": ""}
        _write_run(root / name, config, status, events)
  if with_spec:
    (root / "sweep.json").write_text(json.dumps(
        {"config": "configs/ptb_small.py", "keys": LM_KEYS, "points": points}))
  return root


# ---------------------------------------------------------------- fake synthetic sweep
# (cell, clip_mode, length, seed) -> final test error rate; None = diverged; ("running", e).
SYN_ERR = {
    ("rnn_tanh", "none", 50, 0): 0.3, ("rnn_tanh", "none", 50, 1): 0.5,
    ("rnn_tanh", "none", 100, 0): 0.45, ("rnn_tanh", "none", 100, 1): None,
    ("rnn_tanh", "global_norm", 50, 0): 0.0, ("rnn_tanh", "global_norm", 50, 1): 0.008,
    ("rnn_tanh", "global_norm", 100, 0): 0.2, ("rnn_tanh", "global_norm", 100, 1): 0.004,
    ("lstm", "none", 50, 0): 0.0, ("lstm", "none", 50, 1): 0.002,
    ("lstm", "none", 100, 0): 0.005, ("lstm", "none", 100, 1): 0.02,
    ("lstm", "global_norm", 50, 0): 0.001, ("lstm", "global_norm", 50, 1): 0.003,
    ("lstm", "global_norm", 100, 0): 0.006, ("lstm", "global_norm", 100, 1): ("running", 0.05),
}
SYN_KEYS = ["model.cell", "optim.clip_mode", "task.length", "seed"]


def _syn_events(err, diverged: bool, seed: int) -> list[dict]:
  ev = [{"split": "train", "step": 100 * (i + 1), "loss": 1.0 / (i + 1),
         "grad_norm": 1.5 * (1 + seed), "grad_norm_p50": p50 * (1 + seed),
         "grad_norm_p90": p90 * (1 + seed), "grad_norm_max": 9.0, "clip_rate": c}
        for i, (p50, p90, c) in enumerate([(1.0, 2.0, 0.1), (3.0, 5.0, 0.3), (2.0, 4.0, 0.2)])]
  if diverged:
    return ev + [{"split": "train", "step": 400, "loss": "nan", "grad_norm": "nan",
                  "clip_rate": 1.0}]
  return ev + [{"split": "test", "step": 300, "loss": 0.1, "error_rate": err}]


def make_synthetic_sweep(root: pathlib.Path) -> pathlib.Path:
  points = []
  for (cell, mode, length, seed), err in SYN_ERR.items():
    name = f"{cell}_{mode}_L{length}_s{seed}"
    points.append({"name": name, "overrides": {"model.cell": cell, "optim.clip_mode": mode,
                                               "task.length": length, "seed": seed}})
    config = {"seed": seed, "task": {"name": "temporal_order", "length": length,
                                     "success_error_rate": 0.01},
              "model": {"cell": cell, "hidden_size": 50},
              "optim": {"clip_mode": mode, "clip_value": 1.0}, "train": {"max_steps": 1000}}
    if err is None:
      status = {"state": "diverged", "step": 400, "epoch": 0.0, "reason": "nan loss",
                "success": False, "success_step": None, "error_rate": None}
      events = _syn_events(None, True, seed)
    elif isinstance(err, tuple):
      status = {"state": "running", "step": 300, "epoch": 0.0, "reason": "",
                "success": False, "success_step": None, "error_rate": err[1]}
      events = _syn_events(err[1], False, seed)
    else:
      ok = err < 0.01
      status = {"state": "finished", "step": 300, "epoch": 0.0, "reason": "", "success": ok,
                "success_step": 300 if ok else None, "error_rate": err}
      events = _syn_events(err, False, seed)
    _write_run(root / name, config, status, events)
  (root / "sweep.json").write_text(json.dumps(
      {"config": "configs/synthetic.py", "keys": SYN_KEYS, "points": points}))
  return root


def _md_cell(md: str, row: str, col: str, section: int = 0) -> str:
  """The text of cell (row, col) of the ``section``-th rows x columns table of results.md."""
  tables = [t for t in md.split("\n## ")[1:] if "\n| " in t][section]
  lines = [l for l in tables.splitlines() if l.startswith("| ")]
  head = [c.strip() for c in lines[0].strip("|").split(" | ")]
  for line in lines[1:]:
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    if cells[0] == row:
      return cells[head.index(col)]
  raise KeyError(row)


def _fmt(values, spec):
  vals = [v for v in values if v is not None]
  if len(vals) == 1:
    return f"{format(vals[0], spec)} (1)"
  return f"{format(statistics.mean(vals), spec)} ± {format(statistics.stdev(vals), spec)} ({len(vals)})"


@pytest.fixture
def lm_sweep(tmp_path):
  return make_lm_sweep(tmp_path / "lm")


@pytest.fixture
def syn_sweep(tmp_path):
  return make_synthetic_sweep(tmp_path / "syn")


# ---------------------------------------------------------------- collect


def test_collect_lm_records(lm_sweep):
  recs = {r["name"]: r for r in report.collect(lm_sweep)}
  assert len(recs) == 8
  assert list(recs["lstm_global_norm_s0"]["settings"]) == LM_KEYS
  assert recs["gru_value_s1"]["state"] == "missing"
  assert recs["gru_value_s1"]["reason"] == "no workdir"
  assert recs["gru_global_norm_s1"]["state"] == "diverged"
  assert "test_perplexity" not in recs["gru_global_norm_s1"]
  r = recs["lstm_value_s1"]
  assert r["test_perplexity"] == 124.0
  assert r["best_valid_perplexity"] == pytest.approx(124.0 * 1.05)
  assert r["clip_rate"] == pytest.approx(0.25)
  norms = [4.0, 8.0, 12.0]  # seed 1: interval means (2, 4, 6) * 2
  assert r["grad_norm_p50"] == pytest.approx(np.median(norms))
  assert r["grad_norm_p90"] == pytest.approx(np.percentile(norms, 90))


def test_collect_synthetic_records(syn_sweep):
  recs = {r["name"]: r for r in report.collect(syn_sweep)}
  r = recs["lstm_none_L100_s1"]
  assert (r["kind"], r["error_rate"], r["success"]) == ("synthetic", 0.02, False)
  assert recs["rnn_tanh_none_L100_s1"]["state"] == "diverged"
  assert recs["rnn_tanh_none_L100_s1"]["error_rate"] is None
  # median over intervals of the per-interval p50 / p90 (seed 1 doubles them)
  assert r["grad_norm_p50"] == pytest.approx(2 * np.median([1.0, 3.0, 2.0]))
  assert r["grad_norm_p90"] == pytest.approx(2 * np.median([2.0, 5.0, 4.0]))
  assert r["clip_rate"] == pytest.approx(0.2)


def test_keys_missing_from_sweep_json_are_added(lm_sweep):
  cfg = json.loads((lm_sweep / "lstm_value_s0" / "config.json").read_text())
  cfg["model"]["hidden_size"] = 16
  (lm_sweep / "lstm_value_s0" / "config.json").write_text(json.dumps(cfg))
  recs = {r["name"]: r for r in report.collect(lm_sweep)}
  assert recs["lstm_value_s0"]["settings"]["model.hidden_size"] == 16
  assert recs["lstm_value_s1"]["settings"]["model.hidden_size"] == 8


# ---------------------------------------------------------------- tables


def test_lm_markdown_and_csv_match_hand_computation(lm_sweep):
  paths = report.write_report(lm_sweep, plots=False)
  md = paths["md"].read_text()
  gn, val = "optim.clip_mode=global_norm,optim.clip_value=1", "optim.clip_mode=value,optim.clip_value=5"
  assert _md_cell(md, "lstm", gn) == f"{_fmt([100.0, 110.0], '.2f')}; 0 diverged, 0 failed"
  assert _md_cell(md, "lstm", gn).startswith("105.00 ± 7.07 (2)")
  assert _md_cell(md, "lstm", val).startswith("122.00 ± 2.83 (2)")
  assert _md_cell(md, "gru", gn) == "130.00 (1); 1 diverged, 0 failed"
  assert _md_cell(md, "gru", val) == "140.00 (1); 0 diverged, 0 failed, 1 missing"
  # second table: best valid = 1.05 * test
  assert _md_cell(md, "lstm", gn, section=1).startswith(_fmt([105.0, 115.5], ".2f"))
  assert "`test_perplexity`" in md and "`best_valid_perplexity`" in md

  with paths["csv"].open() as f:
    rows = {r["name"]: r for r in csv.DictReader(f)}
  assert len(rows) == 8  # the missing point is a row too
  assert rows["gru_value_s1"]["state"] == "missing" and rows["gru_value_s1"]["test_perplexity"] == ""
  assert rows["gru_global_norm_s1"]["state"] == "diverged"
  assert float(rows["lstm_value_s0"]["test_perplexity"]) == 120.0
  assert rows["lstm_value_s0"]["optim.clip_value"] == "5"

  with paths["cells_csv"].open() as f:
    cells = {(r["model.cell"], r["column"]): r for r in csv.DictReader(f)}
  c = cells[("lstm", gn)]
  assert float(c["test_perplexity_mean"]) == pytest.approx(105.0)
  assert float(c["test_perplexity_std"]) == pytest.approx(statistics.stdev([100.0, 110.0]))
  assert c["test_perplexity_n"] == "2"
  assert (cells[("gru", gn)]["diverged"], cells[("gru", val)]["missing"]) == ("1", "1")
  assert cells[("gru", gn)]["test_perplexity_std"] == ""
  # clipping table inputs: mean over the cell's points of the per-point numbers
  assert float(c["clip_rate_mean"]) == pytest.approx(0.25)
  p50s = [np.median([2, 4, 6]), np.median([4, 8, 12])]
  p90s = [np.percentile([2, 4, 6], 90), np.percentile([4, 8, 12], 90)]
  assert float(c["grad_norm_p50_mean"]) == pytest.approx(np.mean(p50s))
  assert float(c["grad_norm_p90_mean"]) == pytest.approx(np.mean(p90s))
  assert "## Clipping and pre-clip gradient norms" in md
  assert f"| lstm | {gn.replace('|', '')} | 2 | 0.250 | {np.mean(p50s):.4g} | {np.mean(p90s):.4g} |" in md


def test_synthetic_counts_and_success(syn_sweep):
  paths = report.write_report(syn_sweep, plots=False)
  md = paths["md"].read_text()
  col = lambda mode, L: f"optim.clip_mode={mode},task.length={L}"
  assert _md_cell(md, "rnn_tanh", col("global_norm", 50)) == (
      f"{_fmt([0.0, 0.008], '.4f')}; success 2/2, 0 diverged")
  assert _md_cell(md, "rnn_tanh", col("none", 100)) == "0.4500 (1); success 0/2, 1 diverged"
  assert _md_cell(md, "rnn_tanh", col("global_norm", 100)).endswith("success 1/2, 0 diverged")
  assert _md_cell(md, "lstm", col("none", 100)).endswith("success 1/2, 0 diverged")
  # the running point is counted, not averaged, not in success k/n
  assert _md_cell(md, "lstm", col("global_norm", 100)) == (
      "0.0060 (1); success 1/1, 0 diverged, 1 running")
  with paths["cells_csv"].open() as f:
    cells = {(r["model.cell"], r["column"]): r for r in csv.DictReader(f)}
  c = cells[("lstm", col("none", 50))]
  assert (c["success"], c["ended"], c["optim.clip_mode"], c["task.length"]) == ("2", "2", "none", "50")
  assert float(c["error_rate_mean"]) == pytest.approx(0.001)
  assert float(c["grad_norm_p50_mean"]) == pytest.approx(np.mean([2.0, 4.0]))
  assert float(c["clip_rate_mean"]) == pytest.approx(0.2)


def test_user_rows_cols_keep_other_varying_keys_in_label(lm_sweep):
  paths = report.write_report(lm_sweep, rows="optim.clip_mode", cols="model.cell", plots=False)
  md = paths["md"].read_text()
  # optim.clip_value also varies: it stays in the column label, so nothing is merged
  assert _md_cell(md, "global_norm", "model.cell=lstm,optim.clip_value=1").startswith("105.00")
  assert _md_cell(md, "value", "model.cell=lstm,optim.clip_value=5").startswith("122.00")
  assert _md_cell(md, "value", "model.cell=lstm,optim.clip_value=1") == report.NOT_RUN


def test_metric_option(lm_sweep):
  md = report.write_report(lm_sweep, metric="test_loss", plots=False)["md"].read_text()
  assert "`best_valid_perplexity`" not in md
  cell = _md_cell(md, "lstm", "optim.clip_mode=value,optim.clip_value=5")
  assert cell.startswith(_fmt([math.log(120.0), math.log(124.0)], ".4f"))
  alias = report.write_report(lm_sweep, metric="perplexity", plots=False)["md"].read_text()
  assert "`test_perplexity`" in alias
  with pytest.raises(report.ReportError, match="not a metric"):
    report.write_report(lm_sweep, metric="accuracy", plots=False)
  with pytest.raises(report.ReportError, match="seeds are always aggregated"):
    report.write_report(lm_sweep, rows="seed", plots=False)
  with pytest.raises(report.ReportError, match="not a config key"):
    report.write_report(lm_sweep, cols="model.nope", plots=False)


def test_latex_escaping(lm_sweep):
  assert report.tex_escape("a_b & 50% $x #1 {y} ~^\\ ± —") == (
      r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{} $\pm$ --")
  tex = report.write_report(lm_sweep, plots=False)["tex"].read_text()
  assert r"\begin{tabular}{l|ll}" in tex and r"\end{tabular}" in tex
  assert r"optim.clip\_mode=global\_norm,optim.clip\_value=1" in tex
  assert r"lstm & 105.00 $\pm$ 7.07 (2); 0 diverged, 0 failed & 122.00 $\pm$ 2.83 (2)" in tex
  body = [l for l in tex.splitlines() if l.endswith(r"\\")]
  assert len(body) == 3 and all(l.count(" & ") == 2 for l in body)
  stripped = tex.replace(r"\_", "").replace(r"$\pm$", "").replace(r"\&", "")
  assert "_" not in stripped and "±" not in stripped and "$" not in stripped


def test_discovery_without_sweep_json(tmp_path):
  root = make_lm_sweep(tmp_path / "lm", with_spec=False)
  recs = report.collect(root)
  # data.dir differs between seeds but is an ignored (location) key; the missing point has no
  # directory, so discovery cannot see it
  assert list(recs[0]["settings"]) == ["model.cell", "optim.clip_mode", "optim.clip_value", "seed"]
  assert len(recs) == 7 and {r["state"] for r in recs} == {"finished", "diverged"}
  md = report.write_report(root, plots=False)["md"].read_text()
  assert _md_cell(md, "lstm", "optim.clip_mode=global_norm,optim.clip_value=1").startswith(
      "105.00 ± 7.07 (2)")


# ---------------------------------------------------------------- plots


def _assert_pngs(paths):
  for p in paths:
    assert p.exists() and p.stat().st_size > 1000, p
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_lm(lm_sweep):
  plots = report.write_report(lm_sweep)["plots"]
  names = sorted(p.name for p in plots)
  assert len([n for n in names if n.startswith("curves_")]) == 4
  assert len([n for n in names if n.startswith("gradnorm_")]) == 4
  assert "success_vs_length.png" not in names
  _assert_pngs(plots)
  assert sorted(p.name for p in (lm_sweep / "plots").glob("*.png")) == names


def test_plots_synthetic_success_vs_length(syn_sweep):
  plots = report.write_report(syn_sweep)["plots"]
  names = {p.name for p in plots}
  assert "success_vs_length.png" in names
  assert len([n for n in names if n.startswith("gradnorm_")]) == 8
  _assert_pngs(plots)


# ---------------------------------------------------------------- CLI


def _cli(*args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", "rnnlm_jax.report_main", *map(str, args)],
                        cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", ["nonexistent", "empty", "no_args", "bad_json"])
def test_cli_bad_input(tmp_path, case):
  if case == "nonexistent":
    args = [tmp_path / "nope"]
  elif case == "empty":
    (tmp_path / "empty").mkdir()
    args = [tmp_path / "empty"]
  elif case == "bad_json":
    (tmp_path / "sweep.json").write_text("{not json")
    args = [tmp_path]
  else:
    args = []
  res = _cli(*args)
  assert res.returncode == 2, res
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr


def test_cli_writes_report(lm_sweep):
  res = _cli(lm_sweep, "--rows", "model.cell", "--noplots")
  assert res.returncode == 0, res.stderr
  assert "105.00 ± 7.07 (2)" in res.stdout
  assert (lm_sweep / "results.md").exists() and (lm_sweep / "results.tex").exists()
  bad = _cli(lm_sweep, "--metric", "accuracy", "--noplots")
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "accuracy" in bad.stderr


def test_char_runs_report_bpc_and_unstarted_points_show_as_missing(tmp_path):
  root = tmp_path / "char"
  for seed, bpc in ((0, 1.5), (1, 1.7)):
    _write_run(root / f"s{seed}", {"seed": seed, "data": {"name": "ptb_char"}},
               {"state": "finished", "step": 10, "epoch": 1.0, "reason": ""},
               [{"split": "train", "step": 10, "loss": 1.2, "bpc": 1.8, "grad_norm": 1.0,
                 "clipped": 0.0},
                {"split": "valid", "step": 10, "loss": 1.1, "bpc": bpc + 0.1},
                {"split": "test", "step": 10, "loss": 1.0, "bpc": bpc}])
  (root / "sweep.json").write_text(json.dumps({"config": "c.py", "keys": ["seed"], "points": [
      {"name": f"s{s}", "overrides": {"seed": s}} for s in (0, 1, 2)]}))
  md = report.write_report(root, plots=False)["md"].read_text()
  assert "`test_bpc`" in md and "`best_valid_bpc`" in md and "perplexity" not in md
  assert _md_cell(md, "all", "all") == f"{_fmt([1.5, 1.7], '.3f')}; 0 diverged, 0 failed, 1 missing"
  assert "| s2 | 2 | missing |" in md
