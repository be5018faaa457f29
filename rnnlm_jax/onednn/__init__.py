"""A whole LSTM layer through oneDNN's RNN primitive (the library PyTorch's CPU LSTM uses),
called from JAX as an XLA FFI custom call; the language model uses it with
``model.lstm_backend="onednn"`` (:func:`rnnlm_jax.rnn.scan_layer_time_major`). Optional: needs
``pip install -e ".[onednn]"`` (``onednn-devel-cpu-iomp``: oneDNN 3.2, CPU-only, and Zig's C++
compiler; the newer ``onednn-devel`` wheels are SYCL builds that cannot create a CPU engine
without a SYCL CPU device, see :func:`rnnlm_jax.onednn.build.find_onednn`); :func:`available`
says whether it can be used (and :func:`unavailable_reason` why not), and the scan
(:func:`rnnlm_jax.cells.lstm_recurrence`) is the fallback.

One layer, one direction, float32, CPU::

    (h_T, c_T), hs = lstm_layer(x, w_ih, w_hh, b, (h0, c0))

``x [T, B, I]``, ``w_ih [I, 4H]``, ``w_hh [H, 4H]``, ``b [4H]`` (= ``b_ih + b_hh``),
``h0, c0 [B, H]``, gate blocks ``(i, f, o, g)`` as :mod:`rnnlm_jax.cells`; the same values as
``lstm_recurrence(w_hh, (h0, c0), x @ w_ih + b)`` and the same gradients w.r.t. every input.
oneDNN orders the gates ``(i, f, g, o)``: the last two blocks of ``w_ih``, ``w_hh`` and ``b``
are swapped on the way in (and their gradients back by autodiff of the swap).

The layer takes the raw input ``x`` and ``w_ih``, not the projected ``gx``: oneDNN's LSTM
always multiplies its input by a weight matrix, so feeding it ``gx`` would need an identity
``[4H, 4H]`` weight (four times the input GEMM's work, and a useless ``dW``); given ``x`` and
``w_ih`` it does the input projection and its gradients itself, as one GEMM over all steps.

Forward without gradients runs ``forward_inference``; under ``jax.grad`` the forward runs
``forward_training``, whose workspace (gate activations and states, a uint8 buffer) is the
residual the backward custom call reads. The library is built on first use
(:mod:`rnnlm_jax.onednn.build`) and registered with ``jax.ffi.register_ffi_target``. vmap
falls back to a sequential loop over the mapped axis.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

import jax
import jax.numpy as jnp

__all__ = ["available", "unavailable_reason", "lstm_layer", "lstm_layer_reference", "version",
           "describe"]

_TARGETS = {"fwd_infer": "rnnlm_onednn_lstm_fwd_infer",
            "fwd_train": "rnnlm_onednn_lstm_fwd_train",
            "bwd": "rnnlm_onednn_lstm_bwd"}
_lock = threading.Lock()
_state: dict = {}

# Intel OpenMP's worker threads spin for KMP_BLOCKTIME ms (default 200) after each parallel
# region; between two oneDNN calls XLA's own threads run the rest of the step on the same cores,
# and the spinning took the char LSTM step from ~6.8k to ~1.8k tokens/s on 2 cores
# (experiments/benchmarks/README.md). Sleep at once unless the user set it; read by libiomp5
# when it initialises, i.e. at the first oneDNN call, after this.
OMP_ENV_DEFAULTS = {"KMP_BLOCKTIME": "0"}


def _load():
  """Build (once), load and register the library; its ctypes handle. Raises on failure."""
  with _lock:
    if "lib" in _state:
      return _state["lib"]
    if "error" in _state:
      raise _state["error"]
    try:
      from rnnlm_jax.onednn import build  # pylint: disable=import-outside-toplevel

      for key, value in OMP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
      lib = ctypes.CDLL(str(build.library_path()))
      for target in _TARGETS.values():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, target)),
                                    platform="cpu")
      lib.rnnlm_onednn_lstm_workspace_bytes.restype = ctypes.c_int64
      lib.rnnlm_onednn_lstm_workspace_bytes.argtypes = [ctypes.c_int64] * 4 + [
          ctypes.c_char_p, ctypes.c_int64]
      lib.rnnlm_onednn_lstm_describe.restype = ctypes.c_int64
      lib.rnnlm_onednn_lstm_describe.argtypes = [ctypes.c_int64] * 4 + [
          ctypes.c_char_p, ctypes.c_int64]
    except Exception as e:  # pylint: disable=broad-except
      _state["error"] = e
      raise
    _state["lib"] = lib
    return lib


def available() -> bool:
  """Whether the oneDNN layer can run here (builds the library on the first call)."""
  return unavailable_reason() is None


def unavailable_reason() -> str | None:
  """``None`` when :func:`lstm_layer` can run, else why not (oneDNN, compiler, build error)."""
  try:
    _load()
  except Exception as e:  # pylint: disable=broad-except
    msg = getattr(e, "stderr", None) or str(e)
    return f"{type(e).__name__}: {msg.strip()[-2000:]}"
  return None


def version() -> str:
  """oneDNN's version as the loaded library reports it, with its CPU threading runtime."""
  out = (ctypes.c_int64 * 4)()
  _load().rnnlm_onednn_version(out)
  runtime = {1: "seq", 2: "omp", 4: "tbb", 8: "threadpool"}.get(out[3], str(out[3]))
  return f"{out[0]}.{out[1]}.{out[2]} (cpu runtime {runtime})"


