"""The synthetic-task trainer: hand-written backward passes, vmapped groups, divergence, resume."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, config_base, rnn
from rnnlm_jax.tasks import synthetic as ts
from rnnlm_jax.models import synthetic as model
from rnnlm_jax.synthetic import tasks as tasks_lib
from rnnlm_jax.workdir import MetricWriter, config_conflicts


def small_config(seed=0, **kw):
  c = config_base.synthetic_config()
  c.seed = seed
  c.synthetic.problem = kw.get("task", "temporal_order")
  c.synthetic.length = kw.get("length", 20)
  c.synthetic.test_size = 500
  c.model.cell = kw.get("cell", "rnn_tanh")
  c.model.hidden_size = 8
  c.model.init = kw.get("init", "smart_tanh" if c.model.cell == "rnn_tanh" else "uniform")
  c.optim.clip_mode = kw.get("clip_mode", "global_norm")
  c.optim.clip_value = kw.get("clip_value", 1.0)
  c.optim.omega_weight = kw.get("omega_weight", 0.0)
  c.optim.learning_rate = kw.get("learning_rate", 0.05)
  c.train.batch_size = 8
  c.train.max_steps = kw.get("max_steps", 60)
  c.train.eval_every = kw.get("eval_every", 30)
  c.train.log_every = 10
  c.train.checkpoint_every_steps = kw.get("checkpoint_every_steps", 30)
  c.train.progress_bar = False
  return c


def events(workdir, split):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [e for e in map(json.loads, lines) if e["split"] == split]


def status(workdir):
  return json.loads((workdir / "status.json").read_text())


def max_abs_diff(a, b):
  return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ----------------------------------------------------------------------------- backward passes


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("members", [False, True])
def test_recurrence_matches_autodiff(name, members):
  """rnn.recurrence (and elman_recurrence) give lax.scan's values and gradients."""
  cell = cells.get_cell(name)
  K, T, B, I, H = 3, 6, 4, 3, 5
  keys = jax.random.split(jax.random.PRNGKey(0), K)
  ps = [cell.init(k, I, H, init_scale=0.5) for k in keys]
  x = jax.random.normal(jax.random.PRNGKey(1), (T, K, B, I) if members else (T, B, I))

  def run(params, fast):
    if members:
      gx = jax.vmap(cell.project_inputs, (0, 1), 1)(params, x)
      p = {k: (v[:, None, :] if k.startswith("b_") else v) for k, v in params.items()}
      lead = (K, B)
    else:
      gx, p, lead = cell.project_inputs(params, x), params, (B,)
    c0 = jax.tree.map(lambda c: jnp.broadcast_to(c + 0.1, lead + (H,)), cell.init_carry(1, H))
    if fast == "elman":
      hs = rnn.elman_recurrence(name[4:], p["w_hh"], c0, gx)
      return hs, hs[-1]
    if fast == "generic":  # a cell without a specialised path: cell.step_hw recomputed backward
      return rnn.recurrence(cell._replace(recurrence=None), p, c0, gx)[::-1]
    if fast:
      return rnn.recurrence(cell, p, c0, gx)[::-1]
    return jax.lax.scan(lambda c, g: cell.step(p, c, g), c0, gx)[::-1]

  def loss(p, fast):  # through every h_t and the final carry (h_T, and c_T for the LSTM)
    hs, final = run(p, fast)
    return jnp.sum(jnp.sin(hs) * jnp.arange(H)) + sum(
        jnp.sum(jnp.cos(x)) for x in jax.tree.leaves(final))

  params = jax.tree.map(lambda *a: jnp.stack(a), *ps) if members else ps[0]
  value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  want_v, want_g = value_and_grad(params, False)
  variants = [True, "generic"] + (["elman"] if name.startswith("rnn_") else [])
  for fast in variants:
    got_v, got_g = value_and_grad(params, fast)
    np.testing.assert_allclose(got_v, want_v, rtol=1e-5)
    assert max_abs_diff(got_g, want_g) < 1e-4, fast


