"""Recurrent cells as pure functions: tanh RNN, ReLU RNN, LSTM and GRU, plain or layer-normalised,
and the parallel-in-time minGRU and minLSTM.

Every cell is a :class:`Cell` record of pure functions; parameters are plain dicts of
arrays, carries are arrays (or a tuple for the LSTM). Nothing here holds state. One registry,
:func:`get_cell`, gives every cell::

    lstm = get_cell("lstm")                                      # or get_cell("lstm", norm="layer")
    params = lstm.init(key, input_size, hidden_size)            # a pytree
    carry  = lstm.init_carry(batch_size, hidden_size)            # zeros
    carry, h_t = lstm.apply(params, carry, x_t)                  # one step on the raw input

For speed the step is split in two halves, used by :func:`rnnlm_jax.rnn.scan_layer`:

    gx = lstm.project_inputs(params, xs)      # all time steps in one matmul, outside the scan
    carry, h_t = lstm.step(params, carry, gx_t)   # one fused recurrent matmul per time step

and a cell may carry its whole scanned recurrence with a hand-written backward pass, the field
``Cell.recurrence``::

    final, hs = lstm.recurrence(params, carry, gx)   # = lax.scan(lstm.step), leaner backward

:func:`rnnlm_jax.rnn.scan_layer_time_major` runs ``cell.recurrence`` when the cell has one (and
no remat / reverse is asked; ``unroll`` unrolls its scans), else autodiff of
``lax.scan(cell.step)``. The built-in
cells have one; ``get_cell(name, backward="autodiff")`` returns the same cell without it (for
A/B benchmarks), and the layer-normalised cells have none.

Formulas are PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (checked in ``tests/test_cells.py``):

    rnn_tanh: h' = tanh(x W_ih + b_ih + h W_hh + b_hh)            (rnn_relu: relu instead of tanh)
    lstm:     i, f, o = sigmoid(.), g = tanh(.) of  x W_ih + b_ih + h W_hh + b_hh
              c' = f * c + i * g ;  h' = o * tanh(c')
    gru:      r, z = sigmoid(x W_ih[r,z] + b_ih[r,z] + h W_hh[r,z] + b_hh[r,z])
              n = tanh(x W_in + b_in + r * (h W_hn + b_hn)) ;  h' = (1 - z) * n + z * h

Each cell's gate math (what follows its two matmuls) is written once, in :func:`_lstm_gates`,
:func:`_gru_gates` and :data:`ACTIVATIONS`, and shared by the step, the layer-normalised step
and the hand-differentiated recurrence's forward pass.

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

Layer normalisation (``norm="layer"``, config key ``model.norm``; Ba, Kiros & Hinton 2016): each
gate block of the input projection ``x W_ih`` and of the recurrent projection ``h W_hh`` is
normalised on its own (mean 0, variance 1 over that block's H units of one example) and scaled
by a learned gain; the LSTM's new cell state is also normalised (gain and bias) before its
``tanh``::

    gates = LN(x W_ih) * g_ih + LN(h W_hh) * g_hh + b_ih (+ b_hh)
    lstm: c' = f * c + i * g ;  h' = o * tanh(LN(c') * g_c + b_c)
    gru:  r, z from the gates ; n = tanh(LN(x W_in) g + b_in + r * (LN(h W_hn) g + b_hn))
    rnn:  h' = act(gates)

so the cell's output does not change when ``W_ih`` or ``W_hh`` is rescaled. Parameters: the base
cell's (same layout and initialiser) plus gains ``g_ih, g_hh [G*H]`` (ones) and, for the LSTM,
``g_c, b_c [H]`` (ones, zeros). These cells are named ``f"{name}_ln"`` and have no
``recurrence`` (autodiff of ``lax.scan``).

Recurrent batch normalisation (``norm="batch"``, LSTM and GRU; Cooijmans et al. 2016,
"Recurrent Batch Normalization", arXiv 1603.09025): the input and recurrent projections are
normalised separately, each unit over the batch, **with separate statistics per time step**, and
the LSTM's new cell state too, with a shift::

    gates = BN_t(x W_ih; g_ih) + BN_t(h W_hh; g_hh) + b_ih + b_hh
    lstm: c' = f * c + i * g ;  h' = o * tanh(BN_t(c'; g_c) + b_c)
    gru:  r, z from the gates ; n = tanh(BN_t(x W_in) g + b_in + r * (BN_t(h W_hn) g + b_hn))
    BN_t(a; g) = g * (a - mean_t) / sqrt(var_t + BN_EPS)

Training uses each step's batch statistics (mean and biased variance over the batch axis);
evaluation uses population statistics, ``params["population"]``, ``{"ih", "hh"(, "c")}`` each
``{"mean", "var"} [T_max, F]``, step ``t`` reading row ``min(t, T_max - 1)``
(:func:`population_steps`), so every example is scored on its own and a batch of one works.
The caller estimates them from training data (the language model's
:func:`rnnlm_jax.models.lm.population_statistics`; the paper: "over the whole dataset"). The
scales start at ``BN_GAMMA_INIT = 0.1`` (the paper's Section 4: 1 saturates the gates and
kills the gradient), the shift ``b_c`` at 0. Parameters: the base cell's plus ``g_ih, g_hh
[G*H]`` and, for the LSTM, ``g_c, b_c [H]``. Because the step depends on ``t`` these cells
run their whole layer, ``Cell.layer`` (autodiff of ``lax.scan``); their ``step`` is the
training-mode step (batch statistics), named ``f"{name}_bn"``.

Minimal parallel-in-time cells (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201):
the gates read the input only, never ``h``, so ``h_t = a_t * h_{t-1} + b_t`` is a linear
recurrence with ``a_t, b_t`` known for every ``t`` before it starts, and the whole sequence is
one ``jax.lax.associative_scan`` (:func:`min_recurrence`) instead of ``T`` sequential steps::

    min_gru:  z = sigmoid(k), h~ = g(x W_h + b_h)     with  k = x W_z + b_z
              h' = (1 - z) * h + z * h~
    min_lstm: f = sigmoid(x W_f + b_f), i = sigmoid(x W_i + b_i), h~ = g(x W_h + b_h)
              f' = f / (f + i), i' = i / (f + i) ;  h' = f' * h + i' * h~

    g(x) = x + 0.5 if x >= 0 else sigmoid(x)      (positive, continuous; the paper's log-space
                                                   version, its Appendix code, where h~ > 0)

``step`` is the sequential form above, in linear space (sampling, and the tests' reference);
``recurrence`` the parallel scan, in log space as the paper's code: ``log a_t`` and
``log b_t`` come from softplus forms (``log(1 - z) = -softplus(k)``, ``log z = -softplus(-k)``;
``log f' = -softplus(d)``, ``log i' = -softplus(-d)`` with ``d = softplus(-k_f) - softplus(-k_i)``,
``log g`` exact on both branches) and the scan composes the affine maps ``h -> a h + b`` as
``(log a1 + log a2, logaddexp(log b1 + log a2, log b2))``. The carry enters at the end,
``h_t = exp(A_t) * h_0 + exp(B_t)`` (``A_t = sum log a``, ``exp(A_t) <= 1``), equal to the
paper's prepended ``log h_0`` but defined for any sign of ``h_0`` (zeros included, no
``log 0``). Parameters: ``w_ih [input, G*H]``, ``b_ih [G*H]`` only (no recurrent matrix; one
bias, as the paper's ``nn.Linear``), blocks ``(z, h~)`` (G = 2) or ``(f, i, h~)`` (G = 3);
``forget_bias`` is added to min_lstm's ``f`` block. Initialisers as above (there is no ``W_hh``
for ``orthogonal``/``identity``: ``w_ih`` uniform, bias 0). No layer-normalised version.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnnlm_jax import fused

Params = dict[str, jax.Array]
Carry = Any  # jax.Array [batch, H], or (h, c) for the LSTM

INITS = ("uniform", "orthogonal", "identity")
NORMS = ("none", "layer", "batch")  # model.norm
BATCH_NORM_CELLS = ("lstm", "gru")  # the cells with a batch-normalised version (norm="batch")
BN_EPS = 1e-5  # added to the variance inside recurrent batch normalisation
BN_GAMMA_INIT = 0.1  # initial BN scale (Cooijmans et al. 2016, Section 4: 0.1, not 1)
BACKWARDS = ("lean", "autodiff")  # get_cell(backward=...)
LN_EPS = 1e-5  # added to the variance inside layer normalisation


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
  step_hw: Callable[..., tuple[Carry, jax.Array]] | None = None
  # The scanned recurrence with a hand-written backward pass: recurrence(params, carry, gx,
  # compute_dtype="float32", unroll=1) with gx = project_inputs(params, xs) [time, batch, G*H] ->
  # (final carry, hs [time, batch, H]), the values of lax.scan(step) in float32; "bfloat16"
  # rounds the recurrent matmuls' operands (f32 accumulation, carry and cell state; the min
  # cells have no recurrent matmul and ignore it). It reads params["w_hh"] (and the GRU
  # params["b_hh"]) only, and accepts a member axis K after time (see
  # rnnlm_jax.rnn.recurrence). None: autodiff.
  recurrence: Callable[..., tuple[Carry, jax.Array]] | None = None
  # A cell that runs its whole layer itself, because its step depends on the time step
  # (recurrent batch normalisation): layer(params, carry, xs [time, batch, input],
  # compute_dtype="float32") -> (final carry, hs [time, batch, H], stats), ``stats`` the
  # per-time-step normalisation statistics it used (see _batch_norm_cell).
  # rnnlm_jax.rnn.scan_layer_time_major runs it instead of project_inputs + step.
  layer: Callable[..., tuple[Carry, jax.Array, dict]] | None = None


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


# ----------------------------------------------------------------------------- projections


def _flat_matmul(xs: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
  """``xs [..., K] @ w [K, N] -> [prod(...), N]`` float32, one GEMM over all leading dims."""
  flat = xs.reshape(-1, xs.shape[-1])
  if compute_dtype == "float32":
    return flat @ w
  return fused.dense(flat[None], w, compute_dtype)[0]


def matmul(xs: jax.Array, w: jax.Array, compute_dtype: str = "float32") -> jax.Array:
  """``xs [..., K] @ w [K, N] -> [..., N]`` float32 (bfloat16 inputs if asked, as the cells do)."""
  return _flat_matmul(xs, w, compute_dtype).reshape(*xs.shape[:-1], -1)


def _project(params: Params, xs: jax.Array, with_hh_bias: bool,
             compute_dtype: str = "float32") -> jax.Array:
  """``xs [..., input] -> [..., G*H]`` float32: one GEMM over all leading dims, plus biases.

  ``compute_dtype="bfloat16"``: the GEMM's inputs are rounded to bfloat16 and it accumulates in
  float32 (forward and backward, :func:`rnnlm_jax.fused.dense`); parameters stay float32.
  """
  flat = _flat_matmul(xs, params["w_ih"], compute_dtype)
  bias = params["b_ih"] + params["b_hh"] if with_hh_bias else params["b_ih"]
  return (flat + bias).reshape(*xs.shape[:-1], -1)


def layer_norm(x: jax.Array, num_blocks: int = 1, eps: float | None = None) -> jax.Array:
  """Normalise each of ``num_blocks`` equal slices of the last axis to mean 0 and variance 1.

  ``x [..., num_blocks * H] -> [..., num_blocks * H]``: every ``H``-wide block of every row
  becomes ``(x - mean) / sqrt(var + eps)`` with its own mean and (biased) variance
  (``eps=None``: :data:`LN_EPS`). No gain or bias here; the cells apply their own.
  """
  eps = LN_EPS if eps is None else eps
  width = x.shape[-1]
  if width % num_blocks:
    raise ValueError(f"layer_norm: last axis {width} does not split into {num_blocks} blocks")
  xb = x.reshape(*x.shape[:-1], num_blocks, width // num_blocks)
  mean = jnp.mean(xb, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(xb - mean), axis=-1, keepdims=True)
  return ((xb - mean) * jax.lax.rsqrt(var + eps)).reshape(x.shape)


# ----------------------------------------------------------------------------- gate math
# What each cell computes after its matmuls, written once: the steps, the layer-normalised
# steps and the forward passes of the hand-differentiated recurrences all call these.

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}  # the Elman cells' nonlinearities


def _activation_derivative(activation: str, a: jax.Array) -> jax.Array:
  """``f'`` of an Elman activation from its output ``a = f(pre)``."""
  return (1.0 - a * a) if activation == "tanh" else (a > 0).astype(a.dtype)


