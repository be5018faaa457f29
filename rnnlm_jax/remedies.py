"""Remedies for training recurrent LMs, as composable options of the pure cells and stacks.

Each remedy is a pure function used by :mod:`rnnlm_jax.models.lm` when its config key is on;
every key's default is off, and off leaves the model's computation exactly as before (issue 8).

Normalisation (``model.norm="layer"``): :func:`layer_norm_cell` wraps a built-in cell with
layer normalisation (Ba, Kiros & Hinton 2016). Each gate block of the input projection
``x W_ih`` and of the recurrent projection ``h W_hh`` is normalised on its own (mean 0,
variance 1 over that block's H units of one example) and scaled by a learned gain; the LSTM's
new cell state is also normalised (gain and bias) before its ``tanh``::

    gates = LN(x W_ih) * g_ih + LN(h W_hh) * g_hh + b_ih (+ b_hh)
    lstm: c' = f * c + i * g ;  h' = o * tanh(LN(c') * g_c + b_c)
    gru:  r, z from the gates ; n = tanh(LN(x W_in) g + b_in + r * (LN(h W_hn) g + b_hn))
    rnn:  h' = act(gates)

so the cell's output does not change when ``W_ih`` or ``W_hh`` is rescaled (the property the
tests check). The LN cells have no ``step_hw``, so :func:`rnnlm_jax.rnn.scan_layer_time_major`
differentiates them with autodiff of ``lax.scan`` instead of the hand-written recurrences.

Residual stacks (``model.residual``): layer ``l`` outputs ``x_l + layer_l(x_l)`` where ``x_l``
is the layer's input (after any between-layer dropout); where the widths differ (layer 0 with
``embed_size != hidden_size``) the skip path is a learned projection ``x_0 P`` (``res_proj
[E, H]``, no bias).

Regularisation:

* :func:`locked_dropout` (``model.locked_dropout``): variational dropout (Gal & Ghahramani
  2016): one mask per sequence and feature, the same at every time step of a window, on the
  embeddings, between layers and on the output, at rate ``model.dropout``.
* :func:`embedding_dropout` (``model.embed_dropout``): drops whole words, i.e. rows of the
  embedding matrix, for the whole batch (Gal & Ghahramani 2016; Merity et al. 2017), scaling
  the kept rows by ``1 / (1 - rate)``. Only the input lookup is dropped (the tied softmax
  matrix is not).
* :func:`weight_drop` (``model.weight_drop``): DropConnect on each layer's recurrent matrix
  ``W_hh`` (Merity et al. 2017): one mask per layer and window, shared by every time step and
  every sequence of the batch. It changes the weights fed to the recurrence, not the cell's
  math, so the fast hand-differentiated recurrences still apply (their gradient is taken with
  respect to the masked matrix, and autodiff multiplies by the mask).
* :func:`activation_penalties` (``optim.ar``, ``optim.tar``): activation regularisation
  ``alpha * mean(h^2)`` on the (dropped) vectors fed to the softmax and temporal activation
  regularisation ``beta * mean((h_t - h_{t-1})^2)`` on the last layer's undropped outputs
  (Merity et al. 2017); added to the differentiated loss by :mod:`rnnlm_jax.train`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from rnnlm_jax import cells, fused, rnn
from rnnlm_jax.cells import Carry, Cell, Params

NORMS = ("none", "layer")  # model.norm
LN_EPS = 1e-5  # added to the variance inside layer normalisation


# ----------------------------------------------------------------------------- layer norm


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


def _matmul(xs: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
  """``xs [..., K] @ w [K, N] -> [..., N]`` float32 (bfloat16 inputs if asked, as cells do)."""
  lead = xs.shape[:-1]
  flat = xs.reshape(-1, xs.shape[-1])
  if compute_dtype == "float32":
    out = flat @ w
  else:
    out = fused.dense(flat[None], w, compute_dtype)[0]
  return out.reshape(*lead, -1)


@functools.lru_cache(maxsize=None)
def layer_norm_cell(name: str) -> Cell:
  """The layer-normalised version of the built-in cell ``name`` (see the module docstring).

  Parameters: the base cell's ``{w_ih, w_hh, b_ih, b_hh}`` (same layout and initialiser) plus
  gains ``g_ih, g_hh [G*H]`` (ones) and, for the LSTM, ``g_c, b_c [H]`` (ones, zeros). The
  cell is named ``f"{name}_ln"``; it has no ``step_hw`` (autodiff of ``lax.scan``). Cached, so
  one name always gives the same (hashable) object.
  """
  base = cells.get_cell(name)
  num_gates = base.num_gates
  is_lstm, is_gru = name == "lstm", name == "gru"

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
    out = layer_norm(_matmul(xs, params["w_ih"], compute_dtype), num_gates) * params["g_ih"]
    out = out + params["b_ih"]
    return out if is_gru else out + params["b_hh"]

  def step(params, carry, gx_t):
    """``carry, gx_t [B, G*H] -> (carry', h' [B, H])``."""
    h = base.carry_output(carry)
    hw = layer_norm(h @ params["w_hh"], num_gates) * params["g_hh"]
    if not is_lstm:  # the base step after its matmul (the GRU adds b_hh itself)
      return base.step_hw(params, carry, gx_t, hw)
    hidden = h.shape[-1]
    gates = gx_t + hw
    ifo = jax.nn.sigmoid(gates[..., :3 * hidden])
    g = jnp.tanh(gates[..., 3 * hidden:])
    i, f, o = ifo[..., :hidden], ifo[..., hidden:2 * hidden], ifo[..., 2 * hidden:]
    c = f * carry[1] + i * g
    h = o * jnp.tanh(layer_norm(c) * params["g_c"] + params["b_c"])
    return (h, c), h

  def apply(params, carry, x_t):
    """One step on the raw input ``x_t [B, input]``."""
    return step(params, carry, project_inputs(params, x_t))

  return Cell(f"{name}_ln", num_gates, init, base.init_carry, project_inputs, step, apply,
              base.carry_output, None)


def get_cell(name: str, norm: str = "none") -> Cell:
  """The cell ``name`` with normalisation ``norm`` (``none`` | ``layer``); clear errors."""
  if norm not in NORMS:
    raise ValueError(f"model.norm must be one of {' | '.join(NORMS)}, got {norm!r} (recurrent "
                     f"batch norm is not implemented; see experiments/remedies/README.md)")
  cell = cells.get_cell(name)
  return layer_norm_cell(name) if norm == "layer" else cell


# ----------------------------------------------------------------------------- dropout


def locked_dropout(x_TBF: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Variational dropout on ``x [time, batch, features]``: one mask ``[1, batch, features]``
  for every time step, kept units scaled by ``1 / (1 - rate)``. Identity when ``rate == 0`` or
  ``rng is None`` (evaluation)."""
  if rate == 0.0 or rng is None:
    return x_TBF
  keep = jax.random.bernoulli(rng, 1.0 - rate, (1,) + x_TBF.shape[1:])
  return jnp.where(keep, x_TBF / (1.0 - rate), jnp.zeros_like(x_TBF))


