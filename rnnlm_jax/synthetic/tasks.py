"""Synthetic long-range tasks as deterministic, jittable generators.

Every task is a :class:`Task` whose ``generate(key, batch_size, length)`` is a pure JAX function:
the same key gives the same sequences, it runs inside ``jit``/``vmap`` (training draws fresh
sequences each step from ``fold_in(data_key, step)``), and it returns a :class:`Batch`::

    x      [batch, time, input_size] float32   inputs, zero-padded after each sequence's end
    y      [batch, readouts]                    int32 class ids, or float32 real targets
    t_out  [batch, readouts] int32              the time step at which each target is read out

``time`` is ``task.max_time(length)``. A sequence counts as wrong when any of its readouts is
wrong (``Task.errors``); a run succeeds when fewer than 1 % of the test set is wrong.

Sources. Pascanu, Mikolov & Bengio 2013 ("On the difficulty of training recurrent neural
networks", ICML) and their code (github.com/pascanur/trainingRNNs: tempOrder.py,
tempOrder3bit.py, addition.py, multiplication.py, permutation.py, memorization.py), which
follow Hochreiter & Schmidhuber 1997 ("Long short-term memory", Neural Computation, section
5). The definitions below are the code's (where the paper's text differs, the code wins, as
noted). Integer positions such as ``int(0.1 * l)`` are computed in exact integer arithmetic.

One deliberate difference: Pascanu's addition/multiplication draw one length per *batch*; here
each *sequence* draws its own (shapes stay fixed for ``jit``: sequences are zero-padded to
``max_time`` and read out at their own last step), so the distribution of each sequence is
the same but batches mix lengths.

Tasks (``TASKS``):

* ``temporal_order`` (Pascanu code, tempOrder.py): ``l = L`` steps of one-hot symbols over 6
  channels; symbols {A, B} are channels 0, 1 and noise {c, d, e, f} channels 2-5. A or B (v0)
  at ``p0 = int(0.1 l) + U{0..int(0.1 l)-1}``, A or B (v1) at ``p1 = int(0.5 l) + U{0..int(0.1 l)-1}``
  (the code's ranges; its docstring says p0 in [1, L/10]), random noise elsewhere. Target:
  class ``v0 + 2 v1`` of 4 (AA, BA, AB, BB) at the last step. Softmax output, cross-entropy.
* ``temporal_order_3bit`` (tempOrder3bit.py): as above with three positions starting at
  ``int(0.1 l)``, ``int(0.3 l)``, ``int(0.6 l)``; class ``v0 + 2 v1 + 4 v2`` of 8.
* ``addition`` (Pascanu code, addition.py): length ``l = L + U{0..int(0.1 L)-1}``; 2 channels:
  channel 1 values ``U[0, 1)``, channel 0 markers, 1 at ``p0 = U{0..int(0.1 l)-1}`` and
  ``p1 = int(0.1 l) + U{0..int(0.4 l)-1}``, 0 elsewhere. Target: ``(v[p0] + v[p1]) / 2``, one
  linear output at the last step, squared-error loss; wrong if the squared error > 0.04.
* ``multiplication`` (multiplication.py): as ``addition``, target ``v[p0] * v[p1]``.
* ``permutation`` (permutation.py): ``l = L`` one-hot symbols over 100 channels; the first
  symbol is 0 or 1, the others uniform in {2..99}; predict the first symbol (class of 100) at
  the last step.
* ``memorization`` (memorization.py, noiseless memorization): 10 symbols over 5 values, then
  ``L`` blanks, a trigger, and 9 more blanks (``l = L + 20`` steps, 7 input channels: values 0-4,
  blank 5, trigger 6). Targets at every step (6 classes): "blank" (5) for the first ``L + 10``
  steps, then the 10 symbols in order. Wrong if any step is wrong.
* ``adding_hs97`` (Hochreiter & Schmidhuber 1997, experiment 4, the "adding problem"):
  ``l = L + U{0..int(L/10)}`` pairs (value ``U[-1, 1]``, marker); one pair among the first 10
  and another among the first ``int(L/2) - 1`` (distinct) are marked 1; the first and last
  markers are -1 unless marked, 0 elsewhere; the value of a marked first pair counts as 0.
  Target ``0.5 + (X1 + X2) / 4``; wrong if ``|error| >= 0.04`` (their criterion, distinct from
  Pascanu's squared error > 0.04: keep them apart by name).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

# Test sets: 10,000 sequences generated in chunks of this many, chunk i from
# fold_in(test_key(task, length), i); independent of the evaluation batch size.
TEST_CHUNK = 500


class Batch(NamedTuple):
  """One batch of sequences (see the module docstring for shapes)."""

  x: jax.Array
  y: jax.Array
  t_out: jax.Array


class Task(NamedTuple):
  """A synthetic task: its sizes, its loss/criterion and a pure generator."""

  name: str
  input_size: int
  output_size: int  # classes ("class" tasks) or real outputs ("real" tasks)
  kind: str  # "class": softmax + cross-entropy; "real": linear + squared error
  criterion: str  # how a sequence is judged wrong: "argmax" | "sq_err>0.04" | "abs_err>=0.04"
  min_length: int  # smallest valid L
  max_time: Callable[[int], int]  # padded number of time steps for length L
  generate: Callable[[jax.Array, int, int], Batch]  # (key, batch_size, L) -> Batch

  def errors(self, outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-sequence 0/1 errors, float32 ``[batch]``.

    Args:
      outputs: ``[batch, readouts, output_size]`` logits ("class") or predictions ("real").
      y: ``[batch, readouts]`` targets.
    """
    if self.kind == "class":
      wrong = jnp.argmax(outputs, -1) != y
    else:
      err = outputs[..., 0] - y
      wrong = err**2 > 0.04 if self.criterion == "sq_err>0.04" else jnp.abs(err) >= 0.04
    return jnp.any(wrong, axis=-1).astype(jnp.float32)


