"""Recurrent language model: embedding -> dropout -> RNN stack -> dropout -> softmax.

Pure functions over a params pytree::

    params = {"embed": [V, E], "rnn": [layer params...], "head": {"w": [H, V], "b": [V]}}

With ``tie_embeddings`` the head has no ``w``: the output matrix is ``embed.T`` (needs E == H).
The model runs time-major internally; tokens come in as ``[batch, time]`` int32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnnlm_jax import cells, fused, rnn

COMPUTE_DTYPES = ("float32", "bfloat16")


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
  remat: str = "none"  # none | step | segment (False/True accepted: none/step); see rnn.Remat
  remat_segment: int = 0  # "segment": time steps per checkpointed segment, 0 = about sqrt(T)
  remat_policy: str = "none"  # "step" only: none | dots (also keep the h W_hh matmul outputs)
  compute_dtype: str = "float32"  # matmul inputs: float32 | bfloat16 (f32 accumulation, params)
  vocab_chunk: int = 0  # softmax loss over vocabulary chunks of this size (0 = all at once)

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
               vocab_chunk=int(model_cfg.get("vocab_chunk", 0)))
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
    return spec

  @property
  def cell_fns(self) -> cells.Cell:
    return cells.get_cell(self.cell)

  @property
  def remat_spec(self) -> rnn.Remat:
    """The ``remat=`` argument of the stack (falsy when ``remat`` is ``"none"``)."""
    return rnn.Remat(rnn.as_remat(self.remat).mode, int(self.remat_segment), self.remat_policy)


def _remat_fields(model_cfg) -> dict:
  """``model.remat``, ``model.remat_segment``, ``model.remat_policy``, checked (clear errors)."""
  mode = model_cfg.get("remat", False)
  try:
    mode = rnn.as_remat(mode).mode
  except ValueError:
    raise ValueError(f"model.remat must be one of {' | '.join(rnn.REMAT_MODES)} (False = none, "
                     f"True = step), got {mode!r}") from None
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
  return params


def init_carry(spec: LMSpec, batch_size: int) -> list:
  """Zero recurrent state for a batch: one cell carry per layer."""
  return rnn.init_stack_carry(spec.cell_fns, spec.num_layers, batch_size, spec.hidden_size)


def hidden_states(params: dict, spec: LMSpec, carry: list, tokens_BT: jax.Array,
                  rng: jax.Array | None = None) -> tuple[list, jax.Array]:
  """Embed ``tokens [batch, time]`` and run the stack.

  Returns ``(carry, h [time, batch, H])`` (after output dropout when ``rng`` is given).
  """
  rngs = jax.random.split(rng, 3) if rng is not None else (None, None, None)
  x_TBE = jnp.take(params["embed"], tokens_BT.T, axis=0)
  x_TBE = rnn.dropout(x_TBE, spec.dropout, rngs[0])
  carry, h_TBH = rnn.stack_time_major(spec.cell_fns, params["rnn"], carry, x_TBE,
                                      dropout_rate=spec.dropout, rng=rngs[1],
                                      unroll=spec.scan_unroll, remat=spec.remat_spec,
                                      compute_dtype=spec.compute_dtype)
  h_TBH = rnn.dropout(h_TBH, spec.dropout, rngs[2])
  return carry, h_TBH


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