def tanh_rnn_inputs(seed, T, B, I, H, scale):
  """A tanh cell, its params, projected inputs ``gx [T, B, H]`` and a zero ``h0``."""
  cell = cells.rnn_tanh
  p = cell.init(jax.random.PRNGKey(seed), I, H, init_scale=scale)
  gx = cell.project_inputs(p, jax.random.normal(jax.random.PRNGKey(seed + 1), (T, B, I)))
  return cell, p, gx, jnp.zeros((B, H))


def test_elman_eps_gradient_is_total_hidden_gradient():
  """d loss / d eps_t == d loss / d h_t through all later steps (what Omega needs)."""
  T, B, H = 5, 2, 4
  _, p, gx, h0 = tanh_rnn_inputs(2, T, B, 3, H, 0.8)
  loss = lambda hs: jnp.sum(hs[-1] ** 2) + jnp.sum(jnp.cos(hs[2]))
  g = jax.grad(lambda e: loss(rnn.elman_recurrence("tanh", p["w_hh"], h0, gx, e)))(
      jnp.zeros((T, B, H)))
  # Reference: perturb h_2 directly and differentiate the rest of the sequence.
  hs = rnn.elman_recurrence("tanh", p["w_hh"], h0, gx)

  def from_h2(h2):
    rest = rnn.elman_recurrence("tanh", p["w_hh"], h2, gx[3:])
    return jnp.sum(rest[-1] ** 2) + jnp.sum(jnp.cos(h2))

  np.testing.assert_allclose(g[2], jax.grad(from_h2)(hs[2]), rtol=1e-5, atol=1e-6)


def test_omega_uses_one_step_jacobian():
  """Omega's v_t equals the vector-Jacobian product of one step, g_t dh_t/dh_{t-1}."""
  T, B, H = 4, 3, 5
  cell, p, gx, h0 = tanh_rnn_inputs(4, T, B, 2, H, 0.9)
  hs = rnn.elman_recurrence("tanh", p["w_hh"], h0, gx)
  g = jax.random.normal(jax.random.PRNGKey(6), (T, B, H))
  h_prev = jnp.concatenate([h0[None], hs[:-1]])
  ratios = []
  for t in range(T):
    _, pull = jax.vjp(lambda h: cell.step(p, h, gx[t])[0], h_prev[t])
    (v,) = pull(g[t])
    ratios.append(jnp.sum(v * v, -1) / jnp.sum(g[t] * g[t], -1))
  want = jnp.mean((jnp.stack(ratios) - 1.0) ** 2)  # every step counts (g is nowhere 0)
  np.testing.assert_allclose(model.omega("rnn_tanh", p["w_hh"], hs, g), want, rtol=1e-5)


def test_smart_tanh_init():
  c = small_config()
  c.model.hidden_size = 40
  params = model.init_params(jax.random.PRNGKey(0), tasks_lib.get_task("addition"), c.model)
  w = np.asarray(params["cell"]["w_hh"])
  assert (np.count_nonzero(w, axis=1) == 15).all()
  np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(w))), 0.95, rtol=1e-4)
  assert not np.any(params["cell"]["b_ih"]) and not np.any(params["out"]["b"])


# ----------------------------------------------------------------------------- groups


def test_group_key():
  base = small_config()
  same = [small_config(seed=3), small_config(learning_rate=0.2), small_config(clip_value=5.0)]
  assert all(ts.vmap_group_key(c) == ts.vmap_group_key(base) for c in same)
  other = [small_config(cell="gru"), small_config(length=30), small_config(omega_weight=4.0),
           small_config(clip_mode="none")]
  assert all(ts.vmap_group_key(c) != ts.vmap_group_key(base) for c in other)
  assert ts.vmap_group_key(small_config(omega_weight=4.0)) == ts.vmap_group_key(
      small_config(omega_weight=2.0))


