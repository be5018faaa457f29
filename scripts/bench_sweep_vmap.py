"""Benchmark: one K-point sweep (K seeds) trained vmapped vs one run after another.

    python scripts/bench_sweep_vmap.py                       # tanh RNN, 50 units, L=200, K=8
    python scripts/bench_sweep_vmap.py --cpu_devices 2       # the group split over 2 CPU devices
    python scripts/bench_sweep_vmap.py --cell lstm --length 100

Prints, in one process:

1. steady-state cost per run-update (forward + backward + clip + SGD, data generated inside
   the program; compilation excluded), the plain single-run program vs the K-member program,
   medians of interleaved repeats, and the achieved GFLOP/s of the matmuls against this
   machine's float32 matmul peak (measured here on a 1024^3 product);
2. the wall time of the whole sweep through ``synthetic_task.train_group`` (compilation,
   the 10,000-sequence test evaluation and the workdir files included): ``vmap=False`` (each
   point alone, the program compiled once and reused) vs ``vmap=True``, and their ratio.

Machines are shared and noisy: compare the two columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--cell", default="rnn_tanh")
parser.add_argument("--task", default="temporal_order")
parser.add_argument("--length", type=int, default=200)
parser.add_argument("--members", type=int, default=8, help="points in the sweep (seeds)")
parser.add_argument("--hidden", type=int, default=50)
parser.add_argument("--batch", type=int, default=20)
parser.add_argument("--chunk", type=int, default=100, help="updates per timed program call")
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--sweep_steps", type=int, default=1000,
                    help="updates per point in part 2 (0 skips part 2)")
parser.add_argument("--cpu_devices", type=int, default=1)
args = parser.parse_args()
if args.cpu_devices > 1:  # before JAX starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={args.cpu_devices}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from rnnlm_jax import cells, config_base  # noqa: E402
from rnnlm_jax.tasks import synthetic as ts  # noqa: E402
from rnnlm_jax.synthetic import tasks as tasks_lib  # noqa: E402
from rnnlm_jax.workdir import hardware, library_versions  # noqa: E402


def make_config(seed: int):
  c = config_base.synthetic_config()
  c.seed = seed
  c.synthetic.problem, c.synthetic.length = args.task, args.length
  c.model.cell, c.model.hidden_size = args.cell, args.hidden
  c.model.init = "smart_tanh" if args.cell == "rnn_tanh" else "uniform"
  c.optim.clip_mode, c.optim.clip_value = "global_norm", 1.0
  c.train.batch_size = args.batch
  c.train.progress_bar = False
  return c


def matmul_peak() -> float:
  """float32 GFLOP/s of a 1024^3 matmul on all cores (median of 5)."""
  a = jnp.ones((1024, 1024), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  times = []
  for _ in range(5):
    t = time.perf_counter()
    for _ in range(10):
      out = f(a)
    out.block_until_ready()
    times.append((time.perf_counter() - t) / 10)
  return 2 * 1024**3 / np.median(times) / 1e9


def update_flops(config) -> float:
  """Matmul FLOPs of one update: forward, backward (dh and dW) and the input projection."""
  task = tasks_lib.get_task(config.synthetic.problem)
  g = cells.get_cell(config.model.cell).num_gates
  T, B, H, I = task.max_time(args.length), args.batch, args.hidden, task.input_size
  recurrent = 2 * T * B * H * g * H  # one [B,H] x [H,gH] per step
  inputs = 2 * T * B * I * g * H
  return 3 * (recurrent + inputs)  # forward, d(inputs), d(weights)


def steady_state():
  configs = [make_config(s) for s in range(args.members)]
  seq_chunk = ts.make_train_chunk(configs[0], vmapped=False)
  grp_chunk = ts.make_train_chunk(configs[0], vmapped=True)
  states = [ts.init_member_state(c) for c in configs]
  hypers = [ts._hyper(c) for c in configs]
  g_states, g_hyper, g_active, place = ts._place_members(states, hypers, vmapped=True)
  g_active = place(jnp.asarray(g_active))
  s_states = [ts._stack([s]) for s in states]
  s_hyper = [ts._stack([h]) for h in hypers]
  one = jnp.ones((1,), bool)
  n = args.chunk

  def run_seq():
    for k in range(args.members):
      s_states[k], m = seq_chunk(s_states[k], s_hyper[k], one, n)
    return m

  def run_grp():
    nonlocal g_states
    g_states, m = grp_chunk(g_states, g_hyper, g_active, n)
    return m

  t0 = time.perf_counter()
  jax.block_until_ready(run_seq())
  t_seq_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(run_grp())
  t_grp_compile = time.perf_counter() - t0
  seq, grp = [], []
  for _ in range(args.repeats):  # interleaved
    t0 = time.perf_counter()
    jax.block_until_ready(run_seq())
    seq.append((time.perf_counter() - t0) / (n * args.members))
    t0 = time.perf_counter()
    jax.block_until_ready(run_grp())
    grp.append((time.perf_counter() - t0) / (n * args.members))
  return np.median(seq), np.median(grp), t_seq_compile, t_grp_compile, update_flops(configs[0])


def recurrence_floor():
  """Microseconds per time step of the bare forward recurrence ``h = tanh(x + h W)``.

  Four shapes: one model (batch B); K models with a member axis; one model with batch K*B
  (the same arithmetic as K models, one weight matrix); one model with H = 4 (nearly no
  arithmetic: the fixed cost of a loop iteration, all that batching models can save).
  """
  T, B, H, K = 200, args.batch, args.hidden, args.members

  def loop(h0, xs, w):
    return jax.lax.scan(lambda h, x: (jnp.tanh(x + h @ w), None), h0, xs)[0]

  f = jax.jit(loop)

  def per_step(lead, hidden):
    w = jnp.full(lead[:-1] + (hidden, hidden), 0.01)
    h0, xs = jnp.zeros(lead + (hidden,)), jnp.ones((T,) + lead + (hidden,))
    f(h0, xs, w).block_until_ready()
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      for _ in range(20):
        out = f(h0, xs, w)
      out.block_until_ready()
      times.append((time.perf_counter() - t0) / 20 / T * 1e6)
    return float(np.median(times))

  return {f"1 model, batch {B}": per_step((B,), H),
          f"{K} models (member axis), batch {B}": per_step((K, B), H),
          f"1 model, batch {K * B}": per_step((K * B,), H),
          f"1 model, batch {B}, H=4 (loop overhead)": per_step((B,), 4)}


def whole_sweep(vmap: bool) -> float:
  configs = [make_config(s) for s in range(args.members)]
  for c in configs:
    c.train.max_steps = args.sweep_steps
    c.train.eval_every = args.sweep_steps
    c.train.log_every = min(200, args.sweep_steps)
    c.train.checkpoint_every_steps = args.sweep_steps
  with tempfile.TemporaryDirectory() as tmp:
    dirs = [os.path.join(tmp, f"seed={c.seed}") for c in configs]
    t0 = time.perf_counter()
    ts.train_group(configs, dirs, vmap=vmap)
    return time.perf_counter() - t0


def main():
  hw = hardware()
  vers = library_versions()
  print(f"# {hw['cpu']}, {hw['cpu_count']} cores, JAX devices: {jax.device_count()} "
        f"({jax.default_backend()}); jax {vers['jax']}, flax {vers['flax']}, optax {vers['optax']}")
  print(f"# sweep: {args.members} seeds of {args.cell} {args.hidden} units, {args.task} "
        f"L={args.length}, batch {args.batch}, SGD + global-norm clip")
  peak = matmul_peak()
  seq, grp, c_seq, c_grp, flops = steady_state()
  print(f"# float32 matmul peak (1024^3, all cores): {peak:,.1f} GFLOP/s")
  print()
  print("| program | ms per run-update | matmul GFLOP/s | % of peak | compile s |")
  print("|---|---:|---:|---:|---:|")
  for name, t, c in (("one run at a time (plain program)", seq, c_seq),
                     (f"{args.members} runs in one program (member axis"
                      f"{', %d devices' % jax.device_count() if jax.device_count() > 1 else ''})",
                      grp, c_grp)):
    gf = flops / t / 1e9
    print(f"| {name} | {t * 1e3:.3f} | {gf:.1f} | {100 * gf / peak:.0f}% | {c:.1f} |")
  print(f"\nsteady-state speed-up of the vmapped program: {seq / grp:.2f}x")
  floor = recurrence_floor()
  print(f"\nbare forward recurrence tanh(x + h W), H={args.hidden}, per time step:")
  for name, us in floor.items():
    print(f"  {name:45s} {us:7.2f} us")
  if args.sweep_steps > 0:
    t_seq = whole_sweep(vmap=False)
    t_grp = whole_sweep(vmap=True)
    print(f"whole sweep ({args.members} points x {args.sweep_steps} updates, compile + test "
          f"evaluation + files): sequential {t_seq:.1f} s, vmapped {t_grp:.1f} s, "
          f"ratio {t_seq / t_grp:.2f}x")


if __name__ == "__main__":
  main()
