"""Hand-differentiated building blocks of the LM's hot path: dense layers and softmax loss.

Two pure functions with custom VJPs, used by :mod:`rnnlm_jax.models.lm`:

``dense(x [T, B, K], w [K, N], compute_dtype) -> [T, B, N] float32``
    A matmul over time-major activations. With ``compute_dtype=bfloat16`` the operands are cast
    to bfloat16 and the products accumulate in float32 (``preferred_element_type``), forward and
    backward; the backward is written as the 3-D einsums ``tbn,kn->tbk`` and ``tbk,tbn->kn``
    because XLA:CPU (jaxlib 0.10.2) keeps exactly these forms, like ``tbk,kn->tbn``, on its
    fast bfloat16 path: with autodiff the backward dots become 2-D transposed products
    (``a.T @ g``, ``g @ W.T``) that silently run in float32 (check for ``__ynn_fusion`` with
    bfloat16 operands in ``jax.jit(f).lower(...).compile().as_text()``). Measured on a CPU
    with AMX: default autodiff gained only 7-11 % over float32, these forms 50-87 %; the
    bfloat16 results are in experiments/benchmarks/README.md. With ``float32`` it is a plain
    ``einsum``.

``softmax_xent(h [T, B, H], w [H, V], b [V], targets [T, B], compute_dtype, vocab_chunk)
-> nll [T, B]``
    The output projection fused with the cross-entropy. The backward pass is one elementwise
    pass ``(softmax - onehot) * g`` and two GEMMs, from the saved logits. ``vocab_chunk > 0``
    caps memory: the vocabulary is processed in chunks of that many words with a running
    log-sum-exp, nothing ``[T, B, V]``-sized is saved, and the backward recomputes each chunk's
    logits (one extra GEMM). Values and gradients equal
    ``optax.softmax_cross_entropy_with_integer_labels(h @ w + b, targets)`` to float rounding.

Inputs and parameters are float32 in every mode (so are the gradients); only matmul inputs
are rounded.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

F32 = jnp.float32


def _cast(x: jax.Array, dtype) -> jax.Array:
  return x if x.dtype == dtype else x.astype(dtype)


def _mm(x_TBK, w_KN, dtype):
  return jnp.einsum("tbk,kn->tbn", _cast(x_TBK, dtype), _cast(w_KN, dtype),
                    preferred_element_type=F32)


def _mm_dx(g_TBN, w_KN, dtype):
  return jnp.einsum("tbn,kn->tbk", _cast(g_TBN, dtype), _cast(w_KN, dtype),
                    preferred_element_type=F32)


def _mm_dw(x_TBK, g_TBN, dtype):
  return jnp.einsum("tbk,tbn->kn", _cast(x_TBK, dtype), _cast(g_TBN, dtype),
                    preferred_element_type=F32)


def recurrent_matmul(a: jax.Array, b: jax.Array, compute_dtype=F32) -> jax.Array:
  """``a [..., K] @ b [..., K, N]`` in float32; with ``compute_dtype=bfloat16`` the operands are
  rounded to bfloat16 and the products accumulate in float32 (the hand-written recurrences of
  :mod:`rnnlm_jax.cells` call it inside their scans, forward and backward; no VJP of its own).
  Float32 is exactly ``a @ b`` (float64 operands stay float64)."""
  compute_dtype = jnp.dtype(compute_dtype)
  if compute_dtype == F32:
    return a @ b
  return jnp.matmul(_cast(a, compute_dtype), _cast(b, compute_dtype), preferred_element_type=F32)


def recurrent_weight_grad(h_prev: jax.Array, d_out: jax.Array, compute_dtype=F32) -> jax.Array:
  """``sum_t h_prev[t]^T d_out[t]``: ``[T, (K,) B, H] x [T, (K,) B, G] -> [(K,) H, G]`` float32, the
  recurrent weight's gradient as one GEMM (bfloat16 operands with ``compute_dtype=bfloat16``)."""
  compute_dtype = jnp.dtype(compute_dtype)
  if compute_dtype != F32:  # the einsum on bfloat16 operands (XLA:CPU would run the 2-D form
    # below as a float32 dot)
    return jnp.einsum("t...bh,t...bg->...hg", _cast(h_prev, compute_dtype),
                      _cast(d_out, compute_dtype), preferred_element_type=F32)
  if h_prev.ndim == 3:  # [T*B, H]^T [T*B, G], contracting the rows of both as they lie: the
    # einsum over (t, b) made XLA:CPU copy both operands transposed first (2 copies of
    # [T, B, *] per layer; the char LSTM layer's fwd+bwd ~4 % faster without them)
    return jax.lax.dot_general(h_prev.reshape(-1, h_prev.shape[-1]),
                               d_out.reshape(-1, d_out.shape[-1]), (((0,), (0,)), ((), ())))
  return jnp.einsum("t...bh,t...bg->...hg", h_prev, d_out)  # member axis K; float64 as given


