"""Training speed of the parallel-in-time min cells against GRU and LSTM, by sequence length.

    nice -n 10 taskset -c 0 python scripts/bench_min_cells.py            # B=8, H=256
    python scripts/bench_min_cells.py --lengths 128,1024 --repeats 3 --batch 4 --hidden 64

One training step of one recurrent layer (input size = H): ``x [T, B, H] -> hs`` through
``rnn.scan_layer_time_major`` (input projection plus the cell's recurrence: the hand-written
lean backward for gru/lstm, the associative scan for min_gru/min_lstm), loss ``sum(hs * w)``,
gradient, SGD update, all in one jitted function; tokens/s = B * T / (seconds per step).
``NAME:seq`` is the same cell with ``backward="autodiff"``, i.e. ``lax.scan`` of its sequential
step (min_gru:seq separates "no recurrent matmul" from "parallel in time"). For every length
the cells are compiled first, then timed interleaved (one step of each in turn, ``--repeats``
rounds, after one warm-up round); the median is printed, and each cell's ratio to GRU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp

from rnnlm_jax import cells, rnn, workdir

LR = 1e-3


def cpu_model() -> str:
  """The CPU's model, logical CPU count and signature (rnnlm_jax.workdir)."""
  return (f"{workdir.cpu_model()} ({os.cpu_count()} logical CPUs), "
          f"{workdir.cpu_signature()}")


def make_cell(spec: str) -> cells.Cell:
  """``"gru"`` -> the default cell; ``"min_gru:seq"`` -> its sequential ``lax.scan`` form."""
  name, _, mode = spec.partition(":")
  return cells.get_cell(name, backward="autodiff" if mode == "seq" else "lean")


def make_step(cell: cells.Cell):
  """Jitted ``(params, h0, x, w) -> params'``: forward, backward and an SGD update."""

  def loss(params, h0, x, w):
    _, hs = rnn.scan_layer_time_major(cell, params, h0, x)
    return jnp.sum(hs * w)

  @jax.jit
  def step(params, h0, x, w):
    grads = jax.grad(loss)(params, h0, x, w)
    return jax.tree.map(lambda p, g: p - LR * g, params, grads)

  return step


def bench_length(specs, length: int, batch: int, hidden: int, repeats: int) -> dict:
  """Median seconds per training step of each cell at sequence length ``length``."""
  k_x, k_w, k_p = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(k_x, (length, batch, hidden))
  w = jax.random.normal(k_w, (length, batch, hidden)) / hidden
  runs = {}
  for spec in specs:
    cell = make_cell(spec)
    params = cell.init(k_p, hidden, hidden, init_scale=1.0 / hidden ** 0.5)
    h0 = cell.init_carry(batch, hidden)
    step = make_step(cell)
    jax.block_until_ready(step(params, h0, x, w))  # compile
    runs[spec] = (step, params, h0)
  times = {spec: [] for spec in specs}
  for rnd in range(repeats + 1):  # round 0 warms up
    for spec, (step, params, h0) in runs.items():
      t0 = time.perf_counter()
      jax.block_until_ready(step(params, h0, x, w))
      if rnd:
        times[spec].append(time.perf_counter() - t0)
  return {spec: statistics.median(ts) for spec, ts in times.items()}


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--cells", default="gru,lstm,min_gru,min_lstm,min_gru:seq")
  ap.add_argument("--lengths", default="128,1024,4096,16384")
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--hidden", type=int, default=256)
  ap.add_argument("--repeats", type=int, default=5)
  args = ap.parse_args(argv)
  specs = args.cells.split(",")
  if "gru" not in specs:
    specs.insert(0, "gru")  # the reference of the ratios
  print(f"CPU: {cpu_model()}; jax {jax.__version__}, backend {jax.default_backend()}, "
        f"devices {jax.devices()}")
  print(f"one layer, input = H = {args.hidden}, batch B = {args.batch}, float32; forward + "
        f"backward + SGD update; median of {args.repeats} interleaved steps after 1 warm-up")
  print("| T | " + " | ".join(f"{s} tok/s" for s in specs) + " | "
        + " | ".join(f"{s} / gru" for s in specs if s != "gru") + " |")
  print("|---" * (2 * len(specs)) + "|")
  for length in (int(t) for t in args.lengths.split(",")):
    sec = bench_length(specs, length, args.batch, args.hidden, args.repeats)
    tok = {s: args.batch * length / t for s, t in sec.items()}
    print(f"| {length} | " + " | ".join(f"{tok[s]:,.0f}" for s in specs) + " | "
          + " | ".join(f"{tok[s] / tok['gru']:.2f}x" for s in specs if s != "gru") + " |",
          flush=True)


if __name__ == "__main__":
  main()
