"""Recurrent language model: embedding -> dropout -> RNN stack -> dropout -> softmax.

Pure functions over a params pytree::

    params = {"embed": [V, E], "rnn": [layer params...], "head": {"w": [H, V], "b": [V]}}

With ``tie_embeddings`` the head has no ``w``: the output matrix is ``embed.T`` (needs E == H).
The model runs time-major internally; tokens come in as ``[batch, time]`` int32.

Remedies (issue 8; :mod:`rnnlm_jax.remedies`, each off by default and then without effect):
``norm`` (layer-normalised cells, ``cells.get_cell(cell, norm)``), ``residual`` (adds
``params["res_proj"] [E, H]`` when E != H), ``locked_dropout``, ``weight_drop`` (options of the
stack, ``rnn.stack_time_major``), ``embed_dropout``, ``attention_window`` (an
attention head over past states, :mod:`rnnlm_jax.models.attention`: ``params["attn"]``, and
its memory as one more entry after the layer carries) and ``aux_weight`` (a second softmax
head ``params["aux_head"] = {"w": [H, V], "b": [V]}`` predicting the token two steps ahead).

``lstm_backend="onednn"`` (opt-in, ``pip install -e ".[onednn]"``) runs each LSTM layer through
oneDNN's RNN primitive (:mod:`rnnlm_jax.onednn`); float32, no norm, remat or unroll.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnnlm_jax import cells, fused, remedies, rnn
from rnnlm_jax.models import attention

COMPUTE_DTYPES = ("float32", "bfloat16")
LSTM_BACKENDS = ("scan", "onednn")


@dataclasses.dataclass(frozen=True)
class LMSpec:
  """Static (hashable) description of the model, built from ``config.model``."""

  cell: str
  vocab_size: int
  num_layers: int
  hidden_size: int
  embed_size: int
  dropout: float = 0.0
  init: str = "uniform"
  init_scale: float = 0.1
  forget_bias: float = 0.0
  tie_embeddings: bool = False
  scan_unroll: int = 1
  remat: str = "none"  # none | step | segment; see rnn.Remat
  remat_segment: int = 0  # "segment": time steps per checkpointed segment, 0 = about sqrt(T)
  remat_policy: str = "none"  # "step" only: none | dots (also keep the h W_hh matmul outputs)
  compute_dtype: str = "float32"  # matmul inputs: float32 | bfloat16 (f32 accumulation, params)
  vocab_chunk: int = 0  # softmax loss over vocabulary chunks of this size (0 = all at once)
  lstm_backend: str = "scan"  # scan | onednn: each LSTM layer by oneDNN (rnnlm_jax.onednn)
  # Remedies (issue 8), all off by default; see rnnlm_jax/remedies.py.
  norm: str = "none"  # none | layer | batch: layer- or batch-normalised cells
  bn_population_windows: int = 100  # norm=batch: training windows in the population statistics
  residual: bool = False  # each layer outputs x + layer(x) (a projection where widths differ)
  locked_dropout: bool = False  # `dropout` uses one mask per window (variational)
  embed_dropout: float = 0.0  # drop whole words (embedding rows) at this rate
  weight_drop: float = 0.0  # DropConnect on the recurrent matrices W_hh at this rate
  attention_window: int = 0  # K > 0: attention head over the last K hidden states
  aux_weight: float = 0.0  # > 0: auxiliary head predicting the token 2 steps ahead, its weight
  # Not a config key: "autodiff" differentiates lax.scan instead of the cells' hand-written
  # recurrences (same values and gradients; for A/B benchmarks, scripts/bench_lean_backward.py).
  backward: str = "lean"  # lean | autodiff (cells.get_cell's backward=)

  @classmethod
  def from_config(cls, model_cfg, vocab_size: int) -> "LMSpec":
    """Build from a ``config.model`` ConfigDict; validates the fields."""
    cells.get_cell(model_cfg.cell)  # clear error for an unknown cell
    spec = cls(cell=model_cfg.cell, vocab_size=int(vocab_size),
               num_layers=int(model_cfg.num_layers), hidden_size=int(model_cfg.hidden_size),
               embed_size=int(model_cfg.embed_size), dropout=float(model_cfg.dropout),
               init=model_cfg.init, init_scale=float(model_cfg.init_scale),
               forget_bias=float(model_cfg.forget_bias),
               tie_embeddings=bool(model_cfg.tie_embeddings),
               scan_unroll=int(model_cfg.scan_unroll), **_remat_fields(model_cfg),
               compute_dtype=str(model_cfg.get("compute_dtype", "float32")),
               vocab_chunk=int(model_cfg.get("vocab_chunk", 0)),
               lstm_backend=str(model_cfg.get("lstm_backend", "scan")),
               norm=str(model_cfg.get("norm", "none")),
               bn_population_windows=int(model_cfg.get("bn_population_windows", 100)),
               residual=bool(model_cfg.get("residual", False)),
               locked_dropout=bool(model_cfg.get("locked_dropout", False)),
               embed_dropout=float(model_cfg.get("embed_dropout", 0.0)),
               weight_drop=float(model_cfg.get("weight_drop", 0.0)),
               attention_window=int(model_cfg.get("attention_window", 0)),
               aux_weight=float(model_cfg.get("aux_weight", 0.0)))
    cells.get_cell(spec.cell, spec.norm)  # clear error for an unknown model.norm
    if spec.norm == "batch" and spec.remat != "none":
      raise ValueError(f"model.norm='batch' runs each layer with per-time-step statistics and "
                       f"supports no remat, got model.remat={spec.remat!r}; set model.remat='none'")
    if spec.norm == "batch" and spec.bn_population_windows < 1:
      raise ValueError(f"model.bn_population_windows must be >= 1 (training windows averaged "
                       f"into the population statistics), got {spec.bn_population_windows}")
    for key in ("embed_dropout", "weight_drop"):
      if not 0.0 <= getattr(spec, key) < 1.0:
        raise ValueError(f"model.{key} must be in [0, 1) (0 = off), got {getattr(spec, key)}")
    if spec.attention_window < 0:
      raise ValueError(f"model.attention_window must be >= 0 (0 = no attention head), got "
                       f"{spec.attention_window}")
    if not spec.aux_weight >= 0.0:
      raise ValueError(f"model.aux_weight must be >= 0 (0 = no auxiliary head), got "
                       f"{spec.aux_weight}")
    if spec.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"model.compute_dtype must be one of {' | '.join(COMPUTE_DTYPES)}, "
                       f"got {spec.compute_dtype!r}")
    if spec.vocab_chunk < 0:
      raise ValueError(f"model.vocab_chunk must be >= 0 (0 = the whole vocabulary at once), "
                       f"got {spec.vocab_chunk}")
    if spec.tie_embeddings and spec.embed_size != spec.hidden_size:
      raise ValueError(
          f"model.tie_embeddings needs model.embed_size == model.hidden_size, got "
          f"{spec.embed_size} and {spec.hidden_size}; set them equal or tie_embeddings=False")
    if not 0.0 <= spec.dropout < 1.0:
      raise ValueError(f"model.dropout must be in [0, 1), got {spec.dropout}")
    if spec.init not in cells.INITS:
      raise ValueError(f"unknown model.init {spec.init!r}; choose one of {', '.join(cells.INITS)}")
    if spec.scan_unroll < 1:
      raise ValueError(f"model.scan_unroll must be >= 1, got {spec.scan_unroll}")
    _check_lstm_backend(spec)
    return spec

  @property
  def cell_fns(self) -> cells.Cell:
    """The cell (its layer-normalised version with ``norm="layer"``)."""
    return cells.get_cell(self.cell, self.norm, backward=self.backward)

  @property
  def stochastic(self) -> bool:
    """Whether training draws random masks (any dropout rate > 0)."""
    return self.dropout > 0 or self.embed_dropout > 0 or self.weight_drop > 0

  @property
  def remat_spec(self) -> rnn.Remat:
    """The ``remat=`` argument of the stack (falsy when ``remat`` is ``"none"``)."""
    return rnn.Remat(rnn.as_remat(self.remat).mode, int(self.remat_segment), self.remat_policy)


def _check_lstm_backend(spec: LMSpec) -> None:
  """``model.lstm_backend``: one-line ``ValueError``s for what oneDNN's layer cannot run."""
  if spec.lstm_backend not in LSTM_BACKENDS:
    raise ValueError(f"model.lstm_backend must be one of {' | '.join(LSTM_BACKENDS)}, got "
                     f"{spec.lstm_backend!r}")
  if spec.lstm_backend == "scan":
    return
  for bad, fix in [(spec.cell != "lstm", f"model.cell='lstm' (got {spec.cell!r})"),
                   (spec.norm != "none", f"model.norm='none' (got {spec.norm!r})"),
                   (spec.compute_dtype != "float32",
                    f"model.compute_dtype='float32' (got {spec.compute_dtype!r})"),
                   (spec.remat != "none", f"model.remat='none' (got {spec.remat!r})"),
                   (spec.scan_unroll != 1, f"model.scan_unroll=1 (got {spec.scan_unroll})")]:
    if bad:
      raise ValueError(f"model.lstm_backend='onednn' runs the plain float32 LSTM layer only: "
                       f"set {fix} or model.lstm_backend='scan'")
  from rnnlm_jax import onednn  # pylint: disable=import-outside-toplevel  (optional extra)

  if not onednn.available():
    raise ValueError("model.lstm_backend='onednn' needs oneDNN and a C++ compiler: "
                     "pip install -e \".[onednn]\" (or set model.lstm_backend='scan'); "
                     "rnnlm_jax.onednn.unavailable_reason() says what is missing")


