"""Tests of the pure cells, the scanned layers/stacks, PyTorch interop and the Flax wrapper.

The reference for the formulas is an independent step-by-step numpy implementation of PyTorch's
documented ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` equations, written in PyTorch's own layout
(``weight_ih_l{k}`` [G*H, in], ...) and gate order (LSTM ``i, f, g, o``; GRU ``r, z, n``).
PyTorch itself is not needed.
"""

from __future__ import annotations

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, interop, rnn
from rnnlm_jax.flax_modules import RNNLayer

from helpers import check_finite_differences

CELL_NAMES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
IN, H, L, B, T = 5, 7, 2, 3, 6
ATOL = 1e-5


# ----------------------------------------------------------------------------- helpers


def torch_state_dict(name, seed, *, num_layers=L, input_size=IN, hidden=H, bias=True,
                     scale=0.5):
  """A random state_dict in PyTorch's names and layout (float32 numpy)."""
  rng = np.random.default_rng(seed)
  g = GATES[name]
  sd = {}
  for k in range(num_layers):
    n_in = input_size if k == 0 else hidden
    sd[f"weight_ih_l{k}"] = rng.uniform(-scale, scale, (g * hidden, n_in)).astype(np.float32)
    sd[f"weight_hh_l{k}"] = rng.uniform(-scale, scale, (g * hidden, hidden)).astype(np.float32)
    if bias:
      sd[f"bias_ih_l{k}"] = rng.uniform(-scale, scale, (g * hidden,)).astype(np.float32)
      sd[f"bias_hh_l{k}"] = rng.uniform(-scale, scale, (g * hidden,)).astype(np.float32)
  return sd


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def torch_reference(name, sd, x, h0, c0=None):
  """PyTorch's equations, step by step in float64 numpy, batch_first.

  Args: ``x [B, T, in]``, ``h0 [L, B, H]``, ``c0 [L, B, H]`` (LSTM). Returns
  ``(output [B, T, H], h_n [L, B, H], c_n [L, B, H] or None)`` as ``nn.RNN/LSTM/GRU`` would.
  """
  num_layers = len([k for k in sd if k.startswith("weight_ih_l")])
  layer_in = x.astype(np.float64)
  h_n, c_n = [], []
  for k in range(num_layers):
    w_ih = sd[f"weight_ih_l{k}"].astype(np.float64)
    w_hh = sd[f"weight_hh_l{k}"].astype(np.float64)
    b_ih = sd.get(f"bias_ih_l{k}", np.zeros(w_ih.shape[0])).astype(np.float64)
    b_hh = sd.get(f"bias_hh_l{k}", np.zeros(w_ih.shape[0])).astype(np.float64)
    h = h0[k].astype(np.float64)
    c = c0[k].astype(np.float64) if c0 is not None else None
    outs = []
    for t in range(layer_in.shape[1]):
      x_t = layer_in[:, t]
      if name in ("rnn_tanh", "rnn_relu"):
        # h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
        pre = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        h = np.tanh(pre) if name == "rnn_tanh" else np.maximum(pre, 0.0)
      elif name == "lstm":
        # rows of W are (W_ii | W_if | W_ig | W_io)
        gates = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = np.split(gates, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c = f * c + i * g
        h = o * np.tanh(c)
      else:
        # rows of W are (W_ir | W_iz | W_in); n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        x_r, x_z, x_n = np.split(x_t @ w_ih.T + b_ih, 3, axis=1)
        h_r, h_z, h_nn = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r = _sigmoid(x_r + h_r)
        z = _sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_nn)
        h = (1.0 - z) * n + z * h
      outs.append(h)
    layer_in = np.stack(outs, axis=1)
    h_n.append(h)
    c_n.append(c)
  return layer_in, np.stack(h_n), (np.stack(c_n) if c0 is not None else None)


def random_params(name, seed, input_size=IN, hidden=H, scale=0.5):
  return cells.get_cell(name).init(jax.random.key(seed), input_size, hidden, init_scale=scale)


def random_carry(name, seed, batch=B, hidden=H, dtype=np.float32):
  rng = np.random.default_rng(seed)
  h = jnp.asarray(rng.normal(size=(batch, hidden)).astype(dtype))
  if name == "lstm":
    return (h, jnp.asarray(rng.normal(size=(batch, hidden)).astype(dtype)))
  return h


