"""Polyphonic music model: next-frame prediction of 88-key piano rolls (pure functions).

The model (pure functions over a params pytree)::

    frames [batch, time, 88] (0/1)
      -> shift_inputs: the input at t is frame t-1 (an all-zero frame at t = 0)
      -> stacked recurrent layers (rnnlm_jax.cells, any cell)  -> hs [time, batch, H]
      -> dropout -> dense H -> 88  -> logits [time, batch, 88]

so ``logits[t]`` predicts frame ``t`` from frames ``< t`` only, every frame of a sequence is
scored (the first from the zero input and the zero initial state), and each of the 88 keys is
an independent Bernoulli variable with probability ``sigmoid(logit)`` given the past
(Boulanger-Lewandowski et al. 2012's "RNN" baseline; Chung et al. 2014; Pascanu et al. 2013).

Parameters::

    {"rnn": [layer params {w_ih, w_hh, b_ih, b_hh} (cells' layout)...],
     "out": {"w": [H, 88], "b": [88]}}

The loss (:func:`bernoulli_nll_per_step`) is the negative log-likelihood of the frames in
nats; :func:`batch_stats` gives a padded batch's training objective (its NLL sum divided by
its number of real frames, so the gradient scale does not depend on the padding or the batch
size) and the sums from which the task (:mod:`rnnlm_jax.tasks.music`) computes the metrics.

Padded batches (:mod:`rnnlm_jax.data.padded`): sequences are zero-padded at the end to one
of a few bucket lengths and the last partial batch gets empty rows (length 0). The recurrence
simply runs on over a sequence's padding (its outputs there are masked out, and nothing after
the padding is read), so the fast hand-differentiated recurrences of :mod:`rnnlm_jax.rnn` are
used unchanged.

Regularisers (training only, ``rng`` given): ``model.dropout`` on the non-recurrent
connections (between layers and before the output layer), and ``model.weight_noise``: Gaussian
noise of that standard deviation added to every weight matrix (not the biases) for each
update, a fresh draw per batch (Graves 2011's "weight noise", which Chung et al. 2014 used).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells, rnn
from rnnlm_jax.data import music as music_data

NUM_KEYS = music_data.NUM_KEYS  # 88 piano keys, MIDI 21..108


# ------------------------------------------------------------------------------------------
# The model


@dataclasses.dataclass(frozen=True)
class MusicSpec:
  """Static (hashable) description of the model, built from ``config.model``."""

  cell: str = "lstm"
  num_layers: int = 1
  hidden_size: int = 36
  dropout: float = 0.0
  init: str = "uniform"
  init_scale: float = 0.1
  forget_bias: float = 0.0
  weight_noise: float = 0.0

  @classmethod
  def from_config(cls, model_cfg) -> "MusicSpec":
    """Build from a ``config.model`` ConfigDict; one-line ``ValueError`` for a bad field."""
    cells.get_cell(model_cfg.cell)  # clear error for an unknown cell
    spec = cls(cell=str(model_cfg.cell), num_layers=int(model_cfg.num_layers),
               hidden_size=int(model_cfg.hidden_size), dropout=float(model_cfg.dropout),
               init=str(model_cfg.init), init_scale=float(model_cfg.init_scale),
               forget_bias=float(model_cfg.forget_bias),
               weight_noise=float(model_cfg.get("weight_noise", 0.0)))
    if spec.num_layers < 1:
      raise ValueError(f"model.num_layers must be >= 1, got {spec.num_layers}")
    if spec.hidden_size < 1:
      raise ValueError(f"model.hidden_size must be >= 1, got {spec.hidden_size}")
    if not 0.0 <= spec.dropout < 1.0:
      raise ValueError(f"model.dropout must be in [0, 1), got {spec.dropout}")
    if spec.init not in cells.INITS:
      raise ValueError(f"unknown model.init {spec.init!r}; choose one of {', '.join(cells.INITS)}")
    if not spec.init_scale >= 0.0:
      raise ValueError(f"model.init_scale must be >= 0, got {spec.init_scale}")
    if not spec.weight_noise >= 0.0:
      raise ValueError(f"model.weight_noise must be >= 0 (a standard deviation; 0 = off), "
                       f"got {spec.weight_noise}")
    return spec

  @property
  def cell_fns(self) -> cells.Cell:
    return cells.get_cell(self.cell)


def init_params(key: jax.Array, spec: MusicSpec) -> dict:
  """Initial parameters: the stack by ``spec.init`` / ``init_scale`` (see ``cells``), the
  output matrix U[-init_scale, init_scale], the output bias 0 (every key at probability 1/2)."""
  k_rnn, k_w = jax.random.split(key)
  s = spec.init_scale
  return {
      "rnn": rnn.init_stack(k_rnn, spec.cell_fns, spec.num_layers, NUM_KEYS, spec.hidden_size,
                            init=spec.init, init_scale=s, forget_bias=spec.forget_bias),
      "out": {"w": jax.random.uniform(k_w, (spec.hidden_size, NUM_KEYS), jnp.float32, -s, s),
              "b": jnp.zeros((NUM_KEYS,), jnp.float32)},
  }


def num_params(params) -> int:
  """Total number of scalars in a params pytree."""
  return int(sum(math.prod(np.shape(x)) for x in jax.tree.leaves(params)))


def add_weight_noise(params, std: float, rng: jax.Array):
  """``params`` with N(0, std^2) noise added to every weight matrix (leaves of rank >= 2);
  biases unchanged. Gradients flow to the clean parameters (the noise is a constant)."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(rng, len(leaves))
  noisy = [p + std * jax.random.normal(k, p.shape, p.dtype) if p.ndim >= 2 else p
           for p, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, noisy)


