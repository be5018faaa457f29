"""The ``classify`` task: text classification (SST-2, SMS spam), trained on padded batches
(:mod:`rnnlm_jax.tasks.padded`).

config -> data (:func:`rnnlm_jax.data.classification.load_classification`: the seeded
splits) -> tokens, the vocabulary of the training split (``workdir/vocab.txt``) and token
ids (:mod:`rnnlm_jax.data.classification`), pretrained vectors fitted to the vocabulary
(:mod:`rnnlm_jax.embeddings`; ``workdir/embeddings.json``) -> padded batches
(:mod:`rnnlm_jax.data.padded`: listed buckets ``data.buckets``, grouped by bucket) -> the model
and loss (:mod:`rnnlm_jax.models.classifier`) -> the metrics (:func:`summarize`).

Metrics: the loss (mean cross-entropy, nats), accuracy, and precision / recall / F1 of the
minority class of the training split (SST-2: negative; SMS: spam), plus the macro-F1;
``train.select_metric`` picks the best-validation checkpoint by one of them.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from typing import Iterator, Sequence

import jax
import numpy as np

from rnnlm_jax import embeddings, tasks
from rnnlm_jax.data import classification as cdata
from rnnlm_jax.data import fingerprint
from rnnlm_jax.data import lm as lm_data
from rnnlm_jax.data import padded as padded_data
from rnnlm_jax.models import classifier
from rnnlm_jax.tasks import padded

log = logging.getLogger(__name__)

SELECT_METRICS = {"accuracy": "max", "loss": "min", "f1": "max", "macro_f1": "max"}
EMBEDDINGS_FILE = "embeddings.json"  # workdir: how the vocabulary met the pretrained vectors


def summarize(sums: dict[str, float], num_classes: int, positive: int) -> dict[str, float]:
  """Split metrics from summed stats: ``loss`` (mean cross-entropy, nats), ``accuracy``,
  ``precision`` / ``recall`` / ``f1`` of class ``positive`` (the minority class), ``macro_f1``.
  A ratio with a zero denominator is 0."""
  div = lambda a, b: float(a) / float(b) if b else 0.0
  n = sums.get("examples", 0.0)
  out = {"loss": div(sums.get("nll", 0.0), n), "accuracy": div(sums.get("correct", 0.0), n)}
  f1s = []
  for c in range(num_classes):
    tp = sums.get(f"tp{c}", 0.0)
    p, r = div(tp, sums.get(f"pred{c}", 0.0)), div(tp, sums.get(f"true{c}", 0.0))
    f1 = div(2 * p * r, p + r)
    f1s.append(f1)
    if c == positive:
      out.update(precision=p, recall=r, f1=f1)
  out["macro_f1"] = float(np.mean(f1s))
  out["examples"] = float(n)
  return out


class ClassifierTask:
  """Text classification (the padded-task protocol of :mod:`rnnlm_jax.tasks.padded`)."""

  def __init__(self, spec: classifier.ClassifierSpec, ids: dict[str, list[np.ndarray]],
               labels: dict[str, np.ndarray], *,
               buckets: Sequence[int] = padded_data.DEFAULT_BUCKETS,
               positive: int = 1, select_metric: str = "accuracy",
               pretrained: np.ndarray | None = None, found: np.ndarray | None = None,
               oov_scale: float | None = None, label_names: Sequence[str] = (),
               backoff: np.ndarray | None = None, vocab=None, name: str = "",
               embeddings_info: dict | None = None):
    if select_metric not in SELECT_METRICS:
      raise ValueError(f"unknown train.select_metric {select_metric!r}; choose one of "
                       f"{', '.join(SELECT_METRICS)}")
    self.spec = spec
    self.ids, self.labels = ids, labels
    self.buckets = padded_data.check_buckets(buckets)
    self.positive = int(positive)
    self.select_metric = select_metric
    self.select_mode = SELECT_METRICS[select_metric]
    self.pretrained, self.found, self.oov_scale = pretrained, found, oov_scale
    self.label_names = tuple(label_names)
    self.backoff = backoff  # [N, E] pretrained vectors of token ids vocab_size + j, or None
    self.vocab, self.name = vocab, name  # the training split's vocabulary, the data set
    self.embeddings_info = embeddings_info or {}  # workdir/embeddings.json
    # The `loss` (mean cross-entropy, nats) of a model that predicts every class alike.
    self.uniform_loss = math.log(spec.num_classes)

  def check_workdir(self, workdir: str) -> None:
    """A resumed ``workdir``'s ``vocab.txt``, if any, must hold this vocabulary
    (``DataError``); writes nothing."""
    if self.vocab is not None and (pathlib.Path(workdir) / lm_data.VOCAB_FILENAME).is_file():
      lm_data.check_or_write_vocab(self.vocab, workdir)  # the file exists: a check only

  def write_files(self, workdir: str) -> None:
    """``workdir/vocab.txt`` (or the check that the one there is this vocabulary) and, with
    pretrained vectors, ``workdir/embeddings.json`` (how the vocabulary met them)."""
    if self.vocab is not None:
      lm_data.check_or_write_vocab(self.vocab, workdir)
    if self.embeddings_info:
      (pathlib.Path(workdir) / EMBEDDINGS_FILE).write_text(
          json.dumps(self.embeddings_info, indent=2) + "\n")

  def data_fingerprint(self) -> dict:
    """What identifies the prepared data: the TFDS builder and its version, the vocabulary
    (size, sha256 of ``vocab.txt``), per split the number of examples and tokens and the sha256
    of the token ids (``int32``) with the labels (:func:`rnnlm_jax.data.fingerprint.
    sequences_sha256`), and the sha256 of the pretrained vectors fitted to the vocabulary
    (and of the backoff vectors) when there are any."""
    builder = cdata.CLASSIFICATION_BUILDERS.get(self.name)
    out = {"fingerprint_version": fingerprint.FINGERPRINT_VERSION, "task": "classify",
           "builder": builder.name if builder else self.name,
           "builder_version": str(builder.VERSION) if builder else None,
           "labels": list(self.label_names),
           "vocab": None if self.vocab is None else {
               "size": len(self.vocab), "sha256": fingerprint.tokens_sha256(self.vocab.tokens)},
           "splits": {s: {"examples": len(ids), "tokens": int(sum(len(x) for x in ids)),
                          "sha256": fingerprint.sequences_sha256(ids, "<i4", self.labels[s])}
                      for s, ids in self.ids.items()}}
    if self.pretrained is not None:
      out["embeddings_sha256"] = fingerprint.array_sha256(self.pretrained, "<f4")
    if self.backoff is not None:
      out["backoff_sha256"] = fingerprint.array_sha256(self.backoff, "<f4")
    return out

  def batches(self, split: str, batch_size: int,
              rng: np.random.Generator | None) -> Iterator[dict[str, np.ndarray]]:
    """The whole split as bucketed, padded batches (:func:`rnnlm_jax.data.padded.batches`,
    ``grouping="bucket"``): ``tokens`` int32 ``[B, L]`` (``<pad>`` after each text),
    ``lengths``, ``labels`` int32 ``[B]``, ``weights`` float32 ``[B]`` (padding rows: one
    ``<pad>`` token long, label 0, weight 0), and ``backoff`` ``[B, L, E]`` with
    ``model.embeddings_backoff``. Shuffled with ``rng``, else a fixed order."""
    if split not in self.ids:
      raise ValueError(f"unknown split {split!r}; choose one of {', '.join(self.ids)}")
    labels = self.labels[split]
    for rows, tokens, lengths, weights in padded_data.batches(
        self.ids[split], batch_size, rng, dtype=np.int32, pad_value=cdata.PAD_ID,
        empty_length=1, grouping="bucket", buckets=self.buckets):
      batch_labels = np.zeros(batch_size, np.int32)
      batch_labels[:len(rows)] = labels[rows]
      batch = {"tokens": tokens, "lengths": lengths, "labels": batch_labels, "weights": weights}
      if self.backoff is not None:
        batch["backoff"] = backoff_vectors(batch["tokens"], self.spec.vocab_size, self.backoff)
      yield batch

  def init_params(self, key: jax.Array) -> dict:
    return classifier.init_params(key, self.spec, self.pretrained, self.found,
                                  self.oov_scale)

  def loss(self, params, batch, rng):
    return classifier.batch_stats(params, self.spec, batch, rng)

  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    return summarize(sums, self.spec.num_classes, self.positive)

  def trainable(self, params):
    return classifier.trainable(params, self.spec)


def backoff_vectors(tokens: np.ndarray, vocab_size: int, vectors: np.ndarray) -> np.ndarray:
  """``[*tokens.shape, E]`` float32: ``vectors[t - vocab_size]`` where ``t >= vocab_size``,
  zeros elsewhere (the ``backoff`` entry of a batch)."""
  out = np.zeros(tokens.shape + (vectors.shape[1],), np.float32)
  outside = tokens >= vocab_size
  if outside.any():
    out[outside] = vectors[tokens[outside] - vocab_size]
  return out


def validate_config(config) -> None:
  """Checks the classification-specific fields (one-line ``ValueError``s)."""
  tasks.refuse_renamed_keys(config, "classify")
  name = str(config.data.name)
  if name not in cdata.CLASSIFICATION_DATASETS:
    raise ValueError(f"data.name {name!r} is not a classification data set; choose one of "
                     f"{', '.join(cdata.CLASSIFICATION_DATASETS)}")
  padded_data.check_buckets(config.data.buckets)
  if int(config.data.min_count) < 1:
    raise ValueError(f"data.min_count must be >= 1, got {config.data.min_count}")
  if int(config.data.max_length) < 0:
    raise ValueError(f"data.max_length must be >= 0 (0 = no limit), got {config.data.max_length}")
  if str(config.train.select_metric) not in SELECT_METRICS:
    raise ValueError(f"unknown train.select_metric {config.train.select_metric!r}; choose one "
                     f"of {', '.join(SELECT_METRICS)}")
  if not config.model.embeddings and not config.model.embeddings_trainable:
    raise ValueError("model.embeddings_trainable=False needs pretrained vectors "
                     "(model.embeddings); random frozen embeddings are not supported")
  if config.model.get("embeddings_backoff", False) and not config.model.embeddings:
    raise ValueError("model.embeddings_backoff=True needs pretrained vectors (model.embeddings)")
  folds, fold = int(config.data.get("cv_folds", 0)), int(config.data.get("cv_fold", 0))
  if folds == 1 or folds < 0:
    raise ValueError(f"data.cv_folds must be 0 (the data set's own validation split) or >= 2 "
                     f"(k-fold cross-validation on the training split), got {folds}")
  if folds and not 0 <= fold < folds:
    raise ValueError(f"data.cv_fold must be in 0..{folds - 1} with data.cv_folds={folds}, "
                     f"got {fold}")
  if not folds and fold:
    raise ValueError(f"data.cv_fold={fold} needs data.cv_folds >= 2 (k-fold cross-validation)")


def backoff_table(vectors: embeddings.Vectors, vocab, lowercase: bool
                  ) -> tuple[dict[str, int], np.ndarray]:
  """The pretrained words outside ``vocab``: ``({word: j}, vectors [N, E])`` (the first row of
  a word in file order; keyed by its lowercase form if ``lowercase``, as the tokens are)."""
  index: dict[str, int] = {}
  rows: list[int] = []
  for i, w in enumerate(vectors.words):
    key = w.lower() if lowercase else w
    if key not in vocab.index and key not in index:
      index[key] = len(rows)
      rows.append(i)
  return index, np.asarray(vectors.matrix[rows], np.float32).reshape(len(rows), vectors.dim)


def make_task(config, workdir: str | None) -> ClassifierTask:
  """The classification task of a ``task="classify"`` config.

  Loads (and on first use prepares) the data set, tokenizes it, builds the vocabulary from
  the training split, fits the pretrained vectors if any (the OOV count is logged). With a
  ``workdir``, writes the vocabulary to ``workdir/vocab.txt`` (or checks it against the one
  there) and the fit of the vectors to ``workdir/embeddings.json``
  (:meth:`ClassifierTask.write_files`); with ``workdir=None`` (the one loop's ``make_run``)
  nothing is written. With ``model.embeddings_backoff``, a word outside the training
  vocabulary that has a pretrained vector is read with that (frozen) vector instead of
  ``<unk>``.
  """
  task = build_task(config)
  if workdir:
    task.write_files(workdir)
  return task


def build_task(config) -> ClassifierTask:
  """:func:`make_task` without a workdir: nothing is written."""
  validate_config(config)
  d, m = config.data, config.model
  data = cdata.load_classification(str(d.name), data_dir=d.dir or None,
                                   tfds_dir=d.tfds_dir or None)
  if int(d.get("cv_folds", 0)):  # fold cv_fold of the training split validates, the rest trains
    rows = cdata.cv_fold_rows(data["train"].labels, int(d.cv_folds), int(d.cv_fold))
    data = dict(data, train=cdata.subset(data["train"], rows[0]),
                valid=cdata.subset(data["train"], rows[1]))
    log.info("%s: %d-fold cross-validation, fold %d: train %d / valid %d examples of the "
             "training split (its own valid split unused)", d.name, int(d.cv_folds),
             int(d.cv_fold), len(rows[0]), len(rows[1]))
  lowercase = bool(d.lowercase)
  tokens = {s: [cdata.tokenize(t, lowercase) for t in data[s].texts] for s in data}
  vocab = cdata.build_vocab(tokens["train"], int(d.min_count))
  names = cdata.LABEL_NAMES[str(d.name)]
  spec = classifier.ClassifierSpec.from_config(m, len(vocab), len(names))
  pretrained = found = scale = backoff = extra = None
  info: dict = {}
  if m.embeddings:
    use_backoff = bool(m.get("embeddings_backoff", False))
    vectors = embeddings.load_vectors(str(m.embeddings),
                                      keep=None if use_backoff else vocab.tokens)
    pretrained, found, stats = embeddings.embedding_matrix(
        vocab.tokens, vectors, spec.embed_size, specials=cdata.SPECIALS)
    scale = embeddings.oov_scale(pretrained, found)
    log.info("%s; OOV rows ~ N(0, %.3f^2)", stats.summary(), scale)
    info = dict(stats.to_dict(), oov_init_std=scale, trainable=bool(m.embeddings_trainable),
                backoff=use_backoff)
    if use_backoff:
      extra, backoff = backoff_table(vectors, vocab, lowercase)
      info["backoff_words"] = len(extra)
    del vectors
  ids, unknown, outside = {}, {}, {}
  for s in data:
    ids[s], unknown[s], truncated = cdata.encode_texts(tokens[s], vocab, int(d.max_length),
                                                       extra)
    outside[s] = int(sum(int(np.sum(x >= len(vocab))) for x in ids[s]))
    if truncated:
      log.info("%s/%s: %d texts cut to data.max_length=%d tokens", d.name, s, truncated,
               int(d.max_length))
  if backoff is not None:
    log.info("backoff: %d pretrained words outside the vocabulary; tokens read with them "
             "train/valid/test %s (the rest of the unknown ones: <unk>)", len(backoff),
             "/".join(str(outside[s]) for s in cdata.SPLITS))
    info["backoff_tokens"] = outside
  labels = {s: data[s].labels for s in data}
  counts = np.bincount(labels["train"], minlength=len(names))
  positive = int(np.argmin(counts))
  log.info("classify %s: vocab %d (train tokens, min_count %d); examples train/valid/test %s; "
           "<unk> tokens valid/test %d/%d; minority class %d (%s) for precision/recall/F1",
           d.name, len(vocab), int(d.min_count), "/".join(str(len(ids[s])) for s in ids),
           unknown["valid"], unknown["test"], positive, names[positive])
  return ClassifierTask(spec, ids, labels, buckets=tuple(d.buckets), positive=positive,
                        select_metric=str(config.train.select_metric), pretrained=pretrained,
                        found=found, oov_scale=scale, label_names=names, backoff=backoff,
                        vocab=vocab, name=str(d.name), embeddings_info=info)


TASK = padded.make_task_def("classify", make_task, validate_config)
