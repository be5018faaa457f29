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
import optax

from rnnlm_jax import cells, rnn


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
  remat: bool = False

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
               scan_unroll=int(model_cfg.scan_unroll), remat=bool(model_cfg.get("remat", False)))
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
                                      unroll=spec.scan_unroll, remat=spec.remat)
  h_TBH = rnn.dropout(h_TBH, spec.dropout, rngs[2])
  return carry, h_TBH


def output_matrix(params: dict, spec: LMSpec) -> jax.Array:
  """The ``[H, V]`` softmax weight (``embed.T`` when tied)."""
  return params["embed"].T if spec.tie_embeddings else params["head"]["w"]


def logits(params: dict, spec: LMSpec, h: jax.Array) -> jax.Array:
  """``h [..., H] -> logits [..., V]`` as one 2-D GEMM."""
  lead = h.shape[:-1]
  out = h.reshape(-1, h.shape[-1]) @ output_matrix(params, spec) + params["head"]["b"]
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
  logits_TBV = logits(params, spec, h_TBH)
  nll_TB = optax.softmax_cross_entropy_with_integer_labels(logits_TBV, targets_BT.T)
  return carry, nll_TB
