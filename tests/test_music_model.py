"""Tests of rnnlm_jax.models.music (the next-frame piano-roll model and its loss), of
rnnlm_jax.tasks.music (the task object, its padded batches and metrics) and of
the music experiment configs (each loads and trains a few steps on a tiny data set)."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import pickle

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rnnlm_jax import rnn
from rnnlm_jax.data import music as music_data
from rnnlm_jax.models import music
from rnnlm_jax.tasks import music as music_task
from rnnlm_jax.sweeps.spec import expand, load_sweep_module

REPO = pathlib.Path(__file__).resolve().parent.parent


def _rolls(lengths, seed=0, density=0.08):
  rng = np.random.default_rng(seed)
  return [(rng.random((n, 88)) < density).astype(np.uint8) for n in lengths]


def _tiny_split(seed, lengths):
  """A pickle split: sequences of note tuples (MIDI 21..108)."""
  rng = np.random.default_rng(seed)
  return [[tuple(sorted(set(int(n) for n in rng.integers(21, 109, rng.integers(0, 4)))))
           for _ in range(t)] for t in lengths]


@pytest.fixture
def tiny_music(iso):
  """All four data sets as tiny pickles in ``iso/raw`` (downloads off); returns that dir."""
  for i, f in enumerate(music_data.MUSIC_FILES.values()):
    data = {"train": _tiny_split(i, [5, 9, 14, 3, 7, 11, 6]),
            "valid": _tiny_split(i + 10, [4, 13, 8]),
            "test": _tiny_split(i + 20, [10, 6])}
    p = iso / "raw" / music_data.DATASET / f.filename
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(pickle.dumps(data, protocol=2))
  return iso / "raw"


# ------------------------------------------------------------------------------------------
# The model


def test_chung_parameter_counts():
  # Our counts (two biases per gate block as PyTorch; dense 88-key output layer included).
  for cell, units, expected in [("rnn_tanh", 100, 27_888), ("gru", 46, 22_904),
                                ("lstm", 36, 21_400)]:
    spec = music.MusicSpec(cell=cell, hidden_size=units)
    params = jax.eval_shape(lambda: music.init_params(jax.random.PRNGKey(0), spec))
    g = {"rnn_tanh": 1, "gru": 3, "lstm": 4}[cell]
    by_hand = g * (88 * units + units * units + 2 * units) + units * 88 + 88
    assert music.num_params(params) == by_hand
    assert music.num_params(params) == expected
    assert params["out"]["w"].shape == (units, 88) and params["out"]["b"].shape == (88,)


def test_zero_weights_give_log2_per_key_and_output_bias_by_hand():
  spec = music.MusicSpec(cell="gru", hidden_size=5)
  params = jax.tree.map(jnp.zeros_like, music.init_params(jax.random.PRNGKey(0), spec))
  rolls = _rolls([3, 5], seed=1)
  batch = music_task.make_batch(rolls, 4)
  obj, sums = music.batch_stats(params, spec, batch)
  assert float(sums["steps"]) == 8 and float(sums["sequences"]) == 2
  np.testing.assert_allclose(float(sums["nll"]), 8 * 88 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(float(obj), 88 * math.log(2), rtol=1e-6)
  # Output bias only (w = 0): every frame gets p_k = sigmoid(b_k), whatever came before.
  b = np.linspace(-3, 2, 88).astype(np.float32)
  params["out"]["b"] = jnp.asarray(b)
  p = 1 / (1 + np.exp(-b.astype(np.float64)))
  frames = np.concatenate(rolls).astype(np.float64)
  by_hand = -(frames * np.log(p) + (1 - frames) * np.log(1 - p)).sum()
  _, sums = music.batch_stats(params, spec, batch)
  np.testing.assert_allclose(float(sums["nll"]), by_hand, rtol=1e-5)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_causal_next_frame_prediction(cell):
  """logits[t] depends on frames < t only; the first frame is predicted from zeros."""
  spec = music.MusicSpec(cell=cell, hidden_size=7, num_layers=2)
  params = music.init_params(jax.random.PRNGKey(1), spec)
  x = _rolls([12], seed=2)[0][None].astype(np.float32)
  base = np.asarray(music.logits(params, spec, x))
  assert base.shape == (1, 12, 88)
  for t in (0, 5, 11):
    y = x.copy()
    y[0, t] = 1 - y[0, t]
    out = np.asarray(music.logits(params, spec, y))
    np.testing.assert_array_equal(out[0, :t + 1], base[0, :t + 1])
    if t < 11:
      assert not np.allclose(out[0, t + 1], base[0, t + 1])
  # The convention: same logits as the stack run on inputs shifted by hand (input t = frame
  # t - 1, an all-zero frame at t = 0).
  cell_fns = spec.cell_fns
  inp = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
  carries = [cell_fns.init_carry(1, 7) for _ in range(2)]
  _, hs = rnn.stack(cell_fns, params["rnn"], carries, jnp.asarray(inp))
  np.testing.assert_allclose(base, np.asarray(hs @ params["out"]["w"] + params["out"]["b"]),
                             rtol=1e-5, atol=1e-6)


# rnn_tanh slow (8 s): the default run took 7:54 in a clean clone on an AVX2 host (2026-12-07)
@pytest.mark.parametrize("cell", [pytest.param("rnn_tanh", marks=pytest.mark.slow), "lstm"])
def test_padding_and_batching_do_not_change_the_sums(cell):
  """A split's summed NLL is the sum of each sequence scored alone, for any batch size, any
  bucket padding and empty rows; the gradient of a padded batch equals the unpadded one's."""
  spec = music.MusicSpec(cell=cell, hidden_size=6)
  params = music.init_params(jax.random.PRNGKey(2), spec)
  rolls = _rolls([1, 9, 4, 17], seed=3)

  @jax.jit
  def nll_alone(x):
    z = music.logits(params, spec, x)
    return music.bernoulli_nll_per_step(z, x, jnp.ones(x.shape[:2]))[0]

  alone = [float(nll_alone(jnp.asarray(r[None].astype(np.float32)))) for r in rolls]
  task = music_task.MusicTask(spec, {"train": rolls, "valid": rolls, "test": rolls})
  loss = jax.jit(task.loss)
  for bs in (1, 3):
    total = {}
    for batch in task.batches("valid", bs, None):
      assert batch["frames"].shape[0] == bs
      _, sums = loss(params, batch, None)
      for k, v in sums.items():
        total[k] = total.get(k, 0.0) + float(v)
    np.testing.assert_allclose(total["nll"], sum(alone), rtol=1e-5)
    m = task.summarize(total)
    assert m["steps"] == 31 and m["sequences"] == 4
    np.testing.assert_allclose(m["loss"], sum(alone) / 31, rtol=1e-5)
    # the other convention: each sequence's NLL per step, averaged over the sequences
    per_sequence = np.mean([a / len(r) for a, r in zip(alone, rolls)])
    np.testing.assert_allclose(m["nll_per_sequence"], per_sequence, rtol=1e-5)
    assert abs(m["nll_per_sequence"] - m["loss"]) > 1e-3  # lengths 1..17: the two differ
  # Gradient: a padded batch (bucket 24, two empty rows) vs exact length, no empty rows.
  tight = {"frames": np.stack([np.pad(r, ((0, 17 - len(r)), (0, 0))) for r in rolls[1:4]]),
           "lengths": np.array([9, 4, 17], np.int32)}
  padded = music_task.make_batch(rolls[1:4], 5)
  assert padded["frames"].shape == (5, 24, 88)
  g1 = jax.jit(jax.grad(lambda p: task.loss(p, tight, None)[0]))(params)
  g2 = jax.jit(jax.grad(lambda p: task.loss(p, padded, None)[0]))(params)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.slow  # 10 s; .ci/run runs test_music_model.py's slow tests after the default suite
