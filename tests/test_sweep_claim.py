"""Sweep workers sharing one directory (issue 24): every point is claimed under its workdir lock
(rnnlm_jax.sweeps.run.claim), so concurrent workers (array-job shards, ``rnnlm-sweep --claim``)
train each point once; sweep.json created by several workers at once stays whole.

The fast tests use a fake trainer that locks its workdir as the real one does (it borrows the
lock the sweep lends) and counts its trainings; workers are threads, whose separate lock files
conflict like separate processes' (``fcntl.flock`` locks belong to an open file). The slow test
runs three real ``rnnlm-sweep --claim`` processes on a tiny language-model sweep.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import types

import pytest
from helpers import make_corpus, register_fake_synthetic

from rnnlm_jax import config_base
from rnnlm_jax.sweeps.plan import plan, shard
from rnnlm_jax.sweeps.run import check_workdir, run_sweep, sweep_record, write_sweep_json
from rnnlm_jax.sweeps.spec import expand, product, sweep
from rnnlm_jax.workdir import Workdir, WorkdirBusy

REPO = pathlib.Path(__file__).resolve().parent.parent


def _train(wd: Workdir, config, trained: list, pause_s: float) -> dict:
  """What a fake training does, under ``wd``'s lock: count, pause, finish."""
  trained.append(wd.path.name)
  wd.write_config(config.to_dict())
  wd.write_status("running", 0, 0.0)
  time.sleep(pause_s)
  wd.write_status("finished", 5, 1.0)
  return wd.read_status()


@pytest.fixture()
def fake_lm(monkeypatch):
  """Replaces loop.train_and_evaluate by a trainer that takes its workdir's lock (as the real
  one does: refused while another worker holds it), appends the point's name to ``trained``
  and finishes after ``pause_s``."""
  from rnnlm_jax import loop
  fake = types.SimpleNamespace(trained=[], pause_s=0.0)

  def train_and_evaluate(config, workdir):
    wd = Workdir(workdir)
    wd.acquire()
    try:
      return _train(wd, config, fake.trained, fake.pause_s)
    finally:
      wd.release()

  monkeypatch.setattr(loop, "train_and_evaluate", train_and_evaluate)
  return fake


@pytest.fixture()
def fake_synthetic(monkeypatch):
  """A synthetic-like task whose points differ in seed only form one unit (vmapped group);
  ``train_group`` locks every member's workdir (as the real one does) and trains them."""
  mod = types.ModuleType("fake_claim_synthetic")
  mod.trained, mod.groups = [], []

  def group_key(config):
    d = config.to_dict()
    d.pop("seed")
    return json.dumps(d, sort_keys=True)

  def train_group(configs, workdirs, vmap=True):
    wds = [Workdir(w) for w in workdirs]
    mod.groups.append([wd.path.name for wd in wds])
    held = []
    try:
      for wd in wds:
        wd.acquire()
        held.append(wd)
      return [_train(wd, c, mod.trained, 0.01) for wd, c in zip(wds, configs)]
    finally:
      for wd in held:
        wd.release()

  register_fake_synthetic(monkeypatch, mod, group_key, train_group)
  return mod


def _lm_points(n_seeds: int):
  return expand(config_base.base_config(),
                product(sweep("model.cell", ["lstm", "gru"]), sweep("seed", list(range(n_seeds)))))


def _in_another_worker(fn):
  """``fn()`` in a thread of its own (its locks conflict with this thread's like another
  process's, and it cannot borrow a lock this thread lends); returns its result."""
  out = []
  t = threading.Thread(target=lambda: out.append(fn()))
  t.start()
  t.join(30)
  return out[0]


def _other_worker_trains(path: pathlib.Path, config, trained: list) -> bool:
  """Another worker's whole turn on a point: take its lock (or give up), train it, let go."""

  def turn():
    wd = Workdir(path)
    try:
      wd.acquire()
    except WorkdirBusy:
      return False
    try:
      _train(wd, config, trained, 0.0)
    finally:
      wd.release()
    return True

  return _in_another_worker(turn)


def _can_take(path: pathlib.Path) -> bool:
  """Whether another worker could lock ``path`` now (it lets go at once)."""
  return _in_another_worker(lambda: _try_lock(path))


def _try_lock(path: pathlib.Path) -> bool:
  wd = Workdir(path)
  try:
    wd.acquire()
  except WorkdirBusy:
    return False
  wd.release()
  return True


# ----------------------------------------------------------------------------- the lock race