def random_inputs(seed, shape=(B, T, IN), dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def assert_trees_close(a, b, atol=ATOL, rtol=0.0):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  assert la, "empty tree"
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------- vs PyTorch formulas


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_stack_matches_pytorch_reference(name, bias):
  sd = torch_state_dict(name, seed=1, bias=bias)
  rng = np.random.default_rng(2)
  x = rng.normal(size=(B, T, IN)).astype(np.float32)
  h0 = rng.normal(size=(L, B, H)).astype(np.float32)
  c0 = rng.normal(size=(L, B, H)).astype(np.float32) if name == "lstm" else None
  ref_out, ref_h, ref_c = torch_reference(name, sd, x, h0, c0)

  params = interop.from_torch(name, sd)
  assert len(params) == L
  if not bias:  # bias=False models load with zero biases
    assert all(not np.any(p["b_ih"]) and not np.any(p["b_hh"]) for p in params)
  carries = [(jnp.asarray(h0[k]), jnp.asarray(c0[k])) if name == "lstm" else jnp.asarray(h0[k])
             for k in range(L)]
  new_carries, hs = rnn.stack(cells.get_cell(name), params, carries, jnp.asarray(x))

  assert hs.shape == (B, T, H)
  np.testing.assert_allclose(np.asarray(hs), ref_out, atol=ATOL)
  for k in range(L):
    if name == "lstm":
      np.testing.assert_allclose(np.asarray(new_carries[k][0]), ref_h[k], atol=ATOL)
      np.testing.assert_allclose(np.asarray(new_carries[k][1]), ref_c[k], atol=ATOL)
    else:
      np.testing.assert_allclose(np.asarray(new_carries[k]), ref_h[k], atol=ATOL)
  # the reference is not trivially close to the input state: the recurrence actually ran
  assert np.abs(ref_h - h0).max() > 0.1


@pytest.mark.parametrize("name", CELL_NAMES)
def test_single_cell_keys_match_pytorch_reference(name):
  sd_layer = torch_state_dict(name, seed=3, num_layers=1)
  sd_cell = {k[:-3]: v for k, v in sd_layer.items()}  # weight_ih_l0 -> weight_ih (nn.LSTMCell)
  assert set(sd_cell) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
  (params,) = interop.from_torch(name, sd_cell)
  rng = np.random.default_rng(4)
  x = rng.normal(size=(B, 1, IN)).astype(np.float32)
  h0 = rng.normal(size=(1, B, H)).astype(np.float32)
  c0 = rng.normal(size=(1, B, H)).astype(np.float32) if name == "lstm" else None
  ref_out, _, ref_c = torch_reference(name, sd_layer, x, h0, c0)
  carry = (jnp.asarray(h0[0]), jnp.asarray(c0[0])) if name == "lstm" else jnp.asarray(h0[0])
  new_carry, h = cells.get_cell(name).apply(params, carry, jnp.asarray(x[:, 0]))
  np.testing.assert_allclose(np.asarray(h), ref_out[:, 0], atol=ATOL)
  if name == "lstm":
    np.testing.assert_allclose(np.asarray(new_carry[1]), ref_c[0], atol=ATOL)


# ----------------------------------------------------------------------------- interop


@pytest.mark.parametrize("name", CELL_NAMES)
def test_from_torch_to_torch_round_trip_is_exact(name):
  sd = torch_state_dict(name, seed=5)
  back = interop.to_torch(name, interop.from_torch(name, sd))
  assert set(back) == set(sd)
  for k in sd:
    assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape
    np.testing.assert_array_equal(back[k], sd[k])

  # and the other direction, from our params
  ours = rnn.init_stack(jax.random.key(0), cells.get_cell(name), L, IN, H)
  again = interop.from_torch(name, interop.to_torch(name, ours))
  assert len(again) == L
  for p, q in zip(ours, again):
    assert set(p) == set(q)
    for k in p:
      np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(q[k]))

  # single-cell keys: a dict (not a list) gives nn.*Cell names, and round-trips too
  cell_sd = interop.to_torch(name, ours[0])
  assert set(cell_sd) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
  (p0,) = interop.from_torch(name, cell_sd)
  for k in p0:
    np.testing.assert_array_equal(np.asarray(p0[k]), np.asarray(ours[0][k]))


@pytest.mark.parametrize("name,our_order", [("lstm", [0, 1, 3, 2]), ("gru", [0, 1, 2]),
                                            ("rnn_tanh", [0])])
def test_from_torch_gate_block_order(name, our_order):
  g = GATES[name]
  # PyTorch block j (LSTM: i, f, g, o) filled with the value j
  block_ids = np.repeat(np.arange(g, dtype=np.float32), H)
  sd = {"weight_ih_l0": np.tile(block_ids[:, None], (1, IN)),
        "weight_hh_l0": np.tile(block_ids[:, None], (1, H)),
        "bias_ih_l0": block_ids.copy(), "bias_hh_l0": block_ids + 10.0}
  (p,) = interop.from_torch(name, sd)
  expected = np.repeat(np.asarray(our_order, np.float32), H)  # our block k = PyTorch block
  assert p["w_ih"].shape == (IN, g * H) and p["w_hh"].shape == (H, g * H)
  np.testing.assert_array_equal(np.asarray(p["w_ih"]), np.tile(expected, (IN, 1)))
  np.testing.assert_array_equal(np.asarray(p["w_hh"]), np.tile(expected, (H, 1)))
  np.testing.assert_array_equal(np.asarray(p["b_ih"]), expected)
  np.testing.assert_array_equal(np.asarray(p["b_hh"]), expected + 10.0)


