"""rnnlm-report on a real tiny sweep (rnnlm-sweep: 2 cells x 2 seeds and a diverging point; the
report's numbers against what the workdirs' metrics.jsonl and status.json say) and on
hand-written sweep directories: aggregates, counts, layouts (tables, multi-key rows/columns,
splitting only where needed), settings of unstarted points from the sweep file, success counts,
older event spellings, escaping, plots, CLI."""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import pathlib
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest

from rnnlm_jax.report import layout, plots, records, render

from helpers import REPO, make_corpus

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
SYN_KEYS = ["model.cell", "optim.clip_mode", "synthetic.length", "seed"]


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
                                               "synthetic.length": length, "seed": seed}})
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


def _md_table(md: str, section: int = 0, table: str | None = None) -> list[list[str]]:
  """The cells (header first) of the first table, or of the ``### table`` one, of the
  ``section``-th metric section of results.md."""
  sec = [t for t in md.split("\n## ")[1:] if "\n| " in t][section]
  if table is not None:
    sec = next(p for p in sec.split("\n### ")[1:] if p.startswith(table + "\n"))
  lines = []
  for line in sec.splitlines():
    if line.startswith("| "):
      lines.append(line)
    elif lines and not line.startswith("|---"):
      break
  return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def _md_fixed(md: str, section: int = 0, table: str | None = None) -> list[str]:
  """The "settings fixed within each cell" bullets under that table."""
  sec = [t for t in md.split("\n## ")[1:] if "\n| " in t][section]
  if table is not None:
    sec = next(p for p in sec.split("\n### ")[1:] if p.startswith(table + "\n"))
  sec = sec.split("\n### ")[0]
  if "settings fixed within each cell:\n" not in sec:
    return []
  after = sec.split("settings fixed within each cell:\n", 1)[1].split("\n\n")[0]
  return [l[2:] for l in after.splitlines() if l.startswith("- ")]


def _md_cell(md: str, row: str, col: str, section: int = 0, table: str | None = None) -> str:
  """The text of cell (row, col) of a rows x columns table of results.md (see _md_table)."""
  rows = _md_table(md, section, table)
  head, lines = rows[0], rows[1:]
  for cells in lines:
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


