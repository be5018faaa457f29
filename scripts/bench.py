"""Training and generation throughput: rnnlm_jax beside flax ``nn.RNN`` and PyTorch, in one run.

    python scripts/bench.py                                   # every row, float32, this machine
    python scripts/bench.py --workloads ptb_small,char --cells lstm --repeats 7
    python scripts/bench.py --dtype bfloat16                  # ours (compute_dtype) vs torch autocast
    python scripts/bench.py --workloads ptb_small,char --cells lstm --impls rnnlm_jax,rnnlm_jax_onednn,torch
                                                              # with the opt-in oneDNN LSTM layer
    python scripts/bench.py --md out.md --json out.json
    python scripts/bench.py --runs 1 --repeats 3              # quicker, no spread over runs

What one row measures: a full training step on random tokens -- embedding -> RNN stack ->
softmax over the vocabulary, loss summed over time / batch, backward, global-norm clip 5, SGD
-- with the recurrent state carried from step to step (truncated BPTT), for

* **rnnlm_jax**: ``lm_task.make_train_step`` (the code every config trains with);
* **flax**: the same model the idiomatic flax way, ``nn.RNN`` over ``OptimizedLSTMCell`` /
  ``GRUCell`` / ``SimpleCell`` (tanh), ``nn.Embed``, ``nn.Dense``, optax, one jitted step;
* **torch**: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (oneDNN on CPU, cuDNN on GPU) as in
  pytorch/examples word_language_model (only when ``import torch`` works: ``pip install
  -e '.[bench]'``; otherwise its column says so).

Timing: compile (or first-call) time excluded and reported apart; each implementation warms up,
then the implementations of a row run interleaved (A, B, C, A, B, C, ...) ``--repeats`` times, each
time a block of steps lasting about ``--block_s`` seconds; the table gives the median tokens/s.
Achieved GFLOP/s counts the matmuls of a step (forward: input projections, recurrent matmuls,
output layer; backward: twice that) and is compared with this machine's matmul peak, measured
here in the same run (``jnp.dot`` and ``torch.mm``, 2048^3 on CPU, 8192^3 on GPU; the higher
one is the peak). Memory: the compiled step's temporary buffers (``memory_analysis``) of the
two JAX programs (PyTorch has no comparable number on CPU; memory against sequence length is
scripts/bench_memory.py's job). Machines are noisy: compare the columns of one run, not runs of
different days.
"""

from __future__ import annotations

import argparse
import functools
import dataclasses
import json
import os
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rnnlm_jax import cells, config_base, sample  # noqa: E402
from rnnlm_jax.tasks import lm as lm_task  # noqa: E402
from rnnlm_jax.models import lm  # noqa: E402
from rnnlm_jax.workdir import cpu_signature, hardware, library_versions  # noqa: E402

try:  # optional peer
  import torch
  import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the machine
  torch = None


@dataclasses.dataclass(frozen=True)
class Workload:
  """One benchmark shape: ``layers x hidden`` stack, embedding ``embed``, softmax over ``vocab``."""

  name: str
  vocab: int
  embed: int
  hidden: int
  layers: int
  batch: int
  bptt: int
  note: str


WORKLOADS = {w.name: w for w in [
    Workload("ptb_small", 10000, 200, 200, 2, 20, 20, "configs/ptb_small.py shapes"),
    Workload("ptb_medium", 10000, 650, 650, 2, 20, 35, "configs/ptb_medium.py shapes"),
    Workload("char", 65, 512, 512, 1, 64, 128, "char LM, tiny-shakespeare vocabulary"),
    Workload("pascanu", 8, 8, 50, 1, 20, 200,
             "Pascanu 2013 size: 50 units, length 200, batch 20 (8-symbol vocabulary)"),
]}
CELLS = ("lstm", "gru", "rnn_tanh")
IMPLS = ("rnnlm_jax", "flax", "torch")  # the default; rnnlm_jax_onednn on request (LSTM)
CLIP, LR = 5.0, 1.0
SETTLE_S = 0.3  # idle time before each timed block (see _block)


def step_flops(w: Workload, cell: str) -> float:
  """Matmul FLOPs of one training step: 3x the forward (forward, d-inputs, d-weights)."""
  g = cells.get_cell(cell).num_gates
  t, b, h = w.bptt, w.batch, w.hidden
  fwd = 0
  for layer in range(w.layers):
    n_in = w.embed if layer == 0 else h
    fwd += 2 * t * b * (n_in + h) * g * h
  fwd += 2 * t * b * h * w.vocab
  return 3.0 * fwd


