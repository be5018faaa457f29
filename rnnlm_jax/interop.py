"""Conversion between PyTorch recurrent ``state_dict``s and our per-layer parameter dicts.

PyTorch (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``, ``G`` gate blocks of ``H`` rows each)::

    weight_ih_l{k}: [G*H, in_k]    (in_0 = input_size, in_k = H for k > 0)
    weight_hh_l{k}: [G*H, H]
    bias_ih_l{k}:   [G*H]
    bias_hh_l{k}:   [G*H]

``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell`` use the same names without the ``_l{k}`` suffix.

Ours (see :mod:`rnnlm_jax.cells`), one dict per layer::

    w_ih: [in_k, G*H] = weight_ih_l{k}.T      w_hh: [H, G*H] = weight_hh_l{k}.T
    b_ih: [G*H]       = bias_ih_l{k}          b_hh: [G*H]    = bias_hh_l{k}

with, for the LSTM only, the gate blocks permuted from PyTorch's ``(i, f, g, o)`` to our
``(i, f, o, g)``. The GRU ``(r, z, n)`` and RNN blocks keep PyTorch's order. Nothing else changes:
the conversion is exact (a transpose and a block permutation, no arithmetic).

Usage::

    sd = {k: v.detach().cpu().numpy() for k, v in torch_lstm.state_dict().items()}
    params = from_torch("lstm", sd)           # list of per-layer dicts, for rnn.stack
    sd2 = to_torch("lstm", params)            # numpy arrays with PyTorch's names and layout
    torch_lstm.load_state_dict({k: torch.from_numpy(v) for k, v in sd2.items()})

Not supported (a ``ValueError`` says so): bidirectional models (``*_reverse`` keys) and LSTMs
with ``proj_size > 0`` (``weight_hr_l{k}`` keys). ``batch_first`` does not affect the weights.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells as _cells

Params = dict[str, Any]

# Our gate block k is PyTorch's block _TORCH_BLOCK_OF[name][k]. The LSTM permutation (a swap of
# the last two blocks) is its own inverse, so the same index list converts in both directions.
_LSTM_PERM = (0, 1, 3, 2)  # ours (i, f, o, g) <- PyTorch (i, f, g, o)

_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_LAYER_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def _to_numpy(value, key: str) -> np.ndarray:
  """Numpy view of a state_dict value (numpy array, jax array, or a CPU torch tensor)."""
  if hasattr(value, "detach"):  # a torch tensor passed directly; no torch import needed
    value = value.detach().cpu().numpy()
  arr = np.asarray(value)
  if not np.issubdtype(arr.dtype, np.floating):
    raise ValueError(f"{key}: expected a floating-point array, got dtype {arr.dtype}")
  return arr


def _permute_blocks(a: np.ndarray, num_gates: int, name: str, axis: int) -> np.ndarray:
  """Reorder the ``num_gates`` equal blocks of ``a`` along ``axis`` (LSTM only; else identity)."""
  if name != "lstm":
    return a
  blocks = np.split(a, num_gates, axis=axis)
  return np.concatenate([blocks[j] for j in _LSTM_PERM], axis=axis)


def _check_shape(key: str, arr: np.ndarray, expected: tuple[int, ...], name: str, g: int):
  if arr.shape != expected:
    raise ValueError(
        f"{key}: expected shape {expected} for cell {name!r} ({g} gate block(s) of hidden size "
        f"{expected[0] // g}), got {tuple(arr.shape)}")


def from_torch(name: str, state_dict: Mapping[str, Any], *,
               num_layers: int | None = None) -> list[Params]:
  """Convert a PyTorch RNN/LSTM/GRU ``state_dict`` into our per-layer parameter dicts.

  Args:
    name: our cell name, one of ``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru`` (``nn.RNN`` with
      ``nonlinearity="tanh"`` / ``"relu"``, ``nn.LSTM``, ``nn.GRU``).
    state_dict: PyTorch key names and layout, values as numpy arrays (jax arrays or CPU torch
      tensors also work). Either a layer stack (``weight_ih_l0`` [G*H, input], ``weight_hh_l0``
      [G*H, H], ``bias_ih_l0`` [G*H], ``bias_hh_l0`` [G*H], ``..._l1``, ...) or a single cell
      (``nn.LSTMCell`` style: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``), which gives a
      one-element list. Pass only the recurrent module's entries (strip any ``"rnn."`` prefix).
      A model built with ``bias=False`` has no bias keys: its biases are returned as zeros (which
      computes the same function); :func:`to_torch` with ``bias=False`` omits them again.
    num_layers: expected number of layers; ``None`` infers it from the keys.

  Returns:
    ``num_layers`` dicts ``{w_ih [in_k, G*H], w_hh [H, G*H], b_ih [G*H], b_hh [G*H]}`` of jax
    arrays with the input's dtype (float64 becomes float32 unless ``jax_enable_x64`` is on), for
    :func:`rnnlm_jax.rnn.stack` / :func:`rnnlm_jax.rnn.scan_layer` with ``cells.get_cell(name)``.

  Raises:
    ValueError: unknown cell name; bidirectional (``_reverse``) or projection (``weight_hr``)
      keys; missing, unexpected or non-float entries; any shape inconsistent with the cell's gate
      count, the hidden size (from ``weight_hh_l0``) or the previous layer; a wrong ``num_layers``.
  """
  cell = _cells.get_cell(name)  # ValueError listing the valid names
  g = cell.num_gates
  keys = list(state_dict)

  reverse = sorted(k for k in keys if k.endswith("_reverse"))
  if reverse:
    raise ValueError(
        f"bidirectional PyTorch models are not supported here (found {reverse[:4]}): our stacks "
        "are unidirectional; convert the forward direction by dropping the '_reverse' keys")
  proj = sorted(k for k in keys if k.startswith("weight_hr"))
  if proj:
    raise ValueError(f"LSTMs with proj_size > 0 are not supported (found {proj[:4]})")

  if any(k in _NAMES for k in keys):  # single cell: weight_ih, weight_hh, bias_ih, bias_hh
    if num_layers not in (None, 1):
      raise ValueError(f"single-cell keys (weight_ih, ...) describe 1 layer, got num_layers="
                       f"{num_layers}")
    suffixes = [""]
    allowed = set(_NAMES)
  else:
    layers = {int(m.group(2)) for m in map(_LAYER_KEY.match, keys) if m}
    if not layers and num_layers is None:
      raise ValueError(
          f"no PyTorch recurrent weights found: expected keys weight_ih_l0, weight_hh_l0, "
          f"bias_ih_l0, bias_hh_l0, ... (or weight_ih, weight_hh, ... for a cell); got "
          f"{sorted(keys)[:8]}")
    n = num_layers if num_layers is not None else max(layers) + 1
    if n < 1:
      raise ValueError(f"num_layers must be >= 1, got {n}")
    suffixes = [f"_l{k}" for k in range(n)]
    allowed = {f"{p}{s}" for p in _NAMES for s in suffixes}
  unexpected = sorted(set(keys) - allowed)
  if unexpected:
    raise ValueError(
        f"unexpected keys {unexpected[:8]} for a {len(suffixes)}-layer {name!r} state_dict "
        "(wrong num_layers, or keys of another module: pass only the RNN's own entries)")

  has_bias = [f"bias_ih{s}" in state_dict or f"bias_hh{s}" in state_dict for s in suffixes]
  required = [f"{p}{s}" for s, b in zip(suffixes, has_bias)
              for p in (_NAMES if any(has_bias) else _NAMES[:2])]
  missing = [k for k in required if k not in state_dict]
  if missing:
    raise ValueError(f"missing keys {missing} in the {name!r} state_dict (got {sorted(keys)})")

  w_hh0 = _to_numpy(state_dict[f"weight_hh{suffixes[0]}"], f"weight_hh{suffixes[0]}")
  if w_hh0.ndim != 2 or w_hh0.shape[0] != g * w_hh0.shape[1]:
    raise ValueError(
        f"weight_hh{suffixes[0]}: expected shape (G*H, H) with G={g} gate block(s) for cell "
        f"{name!r}, got {tuple(w_hh0.shape)} (is the cell name right? G is 1 for rnn_tanh/"
        "rnn_relu, 4 for lstm, 3 for gru)")
  hidden = w_hh0.shape[1]

  params_list = []
  in_size = None
  for layer, s in enumerate(suffixes):
    w_ih = _to_numpy(state_dict[f"weight_ih{s}"], f"weight_ih{s}")
    if layer == 0:
      if w_ih.ndim != 2:
        raise ValueError(f"weight_ih{s}: expected shape ({g * hidden}, input_size), got "
                         f"{tuple(w_ih.shape)}")
      in_size = w_ih.shape[1]
    _check_shape(f"weight_ih{s}", w_ih, (g * hidden, in_size), name, g)
    w_hh = _to_numpy(state_dict[f"weight_hh{s}"], f"weight_hh{s}")
    _check_shape(f"weight_hh{s}", w_hh, (g * hidden, hidden), name, g)
    biases = {}
    for key in ("bias_ih", "bias_hh"):
      if f"{key}{s}" in state_dict:
        b = _to_numpy(state_dict[f"{key}{s}"], f"{key}{s}")
        _check_shape(f"{key}{s}", b, (g * hidden,), name, g)
      else:  # bias=False model
        b = np.zeros((g * hidden,), w_hh.dtype)
      biases[key] = b
    params_list.append({
        "w_ih": jnp.asarray(_permute_blocks(w_ih, g, name, axis=0).T),
        "w_hh": jnp.asarray(_permute_blocks(w_hh, g, name, axis=0).T),
        "b_ih": jnp.asarray(_permute_blocks(biases["bias_ih"], g, name, axis=0)),
        "b_hh": jnp.asarray(_permute_blocks(biases["bias_hh"], g, name, axis=0)),
    })
    in_size = hidden
  return params_list


def to_torch(name: str, params_list: Sequence[Params] | Params, *,
             bias: bool = True) -> dict[str, np.ndarray]:
  """The exact inverse of :func:`from_torch`: our parameters in PyTorch's names and layout.

  Args:
    name: our cell name (``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru``).
    params_list: a list of per-layer dicts ``{w_ih [in_k, G*H], w_hh [H, G*H], b_ih [G*H],
      b_hh [G*H]}`` gives stack keys (``weight_ih_l0`` [G*H, in_0], ``weight_hh_l0`` [G*H, H],
      ``bias_ih_l0`` [G*H], ``bias_hh_l0`` [G*H], ``..._l1``, ...) for ``nn.RNN/LSTM/GRU``.
      A single dict (not in a list) gives cell keys (``weight_ih``, ...) for ``nn.*Cell``.
    bias: ``False`` omits the bias keys (for a PyTorch module built with ``bias=False``); the
      biases must then be all zero.

  Returns:
    ``{key: np.ndarray}`` (C-contiguous, the params' dtype), ready for
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in ...})``.
  """
  cell = _cells.get_cell(name)
  g = cell.num_gates
  if isinstance(params_list, Mapping):
    items, suffix = [params_list], lambda k: ""
  else:
    items, suffix = list(params_list), lambda k: f"_l{k}"
    if not items:
      raise ValueError("params_list is empty")
  out = {}
  for layer, p in enumerate(items):
    missing = [k for k in ("w_ih", "w_hh", "b_ih", "b_hh") if k not in p]
    if missing:
      raise ValueError(f"layer {layer}: missing params {missing}")
    w_ih, w_hh = np.asarray(p["w_ih"]), np.asarray(p["w_hh"])
    b_ih, b_hh = np.asarray(p["b_ih"]), np.asarray(p["b_hh"])
    if w_hh.ndim != 2 or w_hh.shape[1] != g * w_hh.shape[0]:
      raise ValueError(f"layer {layer}: w_hh must be [H, {g}*H] for cell {name!r}, got "
                       f"{w_hh.shape}")
    width = w_hh.shape[1]
    for key, a, exp_last in (("w_ih", w_ih, 2), ("b_ih", b_ih, 1), ("b_hh", b_hh, 1)):
      if a.ndim != exp_last or a.shape[-1] != width:
        raise ValueError(f"layer {layer}: {key} must end in {width} (= {g}*H) for cell "
                         f"{name!r}, got {a.shape}")
    s = suffix(layer)
    out[f"weight_ih{s}"] = np.ascontiguousarray(_permute_blocks(w_ih, g, name, axis=1).T)
    out[f"weight_hh{s}"] = np.ascontiguousarray(_permute_blocks(w_hh, g, name, axis=1).T)
    if bias:
      out[f"bias_ih{s}"] = np.ascontiguousarray(_permute_blocks(b_ih, g, name, axis=0))
      out[f"bias_hh{s}"] = np.ascontiguousarray(_permute_blocks(b_hh, g, name, axis=0))
    elif np.any(b_ih) or np.any(b_hh):
      raise ValueError(f"layer {layer}: bias=False but the biases are not all zero")
  return out