def describe(T: int, B: int, I: int, H: int) -> str:
  """The weight formats and implementations oneDNN chose for this shape (diagnostics)."""
  buf = ctypes.create_string_buffer(8192)
  _load().rnnlm_onednn_lstm_describe(T, B, I, H, buf, len(buf))
  return buf.value.decode()


@functools.lru_cache(maxsize=None)
def _workspace_bytes(T: int, B: int, I: int, H: int) -> int:
  err = ctypes.create_string_buffer(1024)
  n = _load().rnnlm_onednn_lstm_workspace_bytes(T, B, I, H, err, len(err))
  if n < 0:
    raise RuntimeError(f"oneDNN LSTM primitive for T={T} B={B} I={I} H={H}: "
                       f"{err.value.decode()}")
  return int(n)


def _to_onednn_gates(w: jax.Array) -> jax.Array:
  """Gate blocks along the last axis ``(i, f, o, g)`` <-> ``(i, f, g, o)`` (an involution)."""
  h = w.shape[-1] // 4
  return jnp.concatenate([w[..., :2 * h], w[..., 3 * h:], w[..., 2 * h:3 * h]], axis=-1)


def _shapes(x, w_hh):
  T, B, I = x.shape
  H = w_hh.shape[0]
  f32 = jnp.float32
  return T, B, I, H, (jax.ShapeDtypeStruct((T, B, H), f32), jax.ShapeDtypeStruct((B, H), f32),
                      jax.ShapeDtypeStruct((B, H), f32))


@jax.custom_vjp
def _layer(x, w_ih, w_hh, b, h0, c0):
  """oneDNN gate order; ``(hs, h_T, c_T)``."""
  _load()
  *_, outs = _shapes(x, w_hh)
  return tuple(jax.ffi.ffi_call(_TARGETS["fwd_infer"], outs, vmap_method="sequential")(
      x, w_ih, w_hh, b, h0, c0))


def _layer_fwd(x, w_ih, w_hh, b, h0, c0):
  _load()
  T, B, I, H, outs = _shapes(x, w_hh)
  ws = jax.ShapeDtypeStruct((_workspace_bytes(T, B, I, H),), jnp.uint8)
  hs, h_t, c_t, workspace = jax.ffi.ffi_call(
      _TARGETS["fwd_train"], (*outs, ws), vmap_method="sequential")(x, w_ih, w_hh, b, h0, c0)
  return (hs, h_t, c_t), (x, w_ih, w_hh, b, h0, c0, hs, h_t, c_t, workspace)


def _layer_bwd(res, cts):
  x, w_ih, w_hh, b, h0, c0, *_ = res
  f32 = jnp.float32
  outs = tuple(jax.ShapeDtypeStruct(a.shape, f32) for a in (x, w_ih, w_hh, b, h0, c0))
  d_hs, d_ht, d_ct = (jnp.asarray(c, f32) for c in cts)  # symbolic zeros arrive instantiated
  return tuple(jax.ffi.ffi_call(_TARGETS["bwd"], outs, vmap_method="sequential")(
      *res, d_hs, d_ht, d_ct))


_layer.defvjp(_layer_fwd, _layer_bwd)


def lstm_layer(x: jax.Array, w_ih: jax.Array, w_hh: jax.Array, b: jax.Array,
               carry: tuple[jax.Array, jax.Array]
               ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
  """One LSTM layer by oneDNN: ``((h_T, c_T), hs)`` (see the module docstring)."""
  h0, c0 = carry
  f32 = jnp.float32
  x, w_ih, w_hh, b, h0, c0 = (jnp.asarray(a, f32) for a in (x, w_ih, w_hh, b, h0, c0))
  hs, h_t, c_t = _layer(x, _to_onednn_gates(w_ih), _to_onednn_gates(w_hh),
                        _to_onednn_gates(b), h0, c0)
  return (h_t, c_t), hs


def lstm_layer_reference(x, w_ih, w_hh, b, carry):
  """The same layer by :mod:`rnnlm_jax.cells`: input projection, then ``lstm_recurrence``."""
  from rnnlm_jax import cells  # pylint: disable=import-outside-toplevel

  gx = jnp.einsum("tbi,ig->tbg", x, w_ih) + b
  return cells.lstm_recurrence(w_hh, carry, gx)