@pytest.mark.parametrize("when", ["before_our_lock", "while_we_hold_it"])
def test_point_taken_by_another_worker_around_the_claim_is_trained_once(
    tmp_path, fake_lm, monkeypatch, when):
  """Another worker trains the first point right before this worker locks it (formerly:
  after this worker had read its status, so it was trained again, its final evaluation
  redone), or tries to while this worker holds it. Either way it is trained once."""
  pts = _lm_points(1)
  target = tmp_path / pts[0].name
  other = {}
  real_acquire, real_read = Workdir.acquire, Workdir.read_status

  def other_comes(now: bool, path: pathlib.Path):
    if now and path == target and not other:
      other["came"] = True
      other["took"] = _other_worker_trains(target, pts[0].config, fake_lm.trained)

  def acquire(self):  # the other worker gets there first, once
    other_comes(when == "before_our_lock", self.path)
    return real_acquire(self)

  def read_status(self):  # the other worker comes while this one decides, once
    other_comes(when == "while_we_hold_it", self.path)
    return real_read(self)

  monkeypatch.setattr(Workdir, "acquire", acquire)
  monkeypatch.setattr(Workdir, "read_status", read_status)
  lines = []
  res = run_sweep(plan(pts), tmp_path, out=lines.append)
  assert collections.Counter(fake_lm.trained) == {p.name: 1 for p in pts}
  assert res.exit_code == 0 and set(res.states.values()) == {"finished"}
  if when == "before_our_lock":
    assert other["took"] and res.skipped == [pts[0].name]
    assert lines[0] == f"[sweep 1/2] skip {pts[0].name}: already finished (step 5)"
  else:
    assert not other["took"] and res.skipped == []
    assert lines[0] == f"[sweep 1/2] start {pts[0].name}"


def test_lock_is_held_from_the_decision_to_the_final_status(tmp_path, fake_lm, monkeypatch):
  """No other worker can take a point while this one trains it or writes its final status
  (the trainer borrows the sweep's lock and gives it back; the sweep releases it last)."""
  pts = _lm_points(1)[:1]
  probes = []
  real_write = Workdir.write_status

  def write_status(self, state, *a, **kw):
    probes.append((state, _can_take(self.path)))
    return real_write(self, state, *a, **kw)

  monkeypatch.setattr(Workdir, "write_status", write_status)
  from rnnlm_jax import loop
  monkeypatch.setattr(loop, "train_and_evaluate", lambda c, w: None)  # leaves no status
  res = run_sweep(plan(pts), tmp_path, out=lambda s: None)
  assert probes == [("failed", False)]  # the sweep's own "failed", under its lock
  assert res.exit_code == 1 and Workdir(tmp_path / pts[0].name).holder() is None


# ----------------------------------------------------------------------------- workers


def _workers(n: int, run) -> list:
  """Run ``run(k)`` in ``n`` threads started together; their results (errors re-raised)."""
  start = threading.Barrier(n)
  results, errors = [None] * n, []

  def work(k):
    try:
      start.wait()
      results[k] = run(k)
    except BaseException as e:  # noqa: BLE001  re-raised in the test
      errors.append(e)

  threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(60)
  if errors:
    raise errors[0]
  return results


def _worker(tmp_path, pts, units):
  """One worker as rnnlm-sweep runs it: check the directory, write sweep.json, run."""
  record = sweep_record("configs/sweeps/x.py", pts)

  def run(k):
    lines = []
    check_workdir(tmp_path, record, pts)
    write_sweep_json(tmp_path, record)
    res = run_sweep(units(k), tmp_path, out=lines.append)
    return res, lines

  return record, run


@pytest.mark.parametrize("split", ["claim", "shards"])
def test_three_workers_train_every_point_exactly_once(tmp_path, fake_lm, split):
  """Three workers on one directory, all going through every point (--claim), or array-job
  shards re-run while the first attempt's tasks still run (each task meets points another
  holds or finished): each point trained once, all finished, sweep.json whole."""
  pts = _lm_points(6)
  fake_lm.pause_s = 0.02
  units = plan(pts)
  mine = (lambda k: units) if split == "claim" else (lambda k: shard(units, k % 2, 2))
  record, run = _worker(tmp_path, pts, mine)
  results = _workers(3, run)
  assert collections.Counter(fake_lm.trained) == {p.name: 1 for p in pts}
  assert json.loads((tmp_path / "sweep.json").read_text()) == record
  assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
  for p in pts:
    assert Workdir(tmp_path / p.name).read_status()["state"] == "finished"
  started = collections.Counter(line.split()[3] for _, lines in results for line in lines
                                if line.split()[2] == "start")
  assert started == {p.name: 1 for p in pts}
  for res, lines in results:
    assert res.exit_code == 0  # a point running elsewhere is no failure
    assert all(s in ("finished", "running") for s in res.states.values())
    elsewhere = sum(s == "running" for s in res.states.values())
    assert (f"{elsewhere} running elsewhere, skipped" in res.summary()) == (elsewhere > 0)
  if split == "claim":  # every worker accounts for every point
    assert all(len(res.states) == len(pts) for res, _ in results)


