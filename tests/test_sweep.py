"""Sweeps: units and shards (rnnlm_jax.sweeps.plan), sweep.json, skip/resume and failure
handling (rnnlm_jax.sweeps.run), the rnnlm-sweep CLI. The spec is tested in test_sweep_spec.py."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

from rnnlm_jax import config_base
from rnnlm_jax.sweeps.plan import plan, shard
from rnnlm_jax.sweeps.run import (SweepInterrupted, check_workdir, run_sweep, sweep_record,
                                  write_sweep_json)
from rnnlm_jax.sweeps.spec import SweepError, expand, product, sweep
from rnnlm_jax.workdir import Workdir

from helpers import register_fake_synthetic

REPO = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- plan / shards


@pytest.fixture()
def fake_synthetic(monkeypatch, tmp_path):
  """A stand-in for the synthetic task (rnnlm_jax.tasks.synthetic) in the task registry:
  groups by everything but the seed; train_group records its calls and writes each point's
  status (state from config.train.max_steps: 1 -> diverged, 2 -> raise for the whole group,
  else finished)."""
  mod = types.ModuleType("fake_synthetic_task")
  mod.calls = []

  def vmap_group_key(config):
    d = config.to_dict()
    d.pop("seed")
    return json.dumps(d, sort_keys=True)

  def train_group(configs, workdirs, vmap=True):
    mod.calls.append(([c.seed for c in configs], [pathlib.Path(w).name for w in workdirs], vmap))
    if any(c.train.max_steps == 2 for c in configs):
      raise RuntimeError("group exploded")
    out = []
    for c, w in zip(configs, workdirs):
      wd = Workdir(w)
      wd.path.mkdir(parents=True, exist_ok=True)
      state = "diverged" if c.train.max_steps == 1 else "finished"
      wd.write_status(state, 7, 0.0, "nan at step 7" if state == "diverged" else "", success=True)
      out.append(wd.read_status())
    return out

  register_fake_synthetic(monkeypatch, mod, vmap_group_key, train_group)
  return mod


def _check_shards(units, points, n):
  seen = []
  for i in range(n):
    mine = shard(units, i, n)
    for u in mine:
      assert len({p.unit for p in u}) == 1  # a unit is never split
      assert all(p.shard == i for p in u)
    seen += [p.index for u in mine for p in u]
  assert sorted(seen) == [p.index for p in points]  # every point exactly once
  sizes = [len(shard(units, i, n)) for i in range(n)]
  assert max(sizes) - min(sizes) <= 1  # round-robin over units


def test_sharding_covers_every_point_once(fake_synthetic):
  lm = expand(config_base.base_config(),
              product(sweep("model.cell", ["lstm", "gru", "rnn_tanh"]), sweep("seed", [0, 1, 2])))
  for n in (1, 2, 3, 4, 7, 9, 12):
    units = plan(lm, n)
    assert [len(u) for u in units] == [1] * 9  # LM points run one at a time
    _check_shards(units, lm, n)
  assert [p.shard for p in lm] == [i % 12 for i in range(9)]

  syn = expand(config_base.synthetic_config(),
               product(sweep("model.cell", ["rnn_tanh", "lstm", "gru"]),
                       sweep("synthetic.length", [50, 100]), sweep("seed", [0, 1, 2])))
  for n in (1, 2, 3, 4, 5, 6, 7):
    units = plan(syn, n)
    assert len(units) == 6 and all(len(u) == 3 for u in units)  # 3 seeds vmapped together
    assert [[p.index for p in u] for u in units][:2] == [[0, 1, 2], [3, 4, 5]]
    _check_shards(units, syn, n)
  units = plan(syn, 4, vmap=False)
  assert len(units) == 18 and all(p.group_key == "" for p in syn)
  _check_shards(units, syn, 4)
  with pytest.raises(SweepError, match="task_index"):
    shard(units, 4, 4)
  with pytest.raises(SweepError, match="task_index"):
    shard(units, -1, 4)


# ----------------------------------------------------------------------------- running


@pytest.fixture()
def fake_lm(monkeypatch):
  """Replaces loop.train_and_evaluate: records (point dir, seed); the behaviour is chosen by
  model.cell: gru raises without writing a status, rnn_relu diverges (status written, then
  loop.Diverged), rnn_tanh is interrupted, others finish."""
  from rnnlm_jax import loop
  calls = []

  def fake(config, workdir):
    calls.append((pathlib.Path(workdir).name, config.seed))
    wd = Workdir(workdir)
    wd.write_config(config.to_dict())
    wd.write_status("running", 0, 0.0)
    if config.model.cell == "gru":
      raise RuntimeError("boom\nsecond line")
    if config.model.cell == "rnn_relu":
      wd.write_status("diverged", 3, 0.1, "non-finite loss or gradient at step 3")
      raise loop.Diverged("non-finite loss")
    if config.model.cell == "rnn_tanh":
      wd.write_status("interrupted", 2, 0.1, "interrupted by signal 2 at step 2")
      raise loop.Interrupted("interrupted by signal 2 at step 2")
    wd.write_status("finished", 5, 1.0)
    return {"split": "test"}

  monkeypatch.setattr(loop, "train_and_evaluate", fake)
  return calls


def _lm_points(cells, seeds=(0,)):
  c = config_base.base_config()
  return expand(c, product(sweep("model.cell", cells), sweep("seed", list(seeds))))


def _state(root, name):
  return json.loads((root / name / "status.json").read_text())


def test_skip_finished_and_resume_failed(tmp_path, fake_lm):
  pts = _lm_points(["lstm", "gru"], seeds=(0, 1))
  lines = []
  res = run_sweep(plan(pts), tmp_path, out=lines.append)
  assert [c[0] for c in fake_lm] == [p.name for p in pts]
  assert res.states == {"cell=lstm,seed=0": "finished", "cell=lstm,seed=1": "finished",
                        "cell=gru,seed=0": "failed", "cell=gru,seed=1": "failed"}
  assert res.exit_code == 1 and res.counts() == {"finished": 2, "diverged": 0, "failed": 2}
  st = _state(tmp_path, "cell=gru,seed=0")  # trainer left "running": the sweep wrote "failed"
  assert st["state"] == "failed" and st["reason"] == "RuntimeError: boom"
  assert any("start cell=gru,seed=0" in l for l in lines)
  assert any(l.startswith("[sweep 3/4] failed cell=gru,seed=0") and " s: RuntimeError: boom" in l
             for l in lines)
  finished_status = _state(tmp_path, "cell=lstm,seed=0")

  fake_lm.clear()
  res = run_sweep(plan(pts), tmp_path, out=lines.append)
  assert [c[0] for c in fake_lm] == ["cell=gru,seed=0", "cell=gru,seed=1"]  # only the failed
  assert sorted(res.skipped) == ["cell=lstm,seed=0", "cell=lstm,seed=1"]
  assert _state(tmp_path, "cell=lstm,seed=0") == finished_status  # untouched
  assert "(2 already done, skipped)" in res.summary()


def test_diverged_point_recorded_others_finish(tmp_path, fake_lm):
  pts = _lm_points(["rnn_relu", "lstm"], seeds=(0, 1))
  res = run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert len(fake_lm) == 4  # the sweep went on after the divergence
  assert res.states["cell=rnn_relu,seed=0"] == "diverged"
  assert res.states["cell=lstm,seed=1"] == "finished"
  assert res.exit_code == 0  # diverged counts as done
  st = _state(tmp_path, "cell=rnn_relu,seed=0")
  assert (st["state"], st["step"], st["reason"]) == (
      "diverged", 3, "non-finite loss or gradient at step 3")
  fake_lm.clear()
  run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert fake_lm == []  # diverged points are not re-run (deterministic)


def test_interrupt_stops_the_sweep(tmp_path, fake_lm):
  pts = _lm_points(["lstm", "rnn_tanh", "gru"])
  with pytest.raises(SweepInterrupted) as ei:
    run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert [c[0] for c in fake_lm] == ["cell=lstm,seed=0", "cell=rnn_tanh,seed=0"]  # gru not run
  assert ei.value.result.states == {"cell=lstm,seed=0": "finished",
                                    "cell=rnn_tanh,seed=0": "failed"}
  assert not (tmp_path / "cell=gru,seed=0").exists()


def test_synthetic_groups_and_partial_resume(tmp_path, fake_synthetic):
  base = config_base.synthetic_config()
  ov = product(sweep("train.max_steps", [100, 1, 2]), sweep("seed", [0, 1]))
  pts = expand(base, ov)
  res = run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert fake_synthetic.calls == [
      ([0, 1], ["max_steps=100,seed=0", "max_steps=100,seed=1"], "auto"),
      ([0, 1], ["max_steps=1,seed=0", "max_steps=1,seed=1"], "auto"),
      ([0, 1], ["max_steps=2,seed=0", "max_steps=2,seed=1"], "auto")]
  assert res.states == {"max_steps=100,seed=0": "finished", "max_steps=100,seed=1": "finished",
                        "max_steps=1,seed=0": "diverged", "max_steps=1,seed=1": "diverged",
                        "max_steps=2,seed=0": "failed", "max_steps=2,seed=1": "failed"}
  assert _state(tmp_path, "max_steps=2,seed=1")["reason"] == "RuntimeError: group exploded"
  assert _state(tmp_path, "max_steps=100,seed=0")["success"] is True  # trainer's extra fields

  # One point of a finished group is lost: only it is retrained; --no_vmap: one per call.
  (tmp_path / "max_steps=100,seed=1" / "status.json").unlink()
  fake_synthetic.calls.clear()
  run_sweep(plan(pts, vmap=False), tmp_path, vmap=False, out=lambda s: None)
  assert fake_synthetic.calls == [([1], ["max_steps=100,seed=1"], False),
                                  ([0], ["max_steps=2,seed=0"], False),
                                  ([1], ["max_steps=2,seed=1"], False)]


def test_workdir_checks(tmp_path, fake_lm):
  base = config_base.base_config()
  pts = expand(base, sweep("model.cell", ["lstm"]))
  record = sweep_record("configs/sweeps/x.py", pts)
  assert record == {"config": "configs/sweeps/x.py", "keys": ["model.cell"],
                    "points": [{"name": "cell=lstm", "overrides": {"model.cell": "lstm"}}]}
  check_workdir(tmp_path, record, pts)
  write_sweep_json(tmp_path, record)
  run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert json.loads((tmp_path / "sweep.json").read_text()) == record
  assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
  check_workdir(tmp_path, record, pts)  # same sweep: fine
  other = expand(base, sweep("model.cell", ["lstm", "gru"]))
  with pytest.raises(SweepError, match=r"sweep\.json was written for a different sweep.*"
                                       r"1 points before, 2 now; new: \['cell=gru'\]"):
    check_workdir(tmp_path, sweep_record("x.py", other), other)
  base.train.max_steps = 7  # resumable: allowed
  longer = expand(base, sweep("model.cell", ["lstm"]))
  check_workdir(tmp_path, sweep_record("x.py", longer), longer)
  base.model.hidden_size = 7  # changes what is computed: refused
  changed = expand(base, sweep("model.cell", ["lstm"]))
  with pytest.raises(SweepError, match=r"point cell=lstm: .*model\.hidden_size: 200 -> 7"):
    check_workdir(tmp_path, sweep_record("x.py", changed), changed)


# ----------------------------------------------------------------------------- CLI


def _cli(args, **kw):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "rnnlm_jax.sweep_main", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300, **kw)


def _corpus(path: pathlib.Path) -> pathlib.Path:
  rng = np.random.default_rng(0)
  nouns, verbs = [f"n{i}" for i in range(8)], [f"v{i}" for i in range(4)]
  lines = [f"the {rng.choice(nouns)} {rng.choice(verbs)} the {rng.choice(nouns)} ."
           for _ in range(200)]
  path.write_text("\n".join(lines) + "\n")
  return path


@pytest.mark.slow  # 32 s; CI runs it after the default suite (.ci/run)
def test_cli_end_to_end_tiny_lm(tmp_path):
  corpus = _corpus(tmp_path / "corpus.txt")
  wd = tmp_path / "sweep"
  args = ["--config", "configs/sweeps/tiny_lm.py", "--workdir", str(wd),
          "--config.data.name=text_file", f"--config.data.path={corpus}",
          f"--config.data.tfds_dir={tmp_path / 'tfds'}", "--config.train.max_steps=3"]
  dry = _cli(args + ["--dry_run", "--num_tasks=3", "--task_index=1"])
  assert dry.returncode == 0, dry.stderr
  assert "cell=lstm,clip_mode=none,seed=0" in dry.stdout and "shard=1" in dry.stdout
  assert not wd.exists()  # a dry run writes nothing

  names = ["cell=rnn_tanh,clip_mode=none,seed=0", "cell=rnn_tanh,clip_mode=global_norm,seed=0",
           "cell=lstm,clip_mode=none,seed=0", "cell=lstm,clip_mode=global_norm,seed=0"]
  one = _cli(args + [f"--point={names[2]}"])  # only that point trains
  assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
  assert one.stdout.count("] start ") == 1 and f"] start {names[2]}" in one.stdout, one.stdout
  assert [(wd / n / "status.json").exists() for n in names] == [False, False, True, False]

  first = _cli(args)  # the rest
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  rec = json.loads((wd / "sweep.json").read_text())
  assert rec["config"] == "configs/sweeps/tiny_lm.py"
  assert rec["keys"] == ["model.cell", "optim.clip_mode", "seed"]
  assert [p["name"] for p in rec["points"]] == names
  statuses = {}
  for n in names:
    st = _state(wd, n)
    assert (st["state"], st["step"]) == ("finished", 3), (n, st)
    cfg = json.loads((wd / n / "config.json").read_text())
    assert cfg["model"]["cell"] == n.split(",")[0].split("=")[1]
    assert cfg["optim"]["clip_mode"] == n.split(",")[1].split("=")[1]
    assert any(json.loads(l)["split"] == "test" for l in (wd / n / "metrics.jsonl").open())
    statuses[n] = st
  assert first.stdout.count("] start ") == 3 and first.stdout.count("] finished ") == 3
  assert f"] skip {names[2]}" in first.stdout
  assert "4 points: finished 4, diverged 0, failed 0" in first.stdout

  second = _cli(args)
  assert second.returncode == 0, second.stderr
  assert second.stdout.count("] skip ") == 4 and "] start " not in second.stdout
  assert {n: _state(wd, n) for n in names} == statuses  # nothing rewritten

  # Bad input: one error line, exit 2, nothing changed.
  bad = _cli(args + ["--task_index=2", "--num_tasks=2"])
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: need 0")
  bad = _cli(args + ["--point=cell=gru,seed=0"])
  assert bad.returncode == 2 and "--point=cell=gru,seed=0 is not a point" in bad.stderr
  bad = _cli(args + ["--config.model.cell=gru"])
  assert bad.returncode == 2 and "--config.model.cell sets a key the sweep varies" in bad.stderr
  bad = _cli(args[:-1] + ["--config.model.hidden_size=8"])
  assert bad.returncode == 2 and "model.hidden_size: 32 -> 8" in bad.stderr
  other = tmp_path / "other.py"
  other.write_text("from rnnlm_jax.config_base import base_config\n"
                   "from rnnlm_jax.sweeps.spec import sweep\n"
                   "def get_config():\n  return base_config()\n"
                   "def get_sweep():\n  return sweep('model.cel', ['gru'])\n")
  bad = _cli(["--config", str(other), "--workdir", str(tmp_path / "w2")])
  assert bad.returncode == 2 and "unknown config key 'model.cel'" in bad.stderr
  assert not (tmp_path / "w2").exists()
  other.write_text(other.read_text().replace("'model.cel', ['gru']", "'seed', [5]"))
  bad = _cli(["--config", str(other), "--workdir", str(wd)])
  assert bad.returncode == 2 and "sweep.json was written for a different sweep" in bad.stderr


def test_lengthened_run_trains_finished_points_on(tmp_path, fake_lm):
  """``--config.train.num_epochs=N`` on a finished sweep continues its LM points."""
  pts = _lm_points(["lstm"], seeds=(0, 1))
  run_sweep(plan(pts), tmp_path, out=lambda s: None)
  fake_lm.clear()
  run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert fake_lm == []  # same run length: skipped
  base = config_base.base_config()
  base.train.num_epochs = 20
  longer = expand(base, product(sweep("model.cell", ["lstm"]), sweep("seed", [0, 1])))
  res = run_sweep(plan(longer), tmp_path, out=lambda s: None)
  assert [c[0] for c in fake_lm] == ["cell=lstm,seed=0", "cell=lstm,seed=1"]
  assert res.skipped == [] and res.exit_code == 0


def test_point_trained_by_another_process_is_skipped_untouched(tmp_path, fake_lm):
  """A point whose workdir lock another process holds (another shard, a run by hand) is
  skipped as "running elsewhere": not trained, its status not rewritten."""
  pts = _lm_points(["lstm"], seeds=(0, 1))
  other = Workdir(tmp_path / pts[0].name)
  other.acquire()  # another open file description: conflicts like another process
  other.write_status("running", 3, 0.1)
  try:
    lines = []
    res = run_sweep(plan(pts), tmp_path, out=lines.append)
  finally:
    other.release()
  assert [c[0] for c in fake_lm] == [pts[1].name]
  assert res.states[pts[0].name] == "running" and "running elsewhere (pid" in lines[0]
  assert _state(tmp_path, pts[0].name)["step"] == 3


def test_stale_point_is_reported_and_resumed(tmp_path, fake_lm):
  """A point left "running" by a killed process (its lock free) is said to be stale and
  trained again (resumed)."""
  pts = _lm_points(["lstm"])
  wd = Workdir(tmp_path / pts[0].name)
  wd.acquire()
  wd.write_status("running", 3, 0.1)
  wd.release()  # as when the process is killed
  lines = []
  res = run_sweep(plan(pts), tmp_path, out=lines.append)
  assert "stale: its last run was killed; resuming" in lines[0]
  assert [c[0] for c in fake_lm] == [pts[0].name] and res.states[pts[0].name] == "finished"
