"""Recurrent cells as pure functions: tanh RNN, ReLU RNN, LSTM and GRU.

Every cell is a :class:`Cell` record of pure functions; parameters are plain dicts of
arrays, carries are arrays (or a tuple for the LSTM). Nothing here holds state.

    params = lstm.init(key, input_size, hidden_size)            # a pytree
    carry  = lstm.init_carry(batch_size, hidden_size)            # zeros
    carry, h_t = lstm.apply(params, carry, x_t)                  # one step on the raw input

For speed the step is split in two halves, used by :func:`rnnlm_jax.rnn.scan_layer`:

    gx = lstm.project_inputs(params, xs)      # all time steps in one matmul, outside the scan
    carry, h_t = lstm.step(params, carry, gx_t)   # one fused recurrent matmul per time step

Formulas are PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (checked in ``tests/test_cells.py``):

    rnn_tanh: h' = tanh(x W_ih + b_ih + h W_hh + b_hh)            (rnn_relu: relu instead of tanh)
    lstm:     i, f, o = sigmoid(.), g = tanh(.) of  x W_ih + b_ih + h W_hh + b_hh
              c' = f * c + i * g ;  h' = o * tanh(c')
    gru:      r, z = sigmoid(x W_ih[r,z] + b_ih[r,z] + h W_hh[r,z] + b_hh[r,z])
              n = tanh(x W_in + b_in + r * (h W_hn + b_hn)) ;  h' = (1 - z) * n + z * h

Parameter layout (``H`` = hidden size, ``G`` = number of gate blocks: 1 RNN, 4 LSTM, 3 GRU):

    w_ih: [input_size, G*H]   (PyTorch ``weight_ih_l{k}`` transposed)
    w_hh: [H, G*H]            (PyTorch ``weight_hh_l{k}`` transposed)
    b_ih: [G*H], b_hh: [G*H]  (PyTorch ``bias_ih_l{k}``, ``bias_hh_l{k}``)

Gate blocks along the last axis: LSTM ``(i, f, o, g)`` (PyTorch stores ``(i, f, g, o)``; our order
lets one sigmoid cover the first 3H columns), GRU ``(r, z, n)`` as PyTorch, RNN one block.
:func:`rnnlm_jax.interop.from_torch` converts a PyTorch ``state_dict`` into this layout exactly.

Initialisers (``init=``): ``"uniform"`` every parameter U[-init_scale, init_scale] (Zaremba et al.
2014); ``"orthogonal"`` W_hh orthogonal per gate block, W_ih U[-init_scale, init_scale], biases 0;
``"identity"`` W_hh the identity per gate block (IRNN, Le et al. 2015, with ``rnn_relu``),
W_ih U[-init_scale, init_scale], biases 0. For the LSTM ``forget_bias`` is added to the
forget-gate block of ``b_ih`` after initialisation (0 keeps the initialiser's value).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnnlm_jax import fused

Params = dict[str, jax.Array]
Carry = Any  # jax.Array [batch, H], or (h, c) for the LSTM

INITS = ("uniform", "orthogonal", "identity")


class Cell(NamedTuple):
  """A recurrent cell as a record of pure functions (see the module docstring)."""

  name: str
  num_gates: int
  init: Callable[..., Params]
  init_carry: Callable[..., Carry]
  project_inputs: Callable[..., jax.Array]  # (params, xs, compute_dtype="float32")
  step: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
  apply: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
  carry_output: Callable[[Carry], jax.Array]
  # The step after its one recurrent matmul: step_hw(params, carry, gx_t, hw_t) with
  # hw_t = carry_output(carry) @ w_hh [B, G*H]; it may read params["b_hh"] only, which lets
  # rnnlm_jax.rnn.recurrence compute W_hh's gradient as one GEMM after the backward scan.
  step_hw: Callable[..., tuple[Carry, jax.Array]] = None


# ----------------------------------------------------------------------------- initialisers


def _uniform(key, shape, scale):
  return jax.random.uniform(key, shape, jnp.float32, -scale, scale)


def _blockwise(fn, key, hidden_size, num_gates):
  """[H, G*H] built from G independent [H, H] blocks."""
  keys = jax.random.split(key, num_gates)
  return jnp.concatenate([fn(k, (hidden_size, hidden_size)) for k in keys], axis=1)


def _init_params(key, input_size, hidden_size, num_gates, *, init="uniform",
                 init_scale=0.1, gain=1.0):
  """Initialise ``{w_ih, w_hh, b_ih, b_hh}`` for a cell with ``num_gates`` blocks."""
  if init not in INITS:
    raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
  if input_size <= 0 or hidden_size <= 0:
    raise ValueError(f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}")
  k_ih, k_hh, k_bi, k_bh = jax.random.split(key, 4)
  width = num_gates * hidden_size
  w_ih = _uniform(k_ih, (input_size, width), init_scale)
  if init == "uniform":
    w_hh = _uniform(k_hh, (hidden_size, width), init_scale)
    b_ih = _uniform(k_bi, (width,), init_scale)
    b_hh = _uniform(k_bh, (width,), init_scale)
  else:
    if init == "orthogonal":
      block = lambda k, s: jax.nn.initializers.orthogonal(scale=gain)(k, s, jnp.float32)
    else:
      block = lambda k, s: gain * jnp.eye(s[0], dtype=jnp.float32)
    w_hh = _blockwise(block, k_hh, hidden_size, num_gates)
    b_ih = jnp.zeros((width,), jnp.float32)
    b_hh = jnp.zeros((width,), jnp.float32)
  return {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}


def _zeros_carry(batch_size, hidden_size, dtype=jnp.float32):
  return jnp.zeros((batch_size, hidden_size), dtype)


def _project(params: Params, xs: jax.Array, with_hh_bias: bool,
             compute_dtype: str = "float32") -> jax.Array:
  """``xs [..., input] -> [..., G*H]`` float32: one GEMM over all leading dims, plus biases.

  ``compute_dtype="bfloat16"``: the GEMM's inputs are rounded to bfloat16 and it accumulates in
  float32 (forward and backward, :func:`rnnlm_jax.fused.dense`); parameters stay float32.
  """
  lead = xs.shape[:-1]
  if compute_dtype == "float32":
    flat = xs.reshape(-1, xs.shape[-1]) @ params["w_ih"]
  else:
    flat = fused.dense(xs.reshape(1, -1, xs.shape[-1]), params["w_ih"], compute_dtype)[0]
  bias = params["b_ih"] + params["b_hh"] if with_hh_bias else params["b_ih"]
  return (flat + bias).reshape(*lead, -1)


# ----------------------------------------------------------------------------- vanilla RNN


def _make_rnn(name: str, activation: Callable[[jax.Array], jax.Array]) -> Cell:
  def init(key, input_size, hidden_size, *, init="uniform", init_scale=0.1, forget_bias=0.0,
           gain=1.0):
    """Parameters of an Elman RNN; ``forget_bias`` is accepted and ignored (no gates)."""
    del forget_bias
    return _init_params(key, input_size, hidden_size, 1, init=init, init_scale=init_scale,
                        gain=gain)

  def project_inputs(params, xs, compute_dtype="float32"):
    """``xs [..., input] -> [..., H]`` = x W_ih + b_ih + b_hh."""
    return _project(params, xs, True, compute_dtype)

  def step_hw(params, h, gx_t, hw_t):
    """``h [B, H], gx_t [B, H], hw_t = h W_hh [B, H] -> (h', h')``."""
    del params, h
    h = activation(gx_t + hw_t)
    return h, h

  def step(params, h, gx_t):
    """``h [B, H], gx_t [B, H] -> (h', h')``."""
    return step_hw(params, h, gx_t, h @ params["w_hh"])

  def apply(params, carry, x_t):
    """One step on the raw input ``x_t [B, input]``."""
    return step(params, carry, project_inputs(params, x_t))

  return Cell(name, 1, init, _zeros_carry, project_inputs, step, apply, lambda h: h, step_hw)


rnn_tanh = _make_rnn("rnn_tanh", jnp.tanh)
rnn_relu = _make_rnn("rnn_relu", jax.nn.relu)

# ----------------------------------------------------------------------------- LSTM


def _lstm_init(key, input_size, hidden_size, *, init="uniform", init_scale=0.1, forget_bias=0.0,
               gain=1.0):
  """LSTM parameters, gate blocks ``(i, f, o, g)``; ``forget_bias`` is added to b_ih[f]."""
  params = _init_params(key, input_size, hidden_size, 4, init=init, init_scale=init_scale,
                        gain=gain)
  if forget_bias:
    h = hidden_size
    params["b_ih"] = params["b_ih"].at[h:2 * h].add(forget_bias)
  return params


def _lstm_init_carry(batch_size, hidden_size, dtype=jnp.float32):
  """``(h, c)``, each ``[batch, H]`` zeros."""
  return (_zeros_carry(batch_size, hidden_size, dtype), _zeros_carry(batch_size, hidden_size, dtype))


def _lstm_project(params, xs, compute_dtype="float32"):
  """``xs [..., input] -> [..., 4H]`` = x W_ih + b_ih + b_hh."""
  return _project(params, xs, True, compute_dtype)


def _lstm_step(params, carry, gx_t):
  """``(h, c) [B, H] each, gx_t [B, 4H] -> ((h', c'), h')``."""
  return _lstm_step_hw(params, carry, gx_t, carry[0] @ params["w_hh"])


def _lstm_step_hw(params, carry, gx_t, hw_t):
  """As :func:`_lstm_step` given ``hw_t = h W_hh [B, 4H]``."""
  del params
  h, c = carry
  hidden = h.shape[-1]
  gates = gx_t + hw_t
  ifo = jax.nn.sigmoid(gates[..., :3 * hidden])
  g = jnp.tanh(gates[..., 3 * hidden:])
  i, f, o = ifo[..., :hidden], ifo[..., hidden:2 * hidden], ifo[..., 2 * hidden:]
  c = f * c + i * g
  h = o * jnp.tanh(c)
  return (h, c), h


def _lstm_apply(params, carry, x_t):
  """One step on the raw input ``x_t [B, input]``."""
  return _lstm_step(params, carry, _lstm_project(params, x_t))


lstm = Cell("lstm", 4, _lstm_init, _lstm_init_carry, _lstm_project, _lstm_step, _lstm_apply,
            lambda carry: carry[0], _lstm_step_hw)

# ----------------------------------------------------------------------------- GRU


def _gru_init(key, input_size, hidden_size, *, init="uniform", init_scale=0.1, forget_bias=0.0,
              gain=1.0):
  """GRU parameters, gate blocks ``(r, z, n)``; ``forget_bias`` is accepted and ignored."""
  del forget_bias
  return _init_params(key, input_size, hidden_size, 3, init=init, init_scale=init_scale, gain=gain)


def _gru_project(params, xs, compute_dtype="float32"):
  """``xs [..., input] -> [..., 3H]`` = x W_ih + b_ih (b_hh stays inside the step)."""
  return _project(params, xs, False, compute_dtype)


def _gru_step(params, h, gx_t):
  """``h [B, H], gx_t [B, 3H] -> (h', h')``; the reset gate multiplies ``h W_hn + b_hn``."""
  return _gru_step_hw(params, h, gx_t, h @ params["w_hh"])


def _gru_step_hw(params, h, gx_t, hw_t):
  """As :func:`_gru_step` given ``hw_t = h W_hh [B, 3H]`` (adds ``b_hh`` itself)."""
  hidden = h.shape[-1]
  gh = hw_t + params["b_hh"]
  rz = jax.nn.sigmoid(gx_t[..., :2 * hidden] + gh[..., :2 * hidden])
  r, z = rz[..., :hidden], rz[..., hidden:]
  n = jnp.tanh(gx_t[..., 2 * hidden:] + r * gh[..., 2 * hidden:])
  h = (1.0 - z) * n + z * h
  return h, h


def _gru_apply(params, carry, x_t):
  """One step on the raw input ``x_t [B, input]``."""
  return _gru_step(params, carry, _gru_project(params, x_t))


gru = Cell("gru", 3, _gru_init, _zeros_carry, _gru_project, _gru_step, _gru_apply, lambda h: h,
           _gru_step_hw)

# ----------------------------------------------------------------------------- registry

CELLS: dict[str, Cell] = {c.name: c for c in (rnn_tanh, rnn_relu, lstm, gru)}


def get_cell(name: str) -> Cell:
  """The cell called ``name``; a clear ``ValueError`` for an unknown name."""
  try:
    return CELLS[name]
  except KeyError:
    raise ValueError(
        f"unknown cell {name!r}; choose one of {', '.join(CELLS)} (config key model.cell)"
    ) from None
