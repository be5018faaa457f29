"""The hand-differentiated dense layer and fused softmax loss equal their autodiff references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlm_jax import fused

T, B, H, V = 5, 3, 8, 37


def _inputs(seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 4)
  h = jax.random.normal(k[0], (T, B, H))
  w = jax.random.normal(k[1], (H, V)) * 0.5
  b = jax.random.normal(k[2], (V,)) * 0.1
  y = jax.random.randint(k[3], (T, B), 0, V)
  return h, w, b, y


def _ref_loss(h, w, b, y):
  logits = jnp.einsum("tbh,hv->tbv", h, w) + b
  return optax.softmax_cross_entropy_with_integer_labels(logits, y)


@pytest.mark.parametrize("chunk", [0, 10, 37, 64])  # none, uneven chunks, one chunk, > V
def test_softmax_xent_float32_matches_optax(chunk):
  h, w, b, y = _inputs()
  g = jax.random.normal(jax.random.PRNGKey(9), (T, B))  # a non-uniform upstream gradient
  ours = lambda h, w, b: (fused.softmax_xent(h, w, b, y, jnp.float32, chunk) * g).sum()
  ref = lambda h, w, b: (_ref_loss(h, w, b, y) * g).sum()
  np.testing.assert_allclose(fused.softmax_xent(h, w, b, y, jnp.float32, chunk),
                             _ref_loss(h, w, b, y), rtol=1e-5, atol=1e-5)
  for a, r in zip(jax.grad(ours, (0, 1, 2))(h, w, b), jax.grad(ref, (0, 1, 2))(h, w, b)):
    np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk", [0, 10])
def test_softmax_xent_bfloat16_close_and_rounds_only_matmul_inputs(chunk):
  h, w, b, y = _inputs(1)
  got = fused.softmax_xent(h, w, b, y, jnp.bfloat16, chunk)
  assert got.dtype == jnp.float32
  # reference with the same bf16-rounded matmul inputs, computed in float32: equal to rounding
  hr, wr = h.astype(jnp.bfloat16).astype(jnp.float32), w.astype(jnp.bfloat16).astype(jnp.float32)
  np.testing.assert_allclose(got, _ref_loss(hr, wr, b, y), rtol=1e-4, atol=1e-4)
  # and within bf16 error of the float32 loss, but not identical (rounding did happen)
  exact = _ref_loss(h, w, b, y)
  assert np.abs(np.asarray(got - exact)).max() < 0.05
  assert np.abs(np.asarray(got - exact)).max() > 0
  gb = jax.grad(lambda w: fused.softmax_xent(h, w, b, y, jnp.bfloat16, chunk).sum())(w)
  gr = jax.grad(lambda w: _ref_loss(h, w, b, y).sum())(w)
  assert gb.dtype == jnp.float32
  np.testing.assert_allclose(gb, gr, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dense_value_and_grads(dtype):
  x = jax.random.normal(jax.random.PRNGKey(0), (T, B, H))
  w = jax.random.normal(jax.random.PRNGKey(1), (H, 6))
  tol = 1e-5 if dtype == jnp.float32 else 3e-2
  np.testing.assert_allclose(fused.dense(x, w, dtype), jnp.einsum("tbk,kn->tbn", x, w),
                             rtol=tol, atol=tol)
  f = lambda x, w: (jnp.sin(fused.dense(x, w, dtype))).sum()
  r = lambda x, w: (jnp.sin(jnp.einsum("tbk,kn->tbn", x, w))).sum()
  for a, e in zip(jax.grad(f, (0, 1))(x, w), jax.grad(r, (0, 1))(x, w)):
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(a, e, rtol=10 * tol, atol=10 * tol)


def test_bad_chunk_is_a_clear_error():
  h, w, b, y = _inputs()
  with pytest.raises(ValueError, match="vocab_chunk"):
    fused.softmax_xent(h, w, b, y, jnp.float32, -1)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_lm_train_steps_bfloat16_track_float32(cell):
  from rnnlm_jax import config_base
  from rnnlm_jax.tasks import lm as lm_task
  from rnnlm_jax.models import lm

  c = config_base.base_config()
  c.model.cell, c.model.hidden_size, c.model.embed_size = cell, 32, 32
  x = jnp.asarray(np.random.default_rng(0).integers(0, 50, (20, 12)), jnp.int32)
  losses = {}
  for dtype in ("float32", "bfloat16"):
    c.model.compute_dtype = dtype
    spec = lm.LMSpec.from_config(c.model, 50)
    state = lm_task.create_train_state(c, spec, 100)
    step = lm_task.make_train_step(spec, c.optim)
    losses[dtype] = []
    for _ in range(4):
      state, m = step(state, x, x)
      losses[dtype].append(float(m["nll_sum"]))
    assert jax.tree.leaves(state.params)[0].dtype == jnp.float32  # parameters stay float32
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=2e-3)
  assert losses["bfloat16"] != losses["float32"]  # the bf16 path really ran
  assert losses["float32"][-1] < losses["float32"][0]


def test_bad_compute_dtype_is_a_clear_error():
  from rnnlm_jax import config_base
  from rnnlm_jax.models import lm

  c = config_base.base_config()
  c.model.compute_dtype = "float16"
  with pytest.raises(ValueError, match="model.compute_dtype must be one of float32 | bfloat16"):
    lm.LMSpec.from_config(c.model, 50)