def _check_length(name: str, length: int, minimum: int) -> None:
  if length < minimum:
    raise ValueError(f"synthetic.length must be >= {minimum} for {name}, got {length}")


def _rows(batch_size: int) -> jax.Array:
  return jnp.arange(batch_size)[:, None]


# ----------------------------------------------------------------------------- temporal order


def _temporal_order(key, batch_size: int, length: int, starts_tenths: tuple[int, ...]) -> Batch:
  l = length
  width = l // 10  # int(0.1 l)
  k_noise, k_pos, k_val = jax.random.split(key, 3)
  symbols = jax.random.randint(k_noise, (batch_size, l), 2, 6)
  starts = jnp.array([(s * l) // 10 for s in starts_tenths])
  pos = jax.random.randint(k_pos, (batch_size, len(starts_tenths)), 0, width) + starts
  bits = jax.random.randint(k_val, (batch_size, len(starts_tenths)), 0, 2)
  symbols = symbols.at[_rows(batch_size), pos].set(bits)
  target = jnp.sum(bits * (2 ** jnp.arange(len(starts_tenths))), axis=1)
  return Batch(jax.nn.one_hot(symbols, 6, dtype=jnp.float32), target[:, None].astype(jnp.int32),
               jnp.full((batch_size, 1), l - 1, jnp.int32))


def temporal_order(key, batch_size: int, length: int) -> Batch:
  """Pascanu's temporal order task (2 bits, 4 classes); see the module docstring."""
  return _temporal_order(key, batch_size, length, (1, 5))


def temporal_order_3bit(key, batch_size: int, length: int) -> Batch:
  """Pascanu's 3-bit temporal order task (8 classes); see the module docstring."""
  return _temporal_order(key, batch_size, length, (1, 3, 6))


# ----------------------------------------------------------------------------- addition / multiplication


def _marked_pair(key, batch_size: int, length: int, combine) -> Batch:
  T = length + length // 10 - 1
  k_len, k0, k1, k_val = jax.random.split(key, 4)
  l = length + jax.random.randint(k_len, (batch_size,), 0, length // 10)  # per sequence
  p0 = jax.random.randint(k0, (batch_size,), 0, l // 10)
  p1 = jax.random.randint(k1, (batch_size,), 0, (4 * l) // 10) + l // 10
  t = jnp.arange(T)[None, :]
  values = jnp.where(t < l[:, None], jax.random.uniform(k_val, (batch_size, T)), 0.0)
  markers = ((t == p0[:, None]) | (t == p1[:, None])).astype(jnp.float32)
  rows = jnp.arange(batch_size)
  target = combine(values[rows, p0], values[rows, p1])
  return Batch(jnp.stack([markers, values], -1), target[:, None].astype(jnp.float32),
               (l - 1)[:, None].astype(jnp.int32))


def addition(key, batch_size: int, length: int) -> Batch:
  """Pascanu's addition task: the mean of the two marked values; see the module docstring."""
  return _marked_pair(key, batch_size, length, lambda a, b: (a + b) / 2)


def multiplication(key, batch_size: int, length: int) -> Batch:
  """Pascanu's multiplication task: the product of the two marked values."""
  return _marked_pair(key, batch_size, length, lambda a, b: a * b)


# ----------------------------------------------------------------------------- permutation, memorization


def permutation(key, batch_size: int, length: int) -> Batch:
  """Pascanu's random permutation task: recall the first symbol (0 or 1) after ``L`` steps."""
  k_sym, k_val = jax.random.split(key)
  symbols = jax.random.randint(k_sym, (batch_size, length), 2, 100)
  first = jax.random.randint(k_val, (batch_size,), 0, 2)
  symbols = symbols.at[:, 0].set(first)
  return Batch(jax.nn.one_hot(symbols, 100, dtype=jnp.float32), first[:, None].astype(jnp.int32),
               jnp.full((batch_size, 1), length - 1, jnp.int32))


MEM_VALUES, MEM_POSITIONS = 5, 10


def memorization(key, batch_size: int, length: int) -> Batch:
  """Pascanu's noiseless memorization task (5 values, 10 positions); see the module docstring."""
  n, v = MEM_POSITIONS, MEM_VALUES
  T = length + 2 * n
  values = jax.random.randint(key, (batch_size, n), 0, v)
  blank, trigger = v, v + 1
  inputs = jnp.full((batch_size, T), blank).at[:, :n].set(values).at[:, length + n].set(trigger)
  targets = jnp.full((batch_size, T), blank).at[:, T - n:].set(values)
  return Batch(jax.nn.one_hot(inputs, v + 2, dtype=jnp.float32), targets.astype(jnp.int32),
               jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (batch_size, T)))


# ----------------------------------------------------------------------------- Hochreiter & Schmidhuber


def adding_hs97(key, batch_size: int, length: int) -> Batch:
  """Hochreiter & Schmidhuber's 1997 adding problem; see the module docstring."""
  T = length + length // 10  # the longest sequence
  half = length // 2 - 1  # the second marked pair is among the first int(L/2) - 1
  k_len, k0, k1, k_val = jax.random.split(key, 4)
  l = length + jax.random.randint(k_len, (batch_size,), 0, length // 10 + 1)
  p0 = jax.random.randint(k0, (batch_size,), 0, 10)
  p1 = (p0 + 1 + jax.random.randint(k1, (batch_size,), 0, half - 1)) % half  # != p0
  t = jnp.arange(T)[None, :]
  inside = t < l[:, None]
  values = jnp.where(inside, jax.random.uniform(k_val, (batch_size, T), minval=-1.0, maxval=1.0), 0.0)
  marked = (t == p0[:, None]) | (t == p1[:, None])
  ends = (t == 0) | (t == (l - 1)[:, None])
  markers = jnp.where(marked, 1.0, jnp.where(ends & inside, -1.0, 0.0))
  counted = jnp.where(marked & (t > 0), values, 0.0)  # a marked first pair counts as 0
  target = 0.5 + jnp.sum(counted, axis=1) / 4.0
  return Batch(jnp.stack([values, markers], -1), target[:, None].astype(jnp.float32),
               (l - 1)[:, None].astype(jnp.int32))


TASKS: dict[str, Task] = {
    "temporal_order": Task("temporal_order", 6, 4, "class", "argmax", 10, lambda L: L,
                           temporal_order),
    "temporal_order_3bit": Task("temporal_order_3bit", 6, 8, "class", "argmax", 10, lambda L: L,
                                temporal_order_3bit),
    "addition": Task("addition", 2, 1, "real", "sq_err>0.04", 20, lambda L: L + L // 10 - 1,
                     addition),
    "multiplication": Task("multiplication", 2, 1, "real", "sq_err>0.04", 20,
                           lambda L: L + L // 10 - 1, multiplication),
    "permutation": Task("permutation", 100, 100, "class", "argmax", 2, lambda L: L, permutation),
    "memorization": Task("memorization", MEM_VALUES + 2, MEM_VALUES + 1, "class", "argmax", 1,
                         lambda L: L + 2 * MEM_POSITIONS, memorization),
    "adding_hs97": Task("adding_hs97", 2, 1, "real", "abs_err>=0.04", 24,
                        lambda L: L + L // 10, adding_hs97),
}


def get_task(name: str, length: int | None = None) -> Task:
  """The task called ``name``; checks ``length`` against its minimum when given."""
  if name not in TASKS:
    raise ValueError(f"unknown synthetic.problem {name!r}; choose one of {', '.join(TASKS)}")
  task = TASKS[name]
  if length is not None:
    _check_length(name, int(length), task.min_length)
  return task


def test_key(name: str, length: int) -> jax.Array:
  """The key of the fixed test set of ``(task, length)``: the same for every seed and run."""
  code = sum((i + 1) * ord(ch) for i, ch in enumerate(name))  # stable across processes
  return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(20130101), code), int(length))


def valid_key(name: str, length: int) -> jax.Array:
  """The key of the fixed validation set of ``(task, length)`` (``synthetic.valid_size``): the
  same for every seed and run, a stream apart from the test set's (whose chunks are keyed
  ``fold_in(test_key, i)`` for small ``i``)."""
  return jax.random.fold_in(test_key(name, length), 2**31 - 1)


def test_chunk(name: str, length: int, index: int) -> Batch:
  """Chunk ``index`` (``TEST_CHUNK`` sequences) of the fixed test set."""
  task = get_task(name, length)
  return task.generate(jax.random.fold_in(test_key(name, length), index), TEST_CHUNK, length)