def _lstm_gates(gates: jax.Array, c: jax.Array, c_norm: Callable | None = None):
  """The LSTM after its matmuls: pre-activations ``gates [B, 4H]`` ``(i, f, o, g)``, cell ``c``.

  Returns ``(h', c', ifo, g, tc)``: the new state, the gate activations
  ``ifo = sigmoid(gates[:3H])`` and ``g = tanh(gates[3H:])``, and ``tc = tanh(c')`` (with
  ``c_norm``: ``tanh(c_norm(c'))``, the layer-normalised cell), so that ``h' = o * tc``.
  """
  hidden = c.shape[-1]
  ifo = jax.nn.sigmoid(gates[..., :3 * hidden])
  g = jnp.tanh(gates[..., 3 * hidden:])
  i, f, o = ifo[..., :hidden], ifo[..., hidden:2 * hidden], ifo[..., 2 * hidden:]
  c = f * c + i * g
  tc = jnp.tanh(c if c_norm is None else c_norm(c))
  h = o * tc
  return h, c, ifo, g, tc


def _gru_gates(gx_t: jax.Array, gh: jax.Array, h: jax.Array):
  """The GRU after its matmuls: ``gx_t = x W_ih + b_ih``, ``gh = h W_hh + b_hh`` (``[B, 3H]``).

  Returns ``(h', rz, n, ghn)``: the new state, ``rz = sigmoid(r, z pre-activations)``, the
  candidate ``n`` and ``ghn = h W_hn + b_hn`` (what the reset gate multiplies).
  """
  hidden = h.shape[-1]
  rz = jax.nn.sigmoid(gx_t[..., :2 * hidden] + gh[..., :2 * hidden])
  r, z = rz[..., :hidden], rz[..., hidden:]
  ghn = gh[..., 2 * hidden:]
  n = jnp.tanh(gx_t[..., 2 * hidden:] + r * ghn)
  h = (1.0 - z) * n + z * h
  return h, rz, n, ghn


