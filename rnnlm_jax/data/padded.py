"""Padded batches of whole variable-length sequences (the ``music`` and ``classify`` tasks).

A split is a list of sequences (arrays ``[T, ...]``: piano rolls ``[T, 88]``, token ids
``[T]``). A batch holds ``batch_size`` rows padded at the end to a *bucket length*, so that jit
compiles one program per bucket and little time goes to padding; rows past the last sequence
of a partial batch are padding rows of weight 0. Every sequence of the split is in exactly one
batch per pass.

Bucket lengths (:func:`bucket_length`):

* ``buckets=None`` (music): the smallest ``2^k`` or ``3 * 2^k`` that is ``>= n`` and at least
  ``min_length``: at most 1.5x padding, about ``2 log2(T_max / min_length)`` shapes;
* ``buckets=(8, 16, 32, 64)`` (classify): the smallest listed length ``>= n``, else the next
  multiple of the largest one.

Batch plans (:func:`plan_batches`; the two tasks' orders, kept apart so their batches do
not change):

* ``grouping="batch"`` (music; :func:`batch_order`): the sequences in a shuffled order
  (``rng``; with ``length_pool > 1`` sorted by length within pools of ``length_pool *
  batch_size`` and the batches shuffled), or longest first (``rng=None``), cut into batches,
  each padded to the bucket of its longest sequence;
* ``grouping="bucket"`` (classify; :func:`bucket_plan`): the sequences grouped by bucket, cut
  into full batches bucket by bucket (shortest first; within a bucket in index order, or
  shuffled by ``rng``), the remainder carried on to the next longer bucket, so only the
  longest bucket can leave a partial batch; with ``rng`` the batch order is shuffled too.

Training passes draw from the ``rng`` given (the loop passes ``np.random.default_rng([seed,
epoch])``); ``rng=None`` gives the fixed evaluation order.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from rnnlm_jax.data.errors import DataError

MIN_BUCKET = 8                      # shortest geometric bucket (buckets=None)
DEFAULT_BUCKETS = (8, 16, 32, 64)   # the classify task's default listed buckets
GROUPINGS = ("batch", "bucket")


def bucket_length(n: int, buckets: Sequence[int] | None = None,
                  min_length: int = MIN_BUCKET) -> int:
  """The padded length of a sequence of ``n`` steps (see the module docstring).

  ``buckets=None``: the smallest ``2^k`` or ``3 * 2^k`` ``>= n`` (at least ``min_length``).
  ``buckets`` given: the smallest listed length ``>= n``, else the next multiple of the last.
  """
  if n < 0:
    raise ValueError(f"a sequence length must be >= 0, got {n}")
  if buckets is not None:
    for b in buckets:
      if n <= b:
        return int(b)
    last = int(buckets[-1])
    return -(-n // last) * last
  length = max(int(min_length), 1)
  while length < n:
    p = 1 << (length.bit_length() - 1)  # the power of two <= length
    length = 3 * p // 2 if length == p and p >= 2 else 2 * p
  return length


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
  """Validates listed buckets (``data.buckets``): positive, strictly increasing integers."""
  try:
    b = tuple(int(x) for x in buckets)
  except (TypeError, ValueError):
    b = ()
  if not b or min(b) < 1 or any(x >= y for x, y in zip(b, b[1:])):
    raise DataError(f"data.buckets={tuple(buckets) if buckets is not None else None} is not "
                    "valid; give positive, strictly increasing lengths, e.g. (8, 16, 32, 64).")
  return b


def batch_order(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None,
                length_pool: int = 0) -> list[np.ndarray]:
  """Which sequences form each batch (``grouping="batch"``), every sequence exactly once.

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


