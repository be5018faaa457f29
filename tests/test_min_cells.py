"""Tests of the minimal parallel-in-time cells (minGRU, minLSTM; Feng et al. 2024).

The reference is the cell's own sequential ``step`` (linear space, the paper's sequential mode)
scanned with ``lax.scan``, and an independent float64 numpy loop of the paper's equations; the
parallel form is ``cells.min_recurrence`` (log space, one associative scan).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, loop, rnn, sample
from rnnlm_jax.models import lm
from rnnlm_jax.workdir import Workdir

from helpers import check_finite_differences, check_short_run, make_corpus, tiny_config

MIN_NAMES = ("min_gru", "min_lstm")
GATES = {"min_gru": 2, "min_lstm": 3}
IN, H, B = 5, 7, 3


def _setup(name, seed, steps, scale=1.0):
  """``(cell, params, h0, xs [T, B, IN])`` with a non-zero h0 of both signs."""
  cell = cells.get_cell(name)
  k_p, k_h, k_x = jax.random.split(jax.random.key(seed), 3)
  params = cell.init(k_p, IN, H, init_scale=scale)
  h0 = jax.random.normal(k_h, (B, H))
  xs = 2.0 * jax.random.normal(k_x, (steps, B, IN))
  return cell, params, h0, xs


def _sequential(cell, params, h0, xs):
  """``lax.scan`` of the sequential step: the reference."""
  gx = cell.project_inputs(params, xs)
  return jax.lax.scan(lambda h, g: cell.step(params, h, g), h0, gx)


def _numpy_reference(name, params, h0, xs):
  """The paper's equations step by step, float64 numpy (blocks (z, h~) or (f, i, h~))."""
  sig = lambda v: 1.0 / (1.0 + np.exp(-v))
  g = lambda v: np.where(v >= 0, v + 0.5, sig(v))
  w, b = (np.asarray(params[k], np.float64) for k in ("w_ih", "b_ih"))
  h, hs = np.asarray(h0, np.float64), []
  for x in np.asarray(xs, np.float64):
    blocks = np.split(x @ w + b, GATES[name], axis=-1)
    if name == "min_gru":
      z = sig(blocks[0])
      h = (1 - z) * h + z * g(blocks[1])
    else:
      f, i = sig(blocks[0]), sig(blocks[1])
      h = f / (f + i) * h + i / (f + i) * g(blocks[2])
    hs.append(h)
  return np.stack(hs)


