"""Command line: ``rnnlm-sample`` (also ``python -m rnnlm_jax.sample_main``).

    rnnlm-sample --workdir runs/ptb_small --prompt "the company said" --length 50 \
        [--temperature 1.0] [--top_k 0] [--top_p 1.0] [--seed 0] [--num_samples 1] \
        [--checkpoint best|latest]

Loads the workdir's ``config.json``, ``vocab.txt`` and checkpoint parameters (the corpus is
not needed), reads the prompt with the model's tokenization, primes the recurrent state with it
in one jitted call and draws ``--length`` tokens per sample in one jitted ``lax.scan``
(:func:`rnnlm_jax.sample.sample_texts`; this module is only the command line). Music,
classification and synthetic-task workdirs are refused with one ``error:`` line.
``--num_samples m`` draws m independent rows in one batch. The same ``--seed`` gives the same
text; ``--temperature 0`` is greedy.

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

FLAGS = flags.FLAGS
USAGE = cli.PROGRAMS["rnnlm-sample"].usage


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


# ----------------------------------------------------------------------------- command


def _warn(message: str) -> None:
  print(f"warning: {message}", file=sys.stderr, flush=True)


def _main(argv) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; usage: {USAGE}")
  if not FLAGS.workdir:
    cli.fail(f"--workdir is required; usage: {USAGE}")
  if not pathlib.Path(FLAGS.workdir).is_dir():
    cli.fail(f"workdir {FLAGS.workdir} not found; give a run directory made by rnnlm-train")
  cli.setup_logging(sys.stderr)  # stdout carries the samples only
  from rnnlm_jax import sample  # jax: after the flag checks
  from rnnlm_jax.data import DataError
  try:
    texts = sample.sample_texts(FLAGS.workdir, FLAGS.prompt, FLAGS.length,
                                temperature=FLAGS.temperature, top_k=FLAGS.top_k,
                                top_p=FLAGS.top_p, seed=FLAGS.seed,
                                num_samples=FLAGS.num_samples, checkpoint=FLAGS.checkpoint,
                                warn=_warn)
  except (DataError, ValueError, FileNotFoundError) as e:
    cli.fail(cli.one_line(e))
  for i, text in enumerate(texts):
    if len(texts) > 1:
      print(f"{'' if i == 0 else chr(10)}==> sample {i + 1}/{len(texts)} <==")
    print(text, flush=True)


def main() -> None:
  """Entry point of ``rnnlm-sample``."""
  _define_flags()
  app.run(_main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
