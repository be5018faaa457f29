"""Text classifier: embedding -> (bi)directional stacked RNN -> pooling -> dense -> softmax.

Pure forward and loss functions; the task (data, vocabulary, pretrained vectors, batches,
metrics) is :mod:`rnnlm_jax.tasks.classify`.

The model (pure functions over a params pytree)::

    tokens [batch, time] (padded), lengths [batch]
      -> word dropout (training: a token becomes <unk> with probability model.word_dropout)
      -> embedding [V, E] (random, or pretrained: model.embeddings; frozen or fine-tuned;
         with model.embeddings_backoff a word outside the training vocabulary that has a
         pretrained vector is read with that vector, constant, instead of <unk>'s row)
      -> dropout (model.input_dropout)
      -> L recurrent layers, each forward only or forward + backward (model.bidirectional),
         dropout (model.dropout) on the input of layers 2..L   -> hs [time, batch, D]
      -> dropout (model.dropout) -> pooling over each sequence's own positions -> [batch, D]
      -> dropout (model.dropout) -> [dense + tanh (model.head_hidden > 0)] -> dense -> logits
      -> softmax cross-entropy

with ``D = H`` (one direction) or ``2H`` (forward and backward states concatenated).

Masking. Sequences are padded at the end. The forward direction runs over the padding too,
but nothing before a sequence's end depends on what comes after it, and every output at a
padding position is zeroed. The backward direction reads each sequence from its own last
token back to its first (``rnn.reverse_padded`` reverses every sequence within its length,
the recurrence runs, the outputs are reversed back), never from the padding. So every state
at a real position equals that of the sequence run alone (``tests/test_classifier.py``
checks this against ``rnn.bidirectional_time_major``, the masked reference). Both directions
of a layer run in one scan (a member axis of 2 on every array; ``rnn.recurrence``), through
the hand-differentiated recurrences.

Pooling (``model.pooling``) over the real positions ``t < length`` only:

* ``last``: the forward state after the last token (and the backward state after the first);
* ``mean``: the mean of the states;
* ``max``: the elementwise maximum;
* ``attention``: ``a = softmax_t(v . tanh(W h_t))``, ``sum_t a_t h_t`` (Bahdanau-style
  keys-only attention, as flax's examples/sst2).

Parameters::

    {"embed": [V, E],
     "rnn": [{"fw": cell params, "bw": cell params (bidirectional only)}, ...],
     "pool": {"w": [D, A], "v": [A]} (attention only),
     "head": {"w1": [D, M], "b1": [M] (head_hidden = M > 0 only), "w": [., C], "b": [C]}}

:func:`batch_stats` gives a batch's objective (mean cross-entropy over its real rows) and the
summable counts from which the task computes loss, accuracy, precision / recall / F1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells, rnn
from rnnlm_jax.data import classification as cdata

POOLINGS = ("last", "mean", "max", "attention")


# ------------------------------------------------------------------------------------------
# The model


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """Static (hashable) description of the model, built from ``config.model``."""

  vocab_size: int
  num_classes: int = 2
  embed_size: int = 300
  cell: str = "lstm"
  num_layers: int = 1
  hidden_size: int = 256
  bidirectional: bool = True
  pooling: str = "attention"
  attention_size: int = 0          # 0 = hidden_size
  head_hidden: int = 0             # 0 = a single dense layer
  input_dropout: float = 0.0       # plain dropout on the embedded tokens
  word_dropout: float = 0.0
  dropout: float = 0.0
  init: str = "uniform"
  init_scale: float = 0.1
  forget_bias: float = 0.0
  embed_init_std: float = 0.1      # std of the random embedding rows
  embeddings_trainable: bool = True
  unk_id: int = cdata.UNK_ID

  @classmethod
  def from_config(cls, model_cfg, vocab_size: int, num_classes: int) -> "ClassifierSpec":
    """Build from ``config.model``; a one-line ``ValueError`` for a bad field."""
    cells.get_cell(model_cfg.cell)
    spec = cls(
        vocab_size=int(vocab_size), num_classes=int(num_classes),
        embed_size=int(model_cfg.embed_size), cell=str(model_cfg.cell),
        num_layers=int(model_cfg.num_layers), hidden_size=int(model_cfg.hidden_size),
        bidirectional=bool(model_cfg.bidirectional), pooling=str(model_cfg.pooling),
        attention_size=int(model_cfg.attention_size), head_hidden=int(model_cfg.head_hidden),
        input_dropout=float(model_cfg.input_dropout),
        word_dropout=float(model_cfg.word_dropout), dropout=float(model_cfg.dropout),
        init=str(model_cfg.init), init_scale=float(model_cfg.init_scale),
        forget_bias=float(model_cfg.forget_bias),
        embed_init_std=float(model_cfg.embed_init_std),
        embeddings_trainable=bool(model_cfg.embeddings_trainable))
    for name in ("embed_size", "num_layers", "hidden_size"):
      if getattr(spec, name) < 1:
        raise ValueError(f"model.{name} must be >= 1, got {getattr(spec, name)}")
    for name in ("attention_size", "head_hidden"):
      if getattr(spec, name) < 0:
        raise ValueError(f"model.{name} must be >= 0, got {getattr(spec, name)}")
    if spec.pooling not in POOLINGS:
      raise ValueError(f"unknown model.pooling {spec.pooling!r}; choose one of "
                       f"{', '.join(POOLINGS)}")
    for name in ("input_dropout", "word_dropout", "dropout"):
      if not 0.0 <= getattr(spec, name) < 1.0:
        raise ValueError(f"model.{name} must be in [0, 1), got {getattr(spec, name)}")
    if spec.init not in cells.INITS:
      raise ValueError(f"unknown model.init {spec.init!r}; choose one of {', '.join(cells.INITS)}")
    if spec.vocab_size < 2 or spec.num_classes < 2:
      raise ValueError(f"need a vocabulary of >= 2 tokens and >= 2 classes, got "
                       f"{spec.vocab_size} and {spec.num_classes}")
    return spec

  @property
  def cell_fns(self) -> cells.Cell:
    return cells.get_cell(self.cell)

  @property
  def directions(self) -> tuple[str, ...]:
    return ("fw", "bw") if self.bidirectional else ("fw",)

  @property
  def feature_size(self) -> int:
    """``D``: the width of a position's state (both directions)."""
    return self.hidden_size * len(self.directions)