# ----------------------------------------------------------------------------- hand-differentiated recurrences
# Same values and gradients as autodiff of lax.scan over the step, less work backward: the
# forward saves the gate activations, each backward step is one matmul (dh W_hh^T) and a few
# elementwise products (nothing recomputed), and dW_hh is one [H, T*B] x [T*B, G*H] GEMM after
# the scan. Several independent models at once (a vmapped sweep): give every array a member
# axis K after time (gx [T, K, B, G*H], carry [K, B, H], w_hh [K, H, G*H], b_hh [K, 1, G*H]).


def _rounded(w: jax.Array, dtype: str) -> jax.Array:
  """``w`` as the recurrent matmuls read it: unchanged in float32, else rounded once (saved for
  the backward pass at half the size)."""
  return w if jnp.dtype(dtype) == jnp.float32 else w.astype(dtype)


def elman_recurrence(activation: str, w_hh: jax.Array, h0: jax.Array, gx: jax.Array,
                     eps: jax.Array | None = None, compute_dtype: str = "float32",
                     unroll: int = 1) -> jax.Array:
  """The tanh/ReLU RNN recurrence ``h_t = f(gx_t + h_{t-1} W_hh) (+ eps_t)`` with a lean backward.

  Same values and gradients as scanning ``rnn_tanh.step`` (or ``rnn_relu``), faster: the
  forward saves only ``hs``; the backward step is one matmul and one multiply by
  ``f'`` (from the saved ``h_t``: ``1 - h_t^2`` or ``h_t > 0``), with nothing recomputed, and
  ``dW_hh`` is one GEMM after the scan.

  Args:
    activation: ``"tanh"`` or ``"relu"``.
    w_hh: ``[H, H]`` (or ``[K, H, H]`` for K models at once).
    h0: ``[batch, H]`` (``[K, batch, H]``).
    gx: ``[time, batch, H]`` (``[time, K, batch, H]``): ``x W_ih + b_ih + b_hh``.
    eps: optional, like ``gx``: added to ``h_t`` after the activation and carried on. Zeros
      change nothing; the gradient w.r.t. ``eps`` is ``dC/dh_t``, the total gradient w.r.t. each
      hidden state (Pascanu et al.'s regulariser needs it), at no extra cost.
    compute_dtype: ``"bfloat16"`` rounds the operands of the recurrent matmuls (forward
      ``h W_hh``, backward ``d W_hh^T`` and the ``dW_hh`` GEMM) to bfloat16, with float32
      accumulation; ``h`` itself stays float32 (:func:`rnnlm_jax.fused.recurrent_matmul`).
    unroll: ``lax.scan`` unroll factor of the forward and backward scans (speed only).

  Returns:
    ``hs``, shaped like ``gx``.
  """
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation must be tanh or relu, got {activation!r}")
  return _elman(activation, jnp.dtype(compute_dtype).name, int(unroll), w_hh, h0, gx,
                jnp.zeros_like(gx) if eps is None else eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _elman(activation, dtype, unroll, w_hh, h0, gx, eps):
  return _elman_fwd(activation, dtype, unroll, w_hh, h0, gx, eps)[0]


def _elman_fwd(activation, dtype, unroll, w_hh, h0, gx, eps):
  act = ACTIVATIONS[activation]
  w = _rounded(w_hh, dtype)

  def body(h, inp):
    g_t, e_t = inp
    h = act(g_t + fused.recurrent_matmul(h, w, dtype)) + e_t
    return h, h

  _, hs = jax.lax.scan(body, h0, (gx, eps), unroll=unroll)
  return hs, (w, h0, hs, eps)


def _elman_bwd(activation, dtype, unroll, res, d_hs):
  w_hh, h0, hs, eps = res
  w_t = jnp.swapaxes(w_hh, -1, -2)

  def body(d_pre_next, inp):
    dh_t, h_t, e_t = inp
    g_t = dh_t + fused.recurrent_matmul(d_pre_next, w_t, dtype)  # dC/dh_t, later steps too
    d_pre = g_t * _activation_derivative(activation, h_t - e_t)  # from the activation's output
    return d_pre, (d_pre, g_t)

  d_pre0, (d_pre, g) = jax.lax.scan(body, jnp.zeros_like(h0), (d_hs, hs, eps), reverse=True,
                                    unroll=unroll)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  d_w = fused.recurrent_weight_grad(h_prev, d_pre, dtype)
  return d_w, fused.recurrent_matmul(d_pre0, w_t, dtype), d_pre, g


_elman.defvjp(_elman_fwd, _elman_bwd)


def lstm_recurrence(w_hh: jax.Array, carry: tuple[jax.Array, jax.Array], gx: jax.Array,
                    compute_dtype: str = "float32", unroll: int = 1
                    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
  """The LSTM recurrence (gates ``(i, f, o, g)``) with a lean backward pass.

  Same values and gradients as scanning ``lstm.step``; the forward saves the gate
  activations, so the backward step is one matmul and a few multiplications (no sigmoid or
  tanh recomputed), and ``dW_hh`` is one GEMM after the scan. ``w_hh [H, 4H]``, ``carry (h, c)``
  each ``[batch, H]``, ``gx [time, batch, 4H]`` (or with a member axis K after time); returns
  ``((h_T, c_T), hs [time, batch, H])``. ``compute_dtype``, ``unroll``: as
  :func:`elman_recurrence` (the carry and cell state stay float32).
  """
  return _lstm(jnp.dtype(compute_dtype).name, int(unroll), w_hh, carry, gx)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _lstm(dtype, unroll, w_hh, carry, gx):
  return _lstm_fwd(dtype, unroll, w_hh, carry, gx)[0]


def _lstm_fwd(dtype, unroll, w_hh, carry, gx):
  w = _rounded(w_hh, dtype)

  def body(hc, gx_t):
    h, c = hc
    h, c, ifo, g, tc = _lstm_gates(gx_t + fused.recurrent_matmul(h, w, dtype), c)
    return (h, c), (h, c, ifo, g, tc)

  final, (hs, cs, ifo, g, tc) = jax.lax.scan(body, carry, gx, unroll=unroll)
  return (final, hs), (w, carry, hs, cs, ifo, g, tc)


def _lstm_bwd(dtype, unroll, res, cotangents):
  w_hh, (h0, c0), hs, cs, ifo, g, tc = res
  (dh_final, dc_final), d_hs = cotangents
  hidden = w_hh.shape[-2]
  w_t = jnp.swapaxes(w_hh, -1, -2)
  c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)

  def body(acc, inp):
    dh_next, dc_next = acc
    dh_t, ifo_t, g_t, tc_t, cp_t = inp
    i, f, o = ifo_t[..., :hidden], ifo_t[..., hidden:2 * hidden], ifo_t[..., 2 * hidden:]
    dh = dh_t + dh_next
    dc = dc_next + dh * o * (1.0 - tc_t * tc_t)
    d_ifo = jnp.concatenate([dc * g_t, dc * cp_t, dh * tc_t], axis=-1) * ifo_t * (1.0 - ifo_t)
    d_gates = jnp.concatenate([d_ifo, dc * i * (1.0 - g_t * g_t)], axis=-1)
    return (fused.recurrent_matmul(d_gates, w_t, dtype), dc * f), d_gates

  (d_h0, d_c0), d_gates = jax.lax.scan(body, (dh_final, dc_final), (d_hs, ifo, g, tc, c_prev),
                                       reverse=True, unroll=unroll)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  d_w = fused.recurrent_weight_grad(h_prev, d_gates, dtype)
  return d_w, (d_h0, d_c0), d_gates


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def gru_recurrence(w_hh: jax.Array, b_hh: jax.Array, h0: jax.Array, gx: jax.Array,
                   compute_dtype: str = "float32", unroll: int = 1
                   ) -> tuple[jax.Array, jax.Array]:
  """The GRU recurrence (gates ``(r, z, n)``) with a lean backward pass.

  Same values and gradients as scanning ``gru.step``; the forward saves ``r, z, n`` and
  ``h W_hn + b_hn``, so nothing is recomputed backward. ``b_hh [3H]`` (``[K, 1, 3H]`` with a
  member axis); other shapes as :func:`lstm_recurrence`. Returns ``(h_T, hs [time, batch, H])``.
  ``compute_dtype``, ``unroll``: as :func:`elman_recurrence`.
  """
  return _gru(jnp.dtype(compute_dtype).name, int(unroll), w_hh, b_hh, h0, gx)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gru(dtype, unroll, w_hh, b_hh, h0, gx):
  return _gru_fwd(dtype, unroll, w_hh, b_hh, h0, gx)[0]


def _gru_fwd(dtype, unroll, w_hh, b_hh, h0, gx):
  w = _rounded(w_hh, dtype)

  def body(h, gx_t):
    h, rz, n, ghn = _gru_gates(gx_t, fused.recurrent_matmul(h, w, dtype) + b_hh, h)
    return h, (h, rz, n, ghn)

  final, (hs, rz, n, ghn) = jax.lax.scan(body, h0, gx, unroll=unroll)
  return (final, hs), (w, b_hh, h0, hs, rz, n, ghn)


def _gru_bwd(dtype, unroll, res, cotangents):
  w_hh, b_hh, h0, hs, rz, n, ghn = res
  dh_final, d_hs = cotangents
  hidden = w_hh.shape[-2]
  w_t = jnp.swapaxes(w_hh, -1, -2)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)

  def body(dh_next, inp):
    dh_t, rz_t, n_t, ghn_t, hp_t = inp
    r, z = rz_t[..., :hidden], rz_t[..., hidden:]
    dh = dh_t + dh_next
    dn_pre = dh * (1.0 - z) * (1.0 - n_t * n_t)
    d_rz = jnp.concatenate([dn_pre * ghn_t, dh * (hp_t - n_t)], axis=-1) * rz_t * (1.0 - rz_t)
    d_gx = jnp.concatenate([d_rz, dn_pre], axis=-1)
    d_gh = jnp.concatenate([d_rz, dn_pre * r], axis=-1)
    return dh * z + fused.recurrent_matmul(d_gh, w_t, dtype), (d_gx, d_gh)

  d_h0, (d_gx, d_gh) = jax.lax.scan(body, dh_final, (d_hs, rz, n, ghn, h_prev), reverse=True,
                                    unroll=unroll)
  d_w = fused.recurrent_weight_grad(h_prev, d_gh, dtype)
  d_b = jnp.sum(d_gh, axis=0).sum(axis=-2).reshape(b_hh.shape)
  return d_w, d_b, d_h0, d_gx


