"""A/B benchmarks of one change at a time, both sides in one process, interleaved.

    python scripts/bench_ab.py head                 # float32 LM head: 3-D custom VJP vs 2-D autodiff
    python scripts/bench_ab.py bf16                 # train step: float32 vs compute_dtype=bfloat16
    python scripts/bench_ab.py unroll               # train step: model.scan_unroll 1 vs 4
    python scripts/bench_ab.py onednn               # train step: model.lstm_backend scan vs onednn
    python scripts/bench_ab.py dw                   # train step: dW_hh as 3-D einsum vs 2-D GEMM
    python scripts/bench_ab.py head --runs 1 --rows ptb_small:lstm

Comparisons (A = the baseline, B = the candidate; speed-up = A's time / B's):

* ``head``: the two forms of ``fused.softmax_xent``'s float32 head: **3-D custom VJP**
  (``fused._xent``, the float32 head until 2026-12-07: logits ``[T, B, V]`` from
  ``einsum("tbk,kn->tbn")``, backward written by hand from the saved logits) and **2-D
  autodiff** (``fused._xent_2d``, the float32 head now: ``[T*B, H] @ [H, V]`` and
  ``optax.softmax_cross_entropy_with_integer_labels``, differentiated by JAX). Part 1 times the
  head's forward + backward alone at each workload's shapes; part 2 the full training step.
* ``bf16``: the full training step with ``model.compute_dtype`` float32 against bfloat16
  (input projections, recurrent matmuls and head with bfloat16 operands, float32 accumulation;
  worth it only where the CPU has bfloat16 arithmetic: AVX512_BF16 or AMX).
* ``unroll``: the full training step with ``model.scan_unroll`` 1 against 4 (the hand-written
  recurrences' forward and backward scans unrolled 4 steps per loop iteration).
* ``onednn``: the full training step with ``model.lstm_backend`` scan against onednn (each LSTM
  layer, forward and backward, by oneDNN's RNN primitive through an XLA FFI custom call,
  :mod:`rnnlm_jax.onednn`; needs ``pip install -e ".[onednn]"``). Default rows: the
  LSTM at ptb_small's shapes and at configs/shakespeare_char.py's (``shakespeare_char``: 2x256,
  embedding 64, vocabulary 65, bptt 100, batch 32; no dropout, as every workload here).
* ``dw``: the full training step with the recurrent weight's gradient (``dW_hh = sum_t
  h_{t-1}^T dgates_t``, :func:`rnnlm_jax.fused.recurrent_weight_grad`, every hand-written
  recurrence) as the **3-D einsum** ``t...bh,t...bg->...hg`` (until 2026-12-07: XLA:CPU copies
  both ``[T, B, *]`` operands transposed first) against the **2-D GEMM** contracting the ``T*B``
  rows of both as they lie (float32 now).

The training step is scripts/bench.py's (``OursTrainer``: embedding, RNN stack, head, clip,
SGD). Each run interleaves A and B (A, B, A, B, ...) in 5 blocks of ~0.5 s and takes medians;
``--runs`` repeats the whole comparison and the summary gives the median speed-up over runs and
its range. Prints the CPU model and flags first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scripts/bench.py)

from rnnlm_jax import fused  # noqa: E402

FORMS = {"3-D custom VJP": lambda h, w, b, t: fused._xent(h, w, b, t, jnp.float32),
         "2-D autodiff": fused._xent_2d}
# the float32 forms of fused.recurrent_weight_grad
DW_FORMS = {"3-D einsum": lambda h, d, dtype: jnp.einsum("t...bh,t...bg->...hg", h, d),
            "2-D GEMM": fused.recurrent_weight_grad}
SIDES = {"head": ("3-D custom VJP", "2-D autodiff"), "bf16": ("float32", "bfloat16"),
         "unroll": ("unroll 1", "unroll 4"), "onednn": ("scan", "onednn"),
         "dw": tuple(DW_FORMS)}
DEFAULT_ROWS = "ptb_small:lstm,ptb_small:rnn_tanh,ptb_medium:lstm,char:lstm,char:rnn_tanh"
ONEDNN_ROWS = "ptb_small:lstm,shakespeare_char:lstm"
# bench.WORKLOADS plus configs/shakespeare_char.py's shapes (bench's "char" is a 1x512 LSTM)
WORKLOADS = {**bench.WORKLOADS, "shakespeare_char": bench.Workload(
    "shakespeare_char", 65, 64, 256, 2, 32, 100, "configs/shakespeare_char.py shapes")}


def head_grad_fn(form):
  """jitted ``(h [T, B, H], w [H, V], b [V], t [T, B]) -> grads`` of the summed loss."""
  return jax.jit(jax.grad(lambda h, w, b, t: FORMS[form](h, w, b, t).sum(), argnums=(0, 1, 2)))


class _Call:
  """A zero-argument jitted call with the step/sync interface of bench._block."""

  def __init__(self, fn, *args):
    self.fn, self.args, self.out = fn, args, None

  def step(self):
    self.out = self.fn(*self.args)

  def sync(self):
    jax.block_until_ready(self.out)


def full_step_trainer(w, cell: str, side: str, batches):
  """bench.OursTrainer for one side: a compute dtype, an unroll, an LSTM backend, or a form of
  ``fused``'s float32 head or recurrent weight gradient swapped in while the step is traced (the
  first call; later calls run the compiled step)."""
  if side in ("scan", "onednn"):
    tr = bench.OursTrainer(w, cell, "float32", batches, lstm_backend=side)
    bench._block(tr, 2)
    return tr
  if side in ("float32", "bfloat16") or side.startswith("unroll"):
    dtype = side if side in ("float32", "bfloat16") else "float32"
    unroll = int(side.split()[1]) if side.startswith("unroll") else 1
    tr = bench.OursTrainer(w, cell, dtype, batches, unroll=unroll)
    bench._block(tr, 2)
    return tr
  name, form = ("recurrent_weight_grad", DW_FORMS[side]) if side in DW_FORMS else (
      "_xent_2d", FORMS[side])
  saved = getattr(fused, name)
  setattr(fused, name, form)
  try:
    tr = bench.OursTrainer(w, cell, "float32", batches)
    bench._block(tr, 2)
  finally:
    setattr(fused, name, saved)
  return tr


def interleaved_ms(runners: dict, repeats: int = 5, block_s: float = 0.5) -> dict:
  """Median ms per call of each runner, run interleaved in ``repeats`` blocks."""
  first = next(iter(runners.values()))
  n = max(2, int(block_s / (bench._block(first, 3) / 3)))
  times = {k: [] for k in runners}
  for _ in range(repeats):
    for k, r in runners.items():
      times[k].append(bench._block(r, n, 0.2) / n)
  return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def one_run(compare: str, rows) -> list[dict]:
  out = []
  head_workloads = sorted({wl for wl, _ in rows}, key=list(WORKLOADS).index)
  for wl in head_workloads if compare == "head" else []:  # the head alone: "head" only
    w = WORKLOADS[wl]
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.standard_normal((w.bptt, w.batch, w.hidden)), jnp.float32)
    wt = jnp.asarray(0.1 * rng.standard_normal((w.hidden, w.vocab)), jnp.float32)
    b = jnp.zeros((w.vocab,), jnp.float32)
    t = jnp.asarray(rng.integers(0, w.vocab, (w.bptt, w.batch)), jnp.int32)
    runners = {f: _Call(head_grad_fn(f), h, wt, b, t) for f in FORMS}
    for r in runners.values():
      bench._block(r, 2)
    out.append({"part": "head fwd+bwd", "workload": wl, "cell": "-", **interleaved_ms(runners)})
  for wl, cell in rows:
    w = WORKLOADS[wl]
    batches = bench.random_batches(w)
    runners = {side: full_step_trainer(w, cell, side, batches) for side in SIDES[compare]}
    out.append({"part": "train step", "workload": wl, "cell": cell, **interleaved_ms(runners)})
  return out


def cpu_line() -> str:
  """CPU model, CPU count and the vector/matrix extensions XLA:CPU can use."""
  return f"{bench.hardware().get('cpu')}, {os.cpu_count()} CPUs, {bench.cpu_extensions()}"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("compare", choices=sorted(SIDES), help="which change to measure")
  ap.add_argument("--runs", type=int, default=3, help="repeat the whole comparison N times")
  ap.add_argument("--rows", default=None, help="workload:cell,... for the train steps "
                  f"(default {DEFAULT_ROWS}; onednn: {ONEDNN_ROWS})")
  args = ap.parse_args(argv)
  if args.rows is None:
    args.rows = ONEDNN_ROWS if args.compare == "onednn" else DEFAULT_ROWS
  rows = [tuple(r.split(":")) for r in args.rows.split(",") if r]
  for wl, cell in rows:
    if wl not in WORKLOADS or cell not in bench.CELLS:
      ap.error(f"unknown row {wl}:{cell} (workloads {', '.join(WORKLOADS)}; "
               f"cells {', '.join(bench.CELLS)})")
  print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_line()}; jax "
        f"{jax.__version__}; command: python scripts/bench_ab.py {' '.join(argv or sys.argv[1:])}",
        flush=True)
  if args.compare == "onednn":
    from rnnlm_jax import onednn  # pylint: disable=import-outside-toplevel
    if not onednn.available():
      sys.exit(f"oneDNN layer unavailable: {onednn.unavailable_reason()}")
    print(f"# oneDNN {onednn.version()} (rnnlm_jax.onednn custom call), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
  BASELINE, CANDIDATE = SIDES[args.compare]
  runs = []
  for k in range(args.runs):
    res = one_run(args.compare, rows)
    runs.append(res)
    for r in res:
      print(f"run {k + 1}: {r['part']:12s} {r['workload']:10s} {r['cell']:8s} "
            f"{BASELINE} {r[BASELINE]:8.2f} ms  {CANDIDATE} {r[CANDIDATE]:8.2f} ms  "
            f"speed-up {r[BASELINE] / r[CANDIDATE]:.2f}x", flush=True)
  print(f"\n| part | workload | cell | {BASELINE} ms | {CANDIDATE} ms | speed-up, median "
        f"(range) over {args.runs} run(s) |\n|---|---|---|---:|---:|---|")
  for i, r in enumerate(runs[0]):
    base = [run[i][BASELINE] for run in runs]
    cand = [run[i][CANDIDATE] for run in runs]
    ups = [a / c for a, c in zip(base, cand)]
    print(f"| {r['part']} | {r['workload']} | {r['cell']} | {statistics.median(base):.2f} | "
          f"{statistics.median(cand):.2f} | {statistics.median(ups):.2f}× "
          f"({min(ups):.2f}–{max(ups):.2f}) |")


if __name__ == "__main__":
  main()
