"""Scanned recurrent layers and multi-layer stacks built from the pure cells.

Public shapes are batch-major, ``[batch, time, features]``. The ``*_time_major`` variants take
``[time, batch, features]`` and are what the models use internally (no transposes on the hot
path). A stack's carry is a list with one cell carry per layer, so it can be passed from one
window to the next (truncated BPTT).

Dropout follows Zaremba et al. 2014: only non-recurrent connections are dropped. The stack
drops the input of layers 2..L (between layers); the model drops the embeddings and the
output of the last layer.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp

from rnnlm_jax.cells import Carry, Cell, Params


# Layers without remat run the hand-differentiated recurrences (:func:`recurrence`) rather than
# autodiff of ``lax.scan``: same values and gradients, less work backward (scripts/bench.py).
LEAN_BACKWARD = True

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
                          compute_dtype: str = "float32") -> tuple[Carry, jax.Array]:
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
      (float32 accumulation; :func:`rnnlm_jax.fused.dense`); the recurrence stays float32.

  Returns:
    ``(final carry, hs [time, batch, H])``.
  """
  remat = as_remat(remat)
  if remat.mode == "segment":
    return _segment_scan(cell, params, carry, xs_TBI, remat, unroll=unroll, reverse=reverse,
                         compute_dtype=compute_dtype)
  gx_TBG = cell.project_inputs(params, xs_TBI, compute_dtype)  # one GEMM for all time steps
  if (LEAN_BACKWARD and cell.step_hw is not None and remat.mode == "none" and unroll == 1
      and not reverse):  # cells without step_hw (layer-normalised ones) use autodiff below
    return recurrence(cell, params, carry, gx_TBG)  # same values, hand-written backward pass

  def body(c, gx_t):
    return cell.step(params, c, gx_t)

  if remat.mode == "step":  # prevent_cse=False: lax.scan already keeps the recomputation apart
    body = jax.checkpoint(body, prevent_cse=False, policy=remat.jax_policy)
  return jax.lax.scan(body, carry, gx_TBG, unroll=unroll, reverse=reverse)


def recurrence(cell: Cell, params: Params, carry: Carry,
               gx_TBG: jax.Array) -> tuple[Carry, jax.Array]:
  """The scanned recurrence with a hand-written backward pass (same values and gradients).

  ``gx_TBG [time, batch, G*H]`` are the projected inputs (``cell.project_inputs``); returns
  ``(final carry, hs [time, batch, H])`` exactly as ``lax.scan(cell.step)`` does.

  The built-in cells take specialised paths (:func:`elman_recurrence`, :func:`lstm_recurrence`,
  :func:`gru_recurrence`) that also save the gate activations, so the backward step recomputes
  nothing; any other cell uses the generic path below (``cell.step_hw`` recomputed backward).

  Several independent models at once (a vmapped sweep): give every array a member axis after
  time, ``gx [time, K, batch, G*H]``, carry ``[K, batch, H]``, ``w_hh [K, H, G*H]`` and biases
  ``[K, 1, G*H]``; each step then does one batched matmul and no layout changes.

  Why: differentiating ``lax.scan`` makes every backward step do two small GEMMs (``dh W_hh^T``
  and the ``dW_hh += h^T dgates`` accumulation) plus the saved-residual traffic. Here the
  backward scan does only ``dh W_hh^T`` and the elementwise part of the step (recomputed from
  the saved carries and ``hw_t = h_{t-1} W_hh`` through ``cell.step_hw``); ``dW_hh`` is then one
  ``[H, time*batch] x [time*batch, G*H]`` GEMM. On this project's 2-core CPU that halves the
  time of a small tanh-RNN update (see scripts/bench_sweep_vmap.py).
  """
  if cell.name in ("rnn_tanh", "rnn_relu"):
    hs = elman_recurrence(cell.name[4:], params["w_hh"], carry, gx_TBG)
    return hs[-1], hs
  if cell.name == "lstm":  # the gate activations are saved: nothing recomputed backward
    return lstm_recurrence(params["w_hh"], carry, gx_TBG)
  if cell.name == "gru":
    return gru_recurrence(params["w_hh"], params["b_hh"], carry, gx_TBG)
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


