"""Scanned recurrent layers and multi-layer stacks built from the pure cells.

Public shapes are batch-major, ``[batch, time, features]``. The ``*_time_major`` variants take
``[time, batch, features]`` and are what the models use internally (no transposes on the hot
path). A stack's carry is a list with one cell carry per layer, so it can be passed from one
window to the next (truncated BPTT).

A layer runs its cell's hand-differentiated recurrence (the field ``Cell.recurrence``) where the
cell has one and nothing asks for remat or reverse (``unroll`` unrolls its two scans); otherwise
autodiff of ``lax.scan``.
Same values and gradients either way; the lean one does less work backward (scripts/bench.py,
scripts/bench_lean_backward.py). ``cells.get_cell(name, backward="autodiff")`` gives a cell
without it. The min cells' ``recurrence`` is their parallel associative scan over time
(:func:`rnnlm_jax.cells.min_recurrence`); remat or reverse run their sequential step.
``lstm_backend="onednn"`` (config key ``model.lstm_backend``, opt-in) runs the plain float32
LSTM's whole layer through oneDNN's RNN primitive instead (:mod:`rnnlm_jax.onednn`, an XLA FFI
custom call; same values and gradients to float32 rounding).

The stack (:func:`stack_time_major`) is the one stack of every model, with the remedy options
of issue 8 (each off by default, and then without effect):

* dropout on the input of layers 2..L, following Zaremba et al. 2014: only non-recurrent
  connections are dropped (the model drops the embeddings and the output of the last layer);
  ``locked=True`` makes it variational (:func:`locked_dropout`: Gal & Ghahramani 2016, one mask
  per sequence and feature, the same at every time step of a window);
* ``residual=True``: layer ``l`` outputs ``x_l + layer_l(x_l)`` where ``x_l`` is the layer's
  input (after any between-layer dropout); where the widths differ (layer 0 with
  ``embed_size != hidden_size``) the skip path is a learned projection ``x_0 P`` (``res_proj
  [E, H]``, no bias);
* ``weight_drop_rate``: DropConnect on each layer's recurrent matrix ``W_hh`` (Merity et al.
  2017; :func:`weight_drop`): one mask per layer and window, shared by every time step and
  every sequence of the batch. It changes the weights fed to the recurrence, not the cell's
  math, so the hand-differentiated recurrences still apply (their gradient is taken with
  respect to the masked matrix, and autodiff multiplies by the mask).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp

from rnnlm_jax.cells import (Carry, Cell, Params, elman_recurrence, gru_recurrence,  # noqa: F401
                             lstm_recurrence, matmul)

REMAT_MODES = ("none", "step", "segment")
REMAT_POLICIES = ("none", "dots")


@dataclasses.dataclass(frozen=True)
class Remat:
  """How a scanned layer trades memory for recomputation in the backward pass.

  ``mode``:

  - ``"none"``: ``lax.scan`` keeps every step's residuals (gate pre-activations, activations,
    carries) for the backward pass: memory O(T), nothing recomputed.
  - ``"step"``: each step is ``jax.checkpoint``-ed: only its inputs (the carry and the projected
    input ``gx_t``) are kept, the gate math is recomputed step by step backward. Memory still
    O(T), with a smaller constant; about one extra forward step of compute.
  - ``"segment"``: the time axis is cut into segments of ``segment`` steps (0 = about
    ``sqrt(T)``); an outer ``lax.scan`` runs over segments, its body (input projection plus the
    inner scan over the segment) is ``jax.checkpoint``-ed. Only the carries at segment
    boundaries and the layer's inputs/outputs are kept; each segment's activations are
    recomputed, one segment at a time, in the backward pass: recurrent residual memory
    O(T/S + S) instead of O(T), for about one extra forward pass. A last shorter segment takes
    ``T mod S`` steps, so values and gradients equal ``"none"``'s to float rounding for any T.

  ``policy`` (``mode="step"`` only): ``"none"`` saves nothing inside the checkpointed step;
  ``"dots"`` (``jax.checkpoint_policies.dots_with_no_batch_dims_saveable``) also saves the
  step's recurrent matmul ``h W_hh`` (``[batch, G*H]`` per step), so backward recomputes only the
  elementwise gate math, not the matmul: more memory than ``policy="none"``, less compute.
  (With ``"segment"`` it would save every segment's matmuls, i.e. O(T) again, so it is refused.)

  Truthiness: ``bool(Remat("none"))`` is False, so ``if remat:`` reads as before.
  """

  mode: str = "none"
  segment: int = 0
  policy: str = "none"

  def __post_init__(self):
    if self.mode not in REMAT_MODES:
      raise ValueError(f"remat mode must be one of {' | '.join(REMAT_MODES)} (or False/True), "
                       f"got {self.mode!r}")
    if int(self.segment) != self.segment or self.segment < 0:
      raise ValueError(f"remat segment must be an integer >= 0 (0 = about sqrt(T)), "
                       f"got {self.segment!r}")
    if self.policy not in REMAT_POLICIES:
      raise ValueError(f"remat policy must be one of {' | '.join(REMAT_POLICIES)}, "
                       f"got {self.policy!r}")
    if self.policy != "none" and self.mode != "step":
      raise ValueError(f"remat policy {self.policy!r} applies to remat mode 'step' only (with "
                       f"'segment' it would keep O(T) matmul outputs), got mode {self.mode!r}")

  def __bool__(self) -> bool:
    return self.mode != "none"

  @property
  def jax_policy(self):
    """The ``jax.checkpoint`` ``policy=`` argument."""
    return (jax.checkpoint_policies.dots_with_no_batch_dims_saveable if self.policy == "dots"
            else None)

  def segment_length(self, num_steps: int) -> int:
    """Time steps per segment for a sequence of ``num_steps`` (auto: ``round(sqrt(T))``)."""
    seg = self.segment or max(1, round(math.sqrt(num_steps)))
    return max(1, min(seg, num_steps))


def as_remat(remat: "bool | str | Remat | None") -> Remat:
  """Normalise a ``remat=`` argument: False/None/"none" -> none, True -> "step", a mode name,
  or a :class:`Remat`."""
  if isinstance(remat, Remat):
    return remat
  if remat is None or remat is False:
    return Remat("none")
  if remat is True:
    return Remat("step")
  if isinstance(remat, str):
    low = remat.strip().lower()
    return Remat({"false": "none", "true": "step", "": "none"}.get(low, low))
  raise ValueError(f"remat must be a bool, one of {' | '.join(REMAT_MODES)}, or a Remat; "
                   f"got {remat!r}")


def _segment_scan(cell: Cell, params: Params, carry: Carry, xs_TBI: jax.Array, remat: Remat, *,
                  unroll: int, reverse: bool,
                  compute_dtype: str = "float32") -> tuple[Carry, jax.Array]:
  """``remat="segment"``: an outer scan over checkpointed segments (see :class:`Remat`)."""
  num_steps = xs_TBI.shape[0]
  seg = remat.segment_length(num_steps)
  n_full, rest = divmod(num_steps, seg)

  def run_segment(c, xs_seg):  # projection + inner scan, recomputed in the backward pass
    gx = cell.project_inputs(params, xs_seg, compute_dtype)
    return jax.lax.scan(lambda cc, g: cell.step(params, cc, g), c, gx, unroll=unroll,
                        reverse=reverse)

  run_segment = jax.checkpoint(run_segment, prevent_cse=False)

  # Time order: forward runs the full segments then the short one; reverse runs the short
  # one (at the start of the sequence) last.
  full = xs_TBI[rest:] if reverse else xs_TBI[:n_full * seg]
  short = xs_TBI[:rest] if reverse else xs_TBI[n_full * seg:]
  hs_parts = []
  if n_full:
    full = full.reshape(n_full, seg, *full.shape[1:])
    carry, hs_full = jax.lax.scan(run_segment, carry, full, reverse=reverse)
    hs_parts.append(hs_full.reshape(n_full * seg, *hs_full.shape[2:]))
  if rest:
    carry, hs_short = run_segment(carry, short)
    hs_parts.insert(0 if reverse else len(hs_parts), hs_short)
  hs = hs_parts[0] if len(hs_parts) == 1 else jnp.concatenate(hs_parts, axis=0)
  return carry, hs


def scan_layer_time_major(cell: Cell, params: Params, carry: Carry, xs_TBI: jax.Array, *,
                          unroll: int = 1, remat: "bool | str | Remat" = False,
                          reverse: bool = False,
                          compute_dtype: str = "float32",
                          lstm_backend: str = "scan") -> tuple[Carry, jax.Array]:
  """Run one cell over time.

  Args:
    cell: the cell.
    params: its parameters.
    carry: initial carry, ``[batch, H]`` (``(h, c)`` for the LSTM).
    xs_TBI: inputs ``[time, batch, input]``.
    unroll: ``lax.scan`` unroll factor.
    remat: what the backward pass recomputes instead of storing (:class:`Remat`, or a mode
      name): False/``"none"`` nothing; True/``"step"`` each step (``jax.checkpoint`` per
      step: saves the gate activations' memory); ``"segment"`` whole segments of time steps
      (only segment-boundary carries kept: O(T/S + S) recurrent memory instead of O(T)).
    reverse: scan from the last time step to the first.
    compute_dtype: ``"bfloat16"`` rounds the input projection's matmul inputs to bfloat16
      (float32 accumulation; :func:`rnnlm_jax.fused.dense`), and on the hand-written
      recurrences (``cell.recurrence``: the default path, no remat or reverse) the
      recurrent matmuls' operands too (float32 accumulation, carry and cell state). The
      autodiff path's recurrence stays float32.
    lstm_backend: ``"scan"`` (default): the paths above. ``"onednn"``: the plain LSTM's whole
      layer (input projection and recurrence, forward and backward) by oneDNN's RNN primitive,
      :func:`rnnlm_jax.onednn.lstm_layer` (optional, ``pip install -e ".[onednn]"``; same
      values and gradients to float32 rounding); float32 only, no remat, reverse, unroll or
      member axis (anything else is a ``ValueError``).

  Returns:
    ``(final carry, hs [time, batch, H])``.
  """
  remat = as_remat(remat)
  if cell.layer is not None:  # recurrent batch norm: the cell runs its layer (steps know t)
    if remat or reverse:
      raise ValueError(f"cell {cell.name!r} runs its whole layer (per-time-step statistics): "
                       f"remat and reverse are not supported; use model.remat='none'")
    carry, hs, _ = cell.layer(params, carry, xs_TBI, compute_dtype)
    return carry, hs
  if lstm_backend != "scan":
    return _onednn_layer(cell, params, carry, xs_TBI, unroll=unroll, remat=remat,
                         reverse=reverse, compute_dtype=compute_dtype, lstm_backend=lstm_backend)
  if remat.mode == "segment":
    return _segment_scan(cell, params, carry, xs_TBI, remat, unroll=unroll, reverse=reverse,
                         compute_dtype=compute_dtype)
  gx_TBG = cell.project_inputs(params, xs_TBI, compute_dtype)  # one GEMM for all time steps
  if cell.recurrence is not None and remat.mode == "none" and not reverse:
    if jnp.dtype(compute_dtype) == jnp.float32 and unroll == 1:  # same values, lean backward
      return cell.recurrence(params, carry, gx_TBG)
    return cell.recurrence(params, carry, gx_TBG, compute_dtype, unroll)  # bf16 matmuls; unroll

  def body(c, gx_t):
    return cell.step(params, c, gx_t)

  if remat.mode == "step":  # prevent_cse=False: lax.scan already keeps the recomputation apart
    body = jax.checkpoint(body, prevent_cse=False, policy=remat.jax_policy)
  return jax.lax.scan(body, carry, gx_TBG, unroll=unroll, reverse=reverse)


def _onednn_layer(cell: Cell, params: Params, carry: Carry, xs_TBI: jax.Array, *, unroll: int,
                  remat: Remat, reverse: bool, compute_dtype: str,
                  lstm_backend: str) -> tuple[Carry, jax.Array]:
  """``lstm_backend="onednn"``: the plain float32 LSTM layer by oneDNN (else a ValueError)."""
  if lstm_backend != "onednn":
    raise ValueError(f"lstm_backend must be 'scan' or 'onednn', got {lstm_backend!r}")
  why = ("the cell is not the plain LSTM" if cell.name != "lstm" or set(params) != {
      "w_ih", "w_hh", "b_ih", "b_hh"} else "remat" if remat else "reverse" if reverse
         else "unroll != 1" if unroll != 1
         else "compute_dtype is not float32" if jnp.dtype(compute_dtype) != jnp.float32
         else "a member axis" if xs_TBI.ndim != 3 or params["w_ih"].ndim != 2 else None)
  if why:
    raise ValueError(f"lstm_backend='onednn' runs the plain float32 LSTM layer only: {why} "
                     f"(cell {cell.name!r}); use lstm_backend='scan'")
  from rnnlm_jax import onednn  # pylint: disable=import-outside-toplevel  (optional extra)

  return onednn.lstm_layer(xs_TBI, params["w_ih"], params["w_hh"],
                           params["b_ih"] + params["b_hh"], carry)


def recurrence(cell: Cell, params: Params, carry: Carry,
               gx_TBG: jax.Array) -> tuple[Carry, jax.Array]:
  """The scanned recurrence with a hand-written backward pass (same values and gradients).

  ``gx_TBG [time, batch, G*H]`` are the projected inputs (``cell.project_inputs``); returns
  ``(final carry, hs [time, batch, H])`` exactly as ``lax.scan(cell.step)`` does.

  Runs the cell's own ``cell.recurrence`` (the built-in cells': :func:`elman_recurrence`,
  :func:`lstm_recurrence`, :func:`gru_recurrence`, which save the gate activations so the
  backward step recomputes nothing); a cell without one (e.g. ``get_cell(name,
  backward="autodiff")``) takes the generic path below, ``cell.step_hw`` recomputed backward.

  Several independent models at once (a vmapped sweep): give every array a member axis after
  time, ``gx [time, K, batch, G*H]``, carry ``[K, batch, H]``, ``w_hh [K, H, G*H]`` and biases
  ``[K, 1, G*H]``; each step then does one batched matmul and no layout changes.

  Why: differentiating ``lax.scan`` makes every backward step do two small GEMMs (``dh W_hh^T``
  and the ``dW_hh += h^T dgates`` accumulation) plus the saved-residual traffic. Here the
  backward scan does only ``dh W_hh^T`` and the elementwise part of the step; ``dW_hh`` is then
  one ``[H, time*batch] x [time*batch, G*H]`` GEMM. On this project's 2-core CPU that halves the
  time of a small tanh-RNN update (see scripts/bench_sweep_vmap.py).
  """
  if cell.recurrence is not None:
    return cell.recurrence(params, carry, gx_TBG)
  if cell.step_hw is None:
    raise ValueError(f"cell {cell.name!r} has neither a recurrence nor a step_hw: differentiate "
                     f"lax.scan(cell.step) instead (rnn.scan_layer_time_major does)")
  return _recurrence(cell, params, carry, gx_TBG)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _recurrence(cell, params, carry, gx):
  return _recurrence_fwd(cell, params, carry, gx)[0]


def _recurrence_fwd(cell, params, carry, gx):
  w_hh = params["w_hh"]

  def body(c, gx_t):
    hw_t = cell.carry_output(c) @ w_hh
    c_new, h = cell.step_hw(params, c, gx_t, hw_t)
    return c_new, (h, c, hw_t)

  final, (hs, carries, hw) = jax.lax.scan(body, carry, gx)
  return (final, hs), (params, carries, gx, hw)


def _recurrence_bwd(cell, res, cotangents):
  params, carries, gx, hw = res
  d_final, d_hs = cotangents
  w_hh = params["w_hh"]
  small = {k: v for k, v in params.items() if k == "b_hh"}  # all that step_hw may read

  def body(acc, inp):
    d_carry, d_small = acc
    c_prev, gx_t, hw_t, dh_t = inp
    _, pull = jax.vjp(lambda p, c, g, w: cell.step_hw(p, c, g, w), small, c_prev, gx_t, hw_t)
    dp, dc_prev, dgx_t, dhw_t = pull((d_carry, dh_t))
    _, pull_out = jax.vjp(cell.carry_output, c_prev)
    (dc_from_hw,) = pull_out(dhw_t @ jnp.swapaxes(w_hh, -1, -2))
    dc_prev = jax.tree.map(jnp.add, dc_prev, dc_from_hw)
    return (dc_prev, jax.tree.map(jnp.add, d_small, dp)), (dgx_t, dhw_t)

  zeros_small = jax.tree.map(jnp.zeros_like, small)
  (d_carry0, d_small), (d_gx, d_hw) = jax.lax.scan(
      body, (d_final, zeros_small), (carries, gx, hw, d_hs), reverse=True)
  h_prev = cell.carry_output(carries)  # [T, B, H]
  d_w = jnp.einsum("t...bh,t...bg->...hg", h_prev, d_hw)
  d_params = {k: jnp.zeros_like(v) for k, v in params.items()}
  d_params.update(d_small, w_hh=d_w)
  return d_params, d_carry0, d_gx


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def scan_layer(cell: Cell, params: Params, carry: Carry, xs_BTI: jax.Array, **kw):
  """As :func:`scan_layer_time_major` on ``[batch, time, input]``; returns ``hs [batch, time, H]``."""
  carry, hs = scan_layer_time_major(cell, params, carry, jnp.swapaxes(xs_BTI, 0, 1), **kw)
  return carry, jnp.swapaxes(hs, 0, 1)


def init_stack(key: jax.Array, cell: Cell, num_layers: int, input_size: int, hidden_size: int,
               **init_kw) -> list[Params]:
  """Parameters of ``num_layers`` stacked cells; layer 0 reads ``input_size`` features."""
  if num_layers < 1:
    raise ValueError(f"num_layers must be >= 1, got {num_layers} (config key model.num_layers)")
  keys = jax.random.split(key, num_layers)
  sizes = [input_size] + [hidden_size] * (num_layers - 1)
  return [cell.init(k, n_in, hidden_size, **init_kw) for k, n_in in zip(keys, sizes)]


def init_stack_carry(cell: Cell, num_layers: int, batch_size: int, hidden_size: int) -> list:
  """Zero carry for a stack: one cell carry per layer."""
  return [cell.init_carry(batch_size, hidden_size) for _ in range(num_layers)]


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Inverted dropout; identity when ``rate == 0`` or ``rng is None`` (evaluation)."""
  if rate == 0.0 or rng is None:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def locked_dropout(x_TBF: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Variational dropout on ``x [time, batch, features]``: one mask ``[1, batch, features]``
  for every time step, kept units scaled by ``1 / (1 - rate)``. Identity when ``rate == 0`` or
  ``rng is None`` (evaluation)."""
  if rate == 0.0 or rng is None:
    return x_TBF
  keep = jax.random.bernoulli(rng, 1.0 - rate, (1,) + x_TBF.shape[1:])
  return jnp.where(keep, x_TBF / (1.0 - rate), jnp.zeros_like(x_TBF))


def weight_drop(params: Params, rate: float, rng: jax.Array | None) -> Params:
  """``params`` with ``w_hh`` DropConnect-ed: one mask ``[H, G*H]`` (the same for every time
  step and sequence of the window), kept weights scaled by ``1 / (1 - rate)``. Unchanged when
  ``rate == 0`` or ``rng is None``."""
  if rate == 0.0 or rng is None:
    return params
  if "w_hh" not in params:
    raise ValueError("model.weight_drop drops entries of the recurrent matrix W_hh; this cell has "
                     "none (the min cells' gates read the input only): set model.weight_drop=0")
  w = params["w_hh"]
  keep = jax.random.bernoulli(rng, 1.0 - rate, w.shape)
  return dict(params, w_hh=jnp.where(keep, w / (1.0 - rate), jnp.zeros_like(w)))


def stack_time_major(cell: Cell, params: Sequence[Params], carries: Sequence[Carry],
                     xs_TBI: jax.Array, *, dropout_rate: float = 0.0, rng: jax.Array | None = None,
                     locked: bool = False, residual: bool = False,
                     res_proj: jax.Array | None = None, weight_drop_rate: float = 0.0,
                     unroll: int = 1, remat: "bool | str | Remat" = False,
                     compute_dtype: str = "float32",
                     statistics: list | None = None,
                     lstm_backend: str = "scan") -> tuple[list, jax.Array]:
  """Run a stack of layers over ``[time, batch, input]`` (the remedy options: module docstring).

  Args:
    cell, unroll, remat, compute_dtype, lstm_backend: as :func:`scan_layer_time_major`, for
      every layer.
    params, carries: one entry per layer.
    xs_TBI: inputs ``[time, batch, input]``.
    dropout_rate: dropout on the input of every layer but the first (``rng`` given).
    rng: dropout key (None: evaluation, nothing dropped). The between-layer masks use
      ``split(rng, L)[layer]``, the weight masks ``fold_in(rng, 1000 + layer)``.
    locked: that dropout uses one mask per window (:func:`locked_dropout`).
    residual: each layer outputs ``x + layer(x)``; ``res_proj [input, H]`` maps layer 0's
      input when its width differs from ``H`` (required then).
    weight_drop_rate: DropConnect on every layer's ``w_hh`` (:func:`weight_drop`).
    statistics: a list to receive, per layer, the normalisation statistics of a cell that
      runs its own layer (``cell.layer``: recurrent batch norm), in layer order.

  Returns:
    ``(carries, hs [time, batch, H])``, the last layer's output.
  """
  num_layers = len(params)
  rngs = jax.random.split(rng, num_layers) if rng is not None else [None] * num_layers
  drop = locked_dropout if locked else dropout
  new_carries = []
  h = xs_TBI
  for layer, (p, c) in enumerate(zip(params, carries)):
    if layer > 0:
      h = drop(h, dropout_rate, rngs[layer])
    if weight_drop_rate and rng is not None:
      p = weight_drop(p, weight_drop_rate, jax.random.fold_in(rng, 1000 + layer))
    if statistics is not None and cell.layer is not None:
      c, out, layer_stats = cell.layer(p, c, h, compute_dtype)
      statistics.append(layer_stats)
    else:
      c, out = scan_layer_time_major(cell, p, c, h, unroll=unroll, remat=remat,
                                     compute_dtype=compute_dtype, lstm_backend=lstm_backend)
    if residual:
      if h.shape[-1] == out.shape[-1]:
        skip = h
      elif res_proj is None:
        raise ValueError(f"residual layer {layer}: input width {h.shape[-1]} != hidden size "
                         f"{out.shape[-1]} and no res_proj given")
      else:
        skip = matmul(h, res_proj, compute_dtype)
      out = skip + out
    h = out
    new_carries.append(c)
  return new_carries, h


def stack(cell: Cell, params, carries, xs_BTI, **kw):
  """As :func:`stack_time_major` on ``[batch, time, input]``; returns ``hs [batch, time, H]``."""
  carries, hs = stack_time_major(cell, params, carries, jnp.swapaxes(xs_BTI, 0, 1), **kw)
  return carries, jnp.swapaxes(hs, 0, 1)


# ----------------------------------------------------------------------------- padded batches


def reverse_padded(xs_TB_: jax.Array, lengths_B: jax.Array) -> jax.Array:
  """Reverse each sequence within its own length: ``out[t, b] = xs[len_b - 1 - t, b]`` for
  ``t < len_b``; padding positions (``t >= len_b``) stay where they are. Its own inverse.

  ``xs [time, batch, ...]``, ``lengths [batch]`` int.
  """
  steps = xs_TB_.shape[0]
  t = jnp.arange(steps)[:, None]  # [T, 1]
  src_TB = jnp.where(t < lengths_B[None, :], lengths_B[None, :] - 1 - t, t)
  src = src_TB.reshape(src_TB.shape + (1,) * (xs_TB_.ndim - 2))
  return jnp.take_along_axis(xs_TB_, jnp.broadcast_to(src, xs_TB_.shape), axis=0)


def masked_scan_layer_time_major(cell: Cell, params: Params, carry: Carry, xs_TBI: jax.Array,
                                 lengths_B: jax.Array, *, reverse: bool = False,
                                 compute_dtype: str = "float32") -> tuple[Carry, jax.Array]:
  """One cell over a padded batch ``xs [time, batch, input]`` of sequences ``lengths [batch]``.

  Each sequence's carry stops changing after its last token, so the returned carry is the state
  after that sequence's own last token; outputs at padding positions are zeros. With
  ``reverse=True`` each sequence is read from its own last token back to its first (not from the
  end of the padding), and ``hs[t]`` is the backward state at position ``t``.

  Returns ``(final carry, hs [time, batch, H])``.
  """
  if reverse:
    carry, hs = masked_scan_layer_time_major(cell, params, carry,
                                             reverse_padded(xs_TBI, lengths_B), lengths_B,
                                             compute_dtype=compute_dtype)
    return carry, reverse_padded(hs, lengths_B)
  gx_TBG = cell.project_inputs(params, xs_TBI, compute_dtype)
  mask_TB = jnp.arange(xs_TBI.shape[0])[:, None] < lengths_B[None, :]

  def body(c, inp):
    gx_t, m_t = inp
    c_new, h = cell.step(params, c, gx_t)
    keep = lambda new, old: jnp.where(m_t[:, None], new, old)
    return jax.tree.map(keep, c_new, c), jnp.where(m_t[:, None], h, jnp.zeros_like(h))

  return jax.lax.scan(body, carry, (gx_TBG, mask_TB))


def bidirectional_time_major(cell: Cell, params_fw: Params, params_bw: Params,
                             xs_TBI: jax.Array, lengths_B: jax.Array, *,
                             compute_dtype: str = "float32") -> tuple[tuple, jax.Array]:
  """A bidirectional layer over a padded batch, both directions masked by ``lengths [batch]``.

  Starts both directions from zero carries. Returns ``((final_fw, final_bw), hs [time, batch,
  2H])`` with ``hs[..., :H]`` the forward and ``hs[..., H:]`` the backward states (zeros at
  padding); ``final_bw`` is the backward state at each sequence's first token.
  """
  batch, hidden = xs_TBI.shape[1], params_fw["w_ih"].shape[-1] // cell.num_gates
  zero = cell.init_carry(batch, hidden)
  fw, hs_fw = masked_scan_layer_time_major(cell, params_fw, zero, xs_TBI, lengths_B,
                                           compute_dtype=compute_dtype)
  bw, hs_bw = masked_scan_layer_time_major(cell, params_bw, zero, xs_TBI, lengths_B,
                                           reverse=True, compute_dtype=compute_dtype)
  return (fw, bw), jnp.concatenate([hs_fw, hs_bw], axis=-1)