def test_bias_false_round_trip():
  sd = torch_state_dict("gru", seed=6, bias=False)
  params = interop.from_torch("gru", sd)
  back = interop.to_torch("gru", params, bias=False)
  assert set(back) == set(sd)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k])
  assert {"bias_ih_l0", "bias_hh_l1"} <= set(interop.to_torch("gru", params))  # default: emitted
  nonzero = [dict(p, b_hh=p["b_hh"] + 1.0) for p in params]
  with pytest.raises(ValueError, match="bias=False but the biases are not all zero"):
    interop.to_torch("gru", nonzero, bias=False)


def test_from_torch_errors():
  sd = torch_state_dict("lstm", seed=7)
  with pytest.raises(ValueError, match=r"unknown cell 'lstmm'.*rnn_tanh, rnn_relu, lstm, gru"):
    interop.from_torch("lstmm", sd)

  with pytest.raises(ValueError, match=r"missing keys \['weight_hh_l1'\]"):
    interop.from_torch("lstm", {k: v for k, v in sd.items() if k != "weight_hh_l1"})
  with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\]"):  # half a bias
    interop.from_torch("lstm", {k: v for k, v in sd.items() if k != "bias_hh_l0"})

  bad = dict(sd, weight_ih_l1=np.zeros((4 * H, H + 1), np.float32))
  with pytest.raises(ValueError, match=r"weight_ih_l1: expected shape \(28, 7\).*got \(28, 8\)"):
    interop.from_torch("lstm", bad)
  bad = dict(sd, bias_ih_l0=np.zeros((4 * H + 1,), np.float32))
  with pytest.raises(ValueError, match=r"bias_ih_l0: expected shape \(28,\)"):
    interop.from_torch("lstm", bad)
  bad = dict(sd, weight_ih_l0=np.zeros((4 * H, IN), np.int32))
  with pytest.raises(ValueError, match=r"weight_ih_l0: expected a floating-point array"):
    interop.from_torch("lstm", bad)

  # LSTM weights under a GRU name: the gate count does not fit
  with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape \(G\*H, H\) with G=3"):
    interop.from_torch("gru", sd)

  with pytest.raises(ValueError, match=r"bidirectional.*not supported here"):
    interop.from_torch("lstm", dict(sd, weight_ih_l0_reverse=sd["weight_ih_l0"]))
  with pytest.raises(ValueError, match=r"proj_size"):
    interop.from_torch("lstm", dict(sd, weight_hr_l0=np.zeros((3, H), np.float32)))

  with pytest.raises(ValueError, match=r"unexpected keys \['bias_hh_l1'"):
    interop.from_torch("lstm", sd, num_layers=1)
  with pytest.raises(ValueError, match=r"missing keys \['weight_ih_l2'"):
    interop.from_torch("lstm", sd, num_layers=3)
  assert len(interop.from_torch("lstm", sd, num_layers=2)) == 2

  with pytest.raises(ValueError, match=r"no PyTorch recurrent weights found"):
    interop.from_torch("lstm", {f"rnn.{k}": v for k, v in sd.items()})
  cell_sd = {k[:-3]: v for k, v in sd.items() if k.endswith("_l0")}
  with pytest.raises(ValueError, match=r"single-cell keys .* 1 layer"):
    interop.from_torch("lstm", cell_sd, num_layers=2)


def test_to_torch_errors():
  params = rnn.init_stack(jax.random.key(0), cells.lstm, L, IN, H)
  with pytest.raises(ValueError, match=r"unknown cell 'foo'"):
    interop.to_torch("foo", params)
  with pytest.raises(ValueError, match=r"w_hh must be \[H, 3\*H\] for cell 'gru'"):
    interop.to_torch("gru", params)
  with pytest.raises(ValueError, match=r"layer 1: missing params \['b_hh'\]"):
    interop.to_torch("lstm", [params[0], {k: v for k, v in params[1].items() if k != "b_hh"}])
  with pytest.raises(ValueError, match=r"layer 0: b_ih must end in 28"):
    interop.to_torch("lstm", [dict(params[0], b_ih=params[0]["b_ih"][:-1])])
  with pytest.raises(ValueError, match="empty"):
    interop.to_torch("lstm", [])


# ----------------------------------------------------------------------------- vs flax cells


def _flax_step_and_scan(fcell, variables, carry, xs):
  """One step of a flax cell on ``xs[:, 0]`` and ``nn.RNN`` over the whole ``[B, T, I]``."""
  step = fcell.apply(variables, carry, xs[:, 0])
  scanned = nn.RNN(fcell, return_carry=True).apply(
      {"params": {"cell": variables["params"]}}, xs, initial_carry=carry)
  return step, scanned


def _ours_step_and_scan(cell, params, carry, xs):
  return cell.apply(params, carry, xs[:, 0]), rnn.scan_layer(cell, params, carry, xs)