def test_training_noise_only_with_rng_and_gradients():
  spec = music.MusicSpec(cell="lstm", hidden_size=8, num_layers=2, dropout=0.3,
                         weight_noise=0.075)
  params = music.init_params(jax.random.PRNGKey(3), spec)
  batch = music_task.make_batch(_rolls([6, 10], seed=4), 2)
  evaluate = jax.jit(lambda p: music.batch_stats(p, spec, batch)[0])
  train = jax.jit(lambda p, k: music.batch_stats(p, spec, batch, k)[0])
  ev1, ev2 = float(evaluate(params)), float(evaluate(params))
  assert ev1 == ev2  # evaluation: deterministic, no noise
  tr1, tr2, tr3 = (float(train(params, jax.random.PRNGKey(k))) for k in (0, 0, 1))
  assert tr1 == tr2 and tr1 != tr3 and tr1 != ev1
  noisy = jax.jit(music.add_weight_noise, static_argnums=1)(params, 0.5, jax.random.PRNGKey(0))
  assert not np.allclose(noisy["rnn"][0]["w_hh"], params["rnn"][0]["w_hh"])
  np.testing.assert_array_equal(noisy["rnn"][0]["b_ih"], params["rnn"][0]["b_ih"])  # biases kept
  grads = jax.jit(jax.grad(train))(params, jax.random.PRNGKey(5))
  norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(norms)) and all(n > 0 for n in norms)


