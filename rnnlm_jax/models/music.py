"""Polyphonic music model: next-frame prediction of 88-key piano rolls, and its training task.

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

The metric is the negative log-likelihood per time step in nats
(:func:`rnnlm_jax.data.music.bernoulli_nll_per_step`): the total NLL of every frame of every
sequence of a split divided by the total number of frames (not a mean of per-sequence
means), as Boulanger-Lewandowski et al. 2012 and Chung et al. 2014 report it. The training
objective is the same quantity over a batch (the batch's NLL sum divided by its number of real
frames), so the gradient scale does not depend on the padding or the batch size.

Padded batches: sequences are zero-padded at the end to one of a few bucket lengths
(:func:`bucket_length`) and the last partial batch gets empty rows (length 0), so jit compiles
one program per bucket. The recurrence simply runs on over a sequence's padding (its outputs
there are masked out, and nothing after the padding is read), so the fast hand-differentiated
recurrences of :mod:`rnnlm_jax.rnn` are used unchanged.

Regularisers (training only, ``rng`` given): ``model.dropout`` on the non-recurrent
connections (between layers and before the output layer), and ``model.weight_noise``: Gaussian
noise of that standard deviation added to every weight matrix (not the biases) for each
update, a fresh draw per batch (Graves 2011's "weight noise", which Chung et al. 2014 used).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells, rnn
from rnnlm_jax.data import music as music_data

log = logging.getLogger(__name__)

NUM_KEYS = music_data.NUM_KEYS  # 88 piano keys, MIDI 21..108
MIN_BUCKET = 8  # shortest padded length


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
    (real rows), and ``tp``, ``fp``, ``fn``: true / false positive and false negative notes
    when each key is predicted on at probability > 1/2 (for Bay et al. 2009's frame accuracy).
  """
  frames_TBK = jnp.swapaxes(jnp.asarray(batch["frames"]), 0, 1)
  lengths = jnp.asarray(batch["lengths"], jnp.int32)
  z = logits_time_major(params, spec, frames_TBK, rng)
  mask = length_mask(lengths, frames_TBK.shape[0])
  nll, steps = music_data.bernoulli_nll_per_step(z, frames_TBK, mask)
  objective = nll / jnp.maximum(steps, 1.0)
  y = frames_TBK.astype(jnp.float32)
  pred = (z > 0).astype(jnp.float32) * mask[..., None]
  tp = jnp.sum(pred * y)
  sums = {"nll": nll, "steps": steps,
          "sequences": jnp.sum((lengths > 0).astype(jnp.float32)),
          "tp": tp, "fp": jnp.sum(pred) - tp, "fn": jnp.sum(y * mask[..., None]) - tp}
  return objective, jax.tree.map(lambda v: jax.lax.stop_gradient(v).astype(jnp.float32), sums)


def summarize(sums: dict[str, float]) -> dict[str, float]:
  """Split metrics from summed :func:`batch_stats`: ``loss`` = ``nll_per_step`` (nats per
  time step), ``accuracy`` = TP / (TP + FP + FN) over all frames (Bay et al. 2009, as in
  Boulanger-Lewandowski et al. 2012; 0 when nothing is on), ``steps``, ``sequences``."""
  steps = float(sums["steps"])
  nll = float(sums["nll"]) / steps if steps else float("nan")
  denom = float(sums["tp"]) + float(sums["fp"]) + float(sums["fn"])
  return {"loss": nll, "nll_per_step": nll,
          "accuracy": float(sums["tp"]) / denom if denom else 0.0,
          "steps": steps, "sequences": float(sums["sequences"])}


# ------------------------------------------------------------------------------------------
# Padded batches


def bucket_length(n: int, min_length: int = MIN_BUCKET) -> int:
  """Smallest padded length ``>= n`` of the form ``2^k`` or ``3 * 2^k`` (at least
  ``min_length``): at most 1.5x padding, about ``2 log2(T_max / min_length)`` shapes."""
  if n < 0:
    raise ValueError(f"a sequence length must be >= 0, got {n}")
  length = max(int(min_length), 1)
  while length < n:
    p = 1 << (length.bit_length() - 1)  # the power of two <= length
    length = 3 * p // 2 if length == p and p >= 2 else 2 * p
  return length


def batch_order(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None,
                length_pool: int = 0) -> list[np.ndarray]:
  """Which sequences form each batch, every sequence exactly once.

  Args:
    lengths: the split's sequence lengths.
    batch_size: sequences per batch (the last batch may hold fewer).
    rng: training: a shuffled order drawn from it. ``None``: evaluation: sequences sorted by
      length (longest first, ties in data order), which pads least; fixed.
    length_pool: training only: > 1 sorts each pool of ``length_pool * batch_size`` shuffled
      sequences by length before cutting it into batches, then shuffles the batches, so a
      batch holds similar lengths (much less padding; batches stay random). 0 or 1: plain
      shuffled batches.

  Returns:
    A list of index arrays (int64), each of at most ``batch_size`` sequences.
  """
  if batch_size < 1:
    raise ValueError(f"batch size must be >= 1, got {batch_size}")
  lengths = np.asarray(lengths, np.int64)
  n = len(lengths)
  if rng is None:
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
  order = rng.permutation(n)
  if length_pool <= 1:
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
  pool = length_pool * batch_size
  batches = []
  for start in range(0, n, pool):
    chunk = order[start:start + pool]
    chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
    batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
  perm = rng.permutation(len(batches))
  return [batches[i] for i in perm]