# ---------------------------------------------------------------- a real tiny sweep
# rnnlm-sweep trains 2 cells x 2 seeds of a 1x8 word LM for 12 updates (8 per epoch: two
# validations; clipping at 3.5 fires in some intervals) and one point whose learning rate makes
# it diverge (1e38: its first update overflows float32 on any CPU; at 1e30 the losses stayed
# finite, ~1e30, on an AVX2 host, while they overflowed on an AVX-512 one). The tests read the workdirs' files themselves and compare the report with them.
REAL_SWEEP_FILE = '''
from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "text_file"
  c.data.level = "word"
  c.data.bptt = 10
  c.model.num_layers = 1
  c.model.hidden_size = c.model.embed_size = 8
  c.optim.clip_value = 3.5
  c.train.batch_size = c.train.eval_batch_size = 4
  c.train.max_steps = 12
  c.train.log_every = 2
  c.train.checkpoint_every_steps = 100
  c.train.progress_bar = False
  return c


def get_sweep():
  points = [{"model.cell": cell, "seed": seed} for cell in ("rnn_tanh", "lstm") for seed in (0, 1)]
  return points + [{"model.cell": "rnn_tanh", "optim.learning_rate": 1e38, "seed": 0}]
'''
REAL_DIVERGED = "cell=rnn_tanh,learning_rate=1e+38,seed=0"


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> pathlib.Path:
  """The trained sweep directory (read only: tests that write a report copy it first). Under
  pytest-xdist the workers share one: the first trains it, the others wait and reuse it."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # this session's directory, above the workers' own
  root = base / "real_report_sweep"
  with open(base / "real_report_sweep.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (base / "real_report_sweep.done").exists():
      shutil.rmtree(root, ignore_errors=True)
      tmp = tmp_path_factory.mktemp("real_sweep_inputs")
      (tmp / "real_sweep.py").write_text(REAL_SWEEP_FILE)
      corpus = make_corpus(tmp / "corpus.txt", num_lines=60)
      res = subprocess.run(
          [sys.executable, "-m", "rnnlm_jax.sweep_main", "--config", str(tmp / "real_sweep.py"),
           "--workdir", str(root), f"--config.data.path={corpus}",
           f"--config.data.tfds_dir={tmp / 'tfds'}"],
          cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
          timeout=600)
      assert res.returncode == 0 and "5 points: finished 4, diverged 1, failed 0" in res.stdout, (
          res.stdout[-3000:] + res.stderr[-3000:])
      (base / "real_report_sweep.done").touch()
  return root


def _copy(root: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
  """The text files of a sweep directory (what the report reads) copied to ``dst``."""
  shutil.copytree(root, dst, ignore=shutil.ignore_patterns("checkpoints", "tb"))
  return dst


def _run_files(root: pathlib.Path) -> dict[str, tuple[dict, list[dict]]]:
  """{point name: (status.json, events of metrics.jsonl)}, read with json alone."""
  out = {}
  for p in json.loads((root / "sweep.json").read_text())["points"]:
    wd = root / p["name"]
    out[p["name"]] = (json.loads((wd / "status.json").read_text()),
                      [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()])
  return out


def _split(events: list[dict], split: str) -> list[dict]:
  return [e for e in events if e["split"] == split]


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_real_records_are_what_the_workdirs_say(real_sweep):
  runs = _run_files(real_sweep)
  recs = {r["name"]: r for r in records.collect(real_sweep)}
  assert list(recs) == list(runs)
  assert list(recs[REAL_DIVERGED]["settings"]) == ["model.cell", "seed", "optim.learning_rate"]
  assert recs["cell=lstm,seed=1"]["settings"] == {"model.cell": "lstm", "seed": 1,
                                                  "optim.learning_rate": 1.0}
  for name, (status, events) in runs.items():
    r = recs[name]
    assert (r["state"], r["step"], r["kind"]) == (status["state"], status["step"], "lm"), name
    train, valid = _split(events, "train"), _split(events, "valid")
    assert r["clip_rate"] == pytest.approx(statistics.fmean(e["clipped"] for e in train))
    if status["state"] == "diverged":
      assert "test_perplexity" not in r and "best_valid_perplexity" not in r
      continue
    # the final test event: scored with the best-valid checkpoint (the lowest valid perplexity)
    (test,) = _split(events, "test")
    best = min(valid, key=lambda e: e["perplexity"])
    assert (test["checkpoint"], test["checkpoint_step"]) == ("best_valid", best["step"])
    assert (r["test_perplexity"], r["test_loss"]) == (test["perplexity"], test["loss"])
    assert (r["best_valid_perplexity"], r["valid_perplexity"]) == (best["perplexity"],) * 2
    assert r["best_valid_loss"] == min(e["loss"] for e in valid)
    assert r["grad_norm_p50"] == statistics.median(e["grad_norm_p50"] for e in train)
    assert r["grad_norm_p90"] == statistics.median(e["grad_norm_p90"] for e in train)
    assert r["grad_norm_max"] == max(e["grad_norm_max"] for e in train)
    assert r["final_train_loss"] == train[-1]["loss"]
  # the sweep tests what it should: two validations per run, the best one not always the last,
  # clipping in some intervals of some runs only
  assert all(len(_split(ev, "valid")) == 2 for st, ev in runs.values() if st["state"] == "finished")
  assert any(r["best_valid_perplexity"] < _split(runs[n][1], "valid")[-1]["perplexity"]
             for n, r in recs.items() if n != REAL_DIVERGED)
  assert any(0 < r["clip_rate"] < 1 for r in recs.values())


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_real_report_is_the_seed_aggregate_of_the_workdirs(real_sweep, tmp_path):
  root = _copy(real_sweep, tmp_path / "sweep")
  paths = render.write_report(root)
  runs = _run_files(root)
  by_cell: dict[tuple[str, str], list[str]] = {}
  for name, (status, events) in runs.items():
    cfg = json.loads((root / name / "config.json").read_text())
    key = (cfg["model"]["cell"], records.fmt_value(cfg["optim"]["learning_rate"]))
    by_cell.setdefault(key, []).append(name)
  assert set(by_cell) == {("rnn_tanh", "1"), ("lstm", "1"), ("rnn_tanh", "1e+38")}

  def test_ppl(name):
    return _split(runs[name][1], "test")[0]["perplexity"]

  def clip_rate(name):
    return statistics.fmean(e["clipped"] for e in _split(runs[name][1], "train"))

  md = paths["md"].read_text()
  assert "- points: 5 (1 diverged, 4 finished)" in md
  assert _md_table(md)[0] == ["model.cell \\ optim.learning_rate", "1", "1e+38"]
  assert _md_cell(md, "rnn_tanh", "1e+38") == "n/a (0); 1 diverged, 0 failed"
  assert _md_cell(md, "lstm", "1e+38") == render.NOT_RUN
  with paths["cells_csv"].open() as f:
    cells = {(c["row"], c["column"]): c for c in csv.DictReader(f)}
  for (cell, lr), names in by_cell.items():
    states = [runs[n][0]["state"] for n in names]
    c = cells[(cell, lr)]
    assert (int(c["finished"]), int(c["diverged"])) == (states.count("finished"),
                                                        states.count("diverged"))
    assert float(c["clip_rate_mean"]) == pytest.approx(statistics.fmean(map(clip_rate, names)))
    ppl = [test_ppl(n) for n, s in zip(names, states) if s == "finished"]
    if not ppl:
      continue
    assert _md_cell(md, cell, lr) == f"{_fmt(ppl, '.2f')}; 0 diverged, 0 failed"
    assert float(c["test_perplexity_mean"]) == pytest.approx(statistics.fmean(ppl))
    assert float(c["test_perplexity_std"]) == pytest.approx(statistics.stdev(ppl))
    assert int(c["test_perplexity_n"]) == len(ppl) == 2
  with paths["csv"].open() as f:
    rows = {r["name"]: r for r in csv.DictReader(f)}
  assert {n: r["state"] for n, r in rows.items()} == {n: s["state"] for n, (s, _) in runs.items()}
  assert float(rows["cell=lstm,seed=0"]["test_perplexity"]) == test_ppl("cell=lstm,seed=0")
  # a learning-curve and a gradient-norm figure per cell that has events
  names = sorted(p.name for p in paths["plots"])
  assert [n.split("_")[0] for n in names] == ["curves"] * 3 + ["gradnorm"] * 3
  _assert_pngs(paths["plots"])
  assert sorted(p.name for p in (root / "plots").glob("*.png")) == names


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_real_report_cli(real_sweep, tmp_path):
  root = _copy(real_sweep, tmp_path / "sweep")
  ppl = [_split(ev, "test")[0]["perplexity"] for name, (st, ev) in _run_files(root).items()
         if name.startswith("cell=lstm")]
  res = _cli(root, "--rows", "model.cell", "--noplots")
  assert res.returncode == 0, res.stderr
  assert f"| lstm | {_fmt(ppl, '.2f')}; 0 diverged, 0 failed | — |" in res.stdout
  assert (root / "results.md").exists() and (root / "results.tex").exists()
  assert not (root / "plots").exists()
  bad = _cli(root, "--metric", "accuracy", "--noplots")
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "accuracy" in bad.stderr


# ---------------------------------------------------------------- collect


def test_collect_lm_records(lm_sweep):
  recs = {r["name"]: r for r in records.collect(lm_sweep)}
  assert len(recs) == 8
  assert list(recs["lstm_global_norm_s0"]["settings"]) == LM_KEYS
  assert recs["gru_value_s1"]["overrides"] == {  # sweep.json's, also for a missing point
      "model.cell": "gru", "optim.clip_mode": "value", "optim.clip_value": LM_CLIPS[1][1],
      "seed": 1}
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
  """Events written before the one loop: ``clip_rate`` (today ``clipped``)."""
  assert records.normalise_event({"clip_rate": 0.5, "updates_per_sec": 3.0, "loss": 1.0}) == {
      "clipped": 0.5, "steps_per_sec": 3.0, "loss": 1.0}
  recs = {r["name"]: r for r in records.collect(syn_sweep)}
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
  recs = {r["name"]: r for r in records.collect(lm_sweep)}
  assert recs["lstm_value_s0"]["settings"]["model.hidden_size"] == 16
  assert recs["lstm_value_s1"]["settings"]["model.hidden_size"] == 8


# ---------------------------------------------------------------- tables


def test_lm_markdown_and_csv_match_hand_computation(lm_sweep):
  paths = render.write_report(lm_sweep, plots=False)
  md = paths["md"].read_text()
  # columns: optim.clip_mode; optim.clip_value follows it, so it is listed, not split
  gn, val = "global_norm", "value"
  assert _md_table(md)[0] == ["model.cell \\ optim.clip_mode", gn, val]
  assert _md_fixed(md) == ["optim.clip_value: 1 where optim.clip_mode is global_norm; "
                           "5 where optim.clip_mode is value"]
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
  assert (c["optim.clip_mode"], c["optim.clip_value"]) == ("global_norm", "1")  # all settings
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
  paths = render.write_report(syn_sweep, plots=False)
  md = paths["md"].read_text()
  # default layout: rows model.cell plus what must be split (the clip mode), columns the length
  assert _md_table(md)[0] == ["model.cell, optim.clip_mode \\ synthetic.length", "50", "100"]
  assert _md_cell(md, "rnn_tanh, global_norm", "50") == (
      f"{_fmt([0.0, 0.008], '.4f')}; success 2/2, 0 diverged")
  assert _md_cell(md, "rnn_tanh, none", "100") == "0.4500 (1); success 0/2, 1 diverged"
  assert _md_cell(md, "rnn_tanh, global_norm", "100").endswith("success 1/2, 0 diverged")
  assert _md_cell(md, "lstm, none", "100").endswith("success 1/2, 0 diverged")
  # the running point is counted, not averaged, not in success k/n
  assert _md_cell(md, "lstm, global_norm", "100") == (
      "0.0060 (1); success 1/1, 0 diverged, 1 running")
  with paths["cells_csv"].open() as f:
    cells = {(r["row"], r["column"]): r for r in csv.DictReader(f)}
  c = cells[("lstm, none", "50")]
  assert (c["success"], c["done"], c["optim.clip_mode"], c["synthetic.length"]) == ("2", "2", "none", "50")
  assert float(c["error_rate_mean"]) == pytest.approx(0.001)
  assert float(c["grad_norm_p50_mean"]) == pytest.approx(np.mean([2.0, 4.0]))
  assert float(c["clip_rate_mean"]) == pytest.approx(0.2)


def test_key_constant_per_row_is_listed_not_split(lm_sweep):
  md = render.write_report(lm_sweep, rows="optim.clip_mode", cols="model.cell",
                           plots=False)["md"].read_text()
  # optim.clip_value varies, but is constant within each row: not in the labels, listed
  assert _md_table(md)[0] == ["optim.clip_mode \\ model.cell", "lstm", "gru"]
  assert _md_cell(md, "global_norm", "lstm").startswith("105.00")
  assert _md_cell(md, "value", "lstm").startswith("122.00")
  assert _md_fixed(md) == ["optim.clip_value: 1 where optim.clip_mode is global_norm; "
                           "5 where optim.clip_mode is value"]
  assert "optim.clip_value" not in "".join(sum(_md_table(md), []))


def test_key_varying_within_a_cell_joins_the_column_label(syn_sweep):
  md = render.write_report(syn_sweep, rows="model.cell", cols="synthetic.length",
                           plots=False)["md"].read_text()
  # optim.clip_mode takes two values within (model.cell, synthetic.length): it must split
  head = _md_table(md)[0]
  assert head == ["model.cell \\ synthetic.length", "50, clip_mode=none", "100, clip_mode=none",
                  "50, clip_mode=global_norm", "100, clip_mode=global_norm"]
  assert _md_cell(md, "lstm", "100, clip_mode=none").endswith("success 1/2, 0 diverged")
  assert _md_fixed(md) == []


def test_metric_option(lm_sweep):
  md = render.write_report(lm_sweep, metric="test_loss", plots=False)["md"].read_text()
  assert "`best_valid_perplexity`" not in md
  cell = _md_cell(md, "lstm", "value")
  assert cell.startswith(_fmt([math.log(120.0), math.log(124.0)], ".4f"))
  alias = render.write_report(lm_sweep, metric="perplexity", plots=False)["md"].read_text()
  assert "`test_perplexity`" in alias
  with pytest.raises(records.ReportError, match="not a metric"):
    render.write_report(lm_sweep, metric="accuracy", plots=False)
  with pytest.raises(records.ReportError, match="seeds are always aggregated"):
    render.write_report(lm_sweep, rows="seed", plots=False)
  with pytest.raises(records.ReportError, match="not a config key"):
    render.write_report(lm_sweep, cols="model.nope", plots=False)


def test_latex_escaping(lm_sweep):
  assert render.tex_escape("a_b & 50% $x #1 {y} ~^\\ ± —") == (
      r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{} $\pm$ --")
  tex = render.write_report(lm_sweep, plots=False)["tex"].read_text()
  assert r"\begin{tabular}{l|ll}" in tex and r"\end{tabular}" in tex
  assert r"model.cell \textbackslash{} optim.clip\_mode & global\_norm & value \\" in tex
  assert r"% fixed within each cell: optim.clip\_value: 1 where" in tex
  assert r"lstm & 105.00 $\pm$ 7.07 (2); 0 diverged, 0 failed & 122.00 $\pm$ 2.83 (2)" in tex
  body = [l for l in tex.splitlines() if l.endswith(r"\\")]
  assert len(body) == 3 and all(l.count(" & ") == 2 for l in body)
  stripped = tex.replace(r"\_", "").replace(r"$\pm$", "").replace(r"\&", "")
  assert "_" not in stripped and "±" not in stripped and "$" not in stripped


def test_discovery_without_sweep_json(tmp_path):
  root = make_lm_sweep(tmp_path / "lm", with_spec=False)
  recs = records.collect(root)
  # data.dir differs between seeds but is an ignored (location) key; the missing point has no
  # directory, so discovery cannot see it
  assert list(recs[0]["settings"]) == ["model.cell", "optim.clip_mode", "optim.clip_value", "seed"]
  assert all(r["overrides"] == r["settings"] for r in recs)  # the varying keys' values
  assert len(recs) == 7 and {r["state"] for r in recs} == {"finished", "diverged"}
  md = render.write_report(root, plots=False)["md"].read_text()
  assert _md_cell(md, "lstm", "global_norm").startswith("105.00 ± 7.07 (2)")


# ---------------------------------------------------------------- two tasks, a real sweep file
# A small Pascanu-like sweep: tanh x (clip mode, omega) x length x 2 tasks, and LSTM points with
# their own init / forget bias. Only some temporal_order points (and one addition point) have
# started; every other point has no workdir, so its settings must come from the sweep file.
MINI_KEYS = ["synthetic.problem", "synthetic.length", "optim.clip_mode", "optim.omega_weight",
             "seed", "model.cell", "model.init", "model.forget_bias"]
MINI_SWEEP_FILE = """
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = "synthetic"
  c.synthetic = ml_collections.ConfigDict(
      {"problem": "temporal_order", "length": 50, "success_error_rate": 0.01})
  c.model = ml_collections.ConfigDict(
      {"cell": "rnn_tanh", "init": "smart_tanh", "forget_bias": 0.0, "hidden_size": 50})
  c.optim = ml_collections.ConfigDict({"clip_mode": "none", "omega_weight": 0.0, "clip_value": 1.0})
  return c