def logits_time_major(params: dict, spec: MusicSpec, frames_TBK: jax.Array,
                      rng: jax.Array | None = None) -> jax.Array:
  """Next-frame logits ``[time, batch, 88]`` of frames ``[time, batch, 88]``.

  ``logits[t, b]`` is computed from ``frames[:t, b]`` only (the input at ``t`` is frame
  ``t - 1``, an all-zero frame at ``t = 0``; zero initial state). ``rng`` given: training
  (weight noise and dropout as ``spec`` says); ``None``: evaluation (neither).
  """
  x = jnp.asarray(frames_TBK, jnp.float32)
  inputs = jnp.concatenate([jnp.zeros_like(x[:1]), x[:-1]], axis=0)  # shift_inputs, time-major
  k_noise, k_stack, k_out = (jax.random.split(rng, 3) if rng is not None else (None,) * 3)
  if rng is not None and spec.weight_noise > 0.0:
    params = add_weight_noise(params, spec.weight_noise, k_noise)
  cell = spec.cell_fns
  carries = rnn.init_stack_carry(cell, spec.num_layers, x.shape[1], spec.hidden_size)
  _, hs = rnn.stack_time_major(cell, params["rnn"], carries, inputs, dropout_rate=spec.dropout,
                               rng=k_stack)
  hs = rnn.dropout(hs, spec.dropout, k_out)
  return hs @ params["out"]["w"] + params["out"]["b"]


def logits(params: dict, spec: MusicSpec, frames_BTK: jax.Array,
           rng: jax.Array | None = None) -> jax.Array:
  """As :func:`logits_time_major` on batch-major ``frames [batch, time, 88]``; returns
  ``[batch, time, 88]`` (``logits[b, t]`` predicts ``frames[b, t]`` from ``frames[b, :t]``)."""
  out = logits_time_major(params, spec, jnp.swapaxes(jnp.asarray(frames_BTK), 0, 1), rng)
  return jnp.swapaxes(out, 0, 1)


