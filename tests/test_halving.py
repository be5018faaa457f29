"""Successive halving over a sweep (rnnlm_jax.sweeps.halving): rung budgets, promotion order on
a sweep with known validation values (a fake trainer), seeds judged together, a diverged seed
ranking its group last, interruption between rungs, shards taking the same decisions, the
sweep.json record, the report's rung section and the CLI's dry run."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from rnnlm_jax import config_base
from rnnlm_jax.report import render
from rnnlm_jax.sweeps import halving
from rnnlm_jax.sweeps.run import SweepInterrupted, sweep_record, write_sweep_json
from rnnlm_jax.sweeps.spec import SweepError, expand, product, sweep
from rnnlm_jax.workdir import Workdir

REPO = pathlib.Path(__file__).resolve().parent.parent
HIDDEN = [10, 20, 30, 40, 50, 60, 70, 80, 90]
# Validation loss per (hidden size, seed) from epoch 1 (epochs 1-2), 3 (epochs 3-8), 9 (9).
# Rung 1 (1 epoch), by the mean over seeds: h40 2.5, h20 3.0, h60 3.5 promoted; h10 has the
# best single run (0.5) but a mean of 4.0; h80's seed 0 scores 0.1 but seed 1 diverges.
# Rung 2 (3 epochs): h20 1.0 < h60 2.0 < h40 2.4: h20 alone trains to 9 epochs.
LOSS = {10: {1: (0.5, 7.5), 3: (0.2, 0.2)}, 20: {1: (2.9, 3.1), 3: (1.1, 0.9)},
        30: {1: (5.0, 5.0)}, 40: {1: (1.0, 4.0), 3: (2.4, 2.4)}, 50: {1: (6.0, 6.0)},
        60: {1: (3.5, 3.5), 3: (2.0, 2.0)}, 70: {1: (7.0, 7.0)}, 80: {1: (0.1, 0.1)},
        90: {1: (4.5, 4.5)}}
EXPECTED = [["hidden_size=40", "hidden_size=20", "hidden_size=60"], ["hidden_size=20"]]


def _loss(h, seed, epoch):
  table = LOSS[h]
  at = max(e for e in table if e <= epoch)
  return table[at][seed] - (0.05 if epoch >= 9 else 0.0)


@pytest.fixture()
def fake_lm(monkeypatch):
  """Replaces loop.train_and_evaluate: trains a point on from the epoch its status.json says
  to config.train.num_epochs, writing one valid event per epoch (loss from LOSS); hidden size
  80 seed 1 diverges at epoch 1; ``fake.interrupt_at`` = (name, budget) is interrupted after
  one epoch. Records (point name, budget) per call."""
  from rnnlm_jax import loop

  class Fake:
    calls: list = []
    interrupt_at = None
    final_only = False  # as the real loop: one valid event per run (at its end), and without a
    #                     checkpoint a re-run starts from epoch 0 (every run ends with a save)

  def fake(config, workdir):
    name, budget = pathlib.Path(workdir).name, config.train.num_epochs
    Fake.calls.append((name, budget))
    wd = Workdir(workdir)
    wd.write_config(config.to_dict())
    start = int((wd.read_status() or {}).get("epoch", 0))
    h, s = config.model.hidden_size, config.seed
    if h == 80 and s == 1:
      wd.write_status("diverged", 10, 1.0, "non-finite loss")
      raise loop.Diverged("non-finite loss")
    epochs = range(start + 1, budget + 1)
    latest = wd.path / "checkpoints" / "latest"
    if Fake.final_only:
      if not latest.is_dir():  # nothing to resume from: metrics truncated, from epoch 0
        (wd.path / "metrics.jsonl").write_text("")
      epochs = [budget]
    with (wd.path / "metrics.jsonl").open("a") as f:
      for e in epochs:
        if Fake.final_only and Fake.interrupt_at == (name, budget):
          wd.write_status("interrupted", 10 * start, float(start), "interrupted by signal 2")
          raise loop.Interrupted("interrupted by signal 2")
        f.write(json.dumps({"split": "valid", "step": 10 * e, "epoch": float(e),
                            "loss": _loss(h, s, e)}) + "\n")
        if Fake.interrupt_at == (name, budget):
          (latest / str(10 * e)).mkdir(parents=True, exist_ok=True)  # saved on the signal
          wd.write_status("interrupted", 10 * e, float(e), "interrupted by signal 2")
          raise loop.Interrupted("interrupted by signal 2")
    (latest / str(10 * budget)).mkdir(parents=True, exist_ok=True)  # the final save
    wd.write_status("finished", 10 * budget, float(budget))
    return {"split": "test"}

  monkeypatch.setattr(loop, "train_and_evaluate", fake)
  return Fake


def _points(seeds=(0, 1)):
  c = config_base.base_config()
  c.train.num_epochs = 9
  return expand(c, product(sweep("model.hidden_size", HIDDEN), sweep("seed", list(seeds))))


def _setup(root, points):
  write_sweep_json(root, sweep_record("x.py", points))
  return halving.make_search(points, eta=3, min_budget=1)


def _search_record(root):
  return json.loads((root / "sweep.json").read_text())["search"]


def _quiet(_):
  pass


def test_rung_budgets_and_rank():
  assert halving.rung_budgets(1, 9, 3) == [1, 3, 9]
  assert halving.rung_budgets(1, 13, 3) == [1, 3, 9, 13]
  assert halving.rung_budgets(2, 9, 2) == [2, 4, 8, 9]
  assert halving.rung_budgets(9, 9, 3) == [9]
  assert halving.rung_budgets(100, 1000, 4) == [100, 400, 1000]
  with pytest.raises(SweepError, match="eta"):
    halving.rung_budgets(1, 9, 1)
  with pytest.raises(SweepError, match="whole numbers"):
    halving.rung_budgets(0.5, 9, 3)
  assert halving.rank({"a": 2.0, "b": 1.0, "c": 2.0}, ["a", "b", "c"], "min") == ["b", "a", "c"]
  assert halving.rank({"a": 2.0, "b": 1.0, "c": 2.0}, ["c", "b", "a"], "max") == ["c", "a", "b"]
  assert halving.mean_score([1.0, float("inf")], "min") == float("inf")
  assert halving.value_at([{"split": "valid", "epoch": 1.0, "loss": 3.0},
                           {"split": "valid", "epoch": 2.0, "loss": 1.0},
                           {"split": "train", "epoch": 1.0, "loss": 0.0}],
                          "loss", "min", "train.num_epochs", 1) == 3.0


def test_promotion_order_and_record(tmp_path, fake_lm):
  pts = _points()
  search = _setup(tmp_path, pts)
  assert (search.key, search.full, search.budgets) == ("train.num_epochs", 9, [1, 3, 9])
  assert (search.metric, search.mode) == ("loss", "min")
  res = halving.run_halving(pts, tmp_path, search, out=_quiet)
  assert res.exit_code == 0 and not res.waiting, res.message
  rec = _search_record(tmp_path)
  assert rec["method"] == "halving" and rec["eta"] == 3 and rec["budget_key"] == "train.num_epochs"
  assert [r["budget"] for r in rec["rungs"]] == [1, 3, 9]
  assert [r["promoted"] for r in rec["rungs"][:2]] == EXPECTED
  assert "promoted" not in rec["rungs"][2] and rec["rungs"][2]["complete"]
  assert rec["rungs"][2]["points"] == ["hidden_size=20,seed=0", "hidden_size=20,seed=1"]
  assert len(rec["rungs"][0]["points"]) == 18 and len(rec["rungs"][1]["points"]) == 6
  scores = rec["rungs"][0]["scores"]
  assert scores["hidden_size=10"] == pytest.approx(4.0)  # seeds judged together: mean
  assert scores["hidden_size=80"] is None  # a diverged seed: its group ranks last
  assert rec["rungs"][1]["scores"]["hidden_size=20"] == pytest.approx(1.0)
  # Each point trained once per rung it is in: 18 + 6 + 2 calls, the budgets in order.
  assert len(fake_lm.calls) == 26
  assert [b for n, b in fake_lm.calls if n == "hidden_size=20,seed=0"] == [1, 3, 9]
  assert [b for n, b in fake_lm.calls if n == "hidden_size=40,seed=1"] == [1, 3]
  status = Workdir(tmp_path / "hidden_size=20,seed=1").read_status()
  assert (status["state"], status["epoch"]) == ("finished", 9.0)
  # Re-running a finished search trains nothing and keeps the record.
  fake_lm.calls.clear()
  res = halving.run_halving(pts, tmp_path, search, out=_quiet)
  assert fake_lm.calls == [] and res.exit_code == 0 and _search_record(tmp_path) == rec


def test_decisions_use_values_up_to_the_rung_budget(tmp_path, fake_lm):
  """Rung 1 is decided by the valid events up to 1 epoch, even once promoted points have
  logged better values later (a late shard recomputes the same decision)."""
  pts = _points()
  search = _setup(tmp_path, pts)
  halving.run_halving(pts, tmp_path, search, out=_quiet)
  rungs = halving.rung_state(tmp_path, pts, search)
  assert [r.get("promoted") for r in rungs[:2]] == EXPECTED
  assert rungs[0]["scores"]["hidden_size=20"] == pytest.approx(3.0)


def test_interruption_between_rungs_resumes(tmp_path, fake_lm):
  pts = _points()
  search = _setup(tmp_path, pts)
  fake_lm.interrupt_at = ("hidden_size=20,seed=0", 3)  # rung 2's first point
  with pytest.raises(SweepInterrupted):
    halving.run_halving(pts, tmp_path, search, out=_quiet)
  assert len(fake_lm.calls) == 19
  rec = _search_record(tmp_path)
  assert rec["rungs"][0]["promoted"] == EXPECTED[0] and not rec["rungs"][1]["complete"]
  fake_lm.calls.clear()
  fake_lm.interrupt_at = None
  res = halving.run_halving(pts, tmp_path, search, out=_quiet)
  assert res.exit_code == 0
  # No rung-1 point is trained again; rung 2 resumes (its interrupted point included).
  assert [b for _, b in fake_lm.calls] == [3] * 6 + [9] * 2
  assert fake_lm.calls[0] == ("hidden_size=20,seed=0", 3)
  assert [r["promoted"] for r in _search_record(tmp_path)["rungs"][:2]] == EXPECTED


def _valid_events(root, points):
  return {p.name: [(e["epoch"], e["loss"]) for e in Workdir(root / p.name).read_metrics()]
          for p in points}


def _search_lost_and_restored(tmp_path, fake_lm):
  """A search run to its end (``ref``), and the same search cut short at rung 2 (h20 and h40
  have finished it, h60 seed 0 is interrupted) whose records only, without checkpoints, are
  copied by scripts/archive_runs.py into ``restored``: (points, search, ref, restored)."""
  from rnnlm_jax.sweeps.spec import import_file
  archive_runs = import_file(REPO / "scripts" / "archive_runs.py")
  fake_lm.final_only = True
  pts = _points()
  ref = tmp_path / "ref"
  search = _setup(ref, pts)
  halving.run_halving(pts, ref, search, out=_quiet)
  lost = tmp_path / "lost"
  _setup(lost, pts)
  fake_lm.interrupt_at = ("hidden_size=60,seed=0", 3)
  with pytest.raises(SweepInterrupted):
    halving.run_halving(pts, lost, search, out=_quiet)
  fake_lm.interrupt_at = None
  restored = tmp_path / "restored"
  archive_runs.archive(lost, restored)
  assert not list(restored.glob("*/checkpoints"))
  return pts, search, ref, restored


def test_search_restored_from_archived_records_ends_as_one_never_stopped(tmp_path, fake_lm):
  """A machine lost mid-search: only the records scripts/archive_runs.py committed survive,
  without checkpoints. The points that must train on (rung 2's unfinished points, the finished
  rung-2 points promoted to rung 3) have their records set aside and train again from epoch 0
  through the earlier rungs' budgets, so the evaluations the decisions read are there again:
  the same decisions and events as a search that was never stopped."""
  pts, search, ref, restored = _search_lost_and_restored(tmp_path, fake_lm)
  fake_lm.calls.clear()
  lines = []
  res = halving.run_halving(pts, restored, search, out=lines.append)
  assert res.exit_code == 0, res.message
  assert any("no checkpoint" in l for l in lines)
  assert _valid_events(restored, pts) == _valid_events(ref, pts)
  assert _search_record(restored)["rungs"] == _search_record(ref)["rungs"]
  # h60 seed 0 (interrupted at rung 2) and h20 (promoted to rung 3) retrained from epoch 0
  assert [b for n, b in fake_lm.calls if n == "hidden_size=20,seed=0"] == [1, 3, 9]
  assert [b for n, b in fake_lm.calls if n == "hidden_size=60,seed=0"] == [1, 3]
  assert [b for n, b in fake_lm.calls if n == "hidden_size=40,seed=0"] == []  # done with rung 2
  assert list((restored / "hidden_size=20,seed=0" / "restored").glob("*/status.json"))


def test_restored_search_with_two_tasks_restores_each_point_once(tmp_path, fake_lm):
  """Restored from records and run by two tasks: each task sets aside and retrains only the
  restored points of its own share (the ones it trains at the rung), never the other's, and
  the search ends as one never stopped."""
  pts, search, ref, restored = _search_lost_and_restored(tmp_path, fake_lm)
  set_aside = lambda: sorted(d.parent.name for d in restored.glob("*/restored"))
  r0 = halving.run_halving(pts, restored, search, task_index=0, num_tasks=2, out=_quiet)
  assert r0.waiting, r0.message
  mine = set_aside()
  assert mine and all(n.endswith("seed=0") for n in mine)  # task 0's share only
  r1 = halving.run_halving(pts, restored, search, task_index=1, num_tasks=2, wait_s=600,
                           poll_s=30, out=_quiet, sleep=lambda s: halving.run_halving(
                               pts, restored, search, task_index=0, num_tasks=2, out=_quiet))
  assert r1.exit_code == 0, r1.message
  r0 = halving.run_halving(pts, restored, search, task_index=0, num_tasks=2, out=_quiet)
  assert r0.exit_code == 0, r0.message
  assert all(len(list((restored / n / "restored").iterdir())) == 1 for n in set_aside())
  assert _valid_events(restored, pts) == _valid_events(ref, pts)
  assert _search_record(restored)["rungs"] == _search_record(ref)["rungs"]


def test_shards_take_the_same_decisions(tmp_path, fake_lm):
  pts = _points()
  one = tmp_path / "one"
  halving.run_halving(pts, one, _setup(one, pts), out=_quiet)
  alone = sorted(fake_lm.calls)
  fake_lm.calls.clear()

  two = tmp_path / "two"
  search = _setup(two, pts)
  # Task 0 trains its share of rung 1 and returns: the rung waits for task 1's points.
  r0 = halving.run_halving(pts, two, search, task_index=0, num_tasks=2, out=_quiet)
  assert r0.waiting and r0.exit_code == halving.EXIT_WAITING and "waits for 9 point" in r0.message
  assert len(fake_lm.calls) == 9 and all(n.endswith("seed=0") for n, _ in fake_lm.calls)
  # Task 1 (waiting, polling) finishes rung 1; while it sleeps, task 0 is run again.
  naps = []

  def sleep(s):
    naps.append(s)
    halving.run_halving(pts, two, search, task_index=0, num_tasks=2, out=_quiet)

  r1 = halving.run_halving(pts, two, search, task_index=1, num_tasks=2, wait_s=600, poll_s=30,
                           out=_quiet, sleep=sleep)
  assert r1.exit_code == 0, r1.message
  assert naps  # it did wait for task 0
  r0 = halving.run_halving(pts, two, search, task_index=0, num_tasks=2, out=_quiet)
  assert r0.exit_code == 0
  assert sorted(fake_lm.calls) == alone  # the same points trained to the same budgets
  assert _search_record(two) == _search_record(one)


def test_seeds_are_judged_together(tmp_path, fake_lm):
  """With seed 0 alone, h10 (0.5) and h80 (0.1) would be promoted; with both seeds they are
  not (means 4.0 and a divergence)."""
  solo = tmp_path / "solo"
  pts = _points(seeds=(0,))
  halving.run_halving(pts, solo, _setup(solo, pts), out=_quiet)
  assert _search_record(solo)["rungs"][0]["promoted"] == [
      "hidden_size=80", "hidden_size=10", "hidden_size=40"]
  both = tmp_path / "both"
  pts = _points()
  halving.run_halving(pts, both, _setup(both, pts), out=_quiet)
  assert _search_record(both)["rungs"][0]["promoted"] == EXPECTED[0]
  assert halving.group_name(pts[1]) == "hidden_size=10"


def test_refusals(tmp_path):
  pts = _points()
  with pytest.raises(SweepError, match="eta"):
    halving.make_search(pts, eta=1, min_budget=1)
  search = _setup(tmp_path, pts)
  halving.write_search(tmp_path, search, [])
  other = halving.make_search(pts, eta=2, min_budget=1)
  with pytest.raises(SweepError, match="eta=3"):
    halving.check_search(tmp_path, other)
  syn = expand(config_base.synthetic_config(), sweep("seed", [0, 1]))
  with pytest.raises(SweepError, match="synthetic"):
    halving.make_search(syn, eta=3, min_budget=1)
  c = config_base.base_config()
  c.train.max_steps = 900
  steps = expand(c, sweep("seed", [0, 1]))
  s = halving.make_search(steps, eta=3, min_budget=100)
  assert (s.key, s.budgets) == ("train.max_steps", [100, 300, 900])


def test_report_shows_the_rungs(tmp_path, fake_lm):
  pts = _points()
  halving.run_halving(pts, tmp_path, _setup(tmp_path, pts), out=_quiet)
  text = render.halving_section(_search_record(tmp_path))
  assert "## Successive halving" in text
  assert "| 1 | 1 | 9 | 18 | hidden_size=40, hidden_size=20, hidden_size=60 |" in text
  assert "| 2 | 3 | 3 | 6 | hidden_size=20 |" in text
  assert "| 3 | 9 | 1 | 2 | (full budget) |" in text


# slow: the default run took 7:54 and 8:41 in two clean clones on an AVX2 host (2026-12-07)
@pytest.mark.slow
def test_cli_dry_run(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  args = [sys.executable, "-m", "rnnlm_jax.sweep_main", "--config", "configs/sweeps/tiny_lm.py",
          "--workdir", str(tmp_path / "w"), "--search=halving", "--config.train.max_steps=9"]
  out = subprocess.run(args + ["--min_budget=1", "--dry_run"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert "halving rung 1: train.max_steps=1, 4 groups (4 points)" in out.stdout
  assert "halving rung 2: train.max_steps=3, 1 groups (1 points)" in out.stdout
  assert "halving rung 3: train.max_steps=9, 1 groups (1 points)" in out.stdout
  bad = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and "needs --min_budget" in bad.stderr
  assert not (tmp_path / "w").exists()
