"""Command line: ``rnnlm-sample`` (also ``python -m rnnlm_jax.sample_main``).

    rnnlm-sample --workdir runs/ptb_small --prompt "the company said" --length 50 \
        [--temperature 1.0] [--top_k 0] [--top_p 1.0] [--seed 0] [--num_samples 1] \
        [--checkpoint best|latest]

Loads the workdir's ``config.json``, ``vocab.txt`` and checkpoint parameters (the corpus is
not needed), reads the prompt with the model's tokenization, primes the recurrent state with it
in one jitted call and draws ``--length`` tokens per sample in one jitted ``lax.scan``
(:mod:`rnnlm_jax.sample`). ``--num_samples m`` draws m independent rows in one batch. The same
``--seed`` gives the same text; ``--temperature 0`` is greedy.

Prompt tokenization (as in training, ``rnnlm_jax.data.lm.TOKENIZERS``):

* word level: whitespace-separated words; each newline is ``<eos>``. Words not in the
  vocabulary are read as ``<unk>`` (a warning on stderr names them).
* char level: every character. PTB characters (``ptb_char``): spaces become the ``_`` word
  boundary and newlines ``<eos>``. Characters not in the vocabulary are read as ``<unk>``, or
  dropped if the vocabulary has none (a warning names them).
* an empty prompt starts from ``<eos>`` (char level without ``<eos>``: from a newline).

Output on stdout: each sample is the prompt followed by the generated text (words joined by
spaces, ``<eos>`` as a newline; characters concatenated). With ``--num_samples`` > 1 each
sample is preceded by a line ``==> sample i/m <==``. Bad input ends with one ``error:`` line on
stderr and exit status 2.
"""

from __future__ import annotations

import pathlib
import sys

from absl import app, flags

from rnnlm_jax import cli
from rnnlm_jax.sample import detokenize, start_token, tokenizer_of  # noqa: F401

FLAGS = flags.FLAGS
USAGE = ("usage: rnnlm-sample --workdir DIR --prompt TEXT --length N [--temperature T] "
         "[--top_k K] [--top_p P] [--seed S] [--num_samples M] [--checkpoint best|latest]")


def _define_flags() -> None:
  """Flags are defined when the command runs, so importing this module defines none."""
  if "top_p" in FLAGS:
    return
  flags.DEFINE_string("workdir", None, "A run directory made by rnnlm-train.")
  flags.DEFINE_string("prompt", "", "Text to continue (may be empty: start from <eos>).")
  flags.DEFINE_integer("length", 100, "Tokens to generate per sample (words or characters).")
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature; 0 = greedy (argmax).")
  flags.DEFINE_integer("top_k", 0, "Keep only the k most likely tokens (0 = off).")
  flags.DEFINE_float("top_p", 1.0, "Nucleus sampling: keep the smallest set of most likely "
                     "tokens whose probability reaches p (1 = off).")
  flags.DEFINE_integer("seed", 0, "PRNG seed; the same seed gives the same samples.")
  flags.DEFINE_integer("num_samples", 1, "Independent samples, drawn as one batch.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to load.")


