"""What the command-line entry points share: one-line errors, exit codes, logging, flag parsing.

Bad input ends with one line on stderr, ``error: <what is wrong and how to fix it>``, and a
non-zero exit status: 1 some sweep points failed, 2 bad input, 3 diverged (NaN/inf), 130
interrupted (a checkpoint was saved; re-run the same command to resume).
"""

from __future__ import annotations

import logging
import sys

from absl import flags

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130


def fail(msg: str, code: int = EXIT_BAD_INPUT):
  """Print ``error: msg`` on stderr and exit with ``code``."""
  print(f"error: {msg}", file=sys.stderr, flush=True)
  sys.exit(code)


def one_line(e: BaseException) -> str:
  """The first line of an exception's message (its type name if it has none)."""
  return str(e).splitlines()[0] if str(e) else type(e).__name__


def setup_logging() -> None:
  """INFO lines with a time stamp on stdout; the libraries' chatter silenced."""
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                      stream=sys.stdout, force=True)
  for noisy in ("absl", "jax", "orbax", "tensorflow_datasets", "etils"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_flags(argv):
  """absl flag parsing (with --config files), config errors turned into one ``error:`` line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e}")
  except (AttributeError, KeyError) as e:
    key = str(e).strip("\"'")
    fail(f"unknown config key {key!r} in a --config.* override; the keys, with comments, are "
         "in rnnlm_jax/config_base.py")
  except Exception as e:  # a config file that fails to load, a value of the wrong type
    fail(f"could not load the config: {type(e).__name__}: {one_line(e)}")
