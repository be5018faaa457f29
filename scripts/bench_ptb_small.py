"""Training throughput of configs/ptb_small.py: rnnlm_jax beside flax nn.RNN(OptimizedLSTMCell).

Both do the same work per step: embedding -> 2x200 LSTM (carry in/out) -> softmax over 10k
words, batch 20, unroll 20, loss summed over time, global-norm clip 5, SGD; one jitted step
with donated state. Runs are interleaved (A, B, A, B, ...) and the medians compared, so a
noisy shared machine affects both alike. Compile time is excluded and printed separately.

    python scripts/bench_ptb_small.py [--repeats 5] [--steps 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnlm_jax import optim, train
from rnnlm_jax.models import lm

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0] + "/configs")
import ptb_small  # noqa: E402

VOCAB = 10000


class FlaxLM(nn.Module):
  """The same LM written the idiomatic flax way."""

  vocab: int
  hidden: int
  layers: int

  @nn.compact
  def __call__(self, carries, tokens_BT):
    x = nn.Embed(self.vocab, self.hidden)(tokens_BT)
    new = []
    for i in range(self.layers):
      c, x = nn.RNN(nn.OptimizedLSTMCell(self.hidden), return_carry=True, name=f"rnn{i}")(
          x, initial_carry=carries[i])
      new.append(c)
    return new, nn.Dense(self.vocab)(x)


def flax_step_fn(config):
  model = FlaxLM(VOCAB, config.model.hidden_size, config.model.num_layers)
  b, t, h = config.train.batch_size, config.data.bptt, config.model.hidden_size
  carries = [(jnp.zeros((b, h)), jnp.zeros((b, h))) for _ in range(config.model.num_layers)]
  params = model.init(jax.random.PRNGKey(0), carries, jnp.zeros((b, t), jnp.int32))
  tx = optax.chain(optax.clip_by_global_norm(config.optim.clip_value),
                   optax.sgd(config.optim.learning_rate))
  state = {"params": params, "opt": tx.init(params), "carry": carries}

  def step(state, x, y):
    def loss_fn(p):
      carry, logits = model.apply(p, state["carry"], x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum() / b, carry

    (loss, carry), g = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    upd, opt = tx.update(g, state["opt"], state["params"])
    return {"params": optax.apply_updates(state["params"], upd), "opt": opt,
            "carry": jax.lax.stop_gradient(carry)}, loss

  return jax.jit(step, donate_argnums=0), state


def ours_step_fn(config):
  spec = lm.LMSpec.from_config(config.model, VOCAB)
  state = train.create_train_state(config, spec, steps_per_epoch=2000)
  return train.make_train_step(spec, config.optim), state


def time_steps(step, state, batches, n):
  """Run ``n`` steps; returns (state, seconds)."""
  t0 = time.perf_counter()
  out = None
  for i in range(n):
    x, y = batches[i % len(batches)]
    state, out = step(state, x, y)
  jax.block_until_ready(out)
  return state, time.perf_counter() - t0


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--steps", type=int, default=50)
  ap.add_argument("--json", default=None)
  args = ap.parse_args()

  config = ptb_small.get_config()
  b, t = config.train.batch_size, config.data.bptt
  rng = np.random.default_rng(0)
  batches = []
  for _ in range(8):
    seq = rng.integers(0, VOCAB, (b, t + 1)).astype(np.int32)
    batches.append((jnp.asarray(seq[:, :-1]), jnp.asarray(seq[:, 1:])))

  impls = {"rnnlm_jax": ours_step_fn(config), "flax nn.RNN(OptimizedLSTMCell)": flax_step_fn(config)}
  states, compile_s, times = {}, {}, {k: [] for k in impls}
  for name, (step, state) in impls.items():
    t0 = time.perf_counter()
    state, _ = time_steps(step, state, batches, 1)
    compile_s[name] = time.perf_counter() - t0
    state, _ = time_steps(step, state, batches, 3)  # warm-up
    states[name] = state
  for _ in range(args.repeats):
    for name, (step, _) in impls.items():
      states[name], sec = time_steps(step, states[name], batches, args.steps)
      times[name].append(args.steps * b * t / sec)

  med = {k: statistics.median(v) for k, v in times.items()}
  base = med["flax nn.RNN(OptimizedLSTMCell)"]
  print(f"ptb_small shapes: batch {b}, unroll {t}, 2x200 LSTM, vocab {VOCAB}; "
        f"{args.repeats}x{args.steps} steps, interleaved; jax {jax.__version__}, "
        f"{platform.processor() or platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s)")
  print(f"| implementation | tokens/s (median) | min..max | compile s | ratio vs flax |")
  print(f"|---|---|---|---|---|")
  for name in impls:
    print(f"| {name} | {med[name]:,.0f} | {min(times[name]):,.0f}..{max(times[name]):,.0f} | "
          f"{compile_s[name]:.2f} | {med[name] / base:.2f}x |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"tokens_per_sec": times, "median": med, "compile_s": compile_s,
                 "jax": jax.__version__}, f, indent=2)


if __name__ == "__main__":
  main()