# both slow (16-26 s each): the default run took 10 min on an AVX2 host (2026-12-07); the
# grouped path stays in it through tests/test_golden.py's synthetic_group case
@pytest.mark.parametrize("kw", [pytest.param(dict(omega_weight=2.0, clip_mode="none"),
                                             marks=pytest.mark.slow),
                                pytest.param(dict(cell="lstm", clip_mode="agc", clip_value=0.5,
                                                  task="addition"),
                                             marks=pytest.mark.slow)])
def test_vmapped_group_equals_sequential_runs(tmp_path, kw):
  configs = [small_config(seed=s, learning_rate=lr, **kw) for s, lr in ((0, 0.05), (1, 0.1), (2, 0.05))]
  ts.train_group(configs, [tmp_path / f"v{i}" for i in range(3)], vmap=True)
  ts.train_group(configs, [tmp_path / f"s{i}" for i in range(3)], vmap=False)
  for i in range(3):
    v, s = tmp_path / f"v{i}", tmp_path / f"s{i}"
    for split in ("train", "test"):
      ev, es = events(v, split), events(s, split)
      assert [e["step"] for e in ev] == [e["step"] for e in es]
      for a, b in zip(ev, es):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=2e-4, atol=1e-6)
        if split == "train":
          np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=2e-4, atol=1e-6)
    assert status(v)["state"] == status(s)["state"] == "finished"
  # The members really differ (different seeds and learning rates).
  assert events(tmp_path / "v0", "train")[-1]["loss"] != events(tmp_path / "v1", "train")[-1]["loss"]
  # One process window for the vmapped members (counted once by report.cost), none when sequential.
  prov = lambda d: json.loads((d / "provenance.json").read_text())["runs"][-1]
  assert len({prov(tmp_path / f"v{i}")["vmap_group"] for i in range(3)}) == 1
  assert "vmap_group" not in prov(tmp_path / "s0")


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_diverging_member_is_recorded_and_others_unaffected(tmp_path):
  kw = dict(cell="rnn_relu", init="identity", clip_mode="none", task="addition")
  configs = [small_config(seed=0, **kw), small_config(seed=1, learning_rate=1e6, **kw),
             small_config(seed=2, **kw)]
  ts.train_group(configs, [tmp_path / f"v{i}" for i in range(3)], vmap=True)
  bad = status(tmp_path / "v1")
  assert bad["state"] == "diverged" and "non-finite" in bad["reason"] and bad["step"] >= 1
  for i in (0, 2):
    ts.train_group([configs[i]], [tmp_path / f"alone{i}"], vmap=False)
    assert status(tmp_path / f"v{i}")["state"] == "finished"
    a, b = events(tmp_path / f"v{i}", "test"), events(tmp_path / f"alone{i}", "test")
    np.testing.assert_allclose([e["loss"] for e in a], [e["loss"] for e in b], rtol=2e-4)
  # Re-running skips finished and diverged members.
  out = ts.train_group(configs, [tmp_path / f"v{i}" for i in range(3)], vmap=True)
  assert [o["state"] for o in out] == ["finished", "diverged", "finished"]


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_success_stops_training(tmp_path):
  c = small_config(max_steps=90, eval_every=30)
  c.synthetic.success_error_rate = 1.01  # any error rate counts as solved: stop at the first check
  (out,) = ts.train_group([c], [tmp_path / "r"])
  assert out["state"] == "finished" and out["success"] and out["success_step"] == 30
  assert max(e["step"] for e in events(tmp_path / "r", "train")) == 30
  assert events(tmp_path / "r", "test")[-1]["error_rate"] == out["error_rate"]
  assert out["epoch"] is None  # fresh data every update: no epochs


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_validation_set_is_scored_beside_the_test_set(tmp_path):
  """synthetic.valid_size: valid events at every test evaluation, on a fixed set of their own
  (the same for every seed, not the test set), with the same numbers for the test set and the
  run as without it; success is judged on the test set only."""
  base = small_config(seed=0, max_steps=60, eval_every=30)
  ts.train_group([base], [tmp_path / "plain"])
  configs = [small_config(seed=s, max_steps=60, eval_every=30) for s in (0, 1)]
  for c in configs:
    c.synthetic.valid_size = 1000
  ts.train_group(configs, [tmp_path / f"v{s}" for s in (0, 1)], vmap=True)
  valid, test = events(tmp_path / "v0", "valid"), events(tmp_path / "v0", "test")
  assert [e["step"] for e in valid] == [e["step"] for e in test] == [30, 60]
  assert all(v["loss"] != t["loss"] for v, t in zip(valid, test))  # another set of sequences
  np.testing.assert_allclose([e["loss"] for e in test],
                             [e["loss"] for e in events(tmp_path / "plain", "test")], rtol=1e-6)
  # The set itself does not depend on the seed: its chunks are valid_key's, not test_key's.
  task = tasks_lib.get_task("temporal_order", 20)
  chunk = lambda key: task.generate(jax.random.fold_in(key, 0), tasks_lib.TEST_CHUNK, 20).x
  assert not np.array_equal(chunk(tasks_lib.valid_key("temporal_order", 20)),
                            chunk(tasks_lib.test_key("temporal_order", 20)))
  assert json.loads((tmp_path / "v0" / "data.json").read_text())["valid_size"] == 1000
  # Success is the test set's alone: status.json's error rate is the last test event's.
  assert json.loads((tmp_path / "v0" / "status.json").read_text())["error_rate"] == \
      test[-1]["error_rate"]
  configs[0].synthetic.valid_size = 700
  with pytest.raises(ValueError, match="synthetic.valid_size must be 0"):
    ts.validate_config(configs[0])