def test_matches_flax_simple_cell():
  # flax: h' = tanh(x W_i + b_i + h W_h): our rnn_tanh with b_hh = 0
  fcell = nn.SimpleCell(features=H, bias_init=nn.initializers.normal(0.5))
  xs, h0 = random_inputs(10), random_carry("rnn_tanh", 11)
  variables = fcell.init(jax.random.key(0), h0, xs[:, 0])
  p = variables["params"]
  ours = {"w_ih": p["i"]["kernel"], "w_hh": p["h"]["kernel"], "b_ih": p["i"]["bias"],
          "b_hh": jnp.zeros((H,))}
  assert np.abs(np.asarray(ours["b_ih"])).max() > 0.1  # the bias is really exercised
  (fc, fh), (fC, fhs) = _flax_step_and_scan(fcell, variables, h0, xs)
  (oc, oh), (oC, ohs) = _ours_step_and_scan(cells.rnn_tanh, ours, h0, xs)
  assert_trees_close((oc, oh), (fc, fh))
  assert ohs.shape == fhs.shape == (B, T, H)
  assert_trees_close((oC, ohs), (fC, fhs))


@pytest.mark.parametrize("flax_cls", [nn.LSTMCell, nn.OptimizedLSTMCell])
def test_matches_flax_lstm_cell(flax_cls):
  # flax: gates (i, f, g, o), kernels ii/if/ig/io without bias, hi/hf/hg/ho with bias; carry
  # (c, h). Ours: blocks (i, f, o, g), carry (h, c); flax's biases go into our b_hh, b_ih = 0.
  fcell = flax_cls(features=H, bias_init=nn.initializers.normal(0.5))
  xs, (h0, c0) = random_inputs(12), random_carry("lstm", 13)
  variables = fcell.init(jax.random.key(1), (c0, h0), xs[:, 0])
  p = variables["params"]
  order = ("i", "f", "o", "g")
  ours = {"w_ih": jnp.concatenate([p[f"i{g}"]["kernel"] for g in order], axis=1),
          "w_hh": jnp.concatenate([p[f"h{g}"]["kernel"] for g in order], axis=1),
          "b_ih": jnp.zeros((4 * H,)),
          "b_hh": jnp.concatenate([p[f"h{g}"]["bias"] for g in order])}
  ((fc_c, fc_h), fh), ((fC_c, fC_h), fhs) = _flax_step_and_scan(fcell, variables, (c0, h0), xs)
  ((oc_h, oc_c), oh), ((oC_h, oC_c), ohs) = _ours_step_and_scan(cells.lstm, ours, (h0, c0), xs)
  assert_trees_close((oh, oc_h, oc_c), (fh, fc_h, fc_c))
  assert_trees_close((ohs, oC_h, oC_c), (fhs, fC_h, fC_c))


def test_matches_flax_gru_cell():
  # flax 0.12.8 GRUCell: r = σ(x W_ir + b_ir + h W_hr), z = σ(x W_iz + b_iz + h W_hz),
  # n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), h' = (1 - z) n + z h.
  # The reset gate multiplies (h W_hn + b_hn) exactly as in PyTorch and in our gru. The only
  # difference is that flax has no separate hidden biases b_hr, b_hz; they are redundant with
  # b_ir, b_iz (only their sum matters), so the two parameterisations are equivalent:
  # flax -> ours: b_hh = (0, 0, b_hn);  ours -> flax: bias_ir = b_ir + b_hr, bias_iz = b_iz + b_hz.
  fcell = nn.GRUCell(features=H, bias_init=nn.initializers.normal(0.5))
  xs, h0 = random_inputs(14), random_carry("gru", 15)
  variables = fcell.init(jax.random.key(2), h0, xs[:, 0])
  p = variables["params"]
  ours = {"w_ih": jnp.concatenate([p[f"i{g}"]["kernel"] for g in "rzn"], axis=1),
          "w_hh": jnp.concatenate([p[f"h{g}"]["kernel"] for g in "rzn"], axis=1),
          "b_ih": jnp.concatenate([p[f"i{g}"]["bias"] for g in "rzn"]),
          "b_hh": jnp.concatenate([jnp.zeros((2 * H,)), p["hn"]["bias"]])}
  (fc, fh), (fC, fhs) = _flax_step_and_scan(fcell, variables, h0, xs)
  (oc, oh), (oC, ohs) = _ours_step_and_scan(cells.gru, ours, h0, xs)
  assert_trees_close((oc, oh), (fc, fh))
  assert_trees_close((oC, ohs), (fC, fhs))

  # ours -> flax, with non-zero b_hr, b_hz folded into flax's input biases
  q = random_params("gru", 16)
  w_ih, w_hh, b_ih, b_hh = (np.split(np.asarray(q[k]), 3, axis=-1)
                            for k in ("w_ih", "w_hh", "b_ih", "b_hh"))
  assert np.abs(b_hh[0]).max() > 0.1
  fp = {"ir": {"kernel": w_ih[0], "bias": b_ih[0] + b_hh[0]},
        "iz": {"kernel": w_ih[1], "bias": b_ih[1] + b_hh[1]},
        "in": {"kernel": w_ih[2], "bias": b_ih[2]},
        "hr": {"kernel": w_hh[0]}, "hz": {"kernel": w_hh[1]},
        "hn": {"kernel": w_hh[2], "bias": b_hh[2]}}
  fp = jax.tree.map(jnp.asarray, fp)
  (fc, fh), (fC, fhs) = _flax_step_and_scan(fcell, {"params": fp}, h0, xs)
  (oc, oh), (oC, ohs) = _ours_step_and_scan(cells.gru, q, h0, xs)
  assert_trees_close((oc, oh), (fc, fh))
  assert_trees_close((oC, ohs), (fC, fhs))

  # the comparison is sensitive to the reset-gate placement: the Cho et al. (2014) variant
  # n = tanh(x W_in + b_in + (r * h) W_hn + b_hn) gives a clearly different step
  x, h = np.asarray(xs[:, 0], np.float64), np.asarray(h0, np.float64)
  r = _sigmoid(x @ w_ih[0] + b_ih[0] + h @ w_hh[0] + b_hh[0])
  z = _sigmoid(x @ w_ih[1] + b_ih[1] + h @ w_hh[1] + b_hh[1])
  n_cho = np.tanh(x @ w_ih[2] + b_ih[2] + (r * h) @ w_hh[2] + b_hh[2])
  assert np.abs((1 - z) * n_cho + z * h - np.asarray(oh)).max() > 1e-3