def _remat_fields(model_cfg) -> dict:
  """``model.remat``, ``model.remat_segment``, ``model.remat_policy``, checked (clear errors)."""
  mode = model_cfg.get("remat", "none")
  if mode not in rnn.REMAT_MODES:  # one spelling: the bools of older configs are refused
    old = {"false": " (False is now 'none')", "true": " (True is now 'step')"}.get(
        str(mode).strip().lower(), "")
    raise ValueError(f"model.remat must be one of {' | '.join(rnn.REMAT_MODES)}, got "
                     f"{mode!r}{old}")
  segment = model_cfg.get("remat_segment", 0)
  if isinstance(segment, bool) or not isinstance(segment, int) or segment < 0:
    raise ValueError(f"model.remat_segment must be an integer >= 0 (time steps per segment; "
                     f"0 = about sqrt(bptt)), got {segment!r}")
  policy = model_cfg.get("remat_policy", "none")
  if policy not in rnn.REMAT_POLICIES:
    raise ValueError(f"model.remat_policy must be one of {' | '.join(rnn.REMAT_POLICIES)}, "
                     f"got {policy!r}")
  if policy != "none" and mode != "step":
    raise ValueError(f"model.remat_policy={policy!r} applies to model.remat='step' only, got "
                     f"model.remat={mode!r} (with 'segment' it would keep every segment's matmul "
                     f"outputs: O(T) memory again); set model.remat_policy='none' or "
                     f"model.remat='step'")
  return {"remat": mode, "remat_segment": segment, "remat_policy": policy}