def lstm_recurrence(w_hh: jax.Array, carry: tuple[jax.Array, jax.Array],
                    gx: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
  """The LSTM recurrence (``cells.lstm``, gates ``(i, f, o, g)``) with a lean backward pass.

  Same values and gradients as scanning ``cells.lstm.step``; the forward saves the gate
  activations, so the backward step is one matmul and a few multiplications (no sigmoid or
  tanh recomputed), and ``dW_hh`` is one GEMM after the scan. Shapes as :func:`recurrence`:
  ``w_hh [H, 4H]``, ``carry (h, c)`` each ``[batch, H]``, ``gx [time, batch, 4H]`` (or with a
  member axis K after time); returns ``((h_T, c_T), hs [time, batch, H])``.
  """
  return _lstm(w_hh, carry, gx)


@jax.custom_vjp
def _lstm(w_hh, carry, gx):
  return _lstm_fwd(w_hh, carry, gx)[0]


def _lstm_fwd(w_hh, carry, gx):
  hidden = w_hh.shape[-2]

  def body(hc, gx_t):
    h, c = hc
    gates = gx_t + h @ w_hh
    ifo = jax.nn.sigmoid(gates[..., :3 * hidden])
    g = jnp.tanh(gates[..., 3 * hidden:])
    i, f, o = ifo[..., :hidden], ifo[..., hidden:2 * hidden], ifo[..., 2 * hidden:]
    c = f * c + i * g
    tc = jnp.tanh(c)
    h = o * tc
    return (h, c), (h, c, ifo, g, tc)

  final, (hs, cs, ifo, g, tc) = jax.lax.scan(body, carry, gx)
  return (final, hs), (w_hh, carry, hs, cs, ifo, g, tc)


def _lstm_bwd(res, cotangents):
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
    return (d_gates @ w_t, dc * f), d_gates

  (d_h0, d_c0), d_gates = jax.lax.scan(body, (dh_final, dc_final), (d_hs, ifo, g, tc, c_prev),
                                       reverse=True)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  d_w = jnp.einsum("t...bh,t...bg->...hg", h_prev, d_gates)
  return d_w, (d_h0, d_c0), d_gates


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def gru_recurrence(w_hh: jax.Array, b_hh: jax.Array, h0: jax.Array,
                   gx: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The GRU recurrence (``cells.gru``, gates ``(r, z, n)``) with a lean backward pass.

  Same values and gradients as scanning ``cells.gru.step``; the forward saves ``r, z, n`` and
  ``h W_hn + b_hn``, so nothing is recomputed backward. ``b_hh [3H]`` (``[K, 1, 3H]`` with a
  member axis); other shapes as :func:`recurrence`. Returns ``(h_T, hs [time, batch, H])``.
  """
  return _gru(w_hh, b_hh, h0, gx)


@jax.custom_vjp
def _gru(w_hh, b_hh, h0, gx):
  return _gru_fwd(w_hh, b_hh, h0, gx)[0]


def _gru_fwd(w_hh, b_hh, h0, gx):
  hidden = w_hh.shape[-2]

  def body(h, gx_t):
    gh = h @ w_hh + b_hh
    rz = jax.nn.sigmoid(gx_t[..., :2 * hidden] + gh[..., :2 * hidden])
    r, z = rz[..., :hidden], rz[..., hidden:]
    ghn = gh[..., 2 * hidden:]
    n = jnp.tanh(gx_t[..., 2 * hidden:] + r * ghn)
    h = (1.0 - z) * n + z * h
    return h, (h, rz, n, ghn)

  final, (hs, rz, n, ghn) = jax.lax.scan(body, h0, gx)
  return (final, hs), (w_hh, b_hh, h0, hs, rz, n, ghn)


def _gru_bwd(res, cotangents):
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
    return dh * z + d_gh @ w_t, (d_gx, d_gh)

  d_h0, (d_gx, d_gh) = jax.lax.scan(body, dh_final, (d_hs, rz, n, ghn, h_prev), reverse=True)
  d_w = jnp.einsum("t...bh,t...bg->...hg", h_prev, d_gh)
  d_b = jnp.sum(d_gh, axis=0).sum(axis=-2).reshape(b_hh.shape)
  return d_w, d_b, d_h0, d_gx


_gru.defvjp(_gru_fwd, _gru_bwd)


def elman_recurrence(activation: str, w_hh: jax.Array, h0: jax.Array, gx: jax.Array,
                     eps: jax.Array | None = None) -> jax.Array:
  """The tanh/ReLU RNN recurrence ``h_t = f(gx_t + h_{t-1} W_hh) (+ eps_t)`` with a lean backward.

  Same values and gradients as scanning ``cells.rnn_tanh.step`` (or ``rnn_relu``), faster: the
  forward saves only ``hs``; the backward step is one matmul and one multiply by
  ``f'`` (from the saved ``h_t``: ``1 - h_t^2`` or ``h_t > 0``), with nothing recomputed, and
  ``dW_hh`` is one GEMM after the scan.

  Args:
    activation: ``"tanh"`` or ``"relu"``.
    w_hh: ``[H, H]`` (or ``[K, H, H]`` for K models at once, see :func:`recurrence`).
    h0: ``[batch, H]`` (``[K, batch, H]``).
    gx: ``[time, batch, H]`` (``[time, K, batch, H]``): ``x W_ih + b_ih + b_hh``.
    eps: optional, like ``gx``: added to ``h_t`` after the activation and carried on. Zeros
      change nothing; the gradient w.r.t. ``eps`` is ``dC/dh_t``, the total gradient w.r.t. each
      hidden state (Pascanu et al.'s regulariser needs it), at no extra cost.

  Returns:
    ``hs``, shaped like ``gx``.
  """
  if activation not in ("tanh", "relu"):
    raise ValueError(f"activation must be tanh or relu, got {activation!r}")
  return _elman(activation, w_hh, h0, gx, jnp.zeros_like(gx) if eps is None else eps)


def _elman_act(activation, x):
  return jnp.tanh(x) if activation == "tanh" else jax.nn.relu(x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _elman(activation, w_hh, h0, gx, eps):
  return _elman_fwd(activation, w_hh, h0, gx, eps)[0]


def _elman_fwd(activation, w_hh, h0, gx, eps):
  def body(h, inp):
    g_t, e_t = inp
    h = _elman_act(activation, g_t + h @ w_hh) + e_t
    return h, h

  _, hs = jax.lax.scan(body, h0, (gx, eps))
  return hs, (w_hh, h0, hs, eps)


def _elman_bwd(activation, res, d_hs):
  w_hh, h0, hs, eps = res
  w_t = jnp.swapaxes(w_hh, -1, -2)

  def body(d_pre_next, inp):
    dh_t, h_t, e_t = inp
    g_t = dh_t + d_pre_next @ w_t  # dC/dh_t, through later steps too
    a_t = h_t - e_t  # the activation's output
    deriv = (1.0 - a_t * a_t) if activation == "tanh" else (a_t > 0).astype(a_t.dtype)
    d_pre = g_t * deriv
    return d_pre, (d_pre, g_t)

  d_pre0, (d_pre, g) = jax.lax.scan(body, jnp.zeros_like(h0), (d_hs, hs, eps), reverse=True)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  d_w = jnp.einsum("t...bh,t...bg->...hg", h_prev, d_pre)
  return d_w, d_pre0 @ w_t, d_pre, g


_elman.defvjp(_elman_fwd, _elman_bwd)


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


def stack_time_major(cell: Cell, params: Sequence[Params], carries: Sequence[Carry],
                     xs_TBI: jax.Array, *, dropout_rate: float = 0.0, rng: jax.Array | None = None,
                     unroll: int = 1, remat: "bool | str | Remat" = False,
                     compute_dtype: str = "float32") -> tuple[list, jax.Array]:
  """Run a stack of layers over ``[time, batch, input]``.

  Dropout (``rng`` given and ``dropout_rate > 0``) is applied to the input of every layer but
  the first. Returns ``(carries, hs [time, batch, H])`` where ``hs`` is the last layer's output.
  """
  new_carries = []
  h = xs_TBI
  rngs = jax.random.split(rng, len(params)) if rng is not None else [None] * len(params)
  for layer, (p, c) in enumerate(zip(params, carries)):
    if layer > 0:
      h = dropout(h, dropout_rate, rngs[layer])
    c, h = scan_layer_time_major(cell, p, c, h, unroll=unroll, remat=remat,
                                 compute_dtype=compute_dtype)
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
  batch, hidden = xs_TBI.shape[1], params_fw["w_hh"].shape[0]
  zero = cell.init_carry(batch, hidden)
  fw, hs_fw = masked_scan_layer_time_major(cell, params_fw, zero, xs_TBI, lengths_B,
                                           compute_dtype=compute_dtype)
  bw, hs_bw = masked_scan_layer_time_major(cell, params_bw, zero, xs_TBI, lengths_B,
                                           reverse=True, compute_dtype=compute_dtype)
  return (fw, bw), jnp.concatenate([hs_fw, hs_bw], axis=-1)