# ----------------------------------------------------------------------------- cell / scan consistency


@pytest.mark.parametrize("name", CELL_NAMES)
def test_apply_equals_project_then_step(name):
  cell = cells.get_cell(name)
  params, carry = random_params(name, 20), random_carry(name, 21)
  xs = random_inputs(22)
  c1, h1 = cell.apply(params, carry, xs[:, 0])
  c2, h2 = cell.step(params, carry, cell.project_inputs(params, xs[:, 0]))
  assert h1.shape == (B, H)
  assert_trees_close((c1, h1), (c2, h2), atol=1e-6)
  # the carry's output is the step output
  np.testing.assert_array_equal(np.asarray(cell.carry_output(c1)), np.asarray(h1))
  # projecting all time steps at once equals projecting each
  gx = cell.project_inputs(params, xs)
  assert gx.shape == (B, T, GATES[name] * H)
  for t in range(T):
    np.testing.assert_allclose(np.asarray(gx[:, t]),
                               np.asarray(cell.project_inputs(params, xs[:, t])), atol=1e-6)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_scan_layer_equals_python_loop(name):
  cell = cells.get_cell(name)
  params, carry, xs = random_params(name, 23), random_carry(name, 24), random_inputs(25)
  c, hs = carry, []
  for t in range(T):
    c, h = cell.apply(params, c, xs[:, t])
    hs.append(h)
  loop = (c, jnp.stack(hs, axis=1))
  scanned = rnn.scan_layer(cell, params, carry, xs)
  assert scanned[1].shape == (B, T, H)
  assert_trees_close(scanned, loop)
  # time-major variant agrees
  c_tm, hs_tm = rnn.scan_layer_time_major(cell, params, carry, jnp.swapaxes(xs, 0, 1))
  assert_trees_close((c_tm, jnp.swapaxes(hs_tm, 0, 1)), loop)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_unroll_and_reverse(name):
  cell = cells.get_cell(name)
  params, carry, xs = random_params(name, 26), random_carry(name, 27), random_inputs(28)
  base = rnn.scan_layer(cell, params, carry, xs)
  # unroll=4 with T=6 (not a multiple) gives the same values
  assert_trees_close(rnn.scan_layer(cell, params, carry, xs, unroll=4), base, atol=1e-6)

  # reverse=True equals scanning the time-reversed sequence (outputs back in input order)
  c_rev, hs_rev = rnn.scan_layer(cell, params, carry, xs, reverse=True)
  c_flip, hs_flip = rnn.scan_layer(cell, params, carry, xs[:, ::-1])
  assert_trees_close((c_rev, hs_rev), (c_flip, hs_flip[:, ::-1]))
  assert np.abs(np.asarray(hs_rev - base[1])).max() > 1e-3  # and differs from forward


@pytest.mark.parametrize("name", ["lstm", "gru"])  # tuple and array carries
def test_remat_gives_same_values_and_gradients(name):
  cell = cells.get_cell(name)
  params, carry, xs = random_params(name, 26), random_carry(name, 27), random_inputs(28)
  w = random_inputs(29, shape=(B, T, H))

  def loss(p, x, remat):
    c, hs = rnn.scan_layer(cell, p, carry, x, remat=remat)
    return jnp.sum(hs * w) + sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(c))

  vg = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
  v0, g0 = vg(params, xs, False)
  v1, g1 = vg(params, xs, True)
  np.testing.assert_allclose(float(v1), float(v0), rtol=1e-6)
  assert_trees_close(g1, g0, atol=1e-5)
  assert float(jnp.abs(g0[0]["w_hh"]).max()) > 1e-3  # gradients are not trivially zero


