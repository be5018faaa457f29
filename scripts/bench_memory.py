"""Peak memory and step time of a training step against sequence length, with and without remat.

For each cell (LSTM, GRU), length T and rematerialisation policy (``model.remat``: none, step,
step+dots, segment; see ``rnnlm_jax.rnn.Remat``) it compiles one training step of a character
LM (embedding -> 1x256 recurrent layer -> softmax over 65 symbols, batch 16, the whole length
as one BPTT window, loss summed over time, SGD update, carry in/out) and reports:

- the compiled program's memory from XLA (``compiled.memory_analysis()``): temporary buffers
  (activations kept for the backward pass and the rest of the scratch), arguments, outputs;
- what the process really used while stepping: on CPU the rise of the resident set during the
  timed steps (``VmHWM`` reset through ``/proc/self/clear_refs``); on a GPU the allocator's
  ``peak_bytes_in_use`` (``jax.devices()[0].memory_stats()``);
- the step time: median wall time of ``--repeats`` steps after one warm-up (compile excluded,
  reported apart), and on CPU the median process CPU time, which a busy machine disturbs less.

Each cell runs in its own subprocess (fresh allocator and peak counters; a crash or OOM costs
that cell only). A cell whose compiled need (temp + arguments + outputs) exceeds
``--max-gib`` (default: 90 % of the GPU's memory, or half the host's available RAM) is skipped
with a note.

    python scripts/bench_memory.py [--cells lstm,gru] [--lengths 1000,2000,5000,10000]
        [--policies none,step,step+dots,segment] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

POLICIES = {  # name -> (model.remat, model.remat_policy)
    "none": ("none", "none"),
    "step": ("step", "none"),
    "step+dots": ("step", "dots"),
    "segment": ("segment", "none"),
}
MIB = 2 ** 20


# ------------------------------------------------------------------------------- one cell


def _rss_kib(field: str) -> int | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except OSError:
    pass
  return None


def _reset_peak_rss() -> bool:
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    return True
  except OSError:
    return False


def run_cell(a: dict) -> dict:
  """Compile, measure and time one (cell, length, policy); returns a JSON-able record."""
  import jax
  import jax.numpy as jnp

  from rnnlm_jax import config_base
  from rnnlm_jax.models import lm

  remat, remat_policy = POLICIES[a["policy"]]
  cfg = config_base.base_config().model
  cfg.update(dict(cell=a["cell"], num_layers=a["layers"], hidden_size=a["hidden"],
                  embed_size=a["embed"], remat=remat, remat_segment=a["segment"],
                  remat_policy=remat_policy))
  spec = lm.LMSpec.from_config(cfg, a["vocab"])
  batch, steps = a["batch"], a["length"]
  rec = {k: a[k] for k in ("cell", "length", "policy")}
  if remat == "segment":
    rec["segment"] = spec.remat_spec.segment_length(steps)

  params = lm.init_params(jax.random.key(0), spec)
  carry = lm.init_carry(spec, batch)
  tokens = jax.random.randint(jax.random.key(1), (batch, steps + 1), 0, a["vocab"])

  def train_step(params, carry, tokens):
    def loss_fn(p):
      c, nll = lm.token_nll(p, spec, carry, tokens[:, :-1], tokens[:, 1:])
      return jnp.sum(nll) / batch, c  # summed over time, mean over the batch

    (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
    return params, jax.lax.stop_gradient(new_carry), loss

  t0 = time.perf_counter()
  compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, carry, tokens).compile()
  rec["compile_s"] = time.perf_counter() - t0
  ma = compiled.memory_analysis()
  if ma is not None:
    rec.update(temp_bytes=int(ma.temp_size_in_bytes), arg_bytes=int(ma.argument_size_in_bytes),
               out_bytes=int(ma.output_size_in_bytes), alias_bytes=int(ma.alias_size_in_bytes))
    need = ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes \
        - ma.alias_size_in_bytes
    rec["need_bytes"] = int(need)
    if need > a["max_bytes"]:
      rec["skipped"] = (f"needs {need / 2**30:.2f} GiB > limit {a['max_bytes'] / 2**30:.2f} GiB "
                        f"(--max-gib)")
      return rec
  if a["repeats"] <= 0:
    return rec

  params, carry, loss = compiled(params, carry, tokens)  # warm-up
  jax.block_until_ready(loss)
  if not bool(jnp.isfinite(loss)):
    rec["note"] = "non-finite loss"
  reset_ok = _reset_peak_rss()
  rss_before = _rss_kib("VmRSS")
  walls, cpus = [], []
  for _ in range(a["repeats"]):
    w0, c0 = time.perf_counter(), time.process_time()
    params, carry, loss = compiled(params, carry, tokens)
    jax.block_until_ready(loss)
    walls.append(time.perf_counter() - w0)
    cpus.append(time.process_time() - c0)
  rec["wall_s"] = walls
  rec["cpu_s"] = cpus
  rec["wall_median_s"] = statistics.median(walls)
  rec["cpu_median_s"] = statistics.median(cpus)
  dev = jax.devices()[0]
  if dev.platform != "cpu":
    stats = dev.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
      rec["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
  if reset_ok and rss_before is not None:
    hwm = _rss_kib("VmHWM")
    rec["rss_before_bytes"] = rss_before * 1024
    rec["rss_rise_bytes"] = (hwm - rss_before) * 1024
  else:  # whole-process peak, compile included
    rec["rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return rec


# ------------------------------------------------------------------------------- driver


def environment() -> dict:
  import importlib.metadata as md

  import jax

  from rnnlm_jax import workdir
  out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "command": " ".join(shlex.quote(x) for x in ["python"] + sys.argv),
         "python": platform.python_version(), "platform": platform.platform()}
  for name in ("jax", "jaxlib", "numpy", "optax", "ml-collections", "jax-cuda12-plugin",
               "jax-cuda13-plugin"):
    try:
      out[name] = md.version(name)
    except md.PackageNotFoundError:
      pass
  out["cpu"] = f"{workdir.cpu_model()}, {os.cpu_count()} logical CPUs"
  out["cpu_signature"] = workdir.cpu_signature()
  try:
    out["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
  except OSError:
    pass
  try:
    out["ram_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError):
    pass
  dev = jax.devices()[0]
  out["backend"] = jax.default_backend()
  out["device"] = f"{dev.device_kind} ({dev.platform}) x{jax.device_count()}"
  return out


def default_max_bytes() -> int:
  import jax
  dev = jax.devices()[0]
  if dev.platform != "cpu":
    limit = (dev.memory_stats() or {}).get("bytes_limit")
    if limit:
      return int(0.9 * limit)
  avail = None
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          avail = int(line.split()[1]) * 1024
  except OSError:
    pass
  return int(0.5 * avail) if avail else 8 * 2**30


def run_in_subprocess(a: dict, timeout: float) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(a)]
  base = {k: a[k] for k in ("cell", "length", "policy")}
  try:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {**base, "skipped": f"timed out after {timeout:.0f} s (--cell-timeout)"}
  lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
  if p.returncode != 0 or not lines:
    err = (p.stderr.strip().splitlines() or ["?"])[-1][:200]
    oom = "RESOURCE_EXHAUSTED" in p.stderr or p.returncode in (-9, 137)
    return {**base, "skipped": ("out of memory: " if oom else f"failed (exit {p.returncode}): ")
            + err}
  return json.loads(lines[-1])


def _mib(rec, key):
  v = rec.get(key)
  return f"{v / MIB:,.1f}" if v is not None else "–"


def markdown(env: dict, args, records: list[dict]) -> str:
  out = [f"Command: `{env['command']}`", ""]
  out.append(f"- date: {env['date']}")
  out.append(f"- hardware: {env['cpu']}, {env.get('ram_gib', '?')} GiB RAM; JAX device: "
             f"{env['device']}; load average at start: {env.get('load_average', '?')}")
  vers = ", ".join(f"{k} {env[k]}" for k in ("python", "jax", "jaxlib", "numpy", "optax",
                                              "ml-collections", "jax-cuda12-plugin",
                                              "jax-cuda13-plugin") if k in env)
  out.append(f"- versions: {vers}; {env['platform']}")
  out.append(f"- model: char LM, vocab {args.vocab}, embed {args.embed}, {args.layers}x"
             f"{args.hidden} cell, batch {args.batch}, one BPTT window of T steps, SGD step; "
             f"segment length {'auto ≈ sqrt(T)' if args.segment == 0 else args.segment}; "
             f"timing: median of {args.repeats} steps after a warm-up, compile excluded")
  out.append("")
  gpu = env["backend"] != "cpu"
  by = {(r["cell"], r["length"], r["policy"]): r for r in records}
  for cell in args.cells:
    out.append(f"### {cell.upper()} {args.layers}x{args.hidden}: compiled temporary memory "
               f"(MiB) of one training step")
    out.append("")
    head = ["T"] + args.policies + (["segment / none"] if {"none", "segment"} <=
                                    set(args.policies) else [])
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for n in args.lengths:
      row = [f"{n:,}"]
      for pol in args.policies:
        r = by.get((cell, n, pol), {})
        cellv = _mib(r, "temp_bytes")
        if pol == "segment" and "segment" in r and "temp_bytes" in r:
          cellv += f" (S={r['segment']})"
        if "skipped" in r:  # the compiled size is known even when the step was not run
          cellv = "skipped" if "temp_bytes" not in r else cellv + " (not run)"
        row.append(cellv)
      if len(head) > len(row):
        a_, b_ = by.get((cell, n, "segment"), {}), by.get((cell, n, "none"), {})
        row.append(f"{a_['temp_bytes'] / b_['temp_bytes']:.2f}"
                   if "temp_bytes" in a_ and "temp_bytes" in b_ else "–")
      out.append("| " + " | ".join(row) + " |")
    out.append("")
    # On a GPU: wall time. On CPU: process CPU time first (a busy machine stretches the wall
    # time of a step, not the CPU time it takes), the wall time in brackets.
    tkey, other = ("wall_median_s", None) if gpu else ("cpu_median_s", "wall_median_s")
    out.append(f"### {cell.upper()} {args.layers}x{args.hidden}: step time, "
               + ("median wall s" if gpu else "median CPU s (median wall s)")
               + ", and × of none's")
    out.append("")
    head = ["T"] + args.policies
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    fmt = lambda v: f"{v:.3f}" if v < 10 else f"{v:.1f}"
    for n in args.lengths:
      row = [f"{n:,}"]
      base = by.get((cell, n, "none"), {}).get(tkey)
      for pol in args.policies:
        r = by.get((cell, n, pol), {})
        if tkey not in r:
          row.append("skipped" if "skipped" in r else "–")
          continue
        s = fmt(r[tkey]) + (f" ({fmt(r[other])})" if other else "")
        if base and pol != "none":
          s += f", {r[tkey] / base:.2f}×"
        row.append(s)
      out.append("| " + " | ".join(row) + " |")
    out.append("")
  measured = "device peak MiB" if gpu else "RSS rise MiB"
  out.append("### All cells")
  out.append("")
  head = ["cell", "T", "policy", "temp MiB", "args MiB", "out MiB", measured, "compile s",
          "wall s (runs)", "note"]
  out.append("| " + " | ".join(head) + " |")
  out.append("|" + "---|" * len(head))
  for r in records:
    meas = _mib(r, "device_peak_bytes" if gpu else "rss_rise_bytes")
    if not gpu and "rss_peak_bytes" in r:
      meas = _mib(r, "rss_peak_bytes") + " (process peak)"
    runs = ", ".join(f"{t:.3g}" for t in r.get("wall_s", []))
    pol = r["policy"] + (f" S={r['segment']}" if "segment" in r else "")
    note = r.get("skipped", r.get("note", ""))
    comp = f"{r['compile_s']:.1f}" if "compile_s" in r else "–"
    out.append(f"| {r['cell']} | {r['length']:,} | {pol} | {_mib(r, 'temp_bytes')} | "
               f"{_mib(r, 'arg_bytes')} | {_mib(r, 'out_bytes')} | {meas} | {comp} | {runs} | "
               f"{note} |")
  out.append("")
  return "\n".join(out)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--cells", default="lstm,gru")
  p.add_argument("--lengths", default="1000,2000,5000,10000")
  p.add_argument("--policies", default="none,step,step+dots,segment",
                 help=f"comma list of {', '.join(POLICIES)}")
  p.add_argument("--segment", type=int, default=0, help="model.remat_segment (0 = ≈sqrt(T))")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--hidden", type=int, default=256)
  p.add_argument("--embed", type=int, default=256)
  p.add_argument("--layers", type=int, default=1)
  p.add_argument("--vocab", type=int, default=65)
  p.add_argument("--repeats", type=int, default=3, help="timed steps per cell (0: memory only)")
  p.add_argument("--max-gib", type=float, default=0.0,
                 help="skip cells whose compiled need exceeds this (0 = automatic)")
  p.add_argument("--cell-timeout", type=float, default=1800.0, help="seconds per cell")
  p.add_argument("--json", default="", help="also write the records and environment here")
  p.add_argument("--render", default="", help="print the tables of a saved --json run")
  p.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.worker:
    print(json.dumps(run_cell(json.loads(args.worker))), flush=True)
    return
  if args.render:
    with open(args.render) as f:
      saved = json.load(f)
    print(markdown(saved["environment"], argparse.Namespace(**saved["args"]), saved["records"]))
    return
  args.cells = args.cells.split(",")
  args.lengths = [int(x) for x in args.lengths.split(",")]
  args.policies = args.policies.split(",")
  bad = [x for x in args.policies if x not in POLICIES]
  if bad:
    p.error(f"unknown policies {bad}; choose from {', '.join(POLICIES)}")
  env = environment()
  max_bytes = int(args.max_gib * 2**30) if args.max_gib > 0 else default_max_bytes()
  env["max_bytes"] = max_bytes
  records = []
  for cell in args.cells:
    for n in args.lengths:
      for pol in args.policies:
        a = dict(cell=cell, length=n, policy=pol, segment=args.segment, batch=args.batch,
                 hidden=args.hidden, embed=args.embed, layers=args.layers, vocab=args.vocab,
                 repeats=args.repeats, max_bytes=max_bytes)
        rec = run_in_subprocess(a, args.cell_timeout)
        records.append(rec)
        print(f"# {cell} T={n} {pol}: temp {_mib(rec, 'temp_bytes')} MiB, wall "
              f"{rec.get('wall_median_s', float('nan')):.3f} s {rec.get('skipped', '')}",
              file=sys.stderr, flush=True)
  md = markdown(env, args, records)
  print(md)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"environment": env, "args": {k: v for k, v in vars(args).items()
                                              if k != "worker"}, "records": records}, f,
                indent=2)


if __name__ == "__main__":
  main()