def init_params(key: jax.Array, spec: LMSpec) -> dict:
  """Initialise the LM; every weight uses ``spec.init`` / ``spec.init_scale`` (head bias too)."""
  k_emb, k_rnn, k_w, k_b = jax.random.split(key, 4)
  s = spec.init_scale
  u = lambda k, shape: jax.random.uniform(k, shape, jnp.float32, -s, s)
  params = {
      "embed": u(k_emb, (spec.vocab_size, spec.embed_size)),
      "rnn": rnn.init_stack(k_rnn, spec.cell_fns, spec.num_layers, spec.embed_size,
                            spec.hidden_size, init=spec.init, init_scale=s,
                            forget_bias=spec.forget_bias),
      "head": {"b": u(k_b, (spec.vocab_size,)) if spec.init == "uniform"
               else jnp.zeros((spec.vocab_size,), jnp.float32)},
  }
  if not spec.tie_embeddings:
    params["head"]["w"] = u(k_w, (spec.hidden_size, spec.vocab_size))
  # Remedy parameters from keys folded out of `key` (the ones above do not change).
  if spec.residual and spec.embed_size != spec.hidden_size:
    params["res_proj"] = remedies.init_res_proj(jax.random.fold_in(key, 101), spec.embed_size,
                                                spec.hidden_size, s)
  if spec.attention_window:
    params["attn"] = attention.init_params(jax.random.fold_in(key, 102), spec.hidden_size, s)
  if spec.aux_weight:
    k_aw, k_ab = jax.random.split(jax.random.fold_in(key, 103))
    params["aux_head"] = {"w": u(k_aw, (spec.hidden_size, spec.vocab_size)),
                          "b": u(k_ab, (spec.vocab_size,)) if spec.init == "uniform"
                          else jnp.zeros((spec.vocab_size,), jnp.float32)}
  return params