def test_frame_accuracy_by_hand():
  tp, fp, fn = 6.0, 2.0, 4.0
  m = music_task.summarize({"nll": 30.0, "steps": 10.0, "sequences": 2.0, "tp": tp, "fp": fp,
                       "fn": fn})
  assert m["loss"] == m["nll_per_step"] == 3.0 and m["accuracy"] == 0.5
  # The counts: one frame, keys 0,1 on; the model says keys 1,2 on.
  spec = music.MusicSpec(cell="rnn_tanh", hidden_size=2)
  params = jax.tree.map(jnp.zeros_like, music.init_params(jax.random.PRNGKey(0), spec))
  params["out"]["b"] = jnp.full((88,), -5.0).at[1].set(5.0).at[2].set(5.0)
  roll = np.zeros((1, 88), np.uint8)
  roll[0, :2] = 1
  _, sums = music.batch_stats(params, spec, music_task.make_batch([roll], 2))
  assert (float(sums["tp"]), float(sums["fp"]), float(sums["fn"])) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------
# The loss: NLL per time step


def test_bernoulli_nll_hand_computation():
  logits = np.zeros((2, 2, 88), np.float32)
  targets = np.zeros((2, 2, 88), np.float32)
  # Sequence 0, frame 0: three keys set, the other 85 at logit 0 (log 2 each, whatever y).
  logits[0, 0, :3] = [2.0, -3.0, 1.0]
  targets[0, 0, [0, 5]] = 1          # key 0: y=1, z=2; key 5: y=1, z=0
  # Sequence 0, frame 1: extreme logits (stability), one right and one wrong.
  logits[0, 1, 0], targets[0, 1, 0] = 200.0, 1    # -log sigmoid(200) ~ 0
  logits[0, 1, 1], targets[0, 1, 1] = -200.0, 1   # -log sigmoid(-200) = 200 (+ e^-200)
  # Sequence 1: frame 0 real and all-zero; frame 1 padding with absurd values (masked).
  logits[1, 1] = 1e4
  targets[1, 1] = 0
  mask = np.array([[1, 1], [1, 0]], np.float32)

  log2 = math.log(2.0)
  f00 = (math.log1p(math.exp(-2.0))      # key 0: -log sigmoid(2)
         + math.log1p(math.exp(-3.0))    # key 1: y=0, -log(1 - sigmoid(-3))
         + math.log1p(math.exp(1.0))     # key 2: y=0, -log(1 - sigmoid(1))
         + 85 * log2)                    # keys 3..87 (key 5 with y=1 also log 2)
  f01 = math.log1p(math.exp(-200.0)) + (200.0 + math.log1p(math.exp(-200.0))) + 86 * log2
  f10 = 88 * log2
  nll_sum, num_steps = music.bernoulli_nll_per_step(logits, targets, mask)
  assert float(num_steps) == 3.0
  assert np.isfinite(float(nll_sum))
  np.testing.assert_allclose(float(nll_sum), f00 + f01 + f10, rtol=1e-6)
  np.testing.assert_allclose(float(nll_sum) / float(num_steps), (f00 + f01 + f10) / 3,
                             rtol=1e-6)
  # Against the probability form on moderate random values, float64 reference.
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 4, 88)) * 3
  y = (rng.random((3, 4, 88)) < 0.1).astype(np.float32)
  m = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], np.float32)
  p = 1 / (1 + np.exp(-z))
  ref = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(-1)
  s, n = music.bernoulli_nll_per_step(z.astype(np.float32), y, m)
  assert float(n) == 7
  np.testing.assert_allclose(float(s), (ref * m).sum(), rtol=1e-5)