_gru.defvjp(_gru_fwd, _gru_bwd)

# ----------------------------------------------------------------------------- vanilla RNN


def _make_rnn(name: str, activation: str) -> Cell:
  act = ACTIVATIONS[activation]

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
    h = act(gx_t + hw_t)
    return h, h

  def step(params, h, gx_t):
    """``h [B, H], gx_t [B, H] -> (h', h')``."""
    return step_hw(params, h, gx_t, h @ params["w_hh"])

  def apply(params, carry, x_t):
    """One step on the raw input ``x_t [B, input]``."""
    return step(params, carry, project_inputs(params, x_t))

  def recurrence(params, h0, gx, compute_dtype="float32", unroll=1):
    """:func:`elman_recurrence` as ``(h_T, hs)``."""
    hs = elman_recurrence(activation, params["w_hh"], h0, gx, compute_dtype=compute_dtype,
                          unroll=unroll)
    return hs[-1], hs

  return Cell(name, 1, init, _zeros_carry, project_inputs, step, apply, lambda h: h, step_hw,
              recurrence)


rnn_tanh = _make_rnn("rnn_tanh", "tanh")
rnn_relu = _make_rnn("rnn_relu", "relu")

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
  h, c, *_ = _lstm_gates(gx_t + hw_t, carry[1])
  return (h, c), h