def embedding_dropout(embed_VE: jax.Array, tokens_BT: jax.Array, rate: float,
                      rng: jax.Array | None) -> jax.Array:
  """Embeddings ``[time, batch, E]`` of ``tokens [batch, time]`` with whole words dropped.

  One Bernoulli draw per vocabulary entry (``[V]``), shared by every occurrence of the word in
  the batch: a dropped word's embedding is zero everywhere in the window, a kept one is scaled
  by ``1 / (1 - rate)`` (Merity et al. 2017's ``embedded_dropout``). Identity lookup when
  ``rate == 0`` or ``rng is None``.
  """
  x_TBE = jnp.take(embed_VE, tokens_BT.T, axis=0)
  if rate == 0.0 or rng is None:
    return x_TBE
  keep_V = jax.random.bernoulli(rng, 1.0 - rate, (embed_VE.shape[0],))
  scale_TB = jnp.take(keep_V.astype(x_TBE.dtype) / (1.0 - rate), tokens_BT.T, axis=0)
  return x_TBE * scale_TB[..., None]


def weight_drop(params: Params, rate: float, rng: jax.Array | None) -> Params:
  """``params`` with ``w_hh`` DropConnect-ed: one mask ``[H, G*H]`` (the same for every time
  step and sequence of the window), kept weights scaled by ``1 / (1 - rate)``. Unchanged when
  ``rate == 0`` or ``rng is None``."""
  if rate == 0.0 or rng is None:
    return params
  w = params["w_hh"]
  keep = jax.random.bernoulli(rng, 1.0 - rate, w.shape)
  return dict(params, w_hh=jnp.where(keep, w / (1.0 - rate), jnp.zeros_like(w)))