def bernoulli_nll_per_step(logits, targets, mask):
  """Summed negative log-likelihood of piano-roll frames and the number of frames scored.

  Each of the 88 keys of a frame is an independent Bernoulli variable with probability
  ``sigmoid(logit)``; a frame's NLL (nats) is the sum over keys of
  ``-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] = softplus(z) - y z`` (computed in this
  stable form: no overflow or log(0) for large ``|z|``). The metric of Boulanger-Lewandowski
  et al. 2012 and Chung et al. 2014, the NLL per time step, is ``nll_sum / num_steps``
  accumulated over the whole split: the total NLL of every frame of every sequence divided
  by the total number of frames (not a mean of per-sequence means).

  Convention: ``logits[b, t]`` is the model's prediction of frame ``targets[b, t]`` made from
  the frames before ``t`` only (as :func:`logits` does: the input at ``t`` is frame ``t - 1``
  and at ``t = 0`` an all-zero frame). So every frame of a sequence is scored, the first one
  included (predicted from the zero input and the initial state), and ``num_steps`` is the
  sum of the sequence lengths.

  Args:
    logits: ``[B, T, 88]`` pre-sigmoid outputs.
    targets: ``[B, T, 88]`` 0/1 frames.
    mask: ``[B, T]``, 1 for real frames, 0 for padding (those contribute nothing).

  Returns:
    ``(nll_sum, num_steps)``: float32 scalars, ``sum_{b,t} mask[b,t] * NLL(frame b,t)`` and
    ``sum mask``. Divide after summing over batches: ``sum(nll_sum) / sum(num_steps)``.
  """
  m = jnp.asarray(mask, jnp.float32)
  return jnp.sum(frame_nll(logits, targets) * m), jnp.sum(m)


def frame_nll(logits, targets) -> jax.Array:
  """Each frame's NLL in nats, summed over its 88 keys: ``[..., 88] -> [...]`` float32 (the
  stable ``softplus(z) - y z`` of :func:`bernoulli_nll_per_step`)."""
  z = jnp.asarray(logits, jnp.float32)
  y = jnp.asarray(targets, jnp.float32)
  return jnp.sum(jax.nn.softplus(z) - y * z, axis=-1)


def length_mask(lengths_B: jax.Array, num_steps: int) -> jax.Array:
  """``mask [time, batch]`` float32: 1 where ``t < lengths[b]``."""
  return (jnp.arange(num_steps)[:, None] < jnp.asarray(lengths_B)[None, :]).astype(jnp.float32)


def batch_stats(params: dict, spec: MusicSpec, batch: dict,
                rng: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Objective and summable statistics of one padded batch.

  Args:
    params: model parameters.
    spec: the model.
    batch: ``{"frames": [batch, time, 88] (uint8 or float 0/1), "lengths": [batch] int32}``;
      rows with length 0 are padding.
    rng: training RNG (weight noise, dropout) or ``None`` (evaluation).

  Returns:
    ``(objective, sums)``: ``objective`` = the batch's NLL per frame (its NLL sum over real
    frames / its number of real frames; 0 for an all-padding batch), and float32 scalars that
    add across batches: ``nll`` (summed NLL, nats), ``steps`` (real frames), ``sequences``
    (real rows), in evaluation (``rng`` None) ``nll_seq_means`` (the sum over real rows of each
    row's NLL per frame: the per-sequence convention, averaged by
    :func:`rnnlm_jax.tasks.music.summarize`), and
    ``tp``, ``fp``, ``fn``: true / false positive and false negative notes
    when each key is predicted on at probability > 1/2 (for Bay et al. 2009's frame accuracy).
  """
  frames_TBK = jnp.swapaxes(jnp.asarray(batch["frames"]), 0, 1)
  lengths = jnp.asarray(batch["lengths"], jnp.int32)
  z = logits_time_major(params, spec, frames_TBK, rng)
  mask = length_mask(lengths, frames_TBK.shape[0])
  nll, steps = bernoulli_nll_per_step(z, frames_TBK, mask)
  objective = nll / jnp.maximum(steps, 1.0)

  y = frames_TBK.astype(jnp.float32)
  pred = (z > 0).astype(jnp.float32) * mask[..., None]
  tp = jnp.sum(pred * y)
  sums = {"nll": nll, "steps": steps,
          "sequences": jnp.sum((lengths > 0).astype(jnp.float32)),
          "tp": tp, "fp": jnp.sum(pred) - tp, "fn": jnp.sum(y * mask[..., None]) - tp}
  if rng is None:  # evaluation only: an extra output would change the training step's fusion
    per_sequence = jnp.sum(frame_nll(z, frames_TBK) * mask, axis=0)  # [batch], over time
    sums["nll_seq_means"] = jnp.sum(
        jnp.where(lengths > 0, per_sequence / jnp.maximum(lengths, 1), 0.0))
  return objective, jax.tree.map(lambda v: jax.lax.stop_gradient(v).astype(jnp.float32), sums)
