"""Options of the hand-written recurrences: bfloat16 recurrent matmuls, unrolled scans.

``compute_dtype="bfloat16"``: the forward ``h W_hh``, the backward ``d W_hh^T`` and the ``dW_hh``
GEMM take bfloat16 operands and accumulate in float32; ``h``, the LSTM cell state and every
gradient stay float32. Checked: float32 is unchanged bit for bit (the golden tests;
tests/test_cells.py compares it with ``lax.scan(step)``), bfloat16 values and gradients stay
within bfloat16 error of float32, the hand-written backward matches finite differences of the
bfloat16 forward, and the compiled CPU program runs the recurrent dots with bfloat16 operands.
``unroll > 1``: the same recurrence with both scans unrolled, same values.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, rnn

T, B, E, H = 6, 4, 5, 8
CELLS = ["rnn_tanh", "lstm", "gru"]


def _setup(name: str):
  cell = cells.get_cell(name)
  params = cell.init(jax.random.PRNGKey(0), E, H, init_scale=0.5)
  xs = jax.random.normal(jax.random.PRNGKey(1), (T, B, E))
  carry = jax.tree.map(lambda c: c + 0.1, cell.init_carry(B, H))
  return cell, params, xs, carry


def _loss(cell, dtype):
  weights = jnp.linspace(-1.0, 1.0, T * B * H).reshape(T, B, H)

  def loss(params, xs, carry):
    gx = cell.project_inputs(params, xs)
    final, hs = cell.recurrence(params, carry, gx, dtype)
    return (hs * weights).sum() + sum(jnp.sum(c) for c in jax.tree.leaves(final))
  return loss


@pytest.mark.parametrize("name", CELLS)
def test_bfloat16_values_and_gradients_track_float32(name):
  cell, params, xs, carry = _setup(name)
  f32 = jax.value_and_grad(_loss(cell, "float32"), argnums=(0, 1, 2))(params, xs, carry)
  b16 = jax.value_and_grad(_loss(cell, "bfloat16"), argnums=(0, 1, 2))(params, xs, carry)
  assert float(b16[0]) != float(f32[0])  # the bfloat16 path really ran
  np.testing.assert_allclose(float(b16[0]), float(f32[0]), rtol=2e-2)
  for a, b in zip(jax.tree.leaves(b16[1]), jax.tree.leaves(f32[1])):
    assert a.dtype == jnp.float32
    scale = float(jnp.abs(b).max()) + 1e-6
    assert float(jnp.abs(a - b).max()) / scale < 3e-2


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bfloat16_grads_match_finite_differences_of_the_bfloat16_forward(name):
  # The hand-written backward of the rounded computation: a directional derivative of the
  # bfloat16 forward (float64 reference would not see the rounding) within bfloat16 error.
  cell, params, xs, carry = _setup(name)
  loss = _loss(cell, "bfloat16")
  grads = jax.grad(loss)(params, xs, carry)
  direction = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(7), p.shape), params)
  analytic = sum(float((g * d).sum()) for g, d in zip(jax.tree.leaves(grads),
                                                        jax.tree.leaves(direction)))
  eps = 1e-2
  shifted = lambda s: loss(jax.tree.map(lambda p, d: p + s * eps * d, params, direction), xs,
                           carry)
  numeric = (float(shifted(1.0)) - float(shifted(-1.0))) / (2 * eps)
  assert abs(analytic - numeric) <= 5e-2 * max(1.0, abs(numeric))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's program text")
def test_the_recurrent_dots_take_bfloat16_operands_forward_and_backward():
  # At a realistic size (tiny ones are upcast to float32 dots by XLA:CPU): every dot of the
  # program whose contracting size is H (forward h W_hh, backward d W_hh^T) or T*B (dW_hh)
  # must read bfloat16; they run as YNN fusions on bfloat16 operands.
  cell = cells.get_cell("lstm")
  params = cell.init(jax.random.PRNGKey(0), 32, 128)
  xs = jax.random.normal(jax.random.PRNGKey(1), (8, 16, 32))
  carry = cell.init_carry(16, 128)

  def loss(w_hh, gx):
    return cell.recurrence(dict(params, w_hh=w_hh), carry, gx, "bfloat16")[1].sum()

  gx = cell.project_inputs(params, xs)
  text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params["w_hh"], gx).compile().as_text()
  lines = text.splitlines()
  called = [re.search(r"calls=(%[\w.]+)", l).group(1) for l in lines
            if '"__ynn_fusion"' in l and "calls=" in l]
  signatures = {name: next(l for l in lines if l.startswith(name + " ")) for name in called}
  assert len(called) >= 3, text  # forward h W_hh, backward d W_hh^T, dW_hh
  for name, signature in signatures.items():
    params = signature.split(")")[0]
    assert params.count("bf16[") == 2, f"{name} does not read two bfloat16 operands: {signature}"


def test_the_stack_passes_compute_dtype_to_the_recurrence():
  cell, params, xs, carry = _setup("lstm")
  f32 = rnn.scan_layer_time_major(cell, params, carry, xs, compute_dtype="float32")[1]
  b16 = rnn.scan_layer_time_major(cell, params, carry, xs, compute_dtype="bfloat16")[1]
  autodiff = cells.get_cell("lstm", backward="autodiff")
  b16_autodiff = rnn.scan_layer_time_major(autodiff, params, carry, xs,
                                           compute_dtype="bfloat16")[1]
  assert not np.array_equal(np.asarray(b16), np.asarray(f32))
  # the autodiff path keeps a float32 recurrence: only its input projection is rounded
  assert not np.array_equal(np.asarray(b16), np.asarray(b16_autodiff))
  np.testing.assert_allclose(np.asarray(b16), np.asarray(f32), atol=3e-2)


@pytest.mark.parametrize("name", CELLS)
def test_unrolled_lean_recurrence_equals_unroll_1(name):
  # model.scan_unroll > 1 stays on the hand-written recurrence (its scans unrolled): the same
  # values and gradients as unroll 1, to float rounding.
  cell, params, xs, carry = _setup(name)

  def loss(unroll):
    def f(p, x, c):
      final, hs = rnn.scan_layer_time_major(cell, p, c, x, unroll=unroll)
      return (hs * jnp.linspace(-1, 1, hs.size).reshape(hs.shape)).sum() + sum(
          jnp.sum(leaf) for leaf in jax.tree.leaves(final))
    return jax.value_and_grad(f, argnums=(0, 1, 2))(params, xs, carry)

  one, four = loss(1), loss(4)
  for a, b in zip(jax.tree.leaves(four), jax.tree.leaves(one)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  jaxpr = str(jax.make_jaxpr(lambda p: rnn.scan_layer_time_major(cell, p, carry, xs,
                                                                  unroll=4)[1])(params))
  lean = {"rnn_tanh": "_elman", "lstm": "_lstm", "gru": "_gru"}[name]
  assert f"name={lean}" in jaxpr  # the hand-written recurrence's custom VJP ran