def test_three_workers_claim_synthetic_groups(tmp_path, fake_synthetic):
  """Synthetic units (vmapped groups of seeds): a worker trains the points of a unit it
  claimed as one group; none is trained twice."""
  base = config_base.synthetic_config()
  pts = expand(base, product(sweep("synthetic.length", [50, 100, 150]),
                             sweep("seed", [0, 1, 2, 3])))
  units = plan(pts)
  assert [len(u) for u in units] == [4, 4, 4]
  _, run = _worker(tmp_path, pts, lambda k: units)
  _workers(3, run)
  assert collections.Counter(fake_synthetic.trained) == {p.name: 1 for p in pts}
  groups_of = {p.name: p.unit for p in pts}
  assert all(len({groups_of[n] for n in g}) == 1 for g in fake_synthetic.groups)


def test_concurrent_creation_of_sweep_json(tmp_path):
  """Workers starting at once, some checking while others write: none fails, the file is
  whole and the same sweep's, no temporary file is left."""
  pts = _lm_points(2)
  record = sweep_record("configs/sweeps/x.py", pts)
  for round_ in range(10):
    d = tmp_path / f"r{round_}"

    def run(k, d=d):
      for _ in range(5):
        check_workdir(d, record, pts)
        write_sweep_json(d, record)

    _workers(6, run)
    assert json.loads((d / "sweep.json").read_text()) == record
    assert [p.name for p in d.iterdir()] == ["sweep.json"]


# ----------------------------------------------------------------------------- CLI


def _cli(args, **kw):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", "rnnlm_jax.sweep_main", *args], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **kw)


def test_cli_claim_refuses_a_static_split_and_halving(tmp_path):
  args = ["--config", "configs/sweeps/tiny_lm.py", "--workdir", str(tmp_path / "w"), "--claim"]
  for extra, says in ((["--num_tasks=2"], "error: --claim takes points as workers get to them"),
                      (["--search=halving", "--min_budget=1"],
                       "error: --claim cannot be combined with --search=halving")):
    proc = _cli(args + extra)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1 and err.startswith(says)
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cli_three_claiming_workers_on_one_directory(tmp_path):
  """Three ``rnnlm-sweep --claim`` processes started together on a tiny LM sweep (4 points):
  all exit 0; each point started by one worker, trained in one invocation (provenance.json),
  tested once; sweep.json is the sweep's record."""
  corpus = make_corpus(tmp_path / "corpus.txt", num_lines=200)
  wd = tmp_path / "sweep"
  args = ["--config", "configs/sweeps/tiny_lm.py", "--workdir", str(wd), "--claim",
          "--config.data.name=text_file", f"--config.data.path={corpus}",
          f"--config.data.tfds_dir={tmp_path / 'tfds'}", "--config.train.max_steps=3"]
  dry = _cli(args + ["--dry_run"])
  out, _ = dry.communicate(timeout=300)
  assert dry.returncode == 0 and "* = claimed by any worker" in out and "shard=" not in out
  assert not wd.exists()
  procs = [_cli(args) for _ in range(3)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, out[-3000:] + err[-3000:]
  rec = json.loads((wd / "sweep.json").read_text())
  names = [p["name"] for p in rec["points"]]
  assert len(names) == 4 and rec["config"] == "configs/sweeps/tiny_lm.py"
  started = collections.Counter(line.split()[3] for out, _ in outs for line in out.splitlines()
                                if line.startswith("[sweep ") and line.split()[2] == "start")
  assert started == {n: 1 for n in names}, [o for o, _ in outs]
  for n in names:
    assert json.loads((wd / n / "status.json").read_text())["state"] == "finished"
    assert len(json.loads((wd / n / "provenance.json").read_text())["runs"]) == 1
    events = [json.loads(line) for line in (wd / n / "metrics.jsonl").open()]
    assert sum(e["split"] == "test" for e in events) == 1
  assert all("claims from 4 points" in out for out, _ in outs)