# ------------------------------------------------------------------------------------------
# Padded batches


def test_make_batch_and_task_errors():
  rolls = _rolls([3, 10])
  b = music_task.make_batch(rolls, 4)
  assert b["frames"].dtype == np.uint8 and b["frames"].shape == (4, 12, 88)
  assert b["lengths"].tolist() == [3, 10, 0, 0]
  np.testing.assert_array_equal(b["frames"][1, :10], rolls[1])
  assert not b["frames"][1, 10:].any() and not b["frames"][2:].any()
  with pytest.raises(ValueError, match="needs 1..1 sequences"):
    music_task.make_batch(rolls, 1)
  with pytest.raises(ValueError, match=r"roll 0 has shape \[3, 87\]"):
    music_task.MusicTask(music.MusicSpec(), {"train": [np.zeros((3, 87))]})
  task = music_task.MusicTask(music.MusicSpec(), {"train": rolls})
  with pytest.raises(ValueError, match="unknown split 'dev'"):
    list(task.batches("dev", 2, None))


# ------------------------------------------------------------------------------------------
# Config, task construction, experiment configs


def _load(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_config_errors(tiny_music):
  c = _load(REPO / "configs" / "music.py").get_config()
  c.data.dir = str(tiny_music)
  for key, value, match in [("data.name", "ptb", "not a music data set"),
                            ("data.length_pool", -1, "length_pool must be an integer >= 0"),
                            ("model.cell", "rnn_x", "unknown cell"),
                            ("model.init", "smart_tanh", "unknown model.init"),
                            ("model.weight_noise", -0.1, "weight_noise must be >= 0"),
                            ("model.dropout", 1.0, r"dropout must be in \[0, 1\)")]:
    bad = ml_collections.ConfigDict(c.to_dict())
    section, field = key.split(".")
    bad[section][field] = value
    with pytest.raises(ValueError, match=match):
      music_task.make_task(bad, "")
  task = music_task.make_task(c, "")
  assert [len(task.data[s]) for s in ("train", "valid", "test")] == [7, 3, 2]
  assert task.select_metric == "loss" and task.select_mode == "min"


def _shrink(c, data_dir):
  c.data.dir = str(data_dir)
  c.model.hidden_size = 4
  c.train.batch_size, c.train.eval_batch_size = 3, 2
  c.train.num_epochs, c.train.max_steps = 2, 3
  c.train.log_every, c.train.progress_bar = 1, False
  return c


def test_music_config_trains_a_few_steps(tiny_music, tmp_path):
  from rnnlm_jax import loop, tasks
  c = _load(REPO / "configs" / "music.py").get_config()
  assert tasks.task_name(c) == "music"
  assert (c.model.cell, c.model.hidden_size, c.optim.name, c.optim.clip_mode,
          c.optim.clip_value) == ("lstm", 36, "rmsprop", "global_norm", 1.0)
  out = loop.train_and_evaluate(_shrink(c, tiny_music), str(tmp_path / "run"))
  assert out["split"] == "test" and out["checkpoint"] == "best_valid"
  assert out["steps"] == 16 and out["sequences"] == 2 and 0 < out["loss"] < 88 * math.log(2) + 1
  events = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [e["step"] for e in events if e["split"] == "train"] == [1, 2, 3]
  assert all(np.isfinite(e["grad_norm"]) for e in events if e["split"] == "train")


SWEEPS = {
    "chung2014": REPO / "experiments" / "chung2014" / "sweep.py",
    "chung2014_lr": REPO / "experiments" / "chung2014" / "lr_search.py",
    "chung2014_wn": REPO / "experiments" / "chung2014" / "weight_noise.py",
    "pascanu2013_music": REPO / "experiments" / "pascanu2013" / "music_sweep.py",
    "pascanu2013_music_lr": REPO / "experiments" / "pascanu2013" / "music_lr_search.py",
    "pascanu2013_music_clip_lr": REPO / "experiments" / "pascanu2013" / "music_clip_lr.py",
}


# chung2014_wn slow (7.5 s; chung2014 trains the same path, and every sweep file expands and
# validates in tests/test_experiment_sweeps.py): the default run took 7:54 in a clean clone on an AVX2 host (2026-12-07)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "chung2014_wn"
                                  else n for n in SWEEPS])