def make_batch(rolls: Sequence[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """One padded batch: ``{"frames": [batch_size, L, 88] uint8, "lengths": [batch_size] int32}``
  with ``L = bucket_length(longest roll)``; rows past ``len(rolls)`` are empty (length 0)."""
  if not 0 < len(rolls) <= batch_size:
    raise ValueError(f"make_batch needs 1..{batch_size} rolls, got {len(rolls)}")
  length = bucket_length(max(len(r) for r in rolls))
  frames = np.zeros((batch_size, length, NUM_KEYS), np.uint8)
  lengths = np.zeros((batch_size,), np.int32)
  for i, r in enumerate(rolls):
    frames[i, :len(r)] = r
    lengths[i] = len(r)
  return {"frames": frames, "lengths": lengths}


# ------------------------------------------------------------------------------------------
# The task object trained by rnnlm_jax.train_seq


class MusicTask:
  """Next-frame prediction on one of the four piano-roll data sets (the ``train_seq`` task
  protocol: ``batches``, ``init_params``, ``loss``, ``summarize``; validation picks the
  checkpoint with the lowest NLL per time step)."""

  select_metric = "loss"  # NLL per time step on the validation split
  select_mode = "min"

  def __init__(self, spec: MusicSpec, data: dict[str, list[np.ndarray]], *,
               length_pool: int = 0, name: str = ""):
    """``data``: ``{"train"|"valid"|"test": [roll [T, 88] uint8, ...]}`` (``load_music``)."""
    self.spec = spec
    self.data = data
    self.length_pool = int(length_pool)
    self.name = name
    for split, rolls in data.items():
      for i, r in enumerate(rolls):
        if np.ndim(r) != 2 or np.shape(r)[1] != NUM_KEYS:
          raise ValueError(f"{name or 'music'} {split} roll {i} has shape {list(np.shape(r))}, "
                           f"expected [T, {NUM_KEYS}]")

  def batches(self, split: str, batch_size: int,
              rng: np.random.Generator | None) -> Iterator[dict[str, np.ndarray]]:
    """The whole split as padded batches (see :func:`batch_order`, :func:`make_batch`):
    shuffled with ``rng`` (length-pooled if ``data.length_pool`` > 1), else sorted by length."""
    if split not in self.data:
      raise ValueError(f"unknown split {split!r}; choose one of {', '.join(self.data)}")
    rolls = self.data[split]
    lengths = [len(r) for r in rolls]
    for idx in batch_order(lengths, batch_size, rng, self.length_pool):
      yield make_batch([rolls[i] for i in idx], batch_size)

  def init_params(self, key: jax.Array) -> dict:
    return init_params(key, self.spec)

  def loss(self, params, batch, rng):
    """``(objective, sums)`` of :func:`batch_stats` (jittable; ``rng`` None = evaluation)."""
    return batch_stats(params, self.spec, batch, rng)

  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    return summarize(sums)


def validate_config(config) -> MusicSpec:
  """Check the music-specific fields; returns the model spec. One-line ``ValueError``s."""
  name = str(config.data.name)
  if name not in music_data.MUSIC_DATASETS:
    raise ValueError(f"data.name {name!r} is not a music data set; choose one of "
                     f"{', '.join(music_data.MUSIC_DATASETS)}")
  pool = config.data.get("length_pool", 0)
  if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
    raise ValueError(f"data.length_pool must be an integer >= 0 (0 = plain shuffled batches), "
                     f"got {pool!r}")
  return MusicSpec.from_config(config.model)


def make_task(config, workdir: str) -> MusicTask:
  """The music task of a ``kind="music"`` config (reads / prepares the data set).

  ``workdir`` is not used (the prepared data live in the TFDS directory); the model's size
  is logged.
  """
  del workdir
  spec = validate_config(config)
  data = music_data.load_music(config.data.name, data_dir=config.data.dir or None,
                               tfds_dir=config.data.tfds_dir or None)
  task = MusicTask(spec, data, length_pool=int(config.data.get("length_pool", 0)),
                   name=config.data.name)
  n = num_params(jax.eval_shape(lambda: init_params(jax.random.PRNGKey(0), spec)))
  log.info("music: %s, %s x%d (%d units), %d parameters; frames train/valid/test %s",
           config.data.name, spec.cell, spec.num_layers, spec.hidden_size, n,
           "/".join(str(sum(len(r) for r in data[s])) for s in music_data.SPLITS))
  return task