@pytest.mark.slow  # 11 s: the default run took 9:20 in a clean clone on an AVX2 host (2026-12-07)
def test_former_task_subconfig_spelling_trains_the_same(tmp_path, caplog):
  """A config file written for the former ``task`` sub-config (task.name, task.length, ...)
  still trains, with a one-line deprecation note, to the same numbers as ``synthetic.*``."""
  import ml_collections
  from rnnlm_jax import loop
  new = small_config(max_steps=20, eval_every=20)
  old = ml_collections.ConfigDict(new.to_dict())
  del old["synthetic"], old["task"]
  old.task = ml_collections.ConfigDict({"name": "temporal_order", "length": 20,
                                        "test_size": 500, "success_error_rate": 0.01})
  from rnnlm_jax import tasks
  loop.train_and_evaluate(new, str(tmp_path / "new"))
  tasks._warned.discard("task.name")  # the note is logged once per process
  with caplog.at_level("WARNING", logger="rnnlm_jax"):
    loop.train_and_evaluate(old, str(tmp_path / "old"))
  assert "`task.name` (a `task` sub-config) is deprecated" in caplog.text
  losses = lambda d: [(e["step"], e["split"], e["loss"]) for e in map(
      json.loads, (tmp_path / d / "metrics.jsonl").read_text().splitlines())]
  assert losses("old") == losses("new") and len(losses("new")) == 3
  # The same config (keys added since, e.g. synthetic.valid_size, at their defaults).
  assert config_conflicts(json.loads((tmp_path / "old" / "config.json").read_text()),
                                  json.loads((tmp_path / "new" / "config.json").read_text())) == []


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch):
  configs = [small_config(seed=s, max_steps=60, checkpoint_every_steps=20) for s in (0, 1)]
  ts.train_group(configs, [tmp_path / f"full{i}" for i in range(2)], vmap=True)
  # Crash after the checkpoint at step 20 (the 3rd train event of each member is step 30).
  real_write = MetricWriter.write
  calls = {"n": 0}

  def crashing_write(self, event):
    if event.get("split") == "train" and event["step"] == 30:
      raise RuntimeError("simulated crash")
    return real_write(self, event)

  monkeypatch.setattr(MetricWriter, "write", crashing_write)
  dirs = [tmp_path / f"crash{i}" for i in range(2)]
  with pytest.raises(RuntimeError, match="simulated crash"):
    ts.train_group(configs, dirs, vmap=True)
  assert status(dirs[0])["state"] == "failed"
  monkeypatch.setattr(MetricWriter, "write", real_write)
  ts.train_group(configs, dirs, vmap=True)
  for i in range(2):
    assert status(dirs[i])["state"] == "finished"
    a = (tmp_path / f"full{i}" / "metrics.jsonl").read_text().splitlines()
    b = dirs[i].joinpath("metrics.jsonl").read_text().splitlines()
    assert len(a) == len(b)
    for x, y in zip(map(json.loads, a), map(json.loads, b)):
      assert x["step"] == y["step"] and x["split"] == y["split"]
      np.testing.assert_allclose(x["loss"], y["loss"], rtol=1e-6)
  del calls