def init_carry(spec: LMSpec, batch_size: int) -> list:
  """Zero recurrent state for a batch: one cell carry per layer (then, with an attention head,
  its empty memory ``{"h": [B, K, H], "valid": [B, K]}``)."""
  carry = rnn.init_stack_carry(spec.cell_fns, spec.num_layers, batch_size, spec.hidden_size)
  if spec.attention_window:
    carry.append(attention.init_memory(batch_size, spec.attention_window, spec.hidden_size))
  return carry


def forward(params: dict, spec: LMSpec, carry: list, tokens_BT: jax.Array,
            rng: jax.Array | None = None, statistics: list | None = None) -> tuple[list, dict]:
  """Embed ``tokens [batch, time]``, run the stack (and the attention head, if any).

  Returns ``(carry, out)`` with ``out["features"] [time, batch, H]``, the vectors fed to the
  softmax (after output dropout when ``rng`` is given), and ``out["rnn"] [time, batch, H]``,
  the last layer's undropped output (for TAR). ``statistics``: as
  :func:`rnnlm_jax.rnn.stack_time_major`'s (recurrent batch norm).
  """
  rngs = jax.random.split(rng, 3) if rng is not None else (None, None, None)
  if spec.embed_dropout and rng is not None:
    x_TBE = remedies.embedding_dropout(params["embed"], tokens_BT, spec.embed_dropout,
                                       jax.random.fold_in(rng, 3))
  else:
    x_TBE = jnp.take(params["embed"], tokens_BT.T, axis=0)
  drop = rnn.locked_dropout if spec.locked_dropout else rnn.dropout
  x_TBE = drop(x_TBE, spec.dropout, rngs[0])
  new_carry, h_TBH = rnn.stack_time_major(
      spec.cell_fns, params["rnn"], carry[:spec.num_layers], x_TBE, dropout_rate=spec.dropout,
      rng=rngs[1], locked=spec.locked_dropout, residual=spec.residual,
      res_proj=params.get("res_proj"), weight_drop_rate=spec.weight_drop,
      unroll=spec.scan_unroll, remat=spec.remat_spec, compute_dtype=spec.compute_dtype,
      statistics=statistics, lstm_backend=spec.lstm_backend)
  features = h_TBH
  if spec.attention_window:
    memory, features = attention.attend(params["attn"], carry[spec.num_layers], h_TBH)
    new_carry.append(memory)
  features = drop(features, spec.dropout, rngs[2])
  return new_carry, {"features": features, "rnn": h_TBH}


def hidden_states(params: dict, spec: LMSpec, carry: list, tokens_BT: jax.Array,
                  rng: jax.Array | None = None) -> tuple[list, jax.Array]:
  """Embed ``tokens [batch, time]`` and run the stack.

  Returns ``(carry, h [time, batch, H])`` (after output dropout when ``rng`` is given): the
  vectors fed to the softmax (:func:`forward`'s ``features``).
  """
  carry, out = forward(params, spec, carry, tokens_BT, rng)
  return carry, out["features"]


def output_matrix(params: dict, spec: LMSpec) -> jax.Array:
  """The ``[H, V]`` softmax weight (``embed.T`` when tied)."""
  return params["embed"].T if spec.tie_embeddings else params["head"]["w"]


def logits(params: dict, spec: LMSpec, h: jax.Array) -> jax.Array:
  """``h [..., H] -> logits [..., V]`` float32, one GEMM (bfloat16 inputs if the spec says so)."""
  lead = h.shape[:-1]
  out = fused.dense(h.reshape(1, -1, h.shape[-1]), output_matrix(params, spec),
                    spec.compute_dtype)[0] + params["head"]["b"]
  return out.reshape(*lead, -1)


