"""Where the time of one ptb_small training step goes (forward + backward, jitted, CPU).

Times the full loss gradient and its parts apart: the two scanned LSTM layers, the output
projection + softmax cross-entropy, the embedding. Minimum of 3x30 calls each, in ms.

    python scripts/profile_ptb_small_step.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnlm_jax import rnn
from rnnlm_jax.config_base import base_config
from rnnlm_jax.models import lm

VOCAB, BATCH, BPTT = 10000, 20, 20


def bench(name, f, *args, n=30):
  jax.block_until_ready(f(*args))
  best = float("inf")
  for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(n):
      out = f(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - t0) / n * 1000)
  print(f"{name:38s} {best:7.2f} ms", flush=True)


def main():
  spec = lm.LMSpec.from_config(base_config().model, VOCAB)
  params = lm.init_params(jax.random.PRNGKey(0), spec)
  carry = lm.init_carry(spec, BATCH)
  seq = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, (BATCH, BPTT + 1)), jnp.int32)
  x, y = seq[:, :-1], seq[:, 1:]
  h_TBH = jnp.full((BPTT, BATCH, spec.hidden_size), 0.1)
  emb_TBE = jnp.ones((BPTT, BATCH, spec.embed_size))

  def full(p):
    return lm.token_nll(p, spec, carry, x, y)[1].sum() / BATCH

  def layers(p):
    return (rnn.stack_time_major(spec.cell_fns, p["rnn"], carry, emb_TBE)[1] ** 2).sum()

  def head(p):
    logits = lm.logits(p, spec, h_TBH)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y.T).sum()

  def embed(p):
    return (jnp.take(p["embed"], x.T, axis=0) ** 2).sum()

  for name, f in [("full loss: forward + backward", full), ("LSTM layers only", layers),
                  ("output projection + softmax only", head), ("embedding only", embed)]:
    bench(name, jax.jit(jax.grad(f)), params)


if __name__ == "__main__":
  main()