# ----------------------------------------------------------------------------- dense


def dense(x_TBK: jax.Array, w_KN: jax.Array, compute_dtype=F32) -> jax.Array:
  """``x [T, B, K] @ w [K, N] -> [T, B, N]`` float32; bfloat16 inputs if ``compute_dtype`` says so."""
  compute_dtype = jnp.dtype(compute_dtype)
  if compute_dtype == F32:
    return _mm(x_TBK, w_KN, F32)
  return _dense_lowp(x_TBK, w_KN, compute_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense_lowp(x, w, dtype):
  return _mm(x, w, dtype)


def _dense_lowp_fwd(x, w, dtype):
  x16, w16 = _cast(x, dtype), _cast(w, dtype)  # saved at half the size
  return _mm(x16, w16, dtype), (x16, w16)


def _dense_lowp_bwd(dtype, res, g):
  x16, w16 = res
  return _mm_dx(g, w16, dtype), _mm_dw(x16, g, dtype)


_dense_lowp.defvjp(_dense_lowp_fwd, _dense_lowp_bwd)


# ----------------------------------------------------------------------------- softmax loss


def softmax_xent(h_TBH: jax.Array, w_HV: jax.Array, b_V: jax.Array, targets_TB: jax.Array,
                 compute_dtype=F32, vocab_chunk: int = 0) -> jax.Array:
  """Per-token ``-log softmax(h w + b)[target]`` in nats, ``[T, B]`` float32 (see module doc)."""
  compute_dtype = jnp.dtype(compute_dtype)
  vocab = w_HV.shape[-1]
  if vocab_chunk < 0:
    raise ValueError(f"vocab_chunk must be >= 0, got {vocab_chunk}")
  if vocab_chunk and vocab_chunk < vocab:
    return _xent_chunked(h_TBH, w_HV, b_V, targets_TB.astype(jnp.int32), compute_dtype,
                         int(vocab_chunk))
  if compute_dtype == F32:
    return _xent_2d(h_TBH, w_HV, b_V, targets_TB.astype(jnp.int32))
  return _xent(h_TBH, w_HV, b_V, targets_TB.astype(jnp.int32), compute_dtype)


def _xent_2d(h_TBH, w_HV, b_V, targets_TB):
  """Float32: the library's cross-entropy on 2-D ``[T*B, V]`` logits, plain autodiff.

  Faster on XLA:CPU than :func:`_xent` in float32 (scripts/bench_ab.py head): the 2-D backward
  GEMMs need no transposed copy of the ``[T, B, V]`` logit gradient, and XLA fuses the
  elementwise passes. (Keep the leading dimension ``T*B``, not ``[1, T*B, .]``: with a leading 1
  XLA ran the loop fusions on one thread.)
  """
  t, b, h = h_TBH.shape
  logits_NV = h_TBH.reshape(t * b, h) @ w_HV + b_V
  nll_N = optax.softmax_cross_entropy_with_integer_labels(logits_NV, targets_TB.reshape(t * b))
  return nll_N.reshape(t, b)


def _target_logit(logits_TBV, targets_TB):
  return jnp.take_along_axis(logits_TBV, targets_TB[..., None], axis=-1)[..., 0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _xent(h, w, b, targets, dtype):
  return _xent_fwd(h, w, b, targets, dtype)[0]


def _xent_fwd(h, w, b, targets, dtype):
  logits = _mm(h, w, dtype) + b
  lse = jax.nn.logsumexp(logits, axis=-1)
  nll = lse - _target_logit(logits, targets)
  return nll, (_cast(h, dtype), _cast(w, dtype), logits, lse, targets)


def _xent_bwd(dtype, res, g_TB):
  h16, w16, logits, lse, targets = res
  d = _softmax_minus_onehot(logits, lse, targets, 0) * g_TB[..., None]
  return _mm_dx(d, w16, dtype), _mm_dw(h16, d, dtype), d.sum(axis=(0, 1)), None


_xent.defvjp(_xent_fwd, _xent_bwd)


def _softmax_minus_onehot(logits_TBC, lse_TB, targets_TB, offset):
  """``softmax - onehot`` over a vocabulary chunk starting at word ``offset``."""
  p = jnp.exp(logits_TBC - lse_TB[..., None])
  cols = offset + jnp.arange(logits_TBC.shape[-1], dtype=jnp.int32)
  return p - (targets_TB[..., None] == cols).astype(p.dtype)


def _chunks(vocab: int, chunk: int) -> list[tuple[int, int]]:
  return [(s, min(s + chunk, vocab)) for s in range(0, vocab, chunk)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _xent_chunked(h, w, b, targets, dtype, chunk):
  return _xent_chunked_fwd(h, w, b, targets, dtype, chunk)[0]


def _xent_chunked_fwd(h, w, b, targets, dtype, chunk):
  h16, w16 = _cast(h, dtype), _cast(w, dtype)
  m = s = tgt = None
  for lo, hi in _chunks(w.shape[-1], chunk):  # running log-sum-exp; nothing [T, B, V] kept
    logits = _mm(h16, w16[:, lo:hi], dtype) + b[lo:hi]
    m_c = logits.max(axis=-1)
    in_c = (targets >= lo) & (targets < hi)
    t_c = jnp.where(in_c, _target_logit(logits, jnp.clip(targets - lo, 0, hi - lo - 1)), 0.0)
    if m is None:
      m, s, tgt = m_c, jnp.exp(logits - m_c[..., None]).sum(-1), t_c
    else:
      m_new = jnp.maximum(m, m_c)
      s = s * jnp.exp(m - m_new) + jnp.exp(logits - m_new[..., None]).sum(-1)
      m, tgt = m_new, tgt + t_c
  lse = m + jnp.log(s)
  return lse - tgt, (h16, w16, b, lse, targets)


def _xent_chunked_bwd(dtype, chunk, res, g_TB):
  h16, w16, b, lse, targets = res
  dh = jnp.zeros(h16.shape, F32)
  dws, dbs = [], []
  for lo, hi in _chunks(w16.shape[-1], chunk):
    logits = _mm(h16, w16[:, lo:hi], dtype) + b[lo:hi]  # recomputed
    d = _softmax_minus_onehot(logits, lse, targets, lo) * g_TB[..., None]
    dh = dh + _mm_dx(d, w16[:, lo:hi], dtype)
    dws.append(_mm_dw(h16, d, dtype))
    dbs.append(d.sum(axis=(0, 1)))
  return dh, jnp.concatenate(dws, axis=-1), jnp.concatenate(dbs), None


_xent_chunked.defvjp(_xent_chunked_fwd, _xent_chunked_bwd)
