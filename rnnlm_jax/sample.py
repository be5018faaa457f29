"""Sampling from a trained language model: the whole generation runs in one jitted ``lax.scan``.

    carry, ids = sample_ids(params, spec, carry, last_BT, key, length=200, temperature=1.0)

``carry`` is the model's recurrent state after the prompt (``lm.hidden_states`` primes it),
``last_BT [batch, 1]`` the last prompt token of each sample. Each scan step embeds the previous
token, runs one time step of the stack, and draws the next token; no Python loop per token.
Temperature 0 is greedy decoding. Deterministic for a given ``key``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rnnlm_jax.models import lm


def next_token(logits_BV: jax.Array, key: jax.Array, temperature: float) -> jax.Array:
  """Draw one token per row of ``logits [batch, V]``; greedy when ``temperature == 0``."""
  if temperature == 0.0:
    return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
  return jax.random.categorical(key, logits_BV / temperature, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("spec", "length", "temperature"))
def sample_ids(params: dict, spec: lm.LMSpec, carry: list, last_B1: jax.Array, key: jax.Array,
               *, length: int, temperature: float = 1.0) -> tuple[list, jax.Array]:
  """Generate ``length`` tokens after ``last_B1 [batch, 1]`` from state ``carry``.

  Returns ``(carry, ids [batch, length])`` int32: the state after the last generated token's
  input step (the last drawn token itself has not been fed back) and the drawn tokens.
  """

  def body(state, key_t):
    carry, tok_B1 = state
    carry, h_1BH = lm.hidden_states(params, spec, carry, tok_B1)
    nxt_B = next_token(lm.logits(params, spec, h_1BH[0]), key_t, temperature)
    return (carry, nxt_B[:, None]), nxt_B

  (carry, _), ids_TB = jax.lax.scan(body, (carry, last_B1.astype(jnp.int32)),
                                    jax.random.split(key, length))
  return carry, ids_TB.T