def _dense_init(key, n_in, n_out):
  """PyTorch ``nn.Linear``'s default: U[-1/sqrt(n_in), 1/sqrt(n_in)] weights and bias."""
  kw, kb = jax.random.split(key)
  s = 1.0 / math.sqrt(n_in)
  return (jax.random.uniform(kw, (n_in, n_out), jnp.float32, -s, s),
          jax.random.uniform(kb, (n_out,), jnp.float32, -s, s))


def init_params(key: jax.Array, spec: ClassifierSpec, pretrained: np.ndarray | None = None,
                found: np.ndarray | None = None, oov_scale: float | None = None) -> dict:
  """Initial parameters.

  Embedding rows: the pretrained vector where ``found[i]`` (``pretrained [V, E]``), else
  N(0, ``oov_scale``^2) (default ``spec.embed_init_std``); row 0 (``<pad>``) is zeros.
  Recurrent layers by ``spec.init`` / ``init_scale`` / ``forget_bias`` (see ``cells``);
  attention and dense layers U[-1/sqrt(fan_in), 1/sqrt(fan_in)].
  """
  k_emb, k_rnn, k_pool, k_head = jax.random.split(key, 4)
  scale = spec.embed_init_std if oov_scale is None else oov_scale
  emb = scale * jax.random.normal(k_emb, (spec.vocab_size, spec.embed_size), jnp.float32)
  if pretrained is not None:
    pre = jnp.asarray(pretrained, jnp.float32)
    if pre.shape != emb.shape:
      raise ValueError(f"pretrained embeddings have shape {list(pre.shape)}, the model needs "
                       f"{list(emb.shape)}")
    mask = jnp.asarray(np.ones(spec.vocab_size, bool) if found is None else found)
    emb = jnp.where(mask[:, None], pre, emb)
  emb = emb.at[cdata.PAD_ID].set(0.0)
  cell = spec.cell_fns
  layers = []
  for layer, k in enumerate(jax.random.split(k_rnn, spec.num_layers)):
    n_in = spec.embed_size if layer == 0 else spec.feature_size
    ks = jax.random.split(k, len(spec.directions))
    layers.append({d: cell.init(kd, n_in, spec.hidden_size, init=spec.init,
                                init_scale=spec.init_scale, forget_bias=spec.forget_bias)
                   for d, kd in zip(spec.directions, ks)})
  params = {"embed": emb, "rnn": layers}
  d = spec.feature_size
  if spec.pooling == "attention":
    a = spec.attention_size or spec.hidden_size
    kw, kv = jax.random.split(k_pool)
    params["pool"] = {"w": _dense_init(kw, d, a)[0], "v": _dense_init(kv, a, 1)[0][:, 0]}
  head = {}
  k1, k2 = jax.random.split(k_head)
  if spec.head_hidden:
    head["w1"], head["b1"] = _dense_init(k1, d, spec.head_hidden)
    d = spec.head_hidden
  head["w"], head["b"] = _dense_init(k2, d, spec.num_classes)
  params["head"] = head
  return params


