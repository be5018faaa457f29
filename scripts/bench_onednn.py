"""One LSTM layer's training step (forward + backward w.r.t. every input and weight): the
project's own LSTM (``cells.lstm.project_inputs`` + ``cells.lstm_recurrence``, lean custom
VJP, jitted) against oneDNN's LSTM primitive through an XLA FFI custom call
(:mod:`rnnlm_jax.onednn`, jitted), and ``torch.nn.LSTM`` (whose CPU LSTM also runs on oneDNN)
when torch is installed, all in one process, interleaved.

    python scripts/bench_onednn.py                       # all shapes, 5 runs
    python scripts/bench_onednn.py --runs 9 --shapes ptb_small
    python scripts/bench_onednn.py --no-torch --forward  # also forward-only (inference) times

Each run times every implementation once per shape, in rotating order, each for about
``--seconds`` (a block of calls; the per-call time is the block's mean). Reported: per
implementation the median over runs of the per-call time (ms) and its min-max, and the ratio
ours / oneDNN (and ours / torch) as the median of the per-run ratios (paired, so load that
drifts between runs cancels) with its min-max. ratio > 1: the other is faster than ours.
Prints the CPU model and flags, jax, oneDNN and torch versions and thread counts first.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells, onednn, workdir

SHAPES = {  # name: (T, B, I, H)
    "ptb_small": (20, 20, 200, 200),
    "char_i64": (100, 32, 64, 256),
    "char_i256": (100, 32, 256, 256),
}


def cpu_info() -> str:
  """The CPU's model, logical CPU count and signature (rnnlm_jax.workdir)."""
  return f"{workdir.cpu_model()}; {os.cpu_count()} logical CPUs; {workdir.cpu_signature()}"


def torch_onednn_version(torch) -> str:
  """The oneDNN (MKL-DNN) version torch was built with, from its build configuration."""
  for line in torch.__config__.show().splitlines():
    if "MKL-DNN" in line or "oneDNN" in line:
      return line.strip(" -")
  return "oneDNN version unknown"


def make_inputs(T, B, I, H, seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 8)
  u = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -0.1, 0.1)
  params = {"w_ih": u(k[0], (I, 4 * H)), "w_hh": u(k[1], (H, 4 * H)),
            "b_ih": u(k[2], (4 * H,)), "b_hh": u(k[3], (4 * H,))}
  x = jax.random.normal(k[4], (T, B, I))
  h0 = 0.1 * jax.random.normal(k[5], (B, H))
  c0 = 0.1 * jax.random.normal(k[6], (B, H))
  ct = jax.random.normal(k[7], (T, B, H))
  return params, x, h0, c0, ct


def ours_layer(params, x, h0, c0):
  gx = cells.lstm.project_inputs(params, x)
  (h, c), hs = cells.lstm.recurrence(params, (h0, c0), gx)
  return hs, h, c


def onednn_layer(params, x, h0, c0):
  (h, c), hs = onednn.lstm_layer(x, params["w_ih"], params["w_hh"],
                                 params["b_ih"] + params["b_hh"], (h0, c0))
  return hs, h, c


def train_step(layer):
  def loss(params, x, h0, c0, ct):
    hs, h, c = layer(params, x, h0, c0)
    return jnp.sum(hs * ct) + 0.5 * jnp.sum(h) + 0.25 * jnp.sum(c)
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))


def forward(layer):
  return jax.jit(lambda params, x, h0, c0: layer(params, x, h0, c0)[0])


def torch_fns(params, x, h0, c0, ct):
  """``(train_step, forward)`` closures for torch.nn.LSTM with the same weights."""
  import torch  # pylint: disable=import-outside-toplevel

  I, H4 = params["w_ih"].shape
  H = H4 // 4
  lstm = torch.nn.LSTM(I, H)

  def ours_to_torch(w):  # (i, f, o, g) -> (i, f, g, o) along axis 0 of the torch layout
    w = torch.from_numpy(np.array(w)).T if w.ndim == 2 else torch.from_numpy(np.array(w))
    return torch.cat([w[:2 * H], w[3 * H:], w[2 * H:3 * H]], 0).contiguous()

  with torch.no_grad():
    lstm.weight_ih_l0.copy_(ours_to_torch(params["w_ih"]))
    lstm.weight_hh_l0.copy_(ours_to_torch(params["w_hh"]))
    lstm.bias_ih_l0.copy_(ours_to_torch(params["b_ih"]))
    lstm.bias_hh_l0.copy_(ours_to_torch(params["b_hh"]))
  tx = torch.from_numpy(np.array(x)).requires_grad_(True)
  th0 = torch.from_numpy(np.array(h0))[None].requires_grad_(True)
  tc0 = torch.from_numpy(np.array(c0))[None].requires_grad_(True)
  tct = torch.from_numpy(np.array(ct))

  def step():
    for p in (tx, th0, tc0, *lstm.parameters()):
      p.grad = None
    out, (h, c) = lstm(tx, (th0, tc0))
    loss = (out * tct).sum() + 0.5 * h.sum() + 0.25 * c.sum()
    loss.backward()
    return loss.item(), lstm.weight_hh_l0.grad

  def fwd():
    with torch.no_grad():
      return lstm(tx, (th0, tc0))[0]

  return step, fwd