def get_sweep():
  return []
"""
MINI_BASE = {"seed": 0, "task": "synthetic",
             "synthetic": {"problem": "temporal_order", "length": 50, "success_error_rate": 0.01},
             "model": {"cell": "rnn_tanh", "init": "smart_tanh", "forget_bias": 0.0,
                       "hidden_size": 50},
             "optim": {"clip_mode": "none", "omega_weight": 0.0, "clip_value": 1.0}}
# (task, length, clip_mode, omega, seed) -> ("finished", success_step or None) | ("diverged",) |
# ("running",); tanh points not listed have not started.
MINI_RUNS = {
    ("temporal_order", 50, "none", 0.0, 0): ("finished", None),
    ("temporal_order", 50, "none", 0.0, 1): ("finished", None),
    ("temporal_order", 50, "global_norm", 0.0, 0): ("finished", 700),
    ("temporal_order", 50, "global_norm", 0.0, 1): ("finished", None),
    ("temporal_order", 50, "global_norm", 4.0, 0): ("finished", 300),
    ("temporal_order", 50, "global_norm", 4.0, 1): ("finished", 500),
    ("temporal_order", 100, "none", 0.0, 0): ("finished", None),
    ("temporal_order", 100, "none", 0.0, 1): ("diverged",),
    ("temporal_order", 100, "global_norm", 0.0, 0): ("finished", None),
    ("temporal_order", 100, "global_norm", 0.0, 1): ("finished", None),
    ("temporal_order", 100, "global_norm", 4.0, 0): ("finished", 900),
    ("temporal_order", 100, "global_norm", 4.0, 1): ("running",),
    ("addition", 50, "none", 0.0, 0): ("finished", None),
}
ACCEPT = dict(tables="synthetic.problem", rows="model.cell,optim.clip_mode,optim.omega_weight",
              cols="synthetic.length")


def _mini_overrides() -> list[dict]:
  out = []
  for task in ("temporal_order", "addition"):
    for length in (50, 100):
      for mode, omega in (("none", 0.0), ("global_norm", 0.0), ("global_norm", 4.0)):
        out += [{"synthetic.problem": task, "synthetic.length": length,
                 "optim.clip_mode": mode, "optim.omega_weight": omega, "seed": s}
                for s in (0, 1)]
  for task in ("temporal_order", "addition"):
    for mode in ("none", "global_norm"):
      out += [{"synthetic.problem": task, "model.cell": "lstm", "model.init": "uniform",
               "model.forget_bias": 1.0, "synthetic.length": 100, "optim.clip_mode": mode,
               "seed": s}
              for s in (0, 1)]
  return out


def make_two_task_sweep(tmp: pathlib.Path, sweep_file: str | None = MINI_SWEEP_FILE,
                        config_path: str = "configs/mini.py") -> pathlib.Path:
  """tmp/mini (the sweep directory) and tmp/configs/mini.py (its sweep file, found through
  the sweep directory's parent)."""
  if sweep_file is not None:
    (tmp / "configs").mkdir(parents=True, exist_ok=True)
    (tmp / config_path).write_text(sweep_file)
  root = tmp / "mini"
  root.mkdir()
  points = []
  for ov in _mini_overrides():
    name = "_".join(str(v) for v in ov.values())
    points.append({"name": name, "overrides": ov})
    key = (ov["synthetic.problem"], ov["synthetic.length"], ov["optim.clip_mode"],
           ov.get("optim.omega_weight", 0.0), ov["seed"])
    run = MINI_RUNS.get(key) if "model.cell" not in ov else None
    if run is None:
      continue
    config = json.loads(json.dumps(MINI_BASE))
    for k, v in ov.items():
      *parents, leaf = k.split(".")
      node = config
      for part in parents:
        node = node[part]
      node[leaf] = v
    ok = run[0] == "finished" and run[1] is not None
    err = None if run[0] == "diverged" else (0.0 if ok else 0.4)
    status = {"state": run[0], "step": 1000, "epoch": 0.0, "reason": "", "success": ok,
              "success_step": run[1] if ok else None, "error_rate": err}
    _write_run(root / name, config, status, _syn_events(err, run[0] == "diverged", ov["seed"]))
  (root / "sweep.json").write_text(json.dumps(
      {"config": config_path, "keys": MINI_KEYS, "points": points}))
  return root


@pytest.fixture
def two_task_sweep(tmp_path):
  return make_two_task_sweep(tmp_path)


def test_missing_points_resolved_from_sweep_file(two_task_sweep):
  recs = records.collect(two_task_sweep)  # run from the repo: found through DIR's parent
  by = {r["name"]: r for r in recs}
  lstm = by["addition_lstm_uniform_1.0_100_global_norm_1"]
  assert lstm["state"] == "missing" and lstm["kind"] == "synthetic"
  assert lstm["settings"]["optim.omega_weight"] == 0.0  # not in its overrides: the sweep file's
  tanh = by["addition_100_global_norm_4.0_1"]
  assert (tanh["settings"]["model.cell"], tanh["settings"]["model.init"],
          tanh["settings"]["model.forget_bias"]) == ("rnn_tanh", "smart_tanh", 0.0)
  md = render.write_report(two_task_sweep, plots=False)["md"].read_text()
  assert "(unset)" not in md
  assert "resolved from the sweep file configs/mini.py" in md


@pytest.mark.parametrize("case", ["not_found", "broken"])
def test_missing_points_fall_back_to_unset(tmp_path, case):
  if case == "not_found":
    root = make_two_task_sweep(tmp_path, sweep_file=None)
  else:
    root = make_two_task_sweep(tmp_path, sweep_file="raise RuntimeError('boom')\n")
  recs = {r["name"]: r for r in records.collect(root)}
  assert recs["addition_100_global_norm_4.0_1"]["settings"]["model.cell"] is None
  assert recs["addition_lstm_uniform_1.0_100_global_norm_1"]["settings"]["model.cell"] == "lstm"
  md = render.write_report(root, **ACCEPT, plots=False)["md"].read_text()
  assert _md_cell(md, "(unset), global_norm, 4", "100", table="synthetic.problem=addition") == "2 missing"
  assert ("not found" if case == "not_found" else "RuntimeError: boom") in md


def test_tables_and_multi_key_rows_cols_success(two_task_sweep):
  paths = render.write_report(two_task_sweep, **ACCEPT, metric="success", plots=False)
  md = paths["md"].read_text()
  to, add = "synthetic.problem=temporal_order", "synthetic.problem=addition"
  assert f"### {to}" in md and f"### {add}" in md
  rows = ["rnn_tanh, none, 0", "rnn_tanh, global_norm, 0", "rnn_tanh, global_norm, 4",
          "lstm, none, 0", "lstm, global_norm, 0"]
  for table in (to, add):
    cells = _md_table(md, table=table)
    assert cells[0] == ["model.cell, optim.clip_mode, optim.omega_weight \\ synthetic.length",
                        "50", "100"]
    assert [r[0] for r in cells[1:]] == rows
    assert _md_fixed(md, table=table) == [
        "model.init: smart_tanh where model.cell is rnn_tanh; uniform where model.cell is lstm",
        "model.forget_bias: 0 where model.cell is rnn_tanh; 1 where model.cell is lstm"]
  cell = lambda r, c, t=to: _md_cell(md, r, c, table=t)
  assert cell("rnn_tanh, none, 0", "50") == "0/2"
  assert cell("rnn_tanh, none, 0", "100") == "0/2 (1 diverged)"
  assert cell("rnn_tanh, global_norm, 0", "50") == "1/2, median step 700"
  assert cell("rnn_tanh, global_norm, 4", "50") == "2/2, median step 400"
  assert cell("rnn_tanh, global_norm, 4", "100") == "1/1, median step 900 (1 running)"
  assert cell("lstm, none, 0", "50") == render.NOT_RUN  # not in the sweep
  assert cell("lstm, none, 0", "100") == "0/0 (2 missing)"
  assert cell("rnn_tanh, none, 0", "50", add) == "0/1 (1 missing)"
  # the default layout is the same one
  recs = records.collect(two_task_sweep)
  lay = layout.choose_layout(recs)
  assert (lay["tables"], lay["rows"], lay["cols"], lay["split"], lay["fixed"]) == (
      ["synthetic.problem"], ["model.cell", "optim.clip_mode", "optim.omega_weight"], ["synthetic.length"],
      [], ["model.init", "model.forget_bias"])
  assert layout.choose_layout(recs, **ACCEPT) == lay
  assert layout.choose_layout(recs, rows=["model.cell", "optim.clip_mode",
                                          "optim.omega_weight"], cols=["synthetic.length"]) == lay
  # one CSV row per cell (with every setting) and per point
  with paths["cells_csv"].open() as f:
    cells = list(csv.DictReader(f))
  assert len(cells) == 2 * (3 * 2 + 2)
  c = next(r for r in cells if r["table"] == to and r["row"] == "rnn_tanh, global_norm, 4"
           and r["column"] == "50")
  assert (c["model.init"], c["model.forget_bias"], c["optim.omega_weight"]) == (
      "smart_tanh", "0.0", "4.0")
  assert (c["success"], c["done"], float(c["success_step_median"]), float(c["success_mean"])) == (
      "2", "2", 400.0, 1.0)
  with paths["csv"].open() as f:
    assert len(list(csv.DictReader(f))) == len(_mini_overrides())


def test_only_split_what_must_be_split(two_task_sweep):
  md = render.write_report(two_task_sweep, rows="model.cell", cols="synthetic.length",
                           plots=False)["md"].read_text()
  # clip mode and omega vary within a (task, cell, length) cell: in the column labels;
  # init and forget bias follow the cell: listed, not split
  head = _md_table(md, table="synthetic.problem=temporal_order")[0]
  assert head[1:] == [f"{length}, clip_mode={mode}, omega_weight={omega}" for length in (50, 100)
                      for mode, omega in (("none", 0), ("global_norm", 0), ("global_norm", 4))]
  assert not any("init" in h or "forget" in h for h in head)
  assert [f.split(":")[0] for f in _md_fixed(md, table="synthetic.problem=addition")] == [
      "model.init", "model.forget_bias"]
  # no two settings merged: within every cell of any layout, points differ only in the seed
  recs = records.collect(two_task_sweep)
  for kw in ({}, ACCEPT, {"rows": "model.cell", "cols": "optim.clip_mode"},
             {"tables": "", "rows": "synthetic.length", "cols": "model.init"}):
    for t in layout.build_tables(recs, layout.choose_layout(recs, **kw), ["error_rate"])["tables"]:
      for pts in t["cells"].values():
        assert len({json.dumps({k: records.fmt_value(v) for k, v in p["settings"].items()
                                if k != "seed"}) for p in pts}) == 1, kw


def test_layout_errors(two_task_sweep):
  with pytest.raises(records.ReportError, match="picked twice"):
    render.write_report(two_task_sweep, tables="synthetic.problem", rows="model.cell,synthetic.problem",
                        plots=False)
  with pytest.raises(records.ReportError, match="seeds are always aggregated"):
    render.write_report(two_task_sweep, tables="seed", plots=False)
  with pytest.raises(records.ReportError, match="not a config key"):
    render.write_report(two_task_sweep, rows="model.cell,model.nope", plots=False)


def test_success_metric_text(syn_sweep, lm_sweep):
  def stats(*states, steps=()):
    pts = [{"state": s, "success": False} for s in states]
    pts += [{"state": "finished", "success": True, "success_step": st} for st in steps]
    return layout.cell_stats(pts, "success")
  text = lambda s: render.cell_text(s, "success", "synthetic")
  assert text(stats("finished", "finished", "running", "running", "running",
                    steps=(1000, 3000))) == "2/4, median step 2000 (3 running)"
  # n counts the done runs (finished, diverged): a failed run (a crash) answers nothing
  assert text(stats("finished", "diverged", "failed", "missing")) == (
      "0/2 (1 diverged, 1 failed, 1 missing)")
  assert text(stats("missing", "missing")) == "0/0 (2 missing)"
  assert text(None) == render.NOT_RUN
  assert stats("finished", steps=(1000,))["mean"] == 0.5
  md = render.write_report(syn_sweep, metric="success", plots=False)["md"].read_text()
  assert _md_cell(md, "rnn_tanh, global_norm", "50") == "2/2, median step 300"
  assert _md_cell(md, "rnn_tanh, none", "100") == "0/2 (1 diverged)"
  assert _md_cell(md, "lstm, global_norm", "100") == "1/1, median step 300 (1 running)"
  with pytest.raises(records.ReportError, match="synthetic"):
    render.write_report(lm_sweep, metric="success", plots=False)


# ---------------------------------------------------------------- plots


def _assert_pngs(paths):
  for p in paths:
    assert p.exists() and p.stat().st_size > 1000, p
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# slow: the default run took 7:54 and 8:41 in two clean clones on an AVX2 host (2026-12-07)
@pytest.mark.slow
def test_plots_synthetic_success_vs_length(syn_sweep):
  pngs = render.write_report(syn_sweep)["plots"]
  names = {p.name for p in pngs}
  assert "success_vs_length.png" in names
  assert len([n for n in names if n.startswith("gradnorm_")]) == 8
  _assert_pngs(pngs)


def test_success_vs_length_lines_per_task(two_task_sweep, tmp_path):
  recs = records.collect(two_task_sweep)
  panels = plots.success_lines(recs, layout.choose_layout(recs, **ACCEPT))
  # a panel per task, a line per row (the column is the length), ended runs only
  assert list(panels) == ["synthetic.problem=temporal_order", "synthetic.problem=addition"]
  to = panels["synthetic.problem=temporal_order"]
  assert list(to) == ["rnn_tanh, none, 0", "rnn_tanh, global_norm, 0", "rnn_tanh, global_norm, 4"]
  assert to["rnn_tanh, global_norm, 4"] == {50.0: [True, True], 100.0: [True]}
  assert to["rnn_tanh, none, 0"] == {50.0: [False, False], 100.0: [False, False]}
  assert panels["synthetic.problem=addition"] == {"rnn_tanh, none, 0": {50.0: [False]}}
  # another layout: the line label is the row and the column without the length
  lay = layout.choose_layout(recs, rows="model.cell", cols="optim.clip_mode")
  assert list(plots.success_lines(recs, lay)["synthetic.problem=temporal_order"]) == [
      "rnn_tanh, none, omega_weight=0", "rnn_tanh, global_norm, omega_weight=0",
      "rnn_tanh, global_norm, omega_weight=4"]
  _assert_pngs([plots.plot_success_vs_length(recs, lay, tmp_path / "s.png")])


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


def test_cli_tables_rows_cols_success(two_task_sweep):
  res = _cli(two_task_sweep, "--tables", "synthetic.problem", "--rows",
             "model.cell,optim.clip_mode,optim.omega_weight", "--cols", "synthetic.length",
             "--metric", "success", "--noplots")
  assert res.returncode == 0, res.stderr
  out = res.stdout
  assert out.index("### synthetic.problem=temporal_order") < out.index("### synthetic.problem=addition")
  assert "| rnn_tanh, global_norm, 4 | 2/2, median step 400 | 1/1, median step 900 (1 running) |" in out
  assert "| lstm, global_norm, 0 | — | 0/0 (2 missing) |" in out
  assert out.count("settings fixed within each cell:") == 2
  bad = _cli(two_task_sweep, "--rows", "seed", "--noplots")
  assert bad.returncode == 2 and "seeds are always aggregated" in bad.stderr


def test_cli_out_leaves_the_sweep_directory_as_it_was(two_task_sweep, tmp_path):
  """--out OUT: every report file goes under OUT (e.g. for committed records), none into DIR."""
  before = sorted(p.relative_to(two_task_sweep) for p in two_task_sweep.rglob("*"))
  res = _cli(two_task_sweep, "--metric", "success", "--out", tmp_path / "report")
  assert res.returncode == 0, res.stderr
  assert sorted(p.relative_to(two_task_sweep) for p in two_task_sweep.rglob("*")) == before
  for name in ("results.md", "results.tex", "results.csv", "results_cells.csv"):
    assert (tmp_path / "report" / name).is_file() and f"wrote {tmp_path / 'report' / name}" in res.stdout
  assert list((tmp_path / "report" / "plots").glob("*.png"))


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
  md = render.write_report(root, plots=False)["md"].read_text()
  assert "`test_bpc`" in md and "`best_valid_bpc`" in md and "perplexity" not in md
  assert _md_cell(md, "all", "all") == f"{_fmt([1.5, 1.7], '.3f')}; 0 diverged, 0 failed, 1 missing"
  assert "| s2 | 2 | missing |" in md


def test_seq_runs_report_their_final_metrics(tmp_path):
  """Classification/music runs (a `kind` config field): the best-valid checkpoint's final
  valid and test metrics, accuracy by default for classification."""
  root = tmp_path / "cls"
  for cell, acc in (("lstm", 0.86), ("gru", 0.84)):
    events = [{"step": 10, "epoch": 1.0, "split": "valid", "loss": 0.5, "accuracy": acc - 0.01,
               "best": True},
              {"step": 10, "epoch": 1.0, "split": "valid", "loss": 0.5, "accuracy": acc - 0.01,
               "checkpoint": "best_valid", "checkpoint_step": 10},
              {"step": 10, "epoch": 1.0, "split": "test", "loss": 0.4, "accuracy": acc,
               "f1": acc - 0.1, "checkpoint": "best_valid", "checkpoint_step": 10}]
    _write_run(root / cell, {"kind": "classify", "model": {"cell": cell}, "seed": 0},
               {"state": "finished", "step": 10}, events)
  recs = records.collect(root)
  assert {r["kind"] for r in recs} == {"seq"}
  by_cell = {r["settings"]["model.cell"]: r for r in recs}
  assert by_cell["lstm"]["test_accuracy"] == 0.86 and by_cell["gru"]["test_f1"] == pytest.approx(0.74)
  assert by_cell["lstm"]["valid_accuracy"] == 0.85 and by_cell["lstm"]["best_valid_loss"] == 0.5
  assert layout.default_metrics("seq", recs, None) == ["test_accuracy", "valid_accuracy"]


def test_wall_seconds_sums_the_invocations_that_ended(tmp_path):
  from rnnlm_jax.workdir import wall_seconds
  assert wall_seconds(tmp_path) == 0.0  # no provenance.json
  runs = [{"start_time": "2026-11-23T10:00:00+00:00", "end_time": "2026-11-23T10:30:00+00:00"},
          {"start_time": "2026-11-23T11:00:00+00:00", "end_time": None},  # killed
          {"start_time": "2026-11-23T12:00:00+00:00", "end_time": "2026-11-23T12:00:45+00:00"}]
  (tmp_path / "provenance.json").write_text(json.dumps({"runs": runs}))
  assert wall_seconds(tmp_path) == 30 * 60 + 45


def test_archive_runs_keeps_what_reports_read(lm_sweep, tmp_path):
  """scripts/archive_runs.py copies the text records only; the report reads the copy alike."""
  from rnnlm_jax.sweeps.spec import import_file
  archive_runs = import_file(REPO / "scripts" / "archive_runs.py")
  ckpt = lm_sweep / "lstm_value_s1" / "checkpoints" / "1"
  ckpt.mkdir(parents=True)
  (ckpt / "weights").write_bytes(b"\0" * 1024)
  dst = tmp_path / "archive"
  names = archive_runs.archive(lm_sweep, dst)
  assert "lstm_value_s1" in names and "gru_value_s1" not in names  # no workdir: not copied
  assert not (dst / "lstm_value_s1" / "checkpoints").exists()
  def strip(recs):  # as text: NaN metrics compare equal
    return json.dumps(sorted((dict(r, path=None) for r in recs), key=lambda r: r["name"]),
                      sort_keys=True, default=str)
  assert strip(records.collect(dst)) == strip(records.collect(lm_sweep))
  assert archive_runs.main([str(tmp_path / "nothing"), str(tmp_path / "x")]) == 2


def test_remedies_table_names_only_remedies_turned_on():
  """experiments/remedies/table.py: a remedy key at its off value (discovery gives every point
  all varying keys) names no remedy, so the baseline row is labelled baseline."""
  from rnnlm_jax.sweeps.spec import import_file
  table = import_file(REPO / "experiments" / "remedies" / "table.py")
  off = {"overrides": {"model.residual": False, "model.norm": "none", "model.dropout": 0.0,
                       "seed": 0, "model.cell": "rnn_tanh"}}
  on = {"overrides": {"model.residual": True, "model.dropout": 0.25, "seed": 1}}
  assert table.remedy_keys(off) == () and table.label(off) == "baseline"
  assert table.remedy_keys(on) == ("model.residual", "model.dropout")
