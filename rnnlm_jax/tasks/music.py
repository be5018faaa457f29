"""The ``music`` task: next-frame prediction on polyphonic piano rolls (Boulanger-Lewandowski
et al. 2012's four data sets), trained on padded batches (:mod:`rnnlm_jax.tasks.padded`).

config -> data (:func:`rnnlm_jax.data.music.load_music`) -> padded batches
(:mod:`rnnlm_jax.data.padded`: geometric buckets, each batch padded to the bucket of its
longest roll, shuffled or length-pooled for training, longest first for evaluation) -> the
model and loss (:mod:`rnnlm_jax.models.music`) -> the metrics (:func:`summarize`).

The metric is the negative log-likelihood per time step in nats: the total NLL of every frame
of every sequence of a split divided by the total number of frames (not a mean of
per-sequence means), as Boulanger-Lewandowski et al. 2012 and Chung et al. 2014 report it;
beside it the frame accuracy TP / (TP + FP + FN) of Bay et al. 2009, and
``nll_per_sequence``, the other convention: each sequence's NLL per time step, averaged over
the sequences (long and short pieces weigh the same). Which one Pascanu et al. 2013's Table 1
used is not settled (experiments/setups_confirmed.md, 1a), so both are logged; they differ by
about 1 nat on MuseData.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator, Sequence

import jax
import numpy as np

from rnnlm_jax.data import fingerprint
from rnnlm_jax.data import music as music_data
from rnnlm_jax.data import padded as padded_data
from rnnlm_jax.models import music
from rnnlm_jax.tasks import padded

log = logging.getLogger(__name__)

NUM_KEYS = music_data.NUM_KEYS


def summarize(sums: dict[str, float]) -> dict[str, float]:
  """Split metrics from summed :func:`rnnlm_jax.models.music.batch_stats`: ``loss`` =
  ``nll_per_step`` (nats per time step), ``accuracy`` = TP / (TP + FP + FN) over all frames
  (Bay et al. 2009, as in Boulanger-Lewandowski et al. 2012; 0 when nothing is on),
  ``nll_per_sequence`` (the mean over sequences of each one's NLL per time step; when the sums
  have ``nll_seq_means``), ``steps``, ``sequences``."""
  steps, sequences = float(sums["steps"]), float(sums["sequences"])
  nll = float(sums["nll"]) / steps if steps else float("nan")
  denom = float(sums["tp"]) + float(sums["fp"]) + float(sums["fn"])
  out = {"loss": nll, "nll_per_step": nll,
         "accuracy": float(sums["tp"]) / denom if denom else 0.0,
         "steps": steps, "sequences": sequences}
  if "nll_seq_means" in sums:
    out["nll_per_sequence"] = (float(sums["nll_seq_means"]) / sequences if sequences
                               else float("nan"))
  return out


def _batch(frames: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> dict:
  return {"frames": frames, "lengths": lengths, "weights": weights}


def make_batch(rolls: Sequence[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """One padded batch: ``{"frames": [batch_size, L, 88] uint8, "lengths": [batch_size] int32,
  "weights": [batch_size] float32}`` with ``L`` the geometric bucket of the longest roll; rows
  past ``len(rolls)`` are empty (length 0, weight 0)."""
  length = padded_data.bucket_length(max((len(r) for r in rolls), default=0))
  return _batch(*padded_data.pad_batch(rolls, np.arange(len(rolls)), length, batch_size,
                                       dtype=np.uint8))


class MusicTask:
  """Next-frame prediction on one of the four piano-roll data sets (the padded-task protocol
  of :mod:`rnnlm_jax.tasks.padded`; validation picks the checkpoint with the lowest NLL per
  time step)."""

  select_metric = "loss"  # NLL per time step on the validation split
  select_mode = "min"
  # The `loss` of a model that turns every key on with probability 1/2: log 2 nats per key,
  # summed over the 88 keys of a time step.
  uniform_loss = NUM_KEYS * math.log(2.0)

  def __init__(self, spec: music.MusicSpec, data: dict[str, list[np.ndarray]], *,
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
      if rolls and not any(len(r) for r in rolls):
        raise ValueError(f"data: the {split} split of {name or 'music'} has {len(rolls)} rolls "
                         "but no time steps (its loss per step is undefined); use another "
                         "data set")

  def data_fingerprint(self) -> dict:
    """What identifies the prepared data: the TFDS builder and its version, and per split
    the number of rolls and time steps and the sha256 of the rolls (lengths, then the
    concatenated ``[T, 88]`` uint8 frames, :func:`rnnlm_jax.data.fingerprint.sequences_sha256`)."""
    builder = music_data.MUSIC_BUILDERS.get(self.name)
    return {"fingerprint_version": fingerprint.FINGERPRINT_VERSION, "task": "music",
            "builder": builder.name if builder else self.name,
            "builder_version": str(builder.VERSION) if builder else None,
            "splits": {s: {"sequences": len(rolls), "steps": int(sum(len(r) for r in rolls)),
                           "sha256": fingerprint.sequences_sha256(rolls, "u1")}
                       for s, rolls in self.data.items()}}

  def batches(self, split: str, batch_size: int,
              rng: np.random.Generator | None) -> Iterator[dict[str, np.ndarray]]:
    """The whole split as padded batches (:func:`rnnlm_jax.data.padded.batches`,
    ``grouping="batch"``): shuffled with ``rng`` (length-pooled if ``data.length_pool`` > 1),
    else sorted by length."""
    if split not in self.data:
      raise ValueError(f"unknown split {split!r}; choose one of {', '.join(self.data)}")
    for _, *arrays in padded_data.batches(self.data[split], batch_size, rng, dtype=np.uint8,
                                          grouping="batch", length_pool=self.length_pool):
      yield _batch(*arrays)

  def init_params(self, key: jax.Array) -> dict:
    return music.init_params(key, self.spec)

  def loss(self, params, batch, rng):
    """``(objective, sums)`` of :func:`rnnlm_jax.models.music.batch_stats` (jittable; ``rng``
    None = evaluation)."""
    return music.batch_stats(params, self.spec, batch, rng)

  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    return summarize(sums)


def validate_config(config) -> music.MusicSpec:
  """Check the music-specific fields; returns the model spec. One-line ``ValueError``s."""
  name = str(config.data.name)
  if name not in music_data.MUSIC_DATASETS:
    raise ValueError(f"data.name {name!r} is not a music data set; choose one of "
                     f"{', '.join(music_data.MUSIC_DATASETS)}")
  pool = config.data.get("length_pool", 0)
  if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
    raise ValueError(f"data.length_pool must be an integer >= 0 (0 = plain shuffled batches), "
                     f"got {pool!r}")
  if int(config.data.get("cv_folds", 0)) or int(config.data.get("cv_fold", 0)):
    raise ValueError("data.cv_folds / data.cv_fold (k-fold cross-validation) are for the "
                     "classifiers; the music sets keep their published train/valid/test split")
  return music.MusicSpec.from_config(config.model)


def make_task(config, workdir: str | None = None) -> MusicTask:
  """The music task of a ``task="music"`` config (reads / prepares the data set).

  ``workdir`` is not used (the prepared data live in the TFDS directory); the model's size
  is logged.
  """
  del workdir
  spec = validate_config(config)
  data = music_data.load_music(config.data.name, data_dir=config.data.dir or None,
                               tfds_dir=config.data.tfds_dir or None)
  task = MusicTask(spec, data, length_pool=int(config.data.get("length_pool", 0)),
                   name=config.data.name)
  n = music.num_params(jax.eval_shape(lambda: music.init_params(jax.random.PRNGKey(0), spec)))
  log.info("music: %s, %s x%d (%d units), %d parameters; frames train/valid/test %s",
           config.data.name, spec.cell, spec.num_layers, spec.hidden_size, n,
           "/".join(str(sum(len(r) for r in data[s])) for s in music_data.SPLITS))
  return task


TASK = padded.make_task_def("music", make_task, validate_config)