def _lstm_apply(params, carry, x_t):
  """One step on the raw input ``x_t [B, input]``."""
  return _lstm_step(params, carry, _lstm_project(params, x_t))


lstm = Cell("lstm", 4, _lstm_init, _lstm_init_carry, _lstm_project, _lstm_step, _lstm_apply,
            lambda carry: carry[0], _lstm_step_hw,
            lambda params, carry, gx, compute_dtype="float32", unroll=1: lstm_recurrence(
                params["w_hh"], carry, gx, compute_dtype, unroll))

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
  h, *_ = _gru_gates(gx_t, hw_t + params["b_hh"], h)
  return h, h


def _gru_apply(params, carry, x_t):
  """One step on the raw input ``x_t [B, input]``."""
  return _gru_step(params, carry, _gru_project(params, x_t))


gru = Cell("gru", 3, _gru_init, _zeros_carry, _gru_project, _gru_step, _gru_apply, lambda h: h,
           _gru_step_hw,
           lambda params, h0, gx, compute_dtype="float32", unroll=1: gru_recurrence(
               params["w_hh"], params["b_hh"], h0, gx, compute_dtype, unroll))

# ----------------------------------------------------------------------------- layer norm


def _layer_norm_cell(base: Cell) -> Cell:
  """The layer-normalised version of ``base`` (see the module docstring); no ``recurrence``."""
  num_gates = base.num_gates
  is_lstm, is_gru = base is lstm, base is gru

  def init(key, input_size, hidden_size, **init_kw):
    """Base parameters plus the LN gains (and the LSTM cell-state gain and bias)."""
    p = dict(base.init(key, input_size, hidden_size, **init_kw))
    p["g_ih"] = jnp.ones((num_gates * hidden_size,), jnp.float32)
    p["g_hh"] = jnp.ones((num_gates * hidden_size,), jnp.float32)
    if is_lstm:
      p["g_c"] = jnp.ones((hidden_size,), jnp.float32)
      p["b_c"] = jnp.zeros((hidden_size,), jnp.float32)
    return p

  def project_inputs(params, xs, compute_dtype="float32"):
    """``xs [..., input] -> [..., G*H]`` = LN(x W_ih) g_ih + b_ih (+ b_hh, not for the GRU)."""
    out = layer_norm(matmul(xs, params["w_ih"], compute_dtype), num_gates) * params["g_ih"]
    out = out + params["b_ih"]
    return out if is_gru else out + params["b_hh"]

  def step(params, carry, gx_t):
    """``carry, gx_t [B, G*H] -> (carry', h' [B, H])``."""
    h = base.carry_output(carry)
    hw = layer_norm(h @ params["w_hh"], num_gates) * params["g_hh"]
    if not is_lstm:  # the base step after its matmul (the GRU adds b_hh itself)
      return base.step_hw(params, carry, gx_t, hw)
    h, c, *_ = _lstm_gates(gx_t + hw, carry[1],
                           lambda c: layer_norm(c) * params["g_c"] + params["b_c"])
    return (h, c), h

  def apply(params, carry, x_t):
    """One step on the raw input ``x_t [B, input]``."""
    return step(params, carry, project_inputs(params, x_t))

  return Cell(f"{base.name}_ln", num_gates, init, base.init_carry, project_inputs, step, apply,
              base.carry_output, None, None)