@pytest.mark.parametrize("name", CELL_NAMES)
def test_stack_gradients_match_finite_differences(name):
  cell = cells.get_cell(name)
  # the point and the directions are float64 numpy, built outside the x64 scope
  as_np = lambda t: jax.tree.map(lambda a: np.asarray(a, np.float64), t)
  params = as_np(rnn.init_stack(jax.random.key(30), cell, L, IN, H, init_scale=0.5))
  carries = as_np([random_carry(name, 31 + k) for k in range(L)])
  xs = as_np(random_inputs(33))
  point = (params, xs, carries)
  w = np.random.default_rng(34).normal(size=(B, T, H))
  rng = np.random.default_rng(35)
  dirs = [jax.tree.map(lambda a: rng.normal(size=a.shape), point) for _ in range(3)]
  e = np.zeros_like(xs)
  e[1, 2, 3] = 1.0  # one input coordinate
  dirs.append((jax.tree.map(np.zeros_like, params), e, jax.tree.map(np.zeros_like, carries)))
  eps = 1e-6

  with jax.enable_x64(True):  # scoped: the global flag is restored on exit
    @jax.jit
    def loss(p, x, c0):
      c, hs = rnn.stack(cell, p, c0, x)
      return jnp.sum(hs * w) + 0.5 * sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(c))

    grads = check_finite_differences(loss, point, dirs, eps)
    assert grads[0][0]["w_hh"].dtype == jnp.float64
  assert jnp.zeros(1).dtype == jnp.float32  # x64 is off again


# ----------------------------------------------------------------------------- lean backward: a field of the cell


LEAN_CALL = re.compile(r"custom_vjp_call\[\s*name=(_elman|_lstm|_gru)\b")


def lean_calls(fn, *args) -> list[str]:
  """The hand-differentiated recurrences (custom VJPs of cells.py) that ``fn(*args)`` traces."""
  return LEAN_CALL.findall(str(jax.make_jaxpr(fn)(*args)))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_lean_backward_is_a_field_of_the_cell(name):
  """``Cell.recurrence`` is what the scan runs (not the name); ``backward="autodiff"`` drops it
  and gives the same values and gradients."""
  cell = cells.get_cell(name)
  auto = cells.get_cell(name, backward="autodiff")
  assert cell.recurrence is not None and auto.recurrence is None
  assert cells.get_cell(name) is cell and cells.get_cell(name, backward="autodiff") is auto
  assert auto._replace(recurrence=cell.recurrence) == cell  # nothing else differs
  for norm in cells.NORMS:  # the LN and BN cells have none: autodiff either way
    if norm == "batch" and name not in cells.BATCH_NORM_CELLS:
      continue
    assert cells.get_cell(name, "layer", backward="autodiff").recurrence is None
    assert (cells.get_cell(name, norm).recurrence is None) == (norm != "none")

  params, carry, xs = random_params(name, 60), random_carry(name, 61), random_inputs(62)
  xs_TBI = jnp.swapaxes(xs, 0, 1)
  # Dispatch is by the field: a renamed cell still runs it, a spy in its place is called.
  fwd = lambda c: lambda p: rnn.scan_layer_time_major(c, p, carry, xs_TBI)[1]
  want = {"rnn_tanh": ["_elman"], "rnn_relu": ["_elman"], "lstm": ["_lstm"], "gru": ["_gru"]}
  assert lean_calls(fwd(cell), params) == want[name]
  assert lean_calls(fwd(cell._replace(name="renamed")), params) == want[name]
  assert lean_calls(fwd(auto), params) == []
  calls = []

  def spy(p, c, gx):
    calls.append(gx.shape)
    return cell.recurrence(p, c, gx)

  out = rnn.scan_layer_time_major(cell._replace(recurrence=spy), params, carry, xs_TBI)
  assert calls == [(T, B, GATES[name] * H)]
  assert_trees_close(out, rnn.scan_layer_time_major(cell, params, carry, xs_TBI), atol=0.0)
  # remat / reverse / unroll need the scan: the field is not used then
  calls.clear()
  rnn.scan_layer_time_major(cell._replace(recurrence=spy), params, carry, xs_TBI, remat="step")
  rnn.scan_layer_time_major(cell._replace(recurrence=spy), params, carry, xs_TBI, reverse=True)
  assert calls == []

  # The explicit autodiff cell: same values and gradients.
  w = random_inputs(63, shape=(T, B, H))

  def loss(c):
    def f(p, c0, x):
      c1, hs = rnn.scan_layer_time_major(c, p, c0, x)
      return jnp.sum(jnp.sin(hs) * w) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(c1))
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))

  v_lean, g_lean = loss(cell)(params, carry, xs_TBI)
  v_auto, g_auto = loss(auto)(params, carry, xs_TBI)
  np.testing.assert_allclose(float(v_lean), float(v_auto), rtol=1e-6)
  assert_trees_close(g_lean, g_auto, atol=1e-5)
  assert float(jnp.abs(g_lean[0]["w_hh"]).max()) > 1e-2  # not trivially zero
  # rnn.recurrence: the field too, or the generic step_hw path (its own custom VJP) for a cell
  # without one; same values and gradients
  gx = cell.project_inputs(params, xs_TBI)
  assert_trees_close(rnn.recurrence(auto, params, carry, gx),
                     rnn.recurrence(cell, params, carry, gx), atol=1e-6)
  rec_loss = lambda c: jax.grad(lambda p, g: jnp.sum(jnp.sin(rnn.recurrence(c, p, carry, g)[1])),
                                argnums=(0, 1))
  assert_trees_close(rec_loss(auto)(params, gx), rec_loss(cell)(params, gx), atol=1e-5)
  with pytest.raises(ValueError, match="neither a recurrence nor a step_hw"):
    rnn.recurrence(cells.get_cell(name, "layer"), params, carry, gx)