def random_batches(w: Workload, n: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
  """``n`` pairs ``(x, y)`` of random token ids ``[batch, bptt]`` int32 (y is x shifted)."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    seq = rng.integers(0, w.vocab, (w.batch, w.bptt + 1)).astype(np.int32)
    out.append((seq[:, :-1], seq[:, 1:]))
  return out


# ----------------------------------------------------------------------------- implementations
# Each maker returns an object with .step() (one training step on the next batch, no host sync),
# .sync() (wait for the device), and optional .temp_bytes (compiled temporary memory).


class _JaxTrainer:
  """Steps a jitted ``fn(state, x, y) -> (state, out)`` (set by the subclass) over the batches."""

  def step(self):
    x, y = self.batches[self.i % len(self.batches)]
    self.state, self.out = self.fn(self.state, x, y)
    self.i += 1

  def sync(self):
    jax.block_until_ready(self.out)


class OursTrainer(_JaxTrainer):
  """rnnlm_jax: the library's own train step (what ``rnnlm-train`` runs).

  ``backward="autodiff"``: the cells without their hand-written recurrences (autodiff of
  ``lax.scan``; ``lm.LMSpec.backward``), for scripts/bench_lean_backward.py; ``unroll``:
  ``model.scan_unroll``, for scripts/bench_ab.py; ``lstm_backend``: ``model.lstm_backend``
  (``"onednn"``: the optional oneDNN LSTM layer, the impl ``rnnlm_jax_onednn``)."""

  def __init__(self, w: Workload, cell: str, dtype: str, batches, backward: str = "lean",
               unroll: int = 1, lstm_backend: str = "scan"):
    c = config_base.base_config()
    c.model.scan_unroll = unroll
    c.model.lstm_backend = lstm_backend
    c.model.cell, c.model.num_layers = cell, w.layers
    c.model.hidden_size, c.model.embed_size = w.hidden, w.embed
    if dtype != "float32":
      c.model.compute_dtype = dtype
    c.optim.name, c.optim.learning_rate = "sgd", LR
    c.optim.clip_mode, c.optim.clip_value = "global_norm", CLIP
    c.train.batch_size = w.batch
    self.spec = dataclasses.replace(lm.LMSpec.from_config(c.model, w.vocab), backward=backward)
    self.state = lm_task.create_train_state(c, self.spec, steps_per_epoch=1000)
    self.fn = lm_task.make_train_step(self.spec, c.optim)
    self.batches = [(jnp.asarray(x), jnp.asarray(y)) for x, y in batches]
    x, y = self.batches[0]
    self.temp_bytes = _temp_bytes(self.fn, self.state, x, y)
    self.i, self.out = 0, None


def _temp_bytes(fn, *args) -> int | None:
  try:
    return int(fn.lower(*args).compile().memory_analysis().temp_size_in_bytes)
  except Exception:  # noqa: BLE001 - not every backend reports it
    return None


class FlaxTrainer(_JaxTrainer):
  """The same LM the idiomatic flax way (``nn.RNN`` over flax's cells)."""

  def __init__(self, w: Workload, cell: str, dtype: str, batches):
    import flax.linen as nn

    cell_cls = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn_tanh": nn.SimpleCell}[cell]
    cdtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32

    class FlaxLM(nn.Module):
      @nn.compact
      def __call__(self, carries, tokens_BT):
        x = nn.Embed(w.vocab, w.embed, dtype=cdtype)(tokens_BT)
        new = []
        for i in range(w.layers):
          c, x = nn.RNN(cell_cls(w.hidden, dtype=cdtype), return_carry=True, name=f"rnn{i}")(
              x, initial_carry=carries[i])
          new.append(c)
        return new, nn.Dense(w.vocab, dtype=cdtype)(x).astype(jnp.float32)

    model = FlaxLM()
    b = w.batch
    zeros = lambda: jnp.zeros((b, w.hidden))  # distinct buffers: the state is donated
    carries = [(zeros(), zeros()) if cell == "lstm" else zeros() for _ in range(w.layers)]
    params = model.init(jax.random.PRNGKey(0), carries, jnp.zeros((b, w.bptt), jnp.int32))
    tx = optax.chain(optax.clip_by_global_norm(CLIP), optax.sgd(LR))

    def step(state, x, y):
      def loss_fn(p):
        carry, logits = model.apply(p, state["carry"], x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum() / b, carry

      (loss, carry), g = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
      upd, opt = tx.update(g, state["opt"], state["params"])
      return {"params": optax.apply_updates(state["params"], upd), "opt": opt,
              "carry": jax.lax.stop_gradient(carry)}, loss

    self.fn = jax.jit(step, donate_argnums=0)
    self.state = {"params": params, "opt": tx.init(params), "carry": carries}
    self.batches = [(jnp.asarray(x), jnp.asarray(y)) for x, y in batches]
    self.temp_bytes = _temp_bytes(self.fn, self.state, *self.batches[0])
    self.i, self.out = 0, None


class TorchTrainer:
  """pytorch/examples word_language_model's model and loop (time-major, detached hidden)."""

  def __init__(self, w: Workload, cell: str, dtype: str, batches):
    self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
               "rnn_tanh": lambda *a: torch.nn.RNN(*a, nonlinearity="tanh")}[cell]
    self.emb = torch.nn.Embedding(w.vocab, w.embed).to(self.dev)
    self.rnn = rnn_cls(w.embed, w.hidden, w.layers).to(self.dev)
    self.dec = torch.nn.Linear(w.hidden, w.vocab).to(self.dev)
    self.params = [*self.emb.parameters(), *self.rnn.parameters(), *self.dec.parameters()]
    self.opt = torch.optim.SGD(self.params, lr=LR)
    h0 = torch.zeros(w.layers, w.batch, w.hidden, device=self.dev)
    self.hidden = (h0, h0.clone()) if cell == "lstm" else h0
    self.batches = [(torch.from_numpy(x.T.copy()).long().to(self.dev),
                     torch.from_numpy(y.T.copy()).long().to(self.dev)) for x, y in batches]
    self.w, self.autocast = w, dtype == "bfloat16"
    self.i = 0

  def step(self):
    x, y = self.batches[self.i % len(self.batches)]
    self.i += 1
    hidden = tuple(h.detach() for h in self.hidden) if isinstance(self.hidden, tuple) \
        else self.hidden.detach()
    self.opt.zero_grad(set_to_none=True)
    with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.autocast):
      out, self.hidden = self.rnn(self.emb(x), hidden)
      logits = self.dec(out)
    loss = F.cross_entropy(logits.float().view(-1, self.w.vocab), y.reshape(-1),
                           reduction="sum") / self.w.batch
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.params, CLIP)
    self.opt.step()

  def sync(self):
    if self.dev.type == "cuda":
      torch.cuda.synchronize()