def token_nll(params: dict, spec: LMSpec, carry: list, tokens_BT: jax.Array,
              targets_BT: jax.Array, rng: jax.Array | None = None) -> tuple[list, jax.Array]:
  """Per-token negative log-likelihood (nats).

  Args:
    tokens_BT: inputs ``[batch, time]`` int32.
    targets_BT: next tokens ``[batch, time]`` int32.
  Returns:
    ``(carry, nll [time, batch])``.
  """
  carry, h_TBH = hidden_states(params, spec, carry, tokens_BT, rng)
  nll_TB = fused.softmax_xent(h_TBH, output_matrix(params, spec), params["head"]["b"],
                              targets_BT.T, spec.compute_dtype, spec.vocab_chunk)
  return carry, nll_TB


def window_losses(params: dict, spec: LMSpec, carry: list, tokens_BT: jax.Array,
                  targets_BT: jax.Array, rng: jax.Array | None = None, *,
                  penalties: bool = False) -> tuple[list, dict]:
  """:func:`token_nll` plus the remedies' extra loss terms, for one window.

  Returns ``(carry, terms)``: ``terms["nll"] [time, batch]`` as :func:`token_nll`; with
  ``spec.aux_weight > 0`` also ``terms["aux_nll"] [time - 1, batch]``, the auxiliary head's NLL
  of the token two steps ahead (``targets[:, t + 1]`` from the features at ``t``); with
  ``penalties`` also ``terms["ar"]`` and ``terms["tar"]``, the sums of
  :func:`rnnlm_jax.remedies.activation_penalties`. Weighting is the caller's.
  """
  carry, out = forward(params, spec, carry, tokens_BT, rng)
  feats = out["features"]
  terms = {"nll": fused.softmax_xent(feats, output_matrix(params, spec), params["head"]["b"],
                                     targets_BT.T, spec.compute_dtype, spec.vocab_chunk)}
  if spec.aux_weight:
    head = params["aux_head"]
    terms["aux_nll"] = fused.softmax_xent(feats[:-1], head["w"], head["b"], targets_BT.T[1:],
                                          spec.compute_dtype, spec.vocab_chunk)
  if penalties:
    terms["ar"], terms["tar"] = remedies.activation_penalties(feats, out["rnn"])
  return carry, terms


# ----------------------------------------------------------------------------- recurrent batch norm


def batch_statistics(params: dict, spec: LMSpec, carry: list, tokens_BT: jax.Array
                     ) -> tuple[list, list]:
  """One training window's per-time-step batch statistics, layer by layer (``norm="batch"``).

  Runs the stack in training mode (batch statistics) without dropout on ``tokens [batch,
  time]``; returns ``(carry, stats)``, ``stats[layer]`` as :data:`rnnlm_jax.cells`'s
  ``Cell.layer`` gives them (``{"ih", "hh"(, "c")}``, each ``{"mean", "var"} [time, F]``).
  """
  statistics = []
  carry, _ = forward(params, spec, carry, tokens_BT, None, statistics=statistics)
  return carry, statistics


def population_statistics(window_stats: list[list], batch_size: int) -> list:
  """Average per-window statistics (each :func:`batch_statistics`' ``stats``) into population
  statistics: the mean of the means and ``B / (B - 1)`` times the mean of the (biased) batch
  variances (Ioffe & Szegedy 2015, Section 3.1), per layer and time step."""
  correction = batch_size / max(batch_size - 1, 1)

  def average(*leaves):
    return jnp.mean(jnp.stack(leaves), axis=0)

  mean = jax.tree.map(average, *window_stats)
  return jax.tree.map(lambda d: {"mean": d["mean"], "var": d["var"] * correction}, mean,
                      is_leaf=lambda d: isinstance(d, dict) and "mean" in d)


def with_population(params: dict, population: list) -> dict:
  """``params`` with each layer's population statistics (``params["rnn"][l]["population"]``),
  which switch the batch-normalised cells to evaluation mode."""
  layers = [dict(p, population=pop) for p, pop in zip(params["rnn"], population)]
  return dict(params, rnn=layers)