@pytest.mark.parametrize("change, match", [
    (dict(cell="lstm", omega_weight=4.0), "rnn_tanh and rnn_relu only"),
    (dict(cell="gru", init="smart_tanh"), "for the tanh RNN"),
    (dict(task="nope"), "unknown synthetic.problem"),
    (dict(length=5), "synthetic.length must be >= 10"),
    (dict(clip_mode="sometimes"), "unknown optim.clip_mode"),
])
def test_bad_configs(change, match):
  with pytest.raises(ValueError, match=match):
    ts.validate_config(small_config(**change))


def test_bad_test_size_and_mixed_group(tmp_path):
  c = small_config()
  c.synthetic.test_size = 700
  with pytest.raises(ValueError, match="multiple of 500"):
    ts.validate_config(c)
  with pytest.raises(ValueError, match="separate groups"):
    ts.train_group([small_config(), small_config(cell="gru")], [tmp_path / "a", tmp_path / "b"])
  assert not (tmp_path / "a").exists()


# slow: the default run took 7:54 and 8:41 in two clean clones on an AVX2 host (2026-12-07)
@pytest.mark.slow
def test_auto_vmap_on_one_cpu_device_trains_one_run_at_a_time(tmp_path, monkeypatch):
  """vmap="auto": one program per group only where it pays (several devices, accelerators)."""
  seen = []
  real = ts._run_group
  monkeypatch.setattr(ts, "_run_group", lambda members, states, vmapped, **kw: (
      seen.append((len(members), vmapped)), real(members, states, vmapped, **kw))[1])
  configs = [small_config(seed=s, max_steps=20, eval_every=20) for s in (0, 1)]
  ts.train_group(configs, [tmp_path / "a", tmp_path / "b"])
  assert ts.vmap_pays() == (jax.device_count() > 1 or jax.default_backend() != "cpu")
  assert seen == ([(2, True)] if ts.vmap_pays() else [(1, False), (1, False)])


SPLIT_SCRIPT = """
import json, sys
import jax
from tests.test_synthetic_train import small_config
from rnnlm_jax.tasks import synthetic as ts
assert jax.device_count() == 2
configs = [small_config(seed=s, max_steps=20, eval_every=20) for s in range(3)]  # 3: padded to 4
ts.train_group(configs, [sys.argv[1] + f"/m{i}" for i in range(3)], vmap=True)
"""


@pytest.mark.slow  # 15 s; CI runs it after the default suite (.ci/run)
def test_group_split_over_two_cpu_devices_equals_runs_alone(tmp_path):
  """--cpu_devices 2: the member axis (padded 3 -> 4) is split over two XLA CPU devices."""
  import os
  import pathlib
  import subprocess
  import sys
  repo = pathlib.Path(__file__).resolve().parent.parent
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONPATH=str(repo))
  proc = subprocess.run([sys.executable, "-c", SPLIT_SCRIPT, str(tmp_path)], cwd=repo, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  configs = [small_config(seed=s, max_steps=20, eval_every=20) for s in range(3)]
  for i, c in enumerate(configs):
    ts.train_group([c], [tmp_path / f"alone{i}"], vmap=False)
    a, b = events(tmp_path / f"m{i}", "test"), events(tmp_path / f"alone{i}", "test")
    assert [e["step"] for e in a] == [e["step"] for e in b] == [20]
    np.testing.assert_allclose(a[0]["loss"], b[0]["loss"], rtol=2e-4)
    assert status(tmp_path / f"m{i}")["state"] == "finished"