MAKERS: dict[str, Callable[..., Any]] = {
    "rnnlm_jax": OursTrainer,
    "rnnlm_jax_onednn": functools.partial(OursTrainer, lstm_backend="onednn"),  # opt-in, LSTM
    "flax": FlaxTrainer,
    "torch": TorchTrainer,
}


# ----------------------------------------------------------------------------- measurement


def _block(trainer, n: int, settle_s: float = 0.0) -> float:
  """Seconds for ``n`` steps, synchronised at the end only.

  ``settle_s``: sleep first, so the previous implementation's worker threads (OpenMP and XLA
  thread pools spin for a while after their last task) stop competing for the cores.
  """
  time.sleep(settle_s)
  t0 = time.perf_counter()
  for _ in range(n):
    trainer.step()
  trainer.sync()
  return time.perf_counter() - t0


def bench_row(w: Workload, cell: str, impls, dtype: str, repeats: int, block_s: float) -> dict:
  """Median training tokens/s of each implementation on one (workload, cell), interleaved."""
  batches = random_batches(w)
  trainers, compile_s, steps, result = {}, {}, {}, {}
  for name in impls:
    if name == "torch" and torch is None:
      result[name] = {"skipped": "torch not installed (pip install -e '.[bench]')"}
      continue
    t0 = time.perf_counter()
    try:
      tr = MAKERS[name](w, cell, dtype, batches)
      _block(tr, 1)
    except Exception as e:  # noqa: BLE001 - one failing peer must not stop the benchmark
      result[name] = {"skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
      continue
    compile_s[name] = time.perf_counter() - t0
    per_step = _block(tr, 3) / 3  # warm-up, and the block size
    steps[name] = max(2, int(block_s / max(per_step, 1e-6)))
    trainers[name] = tr
  times = {name: [] for name in trainers}
  for _ in range(repeats):
    for name, tr in trainers.items():
      times[name].append(_block(tr, steps[name], SETTLE_S) / steps[name])
  tokens = w.batch * w.bptt
  for name in trainers:
    sec = statistics.median(times[name])
    result[name] = {"tokens_per_s": tokens / sec, "step_ms": 1e3 * sec,
                    "min_tokens_per_s": tokens / max(times[name]),
                    "max_tokens_per_s": tokens / min(times[name]),
                    "gflops": step_flops(w, cell) / sec / 1e9, "compile_s": compile_s[name],
                    "temp_mib": (trainers[name].temp_bytes / 2**20
                                 if getattr(trainers[name], "temp_bytes", None) else None)}
  return result


def combine_runs(runs: list[dict]) -> dict:
  """A row's ``bench_row`` results of several runs -> ``{"results", "ratios", "runs"}``.

  ``results``: per implementation, the run with the median tokens/s (its other fields with
  it); ``ratios``: ours over each peer, ``{"median", "min", "max"}`` of the per-run ratios (each
  run's numbers come from the same interleaved blocks); ``runs``: every run's results.
  """
  results = {}
  for impl in runs[0]:
    ok = sorted((r[impl] for r in runs if "tokens_per_s" in r.get(impl, {})),
                key=lambda v: v["tokens_per_s"])
    results[impl] = ok[(len(ok) - 1) // 2] if ok else runs[0][impl]
  ratios = {}
  for ours, suffix in (("rnnlm_jax", ""), ("rnnlm_jax_onednn", ", onednn")):
    for peer in ("torch", "flax"):
      per = [r[ours]["tokens_per_s"] / r[peer]["tokens_per_s"] for r in runs
             if "tokens_per_s" in r.get(ours, {}) and "tokens_per_s" in r.get(peer, {})]
      if per:
        ratios[peer + suffix] = {"median": statistics.median(per), "min": min(per),
                                 "max": max(per)}
  return {"results": results, "ratios": ratios, "runs": runs}


def cpu_extensions() -> str:
  """The CPU's vector and matrix extensions that decide XLA:CPU's and oneDNN's kernels
  (AVX2 / AVX-512 / bf16 / AMX): :func:`rnnlm_jax.workdir.cpu_signature` without the vendor."""
  found = cpu_signature().split()[1:]
  return "flags " + (" ".join(found) if found else "unknown")


def set_precision(precision: str) -> None:
  """Make both frameworks use the same float32 matmul precision (see ``--precision``)."""
  if precision == "highest":
    jax.config.update("jax_default_matmul_precision", "highest")
  if torch is not None:
    tf32 = precision == "default"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def peak_size(dtype: str) -> int:
  """Matrix size of the peak measurement: 8192 on GPU; 2048 on CPU (1024 for bfloat16, which
  CPUs without native bf16 arithmetic, like AVX2-only ones, emulate slowly)."""
  if jax.default_backend() == "gpu":
    return 8192
  return 1024 if dtype == "bfloat16" else 2048


def matmul_peaks(dtype: str) -> dict:
  """GFLOP/s of one big square matmul: ``jnp.dot`` (and ``torch.mm`` when installed)."""
  n = peak_size(dtype)
  out = {}
  a = jnp.ones((n, n), jnp.bfloat16 if dtype == "bfloat16" else jnp.float32)
  f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
  f(a).block_until_ready()
  out["jax"] = _best_rate(lambda: f(a).block_until_ready(), n)
  if torch is not None:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t = torch.ones(n, n, device=dev, dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    torch.mm(t, t)
    sync()
    out["torch"] = _best_rate(lambda: (torch.mm(t, t), sync()), n)
  return out


def _best_rate(fn, n: int, repeats: int = 5) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return 2 * n**3 / statistics.median(times) / 1e9


def bench_generation(w: Workload, batch: int, length: int, repeats: int) -> dict:
  """Tokens/s of sampling ``length`` tokens for ``batch`` streams (an LSTM of this workload)."""
  c = config_base.base_config()
  c.model.num_layers, c.model.hidden_size, c.model.embed_size = w.layers, w.hidden, w.embed
  spec = lm.LMSpec.from_config(c.model, w.vocab)
  params = lm.init_params(jax.random.PRNGKey(0), spec)
  carry = lm.init_carry(spec, batch)
  first = jnp.zeros((batch, 1), jnp.int32)
  res = {}
  t0 = time.perf_counter()
  jax.block_until_ready(sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(1),
                                          length=length))
  compile_s = time.perf_counter() - t0
  times = []
  for r in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(r),
                                            length=length))
    times.append(time.perf_counter() - t0)
  res["rnnlm_jax"] = {"tokens_per_s": batch * length / statistics.median(times),
                      "compile_s": compile_s}
  if torch is not None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    emb = torch.nn.Embedding(w.vocab, w.embed).to(dev)
    rnn = torch.nn.LSTM(w.embed, w.hidden, w.layers).to(dev)
    dec = torch.nn.Linear(w.hidden, w.vocab).to(dev)

    def run():
      with torch.no_grad():
        tok = torch.zeros(1, batch, dtype=torch.long, device=dev)
        hidden = None
        for _ in range(length):
          out, hidden = rnn(emb(tok), hidden)
          tok = torch.multinomial(torch.softmax(dec(out[0]), -1), 1).T
        if dev.type == "cuda":
          torch.cuda.synchronize()

    run()
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      run()
      times.append(time.perf_counter() - t0)
    res["torch"] = {"tokens_per_s": batch * length / statistics.median(times)}
  return res