# ----------------------------------------------------------------------------- recurrent batch normalisation
# Cooijmans et al. 2016 (module docstring): statistics per time step, so the cell runs its whole
# layer (Cell.layer) rather than a step that does not know t.


def batch_moments(x: jax.Array, axis: int) -> dict[str, jax.Array]:
  """``{"mean", "var"}`` of ``x`` over ``axis`` (the batch axis), the variance biased."""
  mean = jnp.mean(x, axis=axis)
  var = jnp.mean(jnp.square(x - jnp.expand_dims(mean, axis)), axis=axis)
  return {"mean": mean, "var": var}


def batch_normalize(x: jax.Array, moments: dict[str, jax.Array], gamma: jax.Array) -> jax.Array:
  """``gamma * (x - mean) / sqrt(var + BN_EPS)``; ``moments`` broadcast against ``x``."""
  return (x - moments["mean"]) * jax.lax.rsqrt(moments["var"] + BN_EPS) * gamma


def population_steps(population: dict, num_steps: int) -> dict:
  """Statistics for time steps ``0 .. num_steps - 1`` from population statistics (each leaf
  ``[T_max, F]``): step ``t`` reads row ``min(t, T_max - 1)``, so steps beyond the longest
  training window use the last one's (Cooijmans et al. 2016, Section 3)."""
  def rows(a):
    return a[jnp.minimum(jnp.arange(num_steps), a.shape[0] - 1)]
  return jax.tree.map(rows, population)


def _batch_norm_cell(base: Cell) -> Cell:
  """The batch-normalised version of the LSTM or GRU (module docstring): a ``layer`` cell."""
  num_gates = base.num_gates
  is_lstm = base is lstm

  def init(key, input_size, hidden_size, **init_kw):
    """Base parameters plus the BN scales (BN_GAMMA_INIT) and the LSTM cell-state shift (0)."""
    p = dict(base.init(key, input_size, hidden_size, **init_kw))
    width = num_gates * hidden_size
    p["g_ih"] = jnp.full((width,), BN_GAMMA_INIT, jnp.float32)
    p["g_hh"] = jnp.full((width,), BN_GAMMA_INIT, jnp.float32)
    if is_lstm:
      p["g_c"] = jnp.full((hidden_size,), BN_GAMMA_INIT, jnp.float32)
      p["b_c"] = jnp.zeros((hidden_size,), jnp.float32)
    return p

  def input_part(params, xw, moments):
    """``BN(x W_ih) g_ih + b_ih`` (+ ``b_hh``, not for the GRU, which adds it inside r * .)."""
    out = batch_normalize(xw, moments, params["g_ih"]) + params["b_ih"]
    return out + params["b_hh"] if is_lstm else out

  def recurrent_part(params, carry, gx_t, fixed):
    """One step after the input part: ``fixed`` the step's statistics (``{"hh", "c"}``), or None
    for the batch's own. Returns ``(carry', h', the statistics used)``."""
    h = base.carry_output(carry)
    hw = h @ params["w_hh"]
    used = {"hh": batch_moments(hw, 0) if fixed is None else fixed["hh"]}
    hw = batch_normalize(hw, used["hh"], params["g_hh"])
    if not is_lstm:
      new_carry, h = base.step_hw(params, carry, gx_t, hw)
      return new_carry, h, used

    def c_norm(c):  # BN of the new cell state before its tanh
      used["c"] = batch_moments(c, 0) if fixed is None else fixed["c"]
      return batch_normalize(c, used["c"], params["g_c"]) + params["b_c"]

    h, c, *_ = _lstm_gates(gx_t + hw, carry[1], c_norm)
    return (h, c), h, used

  def layer(params, carry, xs, compute_dtype="float32"):
    """``xs [time, batch, input] -> (carry, hs [time, batch, H], stats)``.

    Without ``params["population"]`` (training): every step is normalised with its own batch
    statistics, and ``stats`` holds them, ``{"ih", "hh"(, "c")}`` each ``{"mean", "var"}``
    ``[time, F]``. With it (evaluation; :func:`population_steps`): those statistics, returned as
    ``stats``. The two matmuls: ``x W_ih`` for all steps at once, ``h W_hh`` per step.
    """
    population = params.get("population")
    xw = matmul(xs, params["w_ih"], compute_dtype)  # [T, B, G*H]
    if population is None:
      ih, fixed = batch_moments(xw, 1), None
    else:
      steps = population_steps(population, xs.shape[0])
      ih, fixed = steps["ih"], {k: v for k, v in steps.items() if k != "ih"}
    gx = input_part(params, xw, jax.tree.map(lambda a: a[:, None], ih))

    def body(c, inp):
      gx_t, fixed_t = inp
      c, h, used = recurrent_part(params, c, gx_t, fixed_t)
      return c, (h, used)

    carry, (hs, used) = jax.lax.scan(body, carry, (gx, fixed))
    return carry, hs, {"ih": ih, **used}

  def project_inputs(params, xs, compute_dtype="float32"):
    """``xs [batch, input]`` (one time step) ``-> [batch, G*H]``, normalised with the batch's
    statistics; a sequence goes through ``layer``."""
    xw = matmul(xs, params["w_ih"], compute_dtype)
    return input_part(params, xw, batch_moments(xw, 0))

  def step(params, carry, gx_t):
    """One step with the batch's statistics (training mode), ``gx_t`` from ``project_inputs``."""
    carry, h, _ = recurrent_part(params, carry, gx_t, None)
    return carry, h

  def apply(params, carry, x_t):
    """One step on the raw input ``x_t [B, input]``, batch statistics."""
    return step(params, carry, project_inputs(params, x_t))

  return Cell(f"{base.name}_bn", num_gates, init, base.init_carry, project_inputs, step, apply,
              base.carry_output, None, None, layer)


