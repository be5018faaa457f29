"""Sampling from a trained language model: the whole generation runs in one jitted ``lax.scan``.

    carry = prime(params, spec, carry, prompt_BT[:, :-1])
    carry, ids = sample_ids(params, spec, carry, prompt_BT[:, -1:], key, length=200,
                            temperature=1.0, top_k=0, top_p=1.0)

``carry`` is the model's recurrent state after the prompt (:func:`prime`, i.e.
``lm.hidden_states`` over every prompt token but the last), ``last_BT [batch, 1]`` the last
prompt token of each sample. Each scan step embeds the previous token, runs one time step of
the stack, and draws the next token; no Python loop per token. Temperature 0 is greedy
decoding. Deterministic for a given ``key``. :func:`generate` does all of it for one prompt.

Filtering (static arguments; ``top_k=0`` and ``top_p=1.0`` switch it off), applied to the
temperature-scaled logits ``logits / temperature``, top-k first, then top-p:

* ``top_k=k``: keep the ``k`` largest logits. Exactly ``k`` tokens are kept even when several
  tokens tie with the k-th largest value: the kept ones are those ``lax.top_k`` returns, which
  among equal values prefers the lower token id.
* ``top_p=p`` (nucleus, Holtzman et al. 2020): sort the (top-k-renormalised) probabilities in
  descending order (ties: lower id first) and keep the shortest prefix whose total reaches
  ``p``; the most likely token is always kept. A token is kept iff the probability mass of the
  tokens sorted before it is ``< p``.

The draw is then a categorical over the kept tokens, renormalised.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rnnlm_jax.models import lm


def check_filters(vocab_size: int | None, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> None:
  """Raise ``ValueError`` (one line) for a temperature < 0, top_k outside [0, V], top_p
  outside (0, 1]. ``vocab_size=None`` checks only ``top_k >= 0``."""
  if not temperature >= 0.0:  # also NaN
    raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
  if int(top_k) < 0:
    raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
  if vocab_size is not None and int(top_k) > int(vocab_size):
    raise ValueError(f"top_k must be between 0 (off) and the vocabulary size {vocab_size}, "
                     f"got {top_k}")
  if not 0.0 < top_p <= 1.0:
    raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def _candidates(scaled_BV: jax.Array, top_k: int, top_p: float) -> tuple[jax.Array, jax.Array]:
  """The kept tokens of each row, most likely first.

  Args:
    scaled_BV: temperature-scaled logits ``[batch, V]``.
    top_k, top_p: the filters (see the module doc); at least one of them is on.
  Returns:
    ``(logits [batch, K], ids [batch, K])`` with ``K = top_k`` (or ``V`` when top-k is off),
    in descending order of logit; the logits of tokens removed by top-p are ``-inf``.
  """
  v = scaled_BV.shape[-1]
  k = top_k if 0 < top_k < v else v
  vals_BK, ids_BK = jax.lax.top_k(scaled_BV, k)  # sorted descending, ties: lower id first
  if top_p < 1.0:
    probs_BK = jax.nn.softmax(vals_BK, axis=-1)
    before_BK = jnp.cumsum(probs_BK, axis=-1) - probs_BK  # mass sorted before each token
    keep_BK = (before_BK < top_p).at[:, 0].set(True)
    vals_BK = jnp.where(keep_BK, vals_BK, -jnp.inf)
  return vals_BK, ids_BK


def filter_logits(logits_BV: jax.Array, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> jax.Array:
  """Temperature-scaled ``logits [batch, V]`` with every filtered-out token set to ``-inf``.

  ``temperature`` must be > 0 here. The result ``[batch, V]`` float32 is the distribution
  :func:`next_token` draws from (up to the softmax).
  """
  scaled_BV = logits_BV.astype(jnp.float32) / temperature
  if top_k in (0, scaled_BV.shape[-1]) and top_p >= 1.0:
    return scaled_BV
  vals_BK, ids_BK = _candidates(scaled_BV, top_k, top_p)
  rows_B1 = jnp.arange(scaled_BV.shape[0])[:, None]
  return jnp.full_like(scaled_BV, -jnp.inf).at[rows_B1, ids_BK].set(vals_BK)


def next_token(logits_BV: jax.Array, key: jax.Array, temperature: float, top_k: int = 0,
               top_p: float = 1.0) -> jax.Array:
  """Draw one token per row of ``logits [batch, V]``; returns ids ``[batch]`` int32.

  Greedy (argmax, first id on ties) when ``temperature == 0``, whatever the filters (the
  argmax survives both). Otherwise a categorical over ``logits / temperature`` restricted by
  ``top_k`` / ``top_p`` (0 / 1.0 = off; see the module doc). ``temperature``, ``top_k`` and
  ``top_p`` are Python numbers (static under jit). Rows draw independently from one ``key``.
  """
  if temperature == 0.0:
    return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
  scaled_BV = logits_BV / temperature
  if top_k in (0, logits_BV.shape[-1]) and top_p >= 1.0:
    return jax.random.categorical(key, scaled_BV, axis=-1).astype(jnp.int32)
  vals_BK, ids_BK = _candidates(scaled_BV.astype(jnp.float32), top_k, top_p)
  pick_B = jax.random.categorical(key, vals_BK, axis=-1)
  return jnp.take_along_axis(ids_BK, pick_B[:, None], axis=-1)[:, 0].astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("spec",))
def prime(params: dict, spec: lm.LMSpec, carry: list, tokens_BT: jax.Array) -> list:
  """The recurrent state after reading ``tokens [batch, T]`` from ``carry`` (no dropout)."""
  if tokens_BT.shape[1] == 0:
    return carry
  carry, _ = lm.hidden_states(params, spec, carry, tokens_BT.astype(jnp.int32))
  return carry


@functools.partial(jax.jit,
                   static_argnames=("spec", "length", "temperature", "top_k", "top_p"))
def sample_ids(params: dict, spec: lm.LMSpec, carry: list, last_B1: jax.Array, key: jax.Array,
               *, length: int, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0) -> tuple[list, jax.Array]:
  """Generate ``length`` tokens after ``last_B1 [batch, 1]`` from state ``carry``.

  ``top_k`` / ``top_p`` filter each step's temperature-scaled distribution (0 / 1.0 = off;
  see :func:`next_token`). Returns ``(carry, ids [batch, length])`` int32: the state after the
  last generated token's input step (the last drawn token itself has not been fed back) and
  the drawn tokens.
  """

  def body(state, key_t):
    carry, tok_B1 = state
    carry, h_1BH = lm.hidden_states(params, spec, carry, tok_B1)
    nxt_B = next_token(lm.logits(params, spec, h_1BH[0]), key_t, temperature, top_k, top_p)
    return (carry, nxt_B[:, None]), nxt_B

  (carry, _), ids_TB = jax.lax.scan(body, (carry, last_B1.astype(jnp.int32)),
                                    jax.random.split(key, length))
  return carry, ids_TB.T


def generate(params: dict, spec: lm.LMSpec, prompt_ids, key: jax.Array, *, length: int,
             num_samples: int = 1, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0) -> jax.Array:
  """``num_samples`` independent continuations of one prompt.

  Args:
    prompt_ids: int ``[T]``, ``T >= 1`` (start from ``<eos>`` for an empty prompt).
    key: PRNG key; the same key gives the same samples.
  Returns:
    ``ids [num_samples, length]`` int32: the generated tokens (the prompt excluded).
  Raises:
    ValueError: an empty prompt or a bad filter value (:func:`check_filters`).
  """
  check_filters(spec.vocab_size, temperature, top_k, top_p)
  prompt_T = jnp.asarray(prompt_ids, jnp.int32).reshape(-1)
  if prompt_T.shape[0] < 1:
    raise ValueError("the prompt needs at least one token")
  prompt_BT = jnp.broadcast_to(prompt_T, (num_samples, prompt_T.shape[0]))
  carry = prime(params, spec, lm.init_carry(spec, num_samples), prompt_BT[:, :-1])
  _, ids_BL = sample_ids(params, spec, carry, prompt_BT[:, -1:], key, length=int(length),
                         temperature=float(temperature), top_k=int(top_k), top_p=float(top_p))
  return ids_BL


# ----------------------------------------------------------------------------- text


def tokenizer_of(data_config, vocab) -> str:
  """The ``TOKENIZERS`` key a workdir's corpus was tokenized with (from ``config.data``)."""
  from rnnlm_jax import data as data_lib
  from rnnlm_jax.data import builders
  name = data_config.get("name")
  if name == "text_file":
    tok = data_config.get("level") or "char"
  elif name in builders.BUILDERS:
    tok = builders.BUILDERS[name].TOKENIZER
  else:
    raise ValueError(f"unknown data.name {name!r} in the workdir's config.json")
  if tok == "char" and data_lib.EOS in vocab:  # as data.encode_text_file does
    tok = "ptb_char"
  return tok


def detokenize(tokens: list[str], tokenizer: str) -> str:
  """Text of tokens: words joined by spaces with ``<eos>`` as a newline (word level),
  characters concatenated (char; ``ptb_char``: ``_`` as a space, ``<eos>`` as a newline)."""
  from rnnlm_jax import data as data_lib
  if tokenizer == "char":
    return "".join(tokens)
  if tokenizer == "ptb_char":
    return "".join("\n" if t == data_lib.EOS else " " if t == "_" else t for t in tokens)
  out: list[str] = []
  for t in tokens:
    if t == data_lib.EOS:
      out.append("\n")
    else:
      if out and out[-1] != "\n":
        out.append(" ")
      out.append(t)
  return "".join(out)


def start_token(vocab) -> str | None:
  """The token an unprompted sample starts from: ``<eos>`` (a sentence boundary), else a
  newline (char vocabularies without ``<eos>``), else None."""
  from rnnlm_jax import data as data_lib
  if data_lib.EOS in vocab:
    return data_lib.EOS
  return "\n" if "\n" in vocab else None