# ----------------------------------------------------------------------------- report


def format_ratio(ratio: dict | None) -> str:
  """``0.95x (0.90-1.01)``: the median of the runs' ratios and their range (one run: no range)."""
  if not ratio:
    return "n/a"
  if ratio["min"] == ratio["max"]:
    return f"{ratio['median']:.2f}x"
  return f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})"


def _fmt(x, spec=",.0f"):
  return "n/a" if x is None else format(x, spec)


def render(meta: dict, rows: list[dict], gen: list[dict], peak: float, impls) -> str:
  onednn = int("rnnlm_jax_onednn" in impls)  # one more ratio column
  lines = [f"# rnnlm_jax training benchmark ({meta['dtype']}, matmul precision "
           f"{meta['precision']})", "",
           f"- command: `{meta['command']}`",
           f"- hardware: {meta['hardware']}",
           f"- versions: {meta['versions']}",
           f"- matmul peak ({meta['dtype']}, {meta['peak_n']}^3): "
           + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in meta["peaks"].items())
           + f"; % of peak below is against {peak:,.0f}",
           f"- {meta['runs']} run(s) of the whole benchmark, each {meta['repeats']} interleaved "
           f"blocks of ~{meta['block_s']} s per row; tokens/s: median block of the median run; "
           "ratios: median over runs (range); compile (first call) excluded", "",
           "| workload | cell | " + " | ".join(f"{i} tok/s" for i in impls)
           + " | ours / torch | ours / flax | ours GFLOP/s (% peak) | ours compile s "
             "| ours / flax temp MiB |" + (" ours (onednn) / torch |" if onednn else ""),
           "|---|---|" + "---:|" * (len(impls) + 5 + onednn)]
  for r in rows:
    res = r["results"]
    tok = {i: res.get(i, {}).get("tokens_per_s") for i in impls}
    cols = []
    for i in impls:
      cols.append(_fmt(tok[i]) if tok[i] else "skipped")
    ours = res.get("rnnlm_jax", {})
    ratio = lambda o: format_ratio(r.get("ratios", {}).get(o))
    gf = ours.get("gflops")
    lines.append(
        f"| {r['workload']} | {r['cell']} | " + " | ".join(cols)
        + f" | {ratio('torch')} | {ratio('flax')} | "
        + (f"{gf:,.1f} ({100 * gf / peak:.0f}%)" if gf else "n/a")
        + f" | {_fmt(ours.get('compile_s'), '.1f')} | "
        + f"{_fmt(ours.get('temp_mib'), '.1f')} / "
        + f"{_fmt(res.get('flax', {}).get('temp_mib'), '.1f')} |"
        + (f" {ratio('torch, onednn')} |" if onednn else ""))
  skipped = {(r["workload"], r["cell"], i): v["skipped"] for r in rows
             for i, v in r["results"].items() if "skipped" in v}
  if skipped:
    lines += ["", "Skipped: " + "; ".join(f"{w}/{c}/{i}: {why}"
                                          for (w, c, i), why in skipped.items())]
  if gen:
    lines += ["", "Generation (LSTM of the workload's size, sampling, tokens/s, median):", "",
              "| workload | batch | tokens | rnnlm_jax (one jitted scan) | torch (Python loop) "
              "| ratio |", "|---|---:|---:|---:|---:|---:|"]
    for g in gen:
      o, t = g["results"]["rnnlm_jax"]["tokens_per_s"], g["results"].get("torch", {}).get(
          "tokens_per_s")
      lines.append(f"| {g['workload']} | {g['batch']} | {g['length']} | {o:,.0f} | "
                   f"{_fmt(t)} | {(f'{o / t:.2f}x' if t else 'n/a')} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--workloads", default=",".join(WORKLOADS))
  ap.add_argument("--cells", default=",".join(CELLS))
  ap.add_argument("--impls", default=",".join(IMPLS))
  ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  ap.add_argument("--precision", default="default", choices=("default", "highest"),
                  help="float32 matmuls on GPU: 'default' lets both frameworks use TF32 tensor "
                       "cores (JAX's default; torch.backends.*.allow_tf32=True), 'highest' "
                       "forbids it in both (exact float32). No effect on CPU.")
  ap.add_argument("--repeats", type=int, default=5, help="interleaved blocks per row and run")
  ap.add_argument("--runs", type=int, default=3,
                  help="repeat the whole benchmark (every row) N times; the table gives the "
                       "median over runs and the range of each ratio")
  ap.add_argument("--block_s", type=float, default=0.5, help="seconds per timed block")
  ap.add_argument("--gen_length", type=int, default=200, help="0 skips generation")
  ap.add_argument("--md", default=None, help="write the Markdown table here")
  ap.add_argument("--json", default=None, help="write every number here")
  args = ap.parse_args(argv)
  impls = [i for i in args.impls.split(",") if i]
  for i in impls:
    if i not in MAKERS:
      sys.exit(f"unknown --impls entry {i!r}; choose from {', '.join(MAKERS)}")
  wls = []
  for name in args.workloads.split(","):
    if name not in WORKLOADS:
      sys.exit(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    wls.append(WORKLOADS[name])
  cell_names = args.cells.split(",")
  for c in cell_names:
    cells.get_cell(c)

  set_precision(args.precision)
  hw, vers = hardware(), library_versions()
  vers["jax_default_matmul_precision"] = str(jax.config.jax_default_matmul_precision)
  if torch is not None:
    vers["torch"] = torch.__version__
    if torch.cuda.is_available():
      vers["torch_tf32"] = (f"matmul {torch.backends.cuda.matmul.allow_tf32}, "
                            f"cudnn {torch.backends.cudnn.allow_tf32}")
  dev = jax.devices()[0]
  hw_line = (f"{hw['cpu']}, {hw['cpu_count']} cores, {cpu_extensions()}; JAX "
             f"{jax.default_backend()} {getattr(dev, 'device_kind', '')}")
  peaks = matmul_peaks(args.dtype)
  peak = max(peaks.values())
  print(f"# {hw_line}\n# {vers}\n# matmul peak: {peaks}", flush=True)
  per_run = {(w.name, cell): [] for w in wls for cell in cell_names}
  for run in range(args.runs):
    for w in wls:
      for cell in cell_names:
        t0 = time.perf_counter()
        res = bench_row(w, cell, impls, args.dtype, args.repeats, args.block_s)
        per_run[w.name, cell].append(res)
        print(f"run {run + 1}/{args.runs} {w.name:10s} {cell:8s} " + "  ".join(
            f"{i}: {v['tokens_per_s']:,.0f} tok/s" if "tokens_per_s" in v else f"{i}: skipped"
            for i, v in res.items()) + f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
  rows = [{"workload": w.name, "cell": cell, "flops_per_step": step_flops(w, cell),
           **combine_runs(per_run[w.name, cell])} for w in wls for cell in cell_names]
  gen = []
  if args.gen_length:
    w = WORKLOADS["ptb_small"] if "ptb_small" in args.workloads else wls[0]
    for batch in (1, 64):
      gen.append({"workload": w.name, "batch": batch, "length": args.gen_length,
                  "results": bench_generation(w, batch, args.gen_length, 3)})
      print(f"generation {w.name} batch {batch}: {gen[-1]['results']}", flush=True)
  meta = {"command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
          "hardware": hw_line, "versions": ", ".join(f"{k} {v}" for k, v in vers.items()),
          "dtype": args.dtype, "precision": args.precision, "peaks": peaks,
          "peak_n": peak_size(args.dtype), "repeats": args.repeats, "block_s": args.block_s,
          "runs": args.runs}
  md = render(meta, rows, gen, peak, impls)
  print()
  print(md)
  if args.md:
    with open(args.md, "w") as f:
      f.write(md)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"meta": meta, "rows": rows, "generation": gen}, f, indent=1)


if __name__ == "__main__":
  main()
