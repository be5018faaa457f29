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

From a trained workdir (no corpus needed): :func:`read_workdir` (config, spec, vocabulary,
tokenizer; music, classification and synthetic-task workdirs are refused with a one-line
``ValueError``), :func:`restore_params` (a checkpoint's parameters), :func:`load_workdir` (both),
:func:`encode_prompt` (a prompt read with the training tokenization) and :func:`sample_texts`
(what ``rnnlm-sample`` prints, :mod:`rnnlm_jax.sample_main`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

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


# ----------------------------------------------------------------------------- prompts


def prompt_tokens(text: str, tokenizer: str) -> list[str]:
  """The prompt's tokens under the training tokenizer, without the final line's ``<eos>``
  unless ``text`` ends with a newline (a prompt continues its last line)."""
  from rnnlm_jax import data as data_lib
  from rnnlm_jax.data import builders
  lines = builders.split_lines(text)
  if tokenizer == "ptb_char":  # Mikolov's files: one symbol per character, "_" between words
    lines = [" ".join("_" if c.isspace() else c for c in line.rstrip("\n"))
             + ("\n" if line.endswith("\n") else "") for line in lines]
  tokens = data_lib.TOKENIZERS[tokenizer](lines)
  if tokenizer != "char" and tokens and tokens[-1] == data_lib.EOS and not text.endswith("\n"):
    tokens.pop()
  return tokens


def encode_prompt(text: str, vocab, tokenizer: str) -> tuple[list[int], list[str]]:
  """Prompt ids ``[T]`` (``T >= 1``) and the prompt's tokens that are not in the vocabulary.

  Unknown tokens become ``<unk>`` (dropped if the vocabulary has none). An empty prompt is
  ``[<eos>]`` (a newline for char vocabularies without ``<eos>``).

  Raises:
    ValueError: the vocabulary has no start token for an empty prompt, or no prompt token is
      known to a vocabulary without ``<unk>``.
  """
  from rnnlm_jax import data as data_lib
  tokens = prompt_tokens(text, tokenizer)
  unknown = list(dict.fromkeys(t for t in tokens if t not in vocab))
  if unknown and vocab.unk_id is None:
    tokens = [t for t in tokens if t in vocab]
    if not tokens:
      raise ValueError(f"none of the prompt's tokens is in the vocabulary (which has no "
                       f"{data_lib.UNK}); use characters the model was trained on")
  ids = [vocab.index.get(t, vocab.unk_id) for t in tokens]
  if not ids:
    start = start_token(vocab)
    if start is None:
      raise ValueError(f"the prompt is empty and the vocabulary has no {data_lib.EOS} (or "
                       "newline) to start from; give a --prompt")
    ids = [vocab.index[start]]
  return ids, unknown


# ----------------------------------------------------------------------------- loading


def read_workdir(workdir: str):
  """``(config, spec, vocab, tokenizer)`` of a trained workdir (no checkpoint, no corpus).

  Raises:
    ValueError (or WorkdirError / DataError, both one-line): a missing workdir, config or
      vocabulary, or a music, classification or synthetic-task workdir.
  """
  import ml_collections

  from rnnlm_jax import data as data_lib
  from rnnlm_jax.workdir import Workdir

  wd = Workdir(workdir)
  if not wd.path.is_dir():
    raise ValueError(f"workdir {workdir} not found; give a run directory made by rnnlm-train")
  config = ml_collections.ConfigDict(wd.read_config())
  from rnnlm_jax import tasks
  name = tasks.task_name(config)
  if not tasks.get_task(name).has_text:  # music, classification, synthetic
    raise ValueError(f"{workdir} is a {name} run, not a language model; sampling needs a "
                     "language-model workdir")
  if not wd.vocab_file.exists():
    raise ValueError(f"{wd.vocab_file} not found; is {workdir} a workdir made by rnnlm-train?")
  vocab = data_lib.Vocab.load(wd.vocab_file)
  tokenizer = tokenizer_of(config.data, vocab)
  spec = lm.LMSpec.from_config(config.model, len(vocab))
  return config, spec, vocab, tokenizer


def restore_params(workdir: str, config, spec, checkpoint: str = "best") -> dict:
  """The parameters of a workdir's ``best`` or ``latest`` checkpoint, on the default device.

  With ``model.norm="batch"`` the training split is loaded to estimate the population
  statistics (:func:`rnnlm_jax.tasks.lm.population_params`).

  The train state is restored into an abstract target built from the config and the
  vocabulary size (``jax.eval_shape`` of ``tasks.lm.create_train_state``; the schedule's
  ``steps_per_epoch`` does not change the state's structure, so 1 is used).

  Raises:
    ValueError: no such checkpoint, or one that does not fit the config/vocabulary.
  """
  from rnnlm_jax import checkpoint as ckpt_lib
  from rnnlm_jax.tasks import lm as lm_task
  from rnnlm_jax.workdir import Workdir

  wd = Workdir(workdir)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                        jax.eval_shape(lambda: lm_task.create_train_state(config, spec, 1)))
  try:
    state = ckpt_lib.restore_for_evaluation(wd.checkpoint_dir, target, checkpoint)
  except FileNotFoundError as e:
    raise ValueError(str(e)) from None
  except Exception as e:  # a checkpoint that does not fit the config/vocabulary
    first = str(e).splitlines()[0] if str(e) else ""
    raise ValueError(f"could not restore the {checkpoint} checkpoint of {workdir}: "
                     f"{type(e).__name__}: {first}") from None
  from rnnlm_jax import optim  # NT-ASGD runs sample with their averaged parameters
  params = optim.eval_params(state.opt_state, state.params)
  if spec.norm == "batch":  # recurrent batch norm: population statistics from the training data
    from rnnlm_jax import data as data_lib
    corpus = data_lib.load_lm_corpus(config.data, str(wd.path))
    params = lm_task.population_params(
        params, spec, data_lib.batchify(corpus.train, int(config.train.batch_size)),
        int(config.data.bptt))
  return params


def load_workdir(workdir: str, checkpoint: str = "best"):
  """``(config, spec, params, vocab, tokenizer)``: :func:`read_workdir` and
  :func:`restore_params`."""
  config, spec, vocab, tokenizer = read_workdir(workdir)
  return config, spec, restore_params(workdir, config, spec, checkpoint), vocab, tokenizer


def sample_texts(workdir: str, prompt: str, length: int, *, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, num_samples: int = 1,
                 checkpoint: str = "best", warn=None) -> list[str]:
  """``num_samples`` texts, each the prompt followed by ``length`` generated tokens (what
  ``rnnlm-sample`` prints, see :mod:`rnnlm_jax.sample_main`).

  ``warn(message)`` receives the warning about prompt tokens missing from the vocabulary.
  Raises ``ValueError`` (one line) for bad input.
  """
  if int(length) < 1:
    raise ValueError(f"--length must be >= 1, got {length}")
  if int(num_samples) < 1:
    raise ValueError(f"--num_samples must be >= 1, got {num_samples}")
  check_filters(None, temperature, top_k, top_p)  # before loading; top_k <= V after
  config, spec, vocab, tokenizer = read_workdir(workdir)
  check_filters(len(vocab), temperature, top_k, top_p)
  ids, unknown = encode_prompt(prompt, vocab, tokenizer)
  if unknown and warn is not None:
    what = "dropped" if vocab.unk_id is None else "read as <unk>"
    warn(f"prompt tokens not in the vocabulary, {what}: "
         + ", ".join(repr(t) for t in unknown[:20]) + (" ..." if len(unknown) > 20 else ""))
  params = restore_params(workdir, config, spec, checkpoint)
  out = np.asarray(generate(params, spec, ids, jax.random.PRNGKey(int(seed)),
                            length=int(length), num_samples=int(num_samples),
                            temperature=float(temperature), top_k=int(top_k),
                            top_p=float(top_p)))
  shown = ids if prompt_tokens(prompt, tokenizer) else []  # the start token is not shown
  return [detokenize(vocab.decode(list(shown) + row.tolist()), tokenizer) for row in out]