def test_experiment_sweep_points_load_and_train(name, tiny_music, tmp_path):
  """Every point expands, validates and builds its task; the first point trains 3 steps with
  its optimiser and clipping (shrunk model and batches, tiny data)."""
  from rnnlm_jax import loop, tasks
  mod = load_sweep_module(SWEEPS[name])
  points = expand(mod.get_config(), mod.get_sweep())
  assert points and len({p.name for p in points}) == len(points)
  for p in points:
    tasks.validate_config(p.config)
    music_task.validate_config(p.config)
    assert p.config.task == "music" and p.config.optim.clip_value > 0
  for name in {p.config.data.name for p in points}:  # every data set's tiny copy loads
    c = ml_collections.ConfigDict(points[0].config.to_dict())
    c.data.name, c.data.dir = name, str(tiny_music)
    assert len(music_task.make_task(c, "").data["train"]) == 7
  c = _shrink(ml_collections.ConfigDict(points[0].config.to_dict()), tiny_music)
  out = loop.train_and_evaluate(c, str(tmp_path / "run"))
  assert out["split"] == "test" and np.isfinite(out["loss"])


def test_chung_protocol_sweep_trains_each_cell_at_its_best_validation_rate():
  """protocol_sweep.py: per cell, the rate whose lr_protocol run (committed records) had the
  lowest JSB validation NLL, found here from metrics.jsonl directly; the search's weight
  noise and clipping; 3 cells x 4 data sets x 3 seeds."""
  records = REPO / "experiments" / "chung2014" / "records" / "lr_protocol"
  best = {}
  for run in (d for d in records.iterdir() if d.is_dir()):
    cfg = json.loads((run / "config.json").read_text())
    valid = [json.loads(l)["loss"] for l in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(l).get("split") == "valid"]
    cell = cfg["model"]["cell"]
    if cell not in best or min(valid) < best[cell][0]:
      best[cell] = (min(valid), cfg["optim"]["learning_rate"])
  mod = load_sweep_module(REPO / "experiments" / "chung2014" / "protocol_sweep.py")
  points = expand(mod.get_config(), mod.get_sweep())
  assert len(points) == 36 and {p.config.seed for p in points} == {0, 1, 2}
  assert {p.config.data.name for p in points} == set(music_data.MUSIC_DATASETS)
  for p in points:
    assert p.config.optim.learning_rate == best[p.config.model.cell][1]
    assert (p.config.model.weight_noise, p.config.optim.clip_mode, p.config.optim.clip_value) == (
        0.075, "global_norm", 1.0)


def test_chung_sweep_matches_the_paper_setup():
  mod = load_sweep_module(SWEEPS["chung2014"])
  points = expand(mod.get_config(), mod.get_sweep())
  assert len(points) == 12
  sizes = {(p.config.model.cell, p.config.model.hidden_size) for p in points}
  assert sizes == {("rnn_tanh", 100), ("gru", 46), ("lstm", 36)}
  assert {p.config.data.name for p in points} == set(music_data.MUSIC_DATASETS)
  for p in points:
    o = p.config.optim
    assert (o.name, o.clip_mode, o.clip_value, p.config.model.num_layers) == (
        "rmsprop", "global_norm", 1.0, 1)