# ----------------------------------------------------------------------------- minimal cells
# minGRU and minLSTM (Feng et al. 2024; module docstring): gates from the input only, so the
# recurrence is linear in h and runs as one associative scan over time.


def min_g(x: jax.Array) -> jax.Array:
  """The paper's positive activation ``g(x) = x + 0.5 (x >= 0), sigmoid(x) (x < 0)``."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def min_log_g(x: jax.Array) -> jax.Array:
  """``log g(x)``, finite on both branches (so ``where`` passes no NaN gradient)."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _min_split(gx: jax.Array, num_gates: int) -> list[jax.Array]:
  """``gx [..., G*H]`` -> its G blocks ``[..., H]``."""
  return jnp.split(gx, num_gates, axis=-1)


def _min_log_coeffs(gx: jax.Array, num_gates: int) -> tuple[jax.Array, jax.Array]:
  """``(log a, log b)``, each ``[..., H]``, of ``h_t = a_t h_{t-1} + b_t`` from ``gx [..., G*H]``.

  ``num_gates=2`` (min_gru, blocks ``k, h~``): ``log a = log(1 - z) = -softplus(k)``,
  ``log b = log z + log g(h~) = -softplus(-k) + log g(h~)``. ``num_gates=3`` (min_lstm,
  blocks ``k_f, k_i, h~``): with ``d = softplus(-k_f) - softplus(-k_i) = log i - log f``,
  ``log a = log f' = -softplus(d)``, ``log b = log i' + log g(h~) = -softplus(-d) + log g(h~)``.
  """
  if num_gates == 2:
    k, pre = _min_split(gx, 2)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + min_log_g(pre)
  k_f, k_i, pre = _min_split(gx, 3)
  d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
  return -jax.nn.softplus(d), -jax.nn.softplus(-d) + min_log_g(pre)


def _compose_log_affine(first, second):
  """``h -> a2 (a1 h + b1) + b2`` in log space: ``(log a1 + log a2, logaddexp(log b1 + log a2,
  log b2))``; associative, the operator of :func:`linear_scan_log`."""
  (la1, lb1), (la2, lb2) = first, second
  return la1 + la2, jnp.logaddexp(lb1 + la2, lb2)


def linear_scan_log(log_a: jax.Array, log_b: jax.Array, h0: jax.Array) -> jax.Array:
  """All ``h_t = a_t h_{t-1} + b_t`` (``a_t, b_t > 0`` given as logs) by one associative scan.

  Args:
    log_a, log_b: ``[time, ...]`` (time first; e.g. ``[T, B, H]`` or ``[T, K, B, H]``).
    h0: the state before step 0, broadcastable to ``log_a.shape[1:]``; any sign.

  Returns:
    ``hs [time, ...]`` ``= exp(A_t) h0 + exp(B_t)`` with ``(A_t, B_t)`` the scanned
    ``(log a, log b)`` prefix compositions: O(T) work, O(log T) depth, autodiff backward.
  """
  big_a, big_b = jax.lax.associative_scan(_compose_log_affine, (log_a, log_b), axis=0)
  return jnp.exp(big_a) * h0 + jnp.exp(big_b)