def trainable(params: dict, spec: ClassifierSpec) -> dict:
  """Pytree of bools: everything trains except a frozen embedding matrix."""
  mask = jax.tree.map(lambda _: True, params)
  mask["embed"] = bool(spec.embeddings_trainable)
  return mask


def length_mask(lengths_B: jax.Array, num_steps: int) -> jax.Array:
  """``[time, batch]`` bool: ``t < lengths[b]``."""
  return jnp.arange(num_steps)[:, None] < lengths_B[None, :]


def _stack_params(ps: Sequence[dict]) -> dict:
  """Member-axis parameters for :func:`rnnlm_jax.rnn.recurrence`: ``w_hh [K, H, G]``,
  ``b_hh [K, 1, G]`` (only these two are read by the recurrences; the min cells have
  neither)."""
  out = {}
  if "w_hh" in ps[0]:
    out["w_hh"] = jnp.stack([p["w_hh"] for p in ps])
  if "b_hh" in ps[0]:
    out["b_hh"] = jnp.stack([p["b_hh"] for p in ps])[:, None, :]
  return out


def rnn_layer(cell: cells.Cell, layer_params: dict, xs_TBI: jax.Array,
              lengths_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One (bi)directional layer over a padded batch.

  Args:
    cell: the cell.
    layer_params: ``{"fw": params}`` or ``{"fw": ..., "bw": ...}``.
    xs_TBI: inputs ``[time, batch, input]``.
    lengths_B: int ``[batch]``, each >= 1.

  Returns:
    ``(hs [time, batch, D], last [batch, D])``: ``hs[t]`` the states at position ``t`` (forward
    then backward, zeros at padding); ``last`` the forward state after each sequence's last
    token and the backward state after its first token.
  """
  steps, batch = xs_TBI.shape[:2]
  dirs = [d for d in ("fw", "bw") if d in layer_params]
  ps = [layer_params[d] for d in dirs]
  hidden = ps[0]["w_ih"].shape[-1] // cell.num_gates
  gxs = [cell.project_inputs(ps[0], xs_TBI)]
  if len(dirs) == 2:
    gxs.append(cell.project_inputs(ps[1], rnn.reverse_padded(xs_TBI, lengths_B)))
  gx = jnp.stack(gxs, axis=1)                                   # [T, K, B, G]
  zero = jax.tree.map(lambda z: jnp.broadcast_to(z, (len(dirs),) + z.shape),
                      cell.init_carry(batch, hidden))
  _, hs = rnn.recurrence(cell, _stack_params(ps), zero, gx)     # [T, K, B, H]
  last_idx = jnp.clip(lengths_B - 1, 0, steps - 1)
  last = hs[last_idx, :, jnp.arange(batch)]                     # [B, K, H]
  outs = [hs[:, 0]]
  if len(dirs) == 2:
    outs.append(rnn.reverse_padded(hs[:, 1], lengths_B))
  mask = length_mask(lengths_B, steps)[..., None]
  hs_out = jnp.where(mask, jnp.concatenate(outs, axis=-1), 0.0)
  return hs_out, last.reshape(batch, len(dirs) * hidden)


def pool(params: dict, spec: ClassifierSpec, hs_TBD: jax.Array, last_BD: jax.Array,
         lengths_B: jax.Array) -> jax.Array:
  """``[batch, D]`` summary of each sequence's states at its real positions (``spec.pooling``)."""
  mask = length_mask(lengths_B, hs_TBD.shape[0])                # [T, B]
  if spec.pooling == "last":
    return last_BD
  if spec.pooling == "mean":
    n = jnp.maximum(lengths_B, 1).astype(hs_TBD.dtype)
    return jnp.sum(jnp.where(mask[..., None], hs_TBD, 0.0), axis=0) / n[:, None]
  if spec.pooling == "max":
    return jnp.max(jnp.where(mask[..., None], hs_TBD, -jnp.inf), axis=0)
  scores = jnp.tanh(hs_TBD @ params["pool"]["w"]) @ params["pool"]["v"]   # [T, B]
  scores = jnp.where(mask, scores, -jnp.inf)
  weights = jax.nn.softmax(scores, axis=0)
  return jnp.einsum("tb,tbd->bd", weights, hs_TBD)


def logits(params: dict, spec: ClassifierSpec, tokens_BT: jax.Array, lengths_B: jax.Array,
           rng: jax.Array | None = None, backoff_BTE: jax.Array | None = None) -> jax.Array:
  """Class logits ``[batch, C]`` of padded token ids ``[batch, time]`` with ``lengths [batch]``
  (each >= 1). ``rng`` given: training (word dropout and dropout); None: evaluation.

  ``backoff_BTE`` (``[batch, time, E]``, optional): where a token id is ``>= vocab_size``
  (a word outside the training vocabulary that has a pretrained vector), its embedding is
  taken from here (constant, not trained) instead of the table.
  """
  rngs = list(jax.random.split(rng, 4 + spec.num_layers)) if rng is not None else [None] * (
      4 + spec.num_layers)
  tokens_TB = tokens_BT.T
  if rng is not None and spec.word_dropout > 0:
    drop = jax.random.bernoulli(rngs[0], spec.word_dropout, tokens_TB.shape)
    tokens_TB = jnp.where(drop, spec.unk_id, tokens_TB)
  table = params["embed"]
  if not spec.embeddings_trainable:
    table = jax.lax.stop_gradient(table)
  outside = tokens_TB >= spec.vocab_size
  x = jnp.take(table, jnp.where(outside, spec.unk_id, tokens_TB), axis=0)
  if backoff_BTE is not None:
    x = jnp.where(outside[..., None], jnp.swapaxes(backoff_BTE, 0, 1), x)
  x = rnn.dropout(x, spec.input_dropout, rngs[1])
  cell = spec.cell_fns
  last = None
  for layer, lp in enumerate(params["rnn"]):
    if layer > 0:
      x = rnn.dropout(x, spec.dropout, rngs[4 + layer])
    x, last = rnn_layer(cell, lp, x, lengths_B)
  x = rnn.dropout(x, spec.dropout, rngs[2])
  feats = rnn.dropout(pool(params, spec, x, last, lengths_B), spec.dropout, rngs[3])
  head = params["head"]
  if "w1" in head:
    feats = jnp.tanh(feats @ head["w1"] + head["b1"])
  return feats @ head["w"] + head["b"]


def batch_stats(params: dict, spec: ClassifierSpec, batch: dict, rng: jax.Array | None
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """``(objective, sums)`` of a batch (jittable).

  ``objective``: the mean cross-entropy over the batch's real rows (``weights`` 1). ``sums``
  (float32 scalars that add across batches; weight-0 rows add nothing): ``nll``,
  ``examples``, ``correct``, and per class ``c``: ``tp{c}`` (predicted c and labelled c),
  ``pred{c}`` (predicted c), ``true{c}`` (labelled c).
  """
  backoff = batch.get("backoff")
  z = logits(params, spec, jnp.asarray(batch["tokens"]), jnp.asarray(batch["lengths"]), rng,
             None if backoff is None else jnp.asarray(backoff))
  labels = jnp.asarray(batch["labels"])
  w = jnp.asarray(batch["weights"], jnp.float32)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(z), labels[:, None], axis=-1)[:, 0]
  n = jnp.sum(w)
  objective = jnp.sum(w * nll) / jnp.maximum(n, 1.0)
  pred = jnp.argmax(z, axis=-1)
  sums = {"nll": jnp.sum(w * nll), "examples": n,
          "correct": jnp.sum(w * (pred == labels))}
  for c in range(spec.num_classes):
    sums[f"tp{c}"] = jnp.sum(w * ((pred == c) & (labels == c)))
    sums[f"pred{c}"] = jnp.sum(w * (pred == c))
    sums[f"true{c}"] = jnp.sum(w * (labels == c))
  return objective, sums