def test_lm_runs_the_lean_backward_by_default():
  """The LM's stack takes the cells' hand-written recurrences unless its spec says autodiff
  (an explicit argument, no global switch), with the same loss and gradients."""
  from rnnlm_jax.config_base import base_config
  from rnnlm_jax.models import lm

  c = base_config().model
  c.hidden_size, c.embed_size, c.num_layers = 8, 8, 2
  spec = lm.LMSpec.from_config(c, 11)
  assert spec.backward == "lean" and spec.cell_fns is cells.get_cell("lstm")
  auto = dataclasses.replace(spec, backward="autodiff")
  assert auto.cell_fns is cells.get_cell("lstm", backward="autodiff")
  params = lm.init_params(jax.random.key(0), spec)
  x = jax.random.randint(jax.random.key(1), (3, 5), 0, 11)
  y = jax.random.randint(jax.random.key(2), (3, 5), 0, 11)
  loss = lambda s: lambda p: lm.token_nll(p, s, lm.init_carry(s, 3), x, y)[1].sum()
  assert lean_calls(loss(spec), params) == ["_lstm", "_lstm"]  # one per layer
  assert lean_calls(loss(auto), params) == []
  v0, g0 = jax.jit(jax.value_and_grad(loss(spec)))(params)
  v1, g1 = jax.jit(jax.value_and_grad(loss(auto)))(params)
  np.testing.assert_allclose(float(v0), float(v1), rtol=1e-6)
  assert_trees_close(g0, g1, atol=1e-6)
  assert float(jnp.abs(g0["rnn"][0]["w_hh"]).max()) > 1e-4
  with pytest.raises(ValueError, match=r"backward must be one of lean \| autodiff"):
    cells.get_cell("lstm", backward="fast")


# ----------------------------------------------------------------------------- initialisers


@pytest.mark.parametrize("name", CELL_NAMES)
def test_uniform_init_bounds_and_shapes(name):
  cell, g, s = cells.get_cell(name), GATES[name], 0.3
  p = cell.init(jax.random.key(40), IN, H, init="uniform", init_scale=s)
  shapes = {"w_ih": (IN, g * H), "w_hh": (H, g * H), "b_ih": (g * H,), "b_hh": (g * H,)}
  assert {k: v.shape for k, v in p.items()} == shapes
  for k, v in p.items():
    v = np.asarray(v)
    assert v.dtype == np.float32
    assert np.all(np.abs(v) <= s), k
    assert np.unique(v).size == v.size, k  # random, not constant
  flat = np.concatenate([np.asarray(v).ravel() for v in p.values()])
  assert flat.max() > 0.8 * s and flat.min() < -0.8 * s  # spread over the whole range
  stack = rnn.init_stack(jax.random.key(41), cell, L, IN, H)
  assert stack[0]["w_ih"].shape == (IN, g * H) and stack[1]["w_ih"].shape == (H, g * H)
  assert not np.array_equal(np.asarray(stack[0]["w_hh"]), np.asarray(stack[1]["w_hh"]))
  with pytest.raises(ValueError, match="num_layers must be >= 1"):
    rnn.init_stack(jax.random.key(0), cell, 0, IN, H)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_orthogonal_and_identity_init(name):
  cell, g, s = cells.get_cell(name), GATES[name], 0.2
  p = cell.init(jax.random.key(42), IN, H, init="orthogonal", init_scale=s)
  blocks = np.split(np.asarray(p["w_hh"]), g, axis=1)
  for blk in blocks:
    np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-5)
  if g > 1:  # independent blocks
    assert not np.allclose(blocks[0], blocks[1])
  assert np.all(np.abs(np.asarray(p["w_ih"])) <= s) and np.abs(np.asarray(p["w_ih"])).max() > 0
  assert not np.any(np.asarray(p["b_ih"])) and not np.any(np.asarray(p["b_hh"]))
  pg = cell.init(jax.random.key(42), IN, H, init="orthogonal", gain=2.0)
  for blk in np.split(np.asarray(pg["w_hh"]), g, axis=1):
    np.testing.assert_allclose(blk.T @ blk, 4.0 * np.eye(H), atol=1e-4)

  p = cell.init(jax.random.key(43), IN, H, init="identity", init_scale=s)
  np.testing.assert_array_equal(np.asarray(p["w_hh"]), np.tile(np.eye(H, dtype=np.float32), g))
  assert not np.any(np.asarray(p["b_ih"])) and not np.any(np.asarray(p["b_hh"]))
  assert np.all(np.abs(np.asarray(p["w_ih"])) <= s)
  p = cell.init(jax.random.key(43), IN, H, init="identity", gain=0.5)
  np.testing.assert_array_equal(np.asarray(p["w_hh"]), np.tile(0.5 * np.eye(H), g))


