"""An LM head that attends over the last K hidden states (Daniluk et al. 2017), causal, jitted.

``model.attention_window = K > 0`` puts this between the RNN stack and the softmax. At step
``t`` the query is the last layer's output ``h_t``; the memory is the K outputs before it,
``h_{t-K} .. h_{t-1}`` (the previous windows' states are kept in the recurrent carry, so the
memory crosses truncated-BPTT window boundaries; at the start of a stream fewer than K are
valid and the rest are masked out). Additive attention, then a mix of context and state::

    m_k   = tanh(y_k W_y + h_t W_h)            for each memory slot y_k     [A = H]
    a     = softmax_k(m_k . v)                 over the valid slots only
    r_t   = sum_k a_k y_k
    out_t = tanh(r_t W_r + h_t W_x)            fed to the softmax instead of h_t

The whole window is computed at once: the memory and the window's states are concatenated
(``[K + T, B, H]``) and each step gathers its own K predecessors, so there is no scan and the
output at ``t`` depends on states at or before ``t`` only (tested). Memory holds undropped
states; dropout applies to ``out`` like the LM's output dropout.

No bias in ``out_t`` (as in the paper): with one, SGD at Zaremba's rate 1 put the unigram
statistics there and the LSTM's outputs stayed near zero (configs/ptb_small.py with K = 10,
300 updates: valid NLL 9.20 with the bias, 6.45 without, 6.36 with no attention head; see
experiments/remedies/README.md).

Params ``{"w_y", "w_h", "w_r", "w_x": [H, H], "v": [H]}``; memory (a carry entry)
``{"h": [B, K, H], "valid": [B, K]}`` (batch first, so it shards like the other carries),
oldest slot first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def init_params(key: jax.Array, hidden_size: int, init_scale: float) -> dict:
  """Attention parameters, each U[-init_scale, init_scale]."""
  ks = jax.random.split(key, 5)
  u = lambda k, shape: jax.random.uniform(k, shape, jnp.float32, -init_scale, init_scale)
  h = hidden_size
  return {"w_y": u(ks[0], (h, h)), "w_h": u(ks[1], (h, h)), "v": u(ks[2], (h,)),
          "w_r": u(ks[3], (h, h)), "w_x": u(ks[4], (h, h))}


def init_memory(batch_size: int, window: int, hidden_size: int) -> dict:
  """An empty memory: ``{"h": zeros [B, K, H], "valid": zeros [B, K]}`` (float32 0/1)."""
  return {"h": jnp.zeros((batch_size, window, hidden_size), jnp.float32),
          "valid": jnp.zeros((batch_size, window), jnp.float32)}


def attend(params: dict, memory: dict, h_TBH: jax.Array) -> tuple[dict, jax.Array]:
  """Attend over the memory and the window's own past states.

  Args:
    params: :func:`init_params`.
    memory: ``{"h": [B, K, H], "valid": [B, K]}``, the K states before this window.
    h_TBH: the last layer's outputs ``[time, batch, H]``.

  Returns:
    ``(memory', out [time, batch, H])``: the memory after this window (its last K states) and
    the mixed outputs.
  """
  steps = h_TBH.shape[0]
  window = memory["h"].shape[1]
  full = jnp.concatenate([jnp.swapaxes(memory["h"], 0, 1), h_TBH], axis=0)  # [K+T, B, H]
  valid = jnp.concatenate([memory["valid"].T, jnp.ones(h_TBH.shape[:2], jnp.float32)], axis=0)
  idx_TK = jnp.arange(steps)[:, None] + jnp.arange(window)[None, :]  # slots t .. t+K-1 of full
  keys = jnp.take(full @ params["w_y"], idx_TK, axis=0)  # [T, K, B, H]
  query = (h_TBH @ params["w_h"])[:, None]  # [T, 1, B, H]
  scores = jnp.tanh(keys + query) @ params["v"]  # [T, K, B]
  ok = jnp.take(valid, idx_TK, axis=0) > 0  # [T, K, B]
  scores = jnp.where(ok, scores, -1e30)  # finite: no inf - inf, no NaN gradients
  top = jax.lax.stop_gradient(jnp.max(scores, axis=1, keepdims=True))
  e = jnp.where(ok, jnp.exp(scores - top), 0.0)
  alpha = e / jnp.maximum(jnp.sum(e, axis=1, keepdims=True), 1e-30)  # all-invalid rows: 0
  context = jnp.einsum("tkb,tkbh->tbh", alpha, jnp.take(full, idx_TK, axis=0))
  out = jnp.tanh(context @ params["w_r"] + h_TBH @ params["w_x"])
  new_memory = {"h": jnp.swapaxes(full[-window:], 0, 1), "valid": valid[-window:].T}
  return new_memory, out