# ----------------------------------------------------------------------------- tokenization


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
      vocabulary, or a synthetic-task workdir.
  """
  import ml_collections

  from rnnlm_jax import data as data_lib
  from rnnlm_jax.models import lm
  from rnnlm_jax.workdir import Workdir

  wd = Workdir(workdir)
  if not wd.path.is_dir():
    raise ValueError(f"workdir {workdir} not found; give a run directory made by rnnlm-train")
  config = ml_collections.ConfigDict(wd.read_config())
  if "task" in config:
    raise ValueError(f"{workdir} is a synthetic-task run; rnnlm-sample needs a language-model "
                     "workdir")
  if not wd.vocab_file.exists():
    raise ValueError(f"{wd.vocab_file} not found; is {workdir} a workdir made by rnnlm-train?")
  vocab = data_lib.Vocab.load(wd.vocab_file)
  tokenizer = tokenizer_of(config.data, vocab)
  spec = lm.LMSpec.from_config(config.model, len(vocab))
  return config, spec, vocab, tokenizer


def restore_params(workdir: str, config, spec, checkpoint: str = "best") -> dict:
  """The parameters of a workdir's ``best`` or ``latest`` checkpoint, on the default device.

  The train state is restored into an abstract target built from the config and the
  vocabulary size (``jax.eval_shape`` of ``train.create_train_state``; the schedule's
  ``steps_per_epoch`` does not change the state's structure, so 1 is used).

  Raises:
    ValueError: no such checkpoint, or one that does not fit the config/vocabulary.
  """
  import jax

  from rnnlm_jax import checkpoint as ckpt_lib
  from rnnlm_jax import train
  from rnnlm_jax.workdir import Workdir

  wd = Workdir(workdir)
  ckpt_dir = wd.checkpoint_dir / checkpoint
  if not ckpt_dir.is_dir() or not any(p.name.isdigit() for p in ckpt_dir.iterdir()):
    raise ValueError(f"no {checkpoint} checkpoint in {wd.checkpoint_dir}; train first"
                     + (" (or use --checkpoint latest)" if checkpoint == "best" else ""))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                        jax.eval_shape(lambda: train.create_train_state(config, spec, 1)))
  ckpt = ckpt_lib.Checkpointer(wd.checkpoint_dir, async_save=False)
  try:
    restored = ckpt.restore_best(target) if checkpoint == "best" else ckpt.restore_latest(target)
  except Exception as e:  # a checkpoint that does not fit the config/vocabulary
    raise ValueError(f"could not restore the {checkpoint} checkpoint of {workdir}: "
                     f"{type(e).__name__}: {cli.one_line(e)}") from None
  finally:
    ckpt.close()
  if restored is None:
    raise ValueError(f"no {checkpoint} checkpoint in {wd.checkpoint_dir}; train first")
  from rnnlm_jax import optim  # NT-ASGD runs sample with their averaged parameters
  return optim.eval_params(restored[0].opt_state, restored[0].params)


def load_workdir(workdir: str, checkpoint: str = "best"):
  """``(config, spec, params, vocab, tokenizer)``: :func:`read_workdir` and
  :func:`restore_params`."""
  config, spec, vocab, tokenizer = read_workdir(workdir)
  return config, spec, restore_params(workdir, config, spec, checkpoint), vocab, tokenizer


def sample_texts(workdir: str, prompt: str, length: int, *, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, num_samples: int = 1,
                 checkpoint: str = "best", warn=None) -> list[str]:
  """``num_samples`` texts, each the prompt followed by ``length`` generated tokens.

  ``warn(message)`` receives the warning about prompt tokens missing from the vocabulary.
  Raises ``ValueError`` (one line) for bad input.
  """
  if int(length) < 1:
    raise ValueError(f"--length must be >= 1, got {length}")
  if int(num_samples) < 1:
    raise ValueError(f"--num_samples must be >= 1, got {num_samples}")
  from rnnlm_jax import sample
  sample.check_filters(None, temperature, top_k, top_p)  # before loading; top_k <= V after
  config, spec, vocab, tokenizer = read_workdir(workdir)
  sample.check_filters(len(vocab), temperature, top_k, top_p)
  ids, unknown = encode_prompt(prompt, vocab, tokenizer)
  if unknown and warn is not None:
    what = "dropped" if vocab.unk_id is None else "read as <unk>"
    warn(f"prompt tokens not in the vocabulary, {what}: "
         + ", ".join(repr(t) for t in unknown[:20]) + (" ..." if len(unknown) > 20 else ""))
  params = restore_params(workdir, config, spec, checkpoint)
  import jax
  import numpy as np
  out = np.asarray(sample.generate(params, spec, ids, jax.random.PRNGKey(int(seed)),
                                   length=int(length), num_samples=int(num_samples),
                                   temperature=float(temperature), top_k=int(top_k),
                                   top_p=float(top_p)))
  shown = ids if prompt_tokens(prompt, tokenizer) else []  # the start token is not shown
  return [detokenize(vocab.decode(list(shown) + row.tolist()), tokenizer) for row in out]


# ----------------------------------------------------------------------------- command


def _warn(message: str) -> None:
  print(f"warning: {message}", file=sys.stderr, flush=True)


def _main(argv) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; {USAGE}")
  if not FLAGS.workdir:
    cli.fail(f"--workdir is required; {USAGE}")
  if not pathlib.Path(FLAGS.workdir).is_dir():
    cli.fail(f"workdir {FLAGS.workdir} not found; give a run directory made by rnnlm-train")
  from rnnlm_jax.data import DataError
  try:
    texts = sample_texts(FLAGS.workdir, FLAGS.prompt, FLAGS.length,
                         temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
                         seed=FLAGS.seed, num_samples=FLAGS.num_samples,
                         checkpoint=FLAGS.checkpoint, warn=_warn)
  except (DataError, ValueError, FileNotFoundError) as e:
    cli.fail(cli.one_line(e))
  for i, text in enumerate(texts):
    if len(texts) > 1:
      print(f"{'' if i == 0 else chr(10)}==> sample {i + 1}/{len(texts)} <==")
    print(text, flush=True)


def _parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.Error as e:
    cli.fail(f"{e}; {USAGE}")


def main() -> None:
  """Entry point of ``rnnlm-sample``."""
  _define_flags()
  app.run(_main, flags_parser=_parse_flags)


if __name__ == "__main__":
  main()
