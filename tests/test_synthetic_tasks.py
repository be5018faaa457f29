"""Tests of rnnlm_jax.synthetic.tasks: each generator against its written definition.

The definitions are the module docstring's, which follow Pascanu, Mikolov & Bengio 2013 and
their code (pascanur/trainingRNNs) and Hochreiter & Schmidhuber 1997 (adding problem). The
tests decode the generated inputs and check properties of the data (layout, ranges, targets
recomputed from the decoded inputs), determinism under jit/vmap, distributional sanity, the
error criteria and the fixed test sets. They do not mirror the generators' code.

XLA compilation dominates the cost here (about 0.1-1 s of CPU per compiled function, more on
a loaded host), so each task is compiled at few shapes: eagerly at (TEST_CHUNK, L_SMALL)
through ``test_chunk`` (4 chunks, 2000 sequences), and once under ``jit`` for a function that
returns ``vmap(generate)`` over the 4 chunk keys and ``generate`` at (2000, L_BIG) (and, for two
tasks, at the minimum length). ``jit(vmap(generate))`` equal to eager ``generate`` for each key
checks both transformations at once (a separate ``jit`` compile would cost several seconds
more). The jit compile uses XLA debug options (``FAST_COMPILE``: LLVM optimisation off, per
compile, no global flag) that make it several times faster; the equality with the eager batches
then also shows that the data do not depend on how XLA optimises the generator.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import pathlib
import random
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax.synthetic import tasks as T

REPO = pathlib.Path(__file__).resolve().parents[1]
NAMES = list(T.TASKS)
L_SMALL, L_BIG = 30, 100
CHUNKS = 4  # chunks of the fixed test set read at L_SMALL: 4 x 500 = 2000 sequences
N = CHUNKS * T.TEST_CHUNK  # sequences per generated batch (both lengths)
KEY = jax.random.PRNGKey(0)
# XLA debug options for the jit compiles (LLVM optimisation off, the older loop emitters):
# several times faster to compile these small programs; dropped if this XLA lacks them
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
# tasks also generated at their minimum length (where the integer position arithmetic is
# tightest); each extra shape costs a compile, so not every task
MIN_LENGTH_TASKS = ("addition", "adding_hs97")


def _np(batch) -> T.Batch:
  return T.Batch(*(np.asarray(a) for a in batch))


def _chunk_keys(name: str) -> jax.Array:
  return jnp.stack([jax.random.fold_in(T.test_key(name, L_SMALL), i) for i in range(CHUNKS)])


@functools.lru_cache(maxsize=None)
def small_chunks(name: str) -> tuple[T.Batch, ...]:
  """Chunks 0..CHUNKS-1 of the fixed test set at L_SMALL, generated eagerly."""
  return tuple(_np(T.test_chunk(name, L_SMALL, i)) for i in range(CHUNKS))


@functools.lru_cache(maxsize=None)
def jitted(name: str) -> dict[str, T.Batch]:
  """One jit compile per task (see the module docstring)."""
  task = T.TASKS[name]

  def run(keys, key):
    return {
        "vmap": jax.vmap(lambda k: task.generate(k, T.TEST_CHUNK, L_SMALL))(keys),
        "big": task.generate(key, N, L_BIG),
        **({"min": task.generate(key, 256, task.min_length)} if name in MIN_LENGTH_TASKS else {}),
    }

  args = (_chunk_keys(name), KEY)
  lowered = jax.jit(run).lower(*args)
  try:
    compiled = lowered.compile(FAST_COMPILE)
  except Exception as e:  # noqa: BLE001  an XLA without these options: compile as usual
    if "compile option" not in str(e):
      raise
    compiled = lowered.compile()
  return {k: _np(v) for k, v in compiled(*args).items()}


def big(name: str) -> T.Batch:
  """N sequences at L_BIG from a fixed key, generated under jit."""
  return jitted(name)["big"]


@functools.lru_cache(maxsize=None)
def batch(name: str, length: int) -> T.Batch:
  """N sequences of a task at L_SMALL (the eager test chunks) or L_BIG (jit)."""
  if length == L_SMALL:
    return T.Batch(*(np.concatenate(parts) for parts in zip(*small_chunks(name))))
  assert length == L_BIG
  return big(name)


def onehot_symbols(x: np.ndarray) -> np.ndarray:
  """Decodes one-hot inputs to symbol ids, asserting they are exactly one-hot."""
  assert set(np.unique(x).tolist()) <= {0.0, 1.0}
  assert np.all(x.sum(-1) == 1.0)
  return x.argmax(-1)


def marked_positions(flags: np.ndarray, per_row: int) -> np.ndarray:
  """[B, per_row] sorted time positions of the True entries, asserting per_row per row."""
  assert np.all(flags.sum(1) == per_row)
  return np.sort(np.nonzero(flags)[1].reshape(flags.shape[0], per_row), axis=1)


# ----------------------------------------------------------------------------- registry


def test_registry_sizes():
  expect = {  # name: (input_size, output_size, kind, criterion)
      "temporal_order": (6, 4, "class", "argmax"),
      "temporal_order_3bit": (6, 8, "class", "argmax"),
      "addition": (2, 1, "real", "sq_err>0.04"),
      "multiplication": (2, 1, "real", "sq_err>0.04"),
      "permutation": (100, 100, "class", "argmax"),
      "memorization": (7, 6, "class", "argmax"),
      "adding_hs97": (2, 1, "real", "abs_err>=0.04"),
  }
  assert set(T.TASKS) == set(expect)
  for name, (nin, nout, kind, crit) in expect.items():
    task = T.TASKS[name]
    assert task.name == name
    assert (task.input_size, task.output_size, task.kind, task.criterion) == (nin, nout, kind, crit)


def test_max_time_values():
  L = 100
  assert T.TASKS["temporal_order"].max_time(L) == 100
  assert T.TASKS["temporal_order_3bit"].max_time(L) == 100
  assert T.TASKS["permutation"].max_time(L) == 100
  assert T.TASKS["addition"].max_time(L) == 109  # longest sequence: L + int(0.1 L) - 1
  assert T.TASKS["multiplication"].max_time(L) == 109
  assert T.TASKS["memorization"].max_time(L) == 120  # L + 20
  # the longest adding_hs97 sequence has L + int(L/10) = 110 pairs
  assert T.TASKS["adding_hs97"].max_time(L) >= 110


# ----------------------------------------------------------------------------- shapes / dtypes


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name, length):
  task = T.TASKS[name]
  x, y, t_out = batch(name, length)
  time = task.max_time(length)
  readouts = time if name == "memorization" else 1
  assert x.shape == (N, time, task.input_size) and x.dtype == np.float32
  assert y.shape == (N, readouts) and t_out.shape == (N, readouts)
  assert t_out.dtype == np.int32
  if task.kind == "class":
    assert y.dtype == np.int32
    assert y.min() >= 0 and y.max() < task.output_size
  else:
    assert y.dtype == np.float32
  assert t_out.min() >= 0 and t_out.max() < time  # every readout lies inside the padded time


# ----------------------------------------------------------------------------- temporal order


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
@pytest.mark.parametrize("name,starts", [("temporal_order", (0.1, 0.5)),
                                         ("temporal_order_3bit", (0.1, 0.3, 0.6))])
def test_temporal_order_semantics(name, starts, length):
  x, y, t_out = batch(name, length)
  sym = onehot_symbols(x)  # [N, L]: A, B = 0, 1; noise c..f = 2..5
  assert sym.shape == (N, length) and sym.max() <= 5
  n, width = len(starts), int(0.1 * length)
  lo = np.array([int(round(s * length, 6)) for s in starts])  # int(0.1 L), int(0.3 L), ...
  pos = marked_positions(sym < 2, n)  # exactly n informative symbols, all else noise
  assert np.all(pos >= lo) and np.all(pos < lo + width)
  bits = np.take_along_axis(sym, pos, axis=1)
  np.testing.assert_array_equal(y[:, 0], (bits * 2 ** np.arange(n)).sum(1))  # AA=0, BA=1, AB=2
  np.testing.assert_array_equal(t_out, np.full((N, 1), length - 1))


def test_temporal_order_ranges_by_hand():
  # L = 30: p0 in [3, 6), p1 in [15, 18); 3-bit: [3, 6), [9, 12), [18, 21); the union over
  # 2000 sequences covers every allowed position.
  sym = batch("temporal_order", 30).x.argmax(-1)
  assert set(np.nonzero(sym < 2)[1].tolist()) == {3, 4, 5, 15, 16, 17}
  sym3 = batch("temporal_order_3bit", 30).x.argmax(-1)
  assert set(np.nonzero(sym3 < 2)[1].tolist()) == {3, 4, 5, 9, 10, 11, 18, 19, 20}


# ----------------------------------------------------------------------------- addition / multiplication


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
@pytest.mark.parametrize("name", ["addition", "multiplication"])
def test_marked_pair_semantics(name, length):
  x, y, t_out = batch(name, length)
  time = x.shape[1]
  l = t_out[:, 0] + 1  # each sequence's own length, read out at its last step
  assert np.all(l >= length) and np.all(l <= length + length // 10 - 1)
  markers, values = x[..., 0], x[..., 1]
  assert set(np.unique(markers).tolist()) <= {0.0, 1.0}
  p0, p1 = marked_positions(markers == 1.0, 2).T
  assert np.all(p0 < l // 10)  # [0, int(0.1 l))
  assert np.all(p1 >= l // 10) and np.all(p1 < l // 10 + 4 * l // 10)  # int(0.1 l) + [0, int(0.4 l))
  inside = np.arange(time)[None, :] < l[:, None]
  assert np.all(values[inside] >= 0.0) and np.all(values[inside] < 1.0)  # U[0, 1)
  assert np.all(values[~inside] == 0.0) and np.all(markers[~inside] == 0.0)  # zero padding
  rows = np.arange(N)
  v0, v1 = values[rows, p0], values[rows, p1]
  want = (v0 + v1) / 2 if name == "addition" else v0 * v1
  np.testing.assert_allclose(y[:, 0], want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["addition", "multiplication"])
def test_marked_pair_coverage(name):
  x, y, t_out = batch(name, L_BIG)
  l = t_out[:, 0] + 1
  assert set(l.tolist()) == set(range(100, 110))  # L + U{0..int(0.1 L) - 1}: one per sequence
  p0, p1 = marked_positions(x[..., 0] == 1.0, 2).T
  assert set(p0.tolist()) == set(range(0, 10))  # int(0.1 l) = 10 for l in 100..109
  assert set(range(10, 50)) <= set(p1.tolist())  # int(0.1 l) + int(0.4 l) - 1 >= 49
  assert p1.max() <= 52  # l = 109: 10 + 43 - 1
  inside = np.arange(x.shape[1])[None, :] < l[:, None]
  assert abs(x[..., 1][inside].mean() - 0.5) < 0.01
  assert abs(y.mean() - (0.5 if name == "addition" else 0.25)) < 0.02
  # the small length too: l in {30, 31, 32}, p0 in [0, 3), p1 in [3, 3 + 12)
  xs, _, ts = batch(name, L_SMALL)
  assert set((ts[:, 0] + 1).tolist()) == {30, 31, 32}
  q0, q1 = marked_positions(xs[..., 0] == 1.0, 2).T
  assert set(q0.tolist()) == {0, 1, 2} and set(q1.tolist()) == set(range(3, 15))


# ----------------------------------------------------------------------------- permutation


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
def test_permutation_semantics(length):
  x, y, t_out = batch("permutation", length)
  sym = onehot_symbols(x)
  assert set(np.unique(sym[:, 0]).tolist()) == {0, 1}
  np.testing.assert_array_equal(y[:, 0], sym[:, 0])
  assert np.all(sym[:, 1:] >= 2) and np.all(sym[:, 1:] < 100)
  np.testing.assert_array_equal(t_out, np.full((N, 1), length - 1))


# ----------------------------------------------------------------------------- memorization


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
def test_memorization_semantics(length):
  x, y, t_out = batch("memorization", length)
  n, blank, trigger = 10, 5, 6
  time = length + 2 * n
  sym = onehot_symbols(x)
  assert sym.shape == (N, time)
  vals = sym[:, :n]
  assert np.all(vals <= 4)  # 10 symbols over 5 values
  assert np.all(sym[:, n:length + n] == blank)  # L blanks
  assert np.all(sym[:, length + n] == trigger)  # then the trigger ...
  assert np.all(sym[:, length + n + 1:] == blank)  # ... and 9 more blanks
  assert np.all(y[:, :length + n] == blank)  # "blank" targets for the first L + 10 steps
  np.testing.assert_array_equal(y[:, length + n:], vals)  # then the 10 symbols in order
  np.testing.assert_array_equal(t_out, np.broadcast_to(np.arange(time), (N, time)))


# ----------------------------------------------------------------------------- adding (H&S 1997)


def _check_adding_hs97(x, y, t_out, length):
  """Checks a batch against Hochreiter & Schmidhuber's definition; returns (values, pos)."""
  rows, time = np.arange(x.shape[0]), x.shape[1]
  l = t_out[:, 0] + 1
  assert np.all(l >= length) and np.all(l <= length + length // 10)
  values, markers = x[..., 0], x[..., 1]
  t = np.arange(time)[None, :]
  inside = t < l[:, None]
  assert np.all(values[inside] >= -1.0) and np.all(values[inside] <= 1.0)
  assert np.all(values[~inside] == 0.0) and np.all(markers[~inside] == 0.0)
  assert set(np.unique(markers).tolist()) <= {-1.0, 0.0, 1.0}
  pos = marked_positions(markers == 1.0, 2)  # exactly two pairs marked 1
  # one among the first 10 pairs, the other among the first L/2 - 1
  assert np.all(pos[:, 0] < 10) and np.all(pos[:, 1] < length // 2 - 1)
  # -1 exactly on the first and the last pair of the sequence, unless marked; 0 elsewhere
  ends = (t == 0) | (t == (l - 1)[:, None])
  np.testing.assert_array_equal(markers == -1.0, ends & (markers != 1.0))
  assert np.all(markers[~ends & (markers != 1.0)] == 0.0)
  # target 0.5 + (X1 + X2) / 4, a marked first pair counting 0
  x1 = np.where(pos[:, 0] == 0, 0.0, values[rows, pos[:, 0]])
  x2 = values[rows, pos[:, 1]]
  np.testing.assert_allclose(y[:, 0], 0.5 + (x1 + x2) / 4, rtol=1e-6, atol=1e-6)
  assert np.all((y >= 0.0) & (y <= 1.0))
  return values, pos


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
def test_adding_hs97_semantics(length):
  _check_adding_hs97(*batch("adding_hs97", length), length)


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
def test_adding_hs97_marked_first_pair_counts_zero(length):
  x, y, t_out = batch("adding_hs97", length)
  values, pos = _check_adding_hs97(x, y, t_out, length)
  rows = np.nonzero(pos[:, 0] == 0)[0]
  assert len(rows) >= 50  # P(first pair marked) is about 1/10 + 1/(L/2 - 2)
  assert np.all(x[rows, 0, 1] == 1.0)  # marker 1, not -1, on a marked first pair
  assert np.all(values[rows, 0] != 0.0)  # its value is a real draw ...
  other = values[rows, pos[rows, 1]]
  np.testing.assert_allclose(y[rows, 0], 0.5 + other / 4, atol=1e-6)  # ... yet counts 0
  assert np.all(np.abs(y[rows, 0] - (0.5 + (values[rows, 0] + other) / 4)) > 1e-6)
  rest = np.nonzero(pos[:, 0] > 0)[0]  # elsewhere both marked values count
  np.testing.assert_allclose(
      y[rest, 0], 0.5 + (values[rest, pos[rest, 0]] + values[rest, pos[rest, 1]]) / 4, atol=1e-6)


def test_adding_hs97_coverage():
  x, y, t_out = batch("adding_hs97", L_BIG)
  l = t_out[:, 0] + 1
  assert set(l.tolist()) == set(range(100, 111))  # between T and T + T/10, inclusive
  pos = marked_positions(x[..., 1] == 1.0, 2)
  assert set(pos[:, 0].tolist()) == set(range(10))
  assert set(range(10, 49)) <= set(pos[:, 1].tolist())  # second pair up to L/2 - 2 = 48
  inside = np.arange(x.shape[1])[None, :] < l[:, None]
  v = x[..., 0][inside]
  assert abs(v.mean()) < 0.02 and v.min() < -0.99 and v.max() > 0.99  # U[-1, 1]
  assert abs(y.mean() - 0.5) < 0.02


# ----------------------------------------------------------------------------- distributions


@pytest.mark.parametrize("length", [L_SMALL, L_BIG])
@pytest.mark.parametrize("name,classes", [("temporal_order", 4), ("temporal_order_3bit", 8)])
def test_temporal_order_balance_and_coverage(name, classes, length):
  x, y, _ = batch(name, length)
  freq = np.bincount(y[:, 0], minlength=classes) / N
  assert freq.shape == (classes,)
  np.testing.assert_allclose(freq, 1 / classes, rtol=0.25)  # sd is 4-6 % of 1/classes
  sym = x.argmax(-1)
  starts = (1, 5) if classes == 4 else (1, 3, 6)
  w = length // 10
  want = {s * length // 10 + k for s in starts for k in range(w)}
  assert set(np.nonzero(sym < 2)[1].tolist()) == want  # every allowed position occurs
  assert abs(np.mean(sym[sym < 2]) - 0.5) < 0.05  # A and B equally likely
  noise = np.bincount(sym[sym >= 2], minlength=6)[2:] / np.sum(sym >= 2)
  np.testing.assert_allclose(noise, 0.25, rtol=0.05)  # c..f equally likely


def test_permutation_memorization_distributions():
  x, y, _ = batch("permutation", L_BIG)
  assert abs(y.mean() - 0.5) < 0.05
  counts = np.bincount(x[:, 1:].argmax(-1).ravel(), minlength=100)
  assert np.all(counts[:2] == 0) and np.all(counts[2:] > 0)
  np.testing.assert_allclose(counts[2:] / counts.sum(), 1 / 98, rtol=0.15)
  x, _, _ = batch("memorization", L_SMALL)
  vals = x[:, :10].argmax(-1)
  np.testing.assert_allclose(np.bincount(vals.ravel(), minlength=5) / vals.size, 0.2, rtol=0.05)
  # independent draws per position: a sequence rarely repeats one value 10 times
  assert np.mean(np.all(vals == vals[:, :1], axis=1)) < 0.01
  # and different sequences differ
  assert len({tuple(r) for r in vals.tolist()}) > 0.99 * len(vals)


# ----------------------------------------------------------------------------- determinism


def _assert_batches_equal(a, b):
  for u, v in zip(a, b):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("name", NAMES)
def test_determinism_same_and_different_keys(name):
  task = T.TASKS[name]
  chunks = small_chunks(name)
  keys = _chunk_keys(name)
  _assert_batches_equal(chunks[1], task.generate(keys[1], T.TEST_CHUNK, L_SMALL))  # same key
  for i in range(1, CHUNKS):  # other keys, other batches
    assert not np.array_equal(chunks[0].x, chunks[i].x)
    assert not np.array_equal(chunks[0].y, chunks[i].y)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_match_eager(name):
  """jit(vmap(generate)) over keys gives, for each key, the eager batch of that key alone."""
  stacked = jitted(name)["vmap"]
  for i, eager in enumerate(small_chunks(name)):
    _assert_batches_equal(T.Batch(*(a[i] for a in stacked)), eager)


@pytest.mark.parametrize("name", MIN_LENGTH_TASKS)
def test_min_length_generates(name):
  """At its minimum length the task still produces well-formed batches."""
  task = T.TASKS[name]
  L = task.min_length
  x, y, t_out = jitted(name)["min"]
  assert x.shape == (256, task.max_time(L), task.input_size)
  assert np.all(t_out < x.shape[1])
  if name == "addition":  # L = 20: l in {20, 21}, p0 in [0, 2), p1 in [2, 2 + 8)
    l = t_out[:, 0] + 1
    assert set(l.tolist()) == {20, 21}
    p0, p1 = marked_positions(x[..., 0] == 1.0, 2).T
    assert set(p0.tolist()) == {0, 1} and set(p1.tolist()) == set(range(2, 10))
    np.testing.assert_allclose(y[:, 0], (x[np.arange(256), p0, 1] + x[np.arange(256), p1, 1]) / 2,
                               rtol=1e-6)
  if name == "adding_hs97":
    _check_adding_hs97(x, y, t_out, L)


# ----------------------------------------------------------------------------- Task.errors


def test_errors_class_single_readout():
  task = T.TASKS["temporal_order"]
  logits = np.array([[[0.1, 2.0, 0.0, 0.0]], [[3.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 5.0]]],
                    np.float32)
  y = np.array([[1], [1], [3]], np.int32)
  err = task.errors(logits, y)
  assert err.dtype == jnp.float32 and err.shape == (3,)
  np.testing.assert_array_equal(err, [0.0, 1.0, 0.0])


def test_errors_any_readout_wrong():
  task = T.TASKS["memorization"]
  y = np.array([[5, 5, 2], [5, 5, 2], [5, 5, 2], [5, 5, 2]], np.int32)
  logits = np.eye(6, dtype=np.float32)[y] * 3.0  # all right
  logits[1, 2] = np.eye(6)[4]  # the recalled symbol wrong
  logits[2, 0] = np.eye(6)[0]  # a blank step wrong
  logits[3] = np.eye(6)[0]  # every readout wrong: still one wrong sequence
  err = task.errors(logits, y)
  assert err.dtype == jnp.float32 and err.shape == (4,)
  np.testing.assert_array_equal(err, [0.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("name", ["addition", "multiplication"])
def test_errors_squared_error(name):
  task = T.TASKS[name]
  y = np.array([[0.5], [0.5], [0.5], [0.2], [0.7]], np.float32)
  out = np.array([0.5 + 0.19, 0.5 + 0.21, 0.5 - 0.21, 0.2 - 0.19, 0.7 + 0.1], np.float32)
  err = task.errors(out[:, None, None], y)
  assert err.dtype == jnp.float32 and err.shape == (5,)
  np.testing.assert_array_equal(err, [0.0, 1.0, 1.0, 0.0, 0.0])  # 0.0361 right, 0.0441 wrong


def test_errors_absolute_error():
  task = T.TASKS["adding_hs97"]
  y = np.array([[0.5], [0.5], [0.5], [0.3], [0.7], [0.0]], np.float32)
  out = np.array([0.5 + 0.039, 0.5 + 0.041, 0.5 - 0.041, 0.3 - 0.039, 0.7 + 0.1, 0.04],
                 np.float32)
  err = task.errors(out[:, None, None], y)
  assert err.dtype == jnp.float32 and err.shape == (6,)
  # 0.039 right, 0.041 wrong either way, 0.1 wrong, exactly 0.04 wrong ("right if < 0.04")
  np.testing.assert_array_equal(err, [0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
  # the same 0.1 error passes Pascanu's squared-error criterion (0.01 <= 0.04)
  assert T.TASKS["addition"].errors(out[4:5, None, None], y[4:5])[0] == 0.0


# ----------------------------------------------------------------------------- test sets / get_task


def _digest(batch) -> str:
  h = hashlib.sha256()
  for a in batch:
    a = np.asarray(a)
    h.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
  return h.hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_test_chunk_fixed(name):
  chunks = small_chunks(name)
  assert all(c.x.shape[0] == T.TEST_CHUNK == c.y.shape[0] for c in chunks)
  # no seed enters: the signatures take none, and global random states do not matter
  assert list(inspect.signature(T.test_chunk).parameters) == ["name", "length", "index"]
  assert list(inspect.signature(T.test_key).parameters) == ["name", "length"]
  random.seed(12345)
  np.random.seed(12345)
  _assert_batches_equal(T.test_chunk(name, L_SMALL, 2), chunks[2])  # identical across calls
  for i in range(1, CHUNKS):  # chunks differ
    assert not np.array_equal(chunks[0].x, chunks[i].x)
  # chunk i is generate(fold_in(test_key(name, L), i)), with a fixed number of sequences
  _assert_batches_equal(
      T.TASKS[name].generate(jax.random.fold_in(T.test_key(name, L_SMALL), 3), T.TEST_CHUNK,
                             L_SMALL), chunks[3])


def test_test_sets_process_independent():
  """Another process (another PYTHONHASHSEED) gets the same test keys and test chunks."""
  lengths = (30, 31, 100)
  here = {f"{n}/{L}": np.asarray(jax.random.key_data(T.test_key(n, L))).tolist()
          for n in NAMES for L in lengths}
  assert len({tuple(v) for v in here.values()}) == len(here)  # one test set per task and length
  assert 10_000 % T.TEST_CHUNK == 0
  code = f"""
import hashlib, json, jax, numpy as np
from rnnlm_jax.synthetic import tasks as T
keys = {{f"{{n}}/{{L}}": jax.random.key_data(T.test_key(n, L)).tolist()
        for n in T.TASKS for L in {lengths!r}}}
h = hashlib.sha256()
for a in T.test_chunk("adding_hs97", {L_SMALL}, 0):
  a = np.asarray(a)
  h.update(f"{{a.dtype}}{{a.shape}}".encode() + a.tobytes())
print(json.dumps({{"keys": keys, "chunk": h.hexdigest()}}))
"""
  env = dict(os.environ, PYTHONHASHSEED="12345", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  there = json.loads(out.stdout)
  assert there["keys"] == here
  assert there["chunk"] == _digest(small_chunks("adding_hs97")[0])


def test_get_task_errors():
  with pytest.raises(ValueError, match="unknown"):
    T.get_task("no_such_task")
  for name, task in T.TASKS.items():
    assert T.get_task(name) is task
    assert T.get_task(name, task.min_length) is task
    with pytest.raises(ValueError, match=">="):
      T.get_task(name, task.min_length - 1)
  with pytest.raises(ValueError):
    T.test_chunk("addition", 19, 0)
  with pytest.raises(ValueError):
    T.test_chunk("no_such_task", 30, 0)
