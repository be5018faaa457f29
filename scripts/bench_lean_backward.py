"""A/B: language-model training steps with the lean backward pass on and off, in one process.

    python scripts/bench_lean_backward.py

For a few rows of scripts/bench.py, builds rnnlm_jax's train step twice, with
``lm.LMSpec.backward = "autodiff"`` (cells from ``cells.get_cell(name, backward="autodiff")``:
autodiff of ``lax.scan``) and ``"lean"`` (the default: the hand-written backward passes of
``Cell.recurrence``), runs them interleaved (5 blocks of ~0.5 s) and prints the median ms per
step, the speed-up and the compiled temporary memory of each.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scripts/bench.py)

ROWS = [("char", "lstm"), ("pascanu", "lstm"), ("ptb_small", "lstm"), ("char", "gru"),
        ("pascanu", "rnn_tanh")]

for wl, cell in ROWS:
  w = bench.WORKLOADS[wl]
  batches = bench.random_batches(w)
  trainers = {}
  for lean in (False, True):
    tr = bench.OursTrainer(w, cell, "float32", batches, backward="lean" if lean else "autodiff")
    bench._block(tr, 2)
    trainers[lean] = tr
  n = max(2, int(0.5 / (bench._block(trainers[False], 2) / 2)))
  times = {False: [], True: []}
  for _ in range(5):
    for lean, tr in trainers.items():
      times[lean].append(bench._block(tr, n, 0.2) / n)
  off, on = statistics.median(times[False]), statistics.median(times[True])
  print(f"{wl} {cell}: autodiff scan {off * 1e3:.2f} ms, lean {on * 1e3:.2f} ms, speed-up "
        f"{off / on:.2f}x, temp MiB {trainers[False].temp_bytes / 2**20:.1f} -> "
        f"{trainers[True].temp_bytes / 2**20:.1f}", flush=True)