# ----------------------------------------------------------------------------- stack


def init_res_proj(key: jax.Array, embed_size: int, hidden_size: int,
                  init_scale: float) -> jax.Array:
  """The residual skip projection of layer 0, ``[E, H]`` U[-init_scale, init_scale]."""
  return jax.random.uniform(key, (embed_size, hidden_size), jnp.float32, -init_scale, init_scale)


def stack_time_major(cell: Cell, params: Sequence[Params], carries: Sequence[Carry],
                     xs_TBI: jax.Array, *, dropout_rate: float = 0.0, locked: bool = False,
                     residual: bool = False, res_proj: jax.Array | None = None,
                     weight_drop_rate: float = 0.0, rng: jax.Array | None = None,
                     unroll: int = 1, remat=False,
                     compute_dtype: str = "float32") -> tuple[list, jax.Array]:
  """:func:`rnnlm_jax.rnn.stack_time_major` with the stack remedies.

  Args:
    cell, params, carries, xs_TBI, unroll, remat, compute_dtype: as ``rnn.stack_time_major``
      (``xs [time, batch, input]``).
    dropout_rate: dropout on the input of every layer but the first.
    locked: that dropout uses one mask per window (:func:`locked_dropout`).
    residual: each layer outputs ``x + layer(x)``; ``res_proj [input, H]`` maps layer 0's
      input when its width differs from ``H`` (required then).
    weight_drop_rate: DropConnect on every layer's ``w_hh`` (:func:`weight_drop`).
    rng: dropout key (None: evaluation, nothing dropped). The between-layer masks use the same
      keys as ``rnn.stack_time_major`` (``split(rng, L)[layer]``), the weight masks
      ``fold_in(rng, 1000 + layer)``.

  Returns:
    ``(carries, hs [time, batch, H])``, the last layer's output.
  """
  num_layers = len(params)
  rngs = jax.random.split(rng, num_layers) if rng is not None else [None] * num_layers
  drop = locked_dropout if locked else rnn.dropout
  new_carries = []
  h = xs_TBI
  for layer, (p, c) in enumerate(zip(params, carries)):
    if layer > 0:
      h = drop(h, dropout_rate, rngs[layer])
    if weight_drop_rate and rng is not None:
      p = weight_drop(p, weight_drop_rate, jax.random.fold_in(rng, 1000 + layer))
    c, out = rnn.scan_layer_time_major(cell, p, c, h, unroll=unroll, remat=remat,
                                       compute_dtype=compute_dtype)
    if residual:
      if h.shape[-1] == out.shape[-1]:
        skip = h
      elif res_proj is None:
        raise ValueError(f"residual layer {layer}: input width {h.shape[-1]} != hidden size "
                         f"{out.shape[-1]} and no res_proj given")
      else:
        skip = _matmul(h, res_proj, compute_dtype)
      out = skip + out
    h = out
    new_carries.append(c)
  return new_carries, h


# ----------------------------------------------------------------------------- penalties


def activation_penalties(features_TBH: jax.Array,
                         rnn_out_TBH: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sums of Merity et al. 2017's activation penalties over a window.

  Returns ``(ar_sum, tar_sum)``: ``ar_sum`` is the sum over the ``T * B`` positions of
  ``mean_H(features^2)`` (the dropped vectors fed to the softmax); ``tar_sum`` the sum over the
  ``(T - 1) * B`` consecutive pairs of ``mean_H((h_t - h_{t-1})^2)`` of the last layer's
  undropped outputs (within the window). Divided by the position counts they are AWD-LSTM's
  ``.pow(2).mean()`` terms.
  """
  ar_sum = jnp.sum(jnp.mean(jnp.square(features_TBH), axis=-1))
  diff = rnn_out_TBH[1:] - rnn_out_TBH[:-1]
  tar_sum = jnp.sum(jnp.mean(jnp.square(diff), axis=-1))
  return ar_sum, tar_sum
