"""The optional oneDNN LSTM layer (rnnlm_jax.onednn) against the project's own LSTM: values and
gradients w.r.t. every input equal ``x W_ih + b`` then ``cells.lstm_recurrence`` to float32
tolerance. Skipped, with the reason, where oneDNN (``pip install onednn-devel-cpu-gomp``) or a
C++ compiler is missing or the custom call does not build."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import onednn

_REASON = onednn.unavailable_reason() if jax.default_backend() == "cpu" else "not on CPU"
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"oneDNN layer unavailable: {_REASON}")

# (T, B, I, H): one step, one example, I < H, I > H, H not a multiple of 8
SHAPES = [(1, 2, 3, 4), (1, 1, 5, 3), (5, 3, 4, 6), (7, 1, 8, 5), (6, 4, 9, 7), (3, 2, 16, 16)]
ARGNAMES = ("x", "w_ih", "w_hh", "b", "h0", "c0")


def _inputs(T, B, I, H, seed=0, zero_state=False):
  k = jax.random.split(jax.random.PRNGKey(seed), 9)
  x = jax.random.normal(k[0], (T, B, I))
  w_ih = 0.4 * jax.random.normal(k[1], (I, 4 * H))
  w_hh = 0.4 * jax.random.normal(k[2], (H, 4 * H))
  b = 0.4 * jax.random.normal(k[3], (4 * H,))
  h0 = jnp.zeros((B, H)) if zero_state else jax.random.normal(k[4], (B, H))
  c0 = jnp.zeros((B, H)) if zero_state else jax.random.normal(k[5], (B, H))
  cts = (jax.random.normal(k[6], (T, B, H)), jax.random.normal(k[7], (B, H)),
         jax.random.normal(k[8], (B, H)))
  return (x, w_ih, w_hh, b, h0, c0), cts


def _loss(layer, cts, which=("hs", "h", "c")):
  d_hs, d_h, d_c = cts

  def loss(x, w_ih, w_hh, b, h0, c0):
    (h, c), hs = layer(x, w_ih, w_hh, b, (h0, c0))
    total = 0.0
    if "hs" in which:
      total += jnp.sum(hs * d_hs)
    if "h" in which:
      total += jnp.sum(h * d_h)
    if "c" in which:
      total += jnp.sum(c * d_c)
    return total

  return loss


def _close(a, b, what):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5, err_msg=what)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("zero_state", [False, True])
def test_values(shape, zero_state):
  args, _ = _inputs(*shape, zero_state=zero_state)
  (h, c), hs = onednn.lstm_layer(*args[:4], args[4:])
  (h_r, c_r), hs_r = onednn.lstm_layer_reference(*args[:4], args[4:])
  assert hs.shape == hs_r.shape and h.shape == h_r.shape and c.shape == c_r.shape
  _close(hs, hs_r, "hs")
  _close(h, h_r, "h_T")
  _close(c, c_r, "c_T")
  _close(hs[-1], h, "hs[-1] == h_T")


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients(shape):
  args, cts = _inputs(*shape, seed=1)
  argnums = tuple(range(6))
  ours = jax.jit(jax.value_and_grad(_loss(onednn.lstm_layer, cts), argnums))(*args)
  ref = jax.value_and_grad(_loss(onednn.lstm_layer_reference, cts), argnums)(*args)
  _close(ours[0], ref[0], "loss (forward_training)")
  for name, g, g_r in zip(ARGNAMES, ours[1], ref[1]):
    assert g.shape == g_r.shape, name
    _close(g, g_r, f"d{name}")


@pytest.mark.parametrize("which", [("hs",), ("h",), ("c",), ("h", "c")])
def test_gradients_partial_cotangents(which):
  """Only some outputs used: the others' cotangents are (symbolic) zeros."""
  args, cts = _inputs(4, 3, 5, 6, seed=2)
  argnums = tuple(range(6))
  ours = jax.grad(_loss(onednn.lstm_layer, cts, which), argnums)(*args)
  ref = jax.grad(_loss(onednn.lstm_layer_reference, cts, which), argnums)(*args)
  for name, g, g_r in zip(ARGNAMES, ours, ref):
    _close(g, g_r, f"d{name} ({which})")


def test_gate_order_against_a_step():
  """One step by hand from cells.lstm (gate blocks (i, f, o, g), b_hh = 0)."""
  from rnnlm_jax import cells

  args, _ = _inputs(1, 3, 4, 5, seed=3)
  x, w_ih, w_hh, b, h0, c0 = args
  params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b, "b_hh": jnp.zeros_like(b)}
  (h_r, c_r), _ = cells.lstm.apply(params, (h0, c0), x[0])
  (h, c), _ = onednn.lstm_layer(*args[:4], args[4:])
  _close(h, h_r, "h")
  _close(c, c_r, "c")


def test_second_call_and_shapes_cached():
  """Two shapes interleaved under one jit each (the primitive cache is keyed by shape)."""
  for shape in [(3, 2, 4, 5), (2, 3, 4, 5), (3, 2, 4, 5)]:
    args, cts = _inputs(*shape)
    g = jax.jit(jax.grad(_loss(onednn.lstm_layer, cts), 1))(*args)
    g_r = jax.grad(_loss(onednn.lstm_layer_reference, cts), 1)(*args)
    _close(g, g_r, f"dw_ih {shape}")


def test_vmap_is_sequential_and_correct():
  args, _ = _inputs(3, 2, 4, 5)
  xs = jnp.stack([args[0], 2.0 * args[0]])
  f = lambda x: onednn.lstm_layer(x, *args[1:4], args[4:])[1]
  g = lambda x: onednn.lstm_layer_reference(x, *args[1:4], args[4:])[1]
  _close(jax.vmap(f)(xs), jax.vmap(g)(xs), "vmapped hs")
