"""rnnlm_jax.data.padded: the padded batches of the music and classify tasks (bucket lengths,
the two batch plans, padding rows of weight 0), and the two tasks' batch layouts on top."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from rnnlm_jax.data import padded as padded_data
from rnnlm_jax.data.errors import DataError
from rnnlm_jax.models import classifier
from rnnlm_jax.tasks import classify
from rnnlm_jax.tasks import music as music_task

# ------------------------------------------------------------------------------------------
# Bucket lengths


def test_geometric_bucket_lengths():
  got = [padded_data.bucket_length(n) for n in (0, 1, 8, 9, 12, 13, 17, 25, 100, 129, 3857)]
  assert got == [8, 8, 8, 12, 12, 16, 24, 32, 128, 192, 4096]
  lengths = range(1, 5000)
  buckets = {padded_data.bucket_length(n) for n in lengths}
  assert len(buckets) <= 20
  assert all(n <= padded_data.bucket_length(n) <= max(8, 1.5 * n) for n in lengths)
  with pytest.raises(ValueError, match="must be >= 0"):
    padded_data.bucket_length(-1)


def test_listed_bucket_lengths():
  got = [padded_data.bucket_length(n, (8, 16)) for n in (1, 8, 9, 16, 17, 33)]
  assert got == [8, 8, 16, 16, 32, 48]
  assert padded_data.check_buckets([8, 16]) == (8, 16)
  with pytest.raises(DataError, match="strictly increasing"):
    padded_data.check_buckets((8, 8))


# ------------------------------------------------------------------------------------------
# grouping="batch" (music)


@pytest.mark.parametrize("pool", [0, 3])
def test_batch_order_every_sequence_once_deterministic(pool):
  lengths = np.random.default_rng(0).integers(1, 500, 103)
  b1 = padded_data.batch_order(lengths, 8, np.random.default_rng([0, 1]), pool)
  b2 = padded_data.batch_order(lengths, 8, np.random.default_rng([0, 1]), pool)
  b3 = padded_data.batch_order(lengths, 8, np.random.default_rng([0, 2]), pool)
  assert all(np.array_equal(x, y) for x, y in zip(b1, b2)) and len(b1) == len(b2)
  assert sorted(np.concatenate(b1).tolist()) == list(range(103))
  assert len(b1) == len(b3) == 13  # the same number of batches every epoch
  assert not all(np.array_equal(x, y) for x, y in zip(b1, b3))
  if pool:  # pooled: batches are sorted chunks of a pool, so less padding than plain shuffling
    pad = lambda bs: sum(len(b) * lengths[b].max() - lengths[b].sum() for b in bs)
    assert pad(b1) < pad(padded_data.batch_order(lengths, 8, np.random.default_rng([0, 1]), 0))
  ev = padded_data.batch_order(lengths, 8, None)
  assert sorted(np.concatenate(ev).tolist()) == list(range(103))
  assert list(lengths[np.concatenate(ev)]) == sorted(lengths, reverse=True)


def test_batch_plan_pads_each_batch_to_its_longest_sequence():
  lengths = np.random.default_rng(1).integers(1, 300, 50)
  plan = padded_data.plan_batches(lengths, 8, np.random.default_rng(0), length_pool=2)
  order = padded_data.batch_order(lengths, 8, np.random.default_rng(0), 2)
  assert [r.tolist() for r, _ in plan] == [r.tolist() for r in order]
  assert all(n == padded_data.bucket_length(int(lengths[r].max())) for r, n in plan)
  with pytest.raises(ValueError, match="unknown grouping 'x'"):
    padded_data.plan_batches(lengths, 8, None, grouping="x")


def test_music_batches_layout():
  rng = np.random.default_rng(0)
  rolls = [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in (3, 10, 30, 5, 9)]
  task = music_task.MusicTask(None, {"valid": rolls})
  bs = list(task.batches("valid", 2, None))
  assert [b["frames"].shape for b in bs] == [(2, 32, 88), (2, 12, 88), (2, 8, 88)]
  assert [b["lengths"].tolist() for b in bs] == [[30, 10], [9, 5], [3, 0]]
  assert [b["weights"].tolist() for b in bs] == [[1, 1], [1, 1], [1, 0]]
  assert all(b["frames"].dtype == np.uint8 for b in bs) and not bs[2]["frames"][1].any()
  np.testing.assert_array_equal(bs[0]["frames"][0, :30], rolls[2])


# ------------------------------------------------------------------------------------------
# grouping="bucket" (classify)


def _toy_ids(n=203, seed=0):
  rng = np.random.default_rng(seed)
  lengths = np.concatenate([rng.integers(1, 9, n // 2), rng.integers(9, 70, n - n // 2)])
  ids = [rng.integers(2, 50, k).astype(np.int32) for k in lengths]
  labels = rng.integers(0, 2, n).astype(np.int32)
  return ids, labels


def _classify_task(ids, labels, buckets=padded_data.DEFAULT_BUCKETS):
  spec = classifier.ClassifierSpec(vocab_size=50)
  return classify.ClassifierTask(spec, {"train": ids}, {"train": labels}, buckets=buckets)


@pytest.mark.parametrize("train", [True, False])
def test_classify_batches_cover_every_example_once(train):
  ids, labels = _toy_ids()
  task = _classify_task(ids, labels, (8, 16, 32, 64))
  rng = np.random.default_rng(5) if train else None
  bs = list(task.batches("train", 16, rng))
  seen = collections.Counter()
  shapes = set()
  partial = 0
  for b in bs:
    shapes.add(b["tokens"].shape)
    assert b["tokens"].dtype == np.int32 and b["weights"].dtype == np.float32
    real = b["weights"] > 0
    partial += int(not real.all())
    assert np.all(b["lengths"] >= 1)
    for row in np.flatnonzero(real):
      n = b["lengths"][row]
      key = tuple(b["tokens"][row, :n])
      seen[key] += 1
      assert np.all(b["tokens"][row, n:] == 0)   # <pad>
    assert np.all(b["labels"][~real] == 0)
  assert sum(seen.values()) == len(ids)
  assert seen == collections.Counter(tuple(x) for x in ids)
  assert shapes <= {(16, 8), (16, 16), (16, 32), (16, 64), (16, 128)}
  assert partial <= 1                                  # only the longest bucket's remainder
  again = list(task.batches("train", 16, np.random.default_rng(5) if train else None))
  assert all(np.array_equal(a["tokens"], b["tokens"]) for a, b in zip(bs, again))
  # the labels travel with their texts
  pairs = collections.Counter((tuple(b["tokens"][r, :b["lengths"][r]]), int(b["labels"][r]))
                              for b in bs for r in np.flatnonzero(b["weights"]))
  assert pairs == collections.Counter((tuple(x), int(y)) for x, y in zip(ids, labels))


def test_training_order_changes_with_rng():
  ids, labels = _toy_ids()
  task = _classify_task(ids, labels)
  a = [b["tokens"] for b in task.batches("train", 16, np.random.default_rng(0))]
  b = [b["tokens"] for b in task.batches("train", 16, np.random.default_rng(1))]
  assert len(a) == len(b) and not all(x.shape == y.shape and np.array_equal(x, y)
                                      for x, y in zip(a, b))


def test_pad_batch_rows():
  seqs = [np.array([5, 6, 7]), np.array([8])]
  values, lengths, weights = padded_data.pad_batch(seqs, [1, 0], 4, 3, dtype=np.int32,
                                                   pad_value=9, empty_length=1)
  assert values.tolist() == [[8, 9, 9, 9], [5, 6, 7, 9], [9, 9, 9, 9]]
  assert lengths.tolist() == [1, 3, 1] and weights.tolist() == [1, 1, 0]
  with pytest.raises(ValueError, match="needs 1..3 sequences, got 0"):
    padded_data.pad_batch(seqs, [], 4, 3, dtype=np.int32)