@pytest.mark.parametrize("steps", [1, 6, pytest.param(37, marks=pytest.mark.slow),
                                   pytest.param(1000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", MIN_NAMES)
def test_parallel_equals_sequential(name, steps):
  """Non-zero h0 of both signs, T of no power of two (and 1, and a long 1000)."""
  cell, params, h0, xs = _setup(name, 1, steps)
  par = rnn.scan_layer_time_major(cell, params, h0, xs)
  seq = _sequential(cell, params, h0, xs)
  assert par[1].shape == (steps, B, H)
  np.testing.assert_allclose(np.asarray(par[1]), np.asarray(seq[1]), rtol=1e-5, atol=2e-6)
  np.testing.assert_allclose(np.asarray(par[0]), np.asarray(seq[0]), rtol=1e-5, atol=2e-6)
  np.testing.assert_allclose(np.asarray(par[1]), _numpy_reference(name, params, h0, xs),
                             rtol=1e-5, atol=2e-6)
  np.testing.assert_array_equal(np.asarray(par[0]), np.asarray(par[1][-1]))


@pytest.mark.slow  # minutes on the 2-core CI machine: `pytest -m slow`
@pytest.mark.parametrize("name", MIN_NAMES)
def test_scan_layer_runs_the_parallel_form_and_the_sequential_fallbacks_agree(name):
  """The layer runs the associative scan (no sequential ``scan`` in its program); remat,
  unroll, the autodiff cell (= ``lax.scan`` of the step) give the same values and gradients."""
  cell, params, h0, xs = _setup(name, 2, 11)
  auto = cells.get_cell(name, backward="autodiff")
  assert cell.recurrence is not None and auto.recurrence is None
  assert cells.get_cell(name) is cell and cell.num_gates == GATES[name]
  w = jax.random.normal(jax.random.key(3), (11, B, H))

  def loss(c, p, h, x, **kw):
    final, hs = rnn.scan_layer_time_major(c, p, h, x, **kw)
    return jnp.sum(hs * w) + jnp.sum(final ** 2)

  assert " scan[" not in str(jax.make_jaxpr(loss, static_argnums=0)(cell, params, h0, xs))
  assert " scan[" in str(jax.make_jaxpr(loss, static_argnums=0)(auto, params, h0, xs))
  grad = jax.jit(jax.value_and_grad(loss, argnums=(1, 2, 3)), static_argnums=0,
                 static_argnames=("remat", "unroll"))
  v0, g0 = grad(cell, params, h0, xs)
  for other, kw in ((auto, {}), (cell, {"remat": "step"}), (cell, {"unroll": 3}),
                    (cell, {"remat": "segment"})):
    v1, g1 = grad(other, params, h0, xs, **kw)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  assert float(jnp.abs(g0[0]["w_ih"]).max()) > 1e-3 and float(jnp.abs(g0[1]).max()) > 1e-3


@pytest.mark.slow  # minutes on the 2-core CI machine: `pytest -m slow`
@pytest.mark.parametrize("name", MIN_NAMES)
def test_carry_across_windows_equals_one_window(name):
  """Truncated BPTT: two windows with the carry passed on = one window over both."""
  cell, params, h0, xs = _setup(name, 4, 23)
  whole = rnn.scan_layer_time_major(cell, params, h0, xs)
  c1, hs1 = rnn.scan_layer_time_major(cell, params, h0, xs[:9])
  c2, hs2 = rnn.scan_layer_time_major(cell, params, c1, xs[9:])
  np.testing.assert_allclose(np.asarray(jnp.concatenate([hs1, hs2])), np.asarray(whole[1]),
                             rtol=1e-5, atol=2e-6)
  np.testing.assert_allclose(np.asarray(c2), np.asarray(whole[0]), rtol=1e-5, atol=2e-6)


@pytest.mark.slow  # minutes on the 2-core CI machine: `pytest -m slow`
@pytest.mark.parametrize("name", MIN_NAMES)
def test_member_axis_runs_each_model_alone(name):
  """``rnn.recurrence`` with a member axis K after time (the classifier's two directions)."""
  cell = cells.get_cell(name)
  runs = [_setup(name, 10 + k, 9) for k in range(2)]
  gx = jnp.stack([c.project_inputs(p, x) for c, p, _, x in runs], axis=1)   # [T, K, B, G*H]
  h0 = jnp.stack([h for _, _, h, _ in runs])
  final, hs = rnn.recurrence(cell, {}, h0, gx)
  for k, (c, p, h, x) in enumerate(runs):
    ref = _sequential(c, p, h, x)
    np.testing.assert_allclose(np.asarray(hs[:, k]), np.asarray(ref[1]), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(np.asarray(final[k]), np.asarray(ref[0]), rtol=1e-5, atol=2e-6)


@pytest.mark.slow  # 20 s of float64 compilation on the CI machine
@pytest.mark.parametrize("name", MIN_NAMES)
def test_stack_gradients_match_finite_differences(name):
  """float64 central differences along random directions of params, inputs and carries
  (a 2-layer stack, non-zero carries, T = 13)."""
  cell = cells.get_cell(name)
  as_np = lambda t: jax.tree.map(lambda a: np.asarray(a, np.float64), t)
  params = as_np(rnn.init_stack(jax.random.key(30), cell, 2, IN, H, init_scale=0.7))
  carries = as_np([jax.random.normal(jax.random.key(31 + k), (B, H)) for k in range(2)])
  xs = as_np(2.0 * jax.random.normal(jax.random.key(33), (13, B, IN)))
  point = (params, xs, carries)
  w = np.random.default_rng(34).normal(size=(13, B, H))
  rng = np.random.default_rng(35)
  dirs = [jax.tree.map(lambda a: rng.normal(size=a.shape), point) for _ in range(3)]
  eps = 1e-6

  with jax.enable_x64(True):
    @jax.jit
    def loss(p, x, c0):
      c, hs = rnn.stack_time_major(cell, p, c0, x)
      return jnp.sum(hs * w) + 0.5 * sum(jnp.sum(leaf ** 2) for leaf in c)

    grads = check_finite_differences(loss, point, dirs, eps)
    assert grads[0][0]["w_ih"].dtype == jnp.float64
  assert jnp.zeros(1).dtype == jnp.float32


@pytest.mark.slow  # minutes on the 2-core CI machine: `pytest -m slow`
def test_log_space_is_stable_where_gates_saturate():
  """Saturated gates (|pre-activation| ~ 60, where sigmoid rounds to 0 or 1 in float32) and a
  zero h0: finite values and gradients, equal to the sequential form."""
  for name in MIN_NAMES:
    cell, params, _, xs = _setup(name, 5, 50, scale=1.0)
    xs = 30.0 * xs
    h0 = jnp.zeros((B, H))
    par = rnn.scan_layer_time_major(cell, params, h0, xs)
    seq = _sequential(cell, params, h0, xs)
    np.testing.assert_allclose(np.asarray(par[1]), np.asarray(seq[1]), rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda p: jnp.sum(rnn.scan_layer_time_major(cell, p, h0, xs)[1]))(params)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))


def test_init_layout_forget_bias_and_errors():
  for name in MIN_NAMES:
    cell = cells.get_cell(name)
    p = cell.init(jax.random.key(0), IN, H, init_scale=0.2)
    assert set(p) == {"w_ih", "b_ih"}
    assert p["w_ih"].shape == (IN, GATES[name] * H) and p["b_ih"].shape == (GATES[name] * H,)
    assert float(jnp.abs(p["w_ih"]).max()) <= 0.2 and float(jnp.abs(p["b_ih"]).min()) > 0
    ortho = cell.init(jax.random.key(0), IN, H, init="orthogonal")
    assert float(jnp.abs(ortho["b_ih"]).max()) == 0.0
    assert cell.init_carry(B, H).shape == (B, H)
    with pytest.raises(ValueError, match="not defined for the min cells"):
      cells.get_cell(name, "layer")
  fb = cells.min_lstm.init(jax.random.key(0), IN, H, forget_bias=1.0)
  base = cells.min_lstm.init(jax.random.key(0), IN, H)
  np.testing.assert_allclose(np.asarray(fb["b_ih"] - base["b_ih"]),
                             np.r_[np.ones(H), np.zeros(2 * H)], atol=1e-6)
  gru_fb = cells.min_gru.init(jax.random.key(0), IN, H, forget_bias=1.0)
  np.testing.assert_array_equal(np.asarray(gru_fb["b_ih"]),
                                np.asarray(cells.min_gru.init(jax.random.key(0), IN, H)["b_ih"]))
  with pytest.raises(ValueError, match="unknown init"):
    cells.min_gru.init(jax.random.key(0), IN, H, init="xavier")
  with pytest.raises(ValueError, match="W_hh; this cell has none"):
    rnn.weight_drop(base, 0.5, jax.random.key(1))


@pytest.mark.slow  # minutes on the 2-core CI machine: `pytest -m slow`
@pytest.mark.parametrize("name", MIN_NAMES)
def test_lm_options_and_sampling(name):
  """The LM with 2 layers, dropout, residual and locked dropout runs; sampling (one step at a
  time through the same stack) continues exactly where a priming window left off."""
  from rnnlm_jax import config_base
  c = config_base.base_config()
  c.model.cell, c.model.num_layers = name, 2
  c.model.hidden_size, c.model.embed_size = 12, 8
  c.model.dropout, c.model.residual, c.model.locked_dropout = 0.3, True, True
  spec = lm.LMSpec.from_config(c.model, 19)
  params = lm.init_params(jax.random.key(0), spec)
  assert "res_proj" in params and "w_hh" not in params["rnn"][0]
  tokens = jax.random.randint(jax.random.key(1), (4, 10), 0, 19)
  carry, out = lm.forward(params, spec, lm.init_carry(spec, 4), tokens, jax.random.key(2))
  assert out["features"].shape == (10, 4, 12)
  assert all(bool(jnp.all(jnp.isfinite(h))) for h in carry)
  # a prompt read in one window = read one token at a time
  whole = sample.prime(params, spec, lm.init_carry(spec, 4), tokens)
  stepped = lm.init_carry(spec, 4)
  for t in range(10):
    stepped = sample.prime(params, spec, stepped, tokens[:, t:t + 1])
  for a, b in zip(whole, stepped):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  ids = sample.generate(params, spec, [1, 2, 3], jax.random.key(3), length=5, num_samples=2)
  assert ids.shape == (2, 5)


@pytest.mark.slow  # a minute here; by default the cells run in the parallel, gradient and layer tests
@pytest.mark.parametrize("name", MIN_NAMES)
def test_tiny_lm_trains_and_the_loss_falls(name, tmp_path):
  corpus = make_corpus(tmp_path / "corpus.txt", num_lines=300)
  config = tiny_config(corpus, tmp_path / "tfds", **{
      "model.cell": name, "model.hidden_size": 32, "model.embed_size": 16,
      "optim.name": "adam", "optim.learning_rate": 1e-2, "optim.schedule": "constant",
      "train.batch_size": 8, "train.num_epochs": 3, "train.max_steps": 30})
  out = loop.train_and_evaluate(config, str(tmp_path / "run"))
  check_short_run(config, tmp_path / "run", out, steps=30)
  train = [e["loss"] for e in Workdir(tmp_path / "run").read_metrics() if e["split"] == "train"]
  assert train[-1] < train[0] - 0.2, train  # min_gru 2.80 -> 2.45 nats (steps 5 -> 30)
  assert math.isfinite(out["loss"]) and out["loss"] < train[0]


@pytest.mark.parametrize("name", MIN_NAMES)
def test_classifier_layer_runs_min_cells(name):
  """The classifier's (bi)directional layer: the forward direction's states equal the cell's
  own sequential steps (the layer reads the hidden size from ``w_ih``; no ``w_hh``)."""
  from rnnlm_jax.models import classifier
  cell = cells.get_cell(name)
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  fw, bw = cell.init(k1, 3, 5), cell.init(k2, 3, 5)
  xs = jax.random.normal(k3, (6, 2, 3))                       # [time, batch, input]
  lengths = jnp.array([6, 6])
  hs, _ = classifier.rnn_layer(cell, {"fw": fw, "bw": bw}, xs, lengths)
  assert hs.shape == (6, 2, 10)
  carry, want = cell.init_carry(2, 5), []
  for t in range(6):
    carry, h = cell.apply(fw, carry, xs[t])
    want.append(h)
  np.testing.assert_allclose(hs[:, :, :5], jnp.stack(want), rtol=1e-5, atol=1e-6)


def test_synthetic_model_runs_min_cells():
  """The synthetic tasks' model reads the hidden size from ``w_ih`` (min cells have no W_hh)."""
  from rnnlm_jax.models import synthetic as syn_model
  cell = cells.get_cell("min_gru")
  params = {"cell": cell.init(jax.random.PRNGKey(0), 4, 7)}
  hs = syn_model.hidden_states(cell, params, jnp.ones((3, 9, 4)))   # [batch, time, input]
  assert hs.shape == (9, 3, 7) and bool(jnp.all(jnp.isfinite(hs)))