def bucket_plan(lengths: Sequence[int], batch_size: int, buckets: Sequence[int] | None,
                rng: np.random.Generator | None,
                min_length: int = MIN_BUCKET) -> list[tuple[np.ndarray, int]]:
  """Which sequences go into which batch, and its padded length (``grouping="bucket"``).

  Sequences are grouped by :func:`bucket_length`; in each bucket (shortest first) the
  sequences, in index order or shuffled by ``rng``, are cut into batches of ``batch_size``;
  the remainder moves on to the next longer bucket (padded to that length), so only the
  longest bucket can leave a partial batch. With ``rng`` the batch order is shuffled too.

  Returns:
    ``[(sequence indices [<= batch_size], padded length)]``; every sequence exactly once.
  """
  if batch_size < 1:
    raise DataError(f"batch size must be >= 1, got {batch_size}.")
  lengths = np.asarray(lengths)
  padded = np.asarray([bucket_length(int(n), buckets, min_length) for n in lengths], np.int64)
  plan: list[tuple[np.ndarray, int]] = []
  carry = np.zeros(0, np.int64)
  levels = np.unique(padded)
  for k, level in enumerate(levels):
    idx = np.flatnonzero(padded == level)
    if rng is not None:
      idx = rng.permutation(idx)
    idx = np.concatenate([carry, idx])
    full = len(idx) // batch_size * batch_size
    plan += [(idx[i:i + batch_size], int(level)) for i in range(0, full, batch_size)]
    carry = idx[full:]
    if k == len(levels) - 1 and len(carry):
      plan.append((carry, int(level)))
  if rng is not None:
    order = rng.permutation(len(plan))
    plan = [plan[i] for i in order]
  return plan


def plan_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None, *,
                 grouping: str = "batch", buckets: Sequence[int] | None = None,
                 min_length: int = MIN_BUCKET, length_pool: int = 0
                 ) -> list[tuple[np.ndarray, int]]:
  """``[(sequence indices, padded length)]`` of a whole split, every sequence exactly once:
  :func:`batch_order` (``grouping="batch"``, each batch padded to the bucket of its longest
  sequence) or :func:`bucket_plan` (``grouping="bucket"``; ``length_pool`` unused)."""
  if grouping == "bucket":
    return bucket_plan(lengths, batch_size, buckets, rng, min_length)
  if grouping != "batch":
    raise ValueError(f"unknown grouping {grouping!r}; choose one of {', '.join(GROUPINGS)}")
  lengths = np.asarray(lengths, np.int64)
  return [(idx, bucket_length(int(lengths[idx].max()), buckets, min_length))
          for idx in batch_order(lengths, batch_size, rng, length_pool)]


def pad_batch(seqs: Sequence[np.ndarray], rows: Sequence[int], length: int, batch_size: int, *,
              dtype, pad_value=0, empty_length: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One padded batch of the sequences ``seqs[rows]`` (1..``batch_size`` of them).

  Returns:
    ``(values [batch_size, length, ...] dtype, lengths [batch_size] int32, weights
    [batch_size] float32)``: row ``j`` holds ``seqs[rows[j]]`` followed by ``pad_value``,
    its length and weight 1; the rows after the last are padding: all ``pad_value``, length
    ``empty_length`` (0 for music; 1 where the model needs a step to read) and weight 0.
  """
  rows = np.asarray(rows, np.int64).reshape(-1)
  if not 0 < len(rows) <= batch_size:
    raise ValueError(f"a padded batch needs 1..{batch_size} sequences, got {len(rows)}")
  feature_shape = np.shape(seqs[int(rows[0])])[1:]
  values = np.full((batch_size, length) + feature_shape, pad_value, dtype)
  lengths = np.full(batch_size, empty_length, np.int32)
  weights = np.zeros(batch_size, np.float32)
  for j, r in enumerate(rows.tolist()):
    seq = seqs[r]
    values[j, :len(seq)] = seq
    lengths[j] = len(seq)
    weights[j] = 1.0
  return values, lengths, weights


def batches(seqs: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator | None, *,
            dtype, pad_value=0, empty_length: int = 0, **plan
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
  """A whole split as padded batches: :func:`plan_batches` (``plan``: grouping, buckets,
  min_length, length_pool) then :func:`pad_batch`.

  Yields:
    ``(rows, values, lengths, weights)`` per batch, ``rows`` the sequences' indices (to
    gather per-sequence data such as labels).
  """
  lengths = [len(s) for s in seqs]
  for rows, length in plan_batches(lengths, batch_size, rng, **plan):
    yield (rows, *pad_batch(seqs, rows, length, batch_size, dtype=dtype, pad_value=pad_value,
                            empty_length=empty_length))