def test_lstm_forget_bias_shifts_only_the_f_block():
  for init in ("uniform", "orthogonal", "identity"):
    p0 = cells.lstm.init(jax.random.key(44), IN, H, init=init, forget_bias=0.0)
    p1 = cells.lstm.init(jax.random.key(44), IN, H, init=init, forget_bias=1.0)
    for k in ("w_ih", "w_hh", "b_hh"):
      np.testing.assert_array_equal(np.asarray(p1[k]), np.asarray(p0[k]))
    b0, b1 = np.asarray(p0["b_ih"]), np.asarray(p1["b_ih"])
    f = slice(H, 2 * H)  # our block order (i, f, o, g)
    np.testing.assert_array_equal(b1[f], b0[f] + np.float32(1.0))
    np.testing.assert_array_equal(np.delete(b1, np.arange(H, 2 * H)),
                                  np.delete(b0, np.arange(H, 2 * H)))
  # it lands in PyTorch's forget block (1) after conversion
  sd = interop.to_torch("lstm", [p1])
  np.testing.assert_array_equal(sd["bias_ih_l0"][H:2 * H], b1[f])
  # the other cells ignore it
  for name in ("rnn_tanh", "rnn_relu", "gru"):
    a = cells.get_cell(name).init(jax.random.key(45), IN, H, forget_bias=0.0)
    b = cells.get_cell(name).init(jax.random.key(45), IN, H, forget_bias=1.0)
    assert_trees_close(a, b, atol=0.0)


def test_unknown_init_and_cell_raise():
  with pytest.raises(ValueError, match=r"unknown init 'xavier'; choose one of uniform, "
                                       r"orthogonal, identity"):
    cells.lstm.init(jax.random.key(0), IN, H, init="xavier")
  with pytest.raises(ValueError, match=r"unknown cell 'transformer'; choose one of rnn_tanh, "
                                       r"rnn_relu, lstm, gru"):
    cells.get_cell("transformer")
  with pytest.raises(ValueError, match="must be positive"):
    cells.gru.init(jax.random.key(0), 0, H)


# ----------------------------------------------------------------------------- Flax module


@pytest.mark.parametrize("name", CELL_NAMES)
def test_flax_rnn_layer(name):
  layer = RNNLayer(cell=name, hidden_size=H, init_scale=0.5)
  xs = random_inputs(50)
  variables = layer.init(jax.random.key(51), xs)
  p = variables["params"]["cell"]
  g = GATES[name]
  assert {k: v.shape for k, v in p.items()} == {"w_ih": (IN, g * H), "w_hh": (H, g * H),
                                                "b_ih": (g * H,), "b_hh": (g * H,)}
  cell = cells.get_cell(name)

  carry, hs = layer.apply(variables, xs)  # zero initial carry
  assert hs.shape == (B, T, H)
  assert_trees_close((carry, hs), rnn.scan_layer(cell, p, cell.init_carry(B, H), xs), atol=0.0)

  c0 = random_carry(name, 52)
  out = layer.apply(variables, xs, c0)
  assert_trees_close(out, rnn.scan_layer(cell, p, c0, xs), atol=0.0)


def test_flax_rnn_layer_windows_and_jit():
  layer = RNNLayer(cell="lstm", hidden_size=H, init_scale=0.5)
  xs, c0 = random_inputs(54), random_carry("lstm", 55)
  variables = layer.init(jax.random.key(56), xs)
  out = layer.apply(variables, xs, c0)
  # carrying over between windows (truncated BPTT) equals one long window
  c_mid, hs_a = layer.apply(variables, xs[:, :3], c0)
  c_end, hs_b = layer.apply(variables, xs[:, 3:], c_mid)
  assert_trees_close((c_end, jnp.concatenate([hs_a, hs_b], axis=1)), out)
  # jit-compatible
  assert_trees_close(jax.jit(layer.apply)(variables, xs, c0), out, atol=1e-6)
  # the unroll field reaches lax.scan (tracing only, no compile)
  jaxpr = str(jax.make_jaxpr(RNNLayer(cell="lstm", hidden_size=H, unroll=4).apply)(variables, xs))
  assert "unroll=4" in jaxpr and "unroll=4" not in str(jax.make_jaxpr(layer.apply)(variables, xs))


def test_flax_rnn_layer_init_options_and_errors():
  xs = random_inputs(53)
  v = RNNLayer(cell="lstm", hidden_size=H, initializer="identity", forget_bias=1.0).init(
      jax.random.key(0), xs)
  p = v["params"]["cell"]
  np.testing.assert_array_equal(np.asarray(p["w_hh"]), np.tile(np.eye(H, dtype=np.float32), 4))
  np.testing.assert_array_equal(np.asarray(p["b_ih"]),
                                np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
  with pytest.raises(ValueError, match="unknown cell 'foo'"):
    RNNLayer(cell="foo", hidden_size=H).init(jax.random.key(0), xs)
  with pytest.raises(ValueError, match="unknown init 'bar'"):
    RNNLayer(cell="gru", hidden_size=H, initializer="bar").init(jax.random.key(0), xs)