def check(params, x, h0, c0, ct, torch_step=None):
  """Max |difference| of the loss and gradients, oneDNN (and torch) vs ours."""
  a = train_step(ours_layer)(params, x, h0, c0, ct)
  b = train_step(onednn_layer)(params, x, h0, c0, ct)
  diff = max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  msg = f"max |oneDNN - ours| over loss and all gradients: {diff:.2e}"
  if torch_step is not None:
    loss, g_hh = torch_step()
    H = params["w_hh"].shape[0]
    ours_g = np.array(a[1][0]["w_hh"]).T
    ours_g = np.concatenate([ours_g[:2 * H], ours_g[3 * H:], ours_g[2 * H:3 * H]], 0)
    msg += (f"; |torch - ours|: loss {abs(loss - float(a[0])):.2e}, "
            f"dW_hh {float(np.max(np.abs(g_hh.numpy() - ours_g))):.2e}")
  return msg


def timed(fn, block, seconds):
  """Mean seconds per call over a block of calls lasting about ``seconds``."""
  n = max(1, int(round(seconds / max(block, 1e-6))))
  t = time.perf_counter()
  for _ in range(n):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - t) / n


def calibrate(fn):
  for _ in range(3):
    jax.block_until_ready(fn())
  t = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t


def summary(xs):
  return statistics.median(xs), min(xs), max(xs)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", type=int, default=5)
  p.add_argument("--seconds", type=float, default=0.5, help="length of one timed block")
  p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma list of {list(SHAPES)}")
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--forward", action="store_true", help="also time forward-only (inference)")
  args = p.parse_args(argv)

  reason = onednn.unavailable_reason()
  if reason:
    sys.exit(f"oneDNN layer unavailable: {reason}")
  torch = None
  if not args.no_torch:
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
      torch = None

  print(f"CPU: {cpu_info()}")
  print(f"python {platform.python_version()}, jax {jax.__version__}, "
        f"jaxlib {jax.lib.__version__ if hasattr(jax.lib, '__version__') else '?'}, "
        f"backend {jax.default_backend()}, devices {jax.devices()}")
  print(f"oneDNN (rnnlm_jax.onednn custom call): {onednn.version()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
  if torch is not None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"mkldnn {torch.backends.mkldnn.is_available()} "
          f"({torch_onednn_version(torch)})")
  else:
    print("torch: not used")
  print(f"runs {args.runs}, blocks of ~{args.seconds} s, order rotated per run; "
        "times are ms per call")
  print()

  rows = []
  for name in args.shapes.split(","):
    T, B, I, H = SHAPES[name]
    params, x, h0, c0, ct = make_inputs(T, B, I, H)
    impls = {"ours": train_step(ours_layer), "onednn": train_step(onednn_layer)}
    calls = {k: (lambda f=f: f(params, x, h0, c0, ct)) for k, f in impls.items()}
    fwd_calls = {}
    if args.forward:
      fwd_calls = {"ours": forward(ours_layer), "onednn": forward(onednn_layer)}
      fwd_calls = {k: (lambda f=f: f(params, x, h0, c0)) for k, f in fwd_calls.items()}
    tstep = None
    if torch is not None:
      tstep, tfwd = torch_fns(params, x, h0, c0, ct)
      calls["torch"] = tstep
      if args.forward:
        fwd_calls["torch"] = tfwd
    print(f"[{name}] T={T} B={B} I={I} H={H}: {check(params, x, h0, c0, ct, tstep)}")
    print("  oneDNN: " + " | ".join(
        l.strip() for l in onednn.describe(T, B, I, H).splitlines() if "impl" in l or "workspace" in l))
    for kind, table in (("train", calls), ("fwd", fwd_calls)):
      if not table:
        continue
      blocks = {k: calibrate(f) for k, f in table.items()}
      times = {k: [] for k in table}
      keys = list(table)
      for r in range(args.runs):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in order:
          times[k].append(timed(table[k], blocks[k], args.seconds) * 1e3)
      rows.append((name, kind, times))
      line = [f"  {kind:5s}"]
      for k in keys:
        m, lo, hi = summary(times[k])
        line.append(f"{k} {m:8.2f} [{lo:.2f}-{hi:.2f}]")
      for k in keys:
        if k == "ours":
          continue
        ratios = [a / b for a, b in zip(times["ours"], times[k])]
        m, lo, hi = summary(ratios)
        line.append(f"ours/{k} {m:.2f} [{lo:.2f}-{hi:.2f}]")
      print("  ".join(line), flush=True)
    print()

  print("summary (median ms per call over runs; ratio = median of per-run ours/other):")
  print(f"{'shape':10s} {'kind':5s} {'ours':>9s} {'onednn':>9s} {'torch':>9s} "
        f"{'ours/onednn':>12s} {'ours/torch':>11s}")
  for name, kind, times in rows:
    med = {k: statistics.median(v) for k, v in times.items()}
    r1 = statistics.median([a / b for a, b in zip(times["ours"], times["onednn"])])
    r2 = (statistics.median([a / b for a, b in zip(times["ours"], times["torch"])])
          if "torch" in times else float("nan"))
    print(f"{name:10s} {kind:5s} {med['ours']:9.2f} {med['onednn']:9.2f} "
          f"{med.get('torch', float('nan')):9.2f} {r1:12.2f} {r2:11.2f}")


if __name__ == "__main__":
  main()