def min_recurrence(num_gates: int, h0: jax.Array, gx: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The min cell's whole recurrence in parallel (log space): ``(h_T, hs)``.

  ``h0 [batch, H]``, ``gx [time, batch, G*H]`` (``project_inputs``; a member axis K after time
  works too, ``h0 [K, batch, H]``) -> ``(h_T [batch, H], hs [time, batch, H])``, the values of
  scanning the cell's sequential ``step`` to float rounding.
  """
  log_a, log_b = _min_log_coeffs(gx, num_gates)
  hs = linear_scan_log(log_a, log_b, h0)
  return hs[-1], hs


def _make_min(name: str, num_gates: int) -> Cell:
  """minGRU (``num_gates=2``) or minLSTM (3); see the module docstring."""

  def init(key, input_size, hidden_size, *, init="uniform", init_scale=0.1, forget_bias=0.0,
           gain=1.0):
    """``{w_ih [input, G*H], b_ih [G*H]}`` as the other cells' (``w_hh`` rules do not apply:
    ``init`` other than uniform gives bias 0); ``forget_bias`` added to min_lstm's f block."""
    p = _init_params(key, input_size, hidden_size, num_gates, init=init, init_scale=init_scale,
                     gain=gain)
    params = {"w_ih": p["w_ih"], "b_ih": p["b_ih"]}
    if forget_bias and num_gates == 3:
      params["b_ih"] = params["b_ih"].at[:hidden_size].add(forget_bias)
    return params

  def project_inputs(params, xs, compute_dtype="float32"):
    """``xs [..., input] -> [..., G*H]`` = x W_ih + b_ih: every gate, every time step."""
    return _project(params, xs, False, compute_dtype)

  def step(params, h, gx_t):
    """``h [B, H], gx_t [B, G*H] -> (h', h')``: the sequential form, in linear space."""
    del params
    if num_gates == 2:
      k, pre = _min_split(gx_t, 2)
      z = jax.nn.sigmoid(k)
      h = (1.0 - z) * h + z * min_g(pre)
    else:
      k_f, k_i, pre = _min_split(gx_t, 3)
      # f' = f / (f + i) = sigmoid(log f - log i), i' = 1 - f': no 0/0 where both underflow
      f_n = jax.nn.sigmoid(jax.nn.softplus(-k_i) - jax.nn.softplus(-k_f))
      h = f_n * h + (1.0 - f_n) * min_g(pre)
    return h, h

  def apply(params, carry, x_t):
    """One step on the raw input ``x_t [B, input]``."""
    return step(params, carry, project_inputs(params, x_t))

  def recurrence(params, h0, gx, compute_dtype="float32", unroll=1):
    """:func:`min_recurrence` (reads no parameter and has no recurrent matmul: everything is
    in ``gx``, so ``compute_dtype`` and ``unroll`` change nothing)."""
    del params, compute_dtype, unroll
    return min_recurrence(num_gates, h0, gx)

  return Cell(name, num_gates, init, _zeros_carry, project_inputs, step, apply, lambda h: h,
              None, recurrence)


min_gru = _make_min("min_gru", 2)
min_lstm = _make_min("min_lstm", 3)

# ----------------------------------------------------------------------------- registry

CELLS: dict[str, Cell] = {c.name: c for c in (rnn_tanh, rnn_relu, lstm, gru, min_gru, min_lstm)}
MIN_CELLS = ("min_gru", "min_lstm")  # parallel-in-time; no layer-normalised version
_REGISTRY: dict[tuple[str, str, str], Cell] = {}
for _name, _base in CELLS.items():
  _norms = {"none": _base}
  if _name not in MIN_CELLS:
    _norms["layer"] = _layer_norm_cell(_base)
  if _name in BATCH_NORM_CELLS:
    _norms["batch"] = _batch_norm_cell(_base)
  for _norm, _cell in _norms.items():
    _REGISTRY[_name, _norm, "lean"] = _cell
    _REGISTRY[_name, _norm, "autodiff"] = _cell._replace(recurrence=None)
del _name, _base, _norms, _norm, _cell


def get_cell(name: str, norm: str = "none", *, backward: str = "lean") -> Cell:
  """The cell called ``name`` with normalisation ``norm``; clear ``ValueError``s.

  Args:
    name: ``rnn_tanh`` | ``rnn_relu`` | ``lstm`` | ``gru`` | ``min_gru`` | ``min_lstm``
      (config key ``model.cell``).
    norm: ``none`` | ``layer`` | ``batch`` (config key ``model.norm``): layer-normalised gates
      (not for the min cells); recurrent batch normalisation (``lstm`` and ``gru`` only).
    backward: ``lean`` (default): the cell's ``recurrence`` where it has one (hand-differentiated;
      the min cells': the parallel scan); ``autodiff``: the same cell with ``recurrence=None``,
      so scans differentiate ``lax.scan(cell.step)`` (same values and gradients to float
      rounding; for A/B benchmarks).

  One object per ``(name, norm, backward)``: the same call always returns the same cell.
  """
  if norm not in NORMS:
    raise ValueError(f"model.norm must be one of {' | '.join(NORMS)}, got {norm!r}")
  if backward not in BACKWARDS:
    raise ValueError(f"backward must be one of {' | '.join(BACKWARDS)}, got {backward!r}")
  if name not in CELLS:
    raise ValueError(
        f"unknown cell {name!r}; choose one of {', '.join(CELLS)} (config key model.cell)")
  if (name, norm, backward) not in _REGISTRY:
    if norm == "batch":
      raise ValueError(f"model.norm='batch' (recurrent batch normalisation) is defined for "
                       f"{' and '.join(BATCH_NORM_CELLS)} only, not {name!r}; use model.norm="
                       f"'none' or 'layer', or model.cell='lstm'")
    raise ValueError(f"model.norm={norm!r} is not defined for the min cells ({name!r} has no "
                     f"layer-normalised version); use model.norm='none'")
  return _REGISTRY[name, norm, backward]
