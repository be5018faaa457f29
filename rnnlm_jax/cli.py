"""What the command-line entry points share: ``--help``, one-line errors, exit codes, logging,
flag parsing.

Bad input ends with one line on stderr, ``error: <what is wrong and how to fix it>``, and a
non-zero exit status: 1 some sweep points failed, 2 bad input (also: the workdir is in use by
another run, or none of its checkpoints verifies), 3 diverged (NaN/inf, or not learning), 74
a file-system error (not a directory, read-only, disk full: fix it and re-run to resume), 130
interrupted (a checkpoint was saved; re-run the same command to resume).

``--help`` (also ``-h``, ``-?``, ``--helpshort``) prints the program's usage, a description, an
example and its own flags with their help strings on stdout, and exits 0 (:data:`PROGRAMS`;
the flags are read from the absl registry, so a new flag shows up by itself). ``--helpfull``
is absl's: every flag, the libraries' included.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import textwrap
import threading

from absl import flags

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_OS_ERROR = 74  # sysexits' EX_IOERR: the file system refused (not a directory, read-only,
# disk full, ...); fix the cause and re-run the same command to resume

CONFIG_KEYS_HINT = "the keys, with comments, are in rnnlm_jax/config_base.py"


def fail(msg: str, code: int = EXIT_BAD_INPUT):
  """Print ``error: msg`` on stderr and exit with ``code``."""
  print(f"error: {msg}", file=sys.stderr, flush=True)
  sys.exit(code)


def os_error_in(e: BaseException) -> OSError | None:
  """The ``OSError`` that caused ``e`` (``e`` itself, or one in its chain of causes), if any:
  libraries (orbax, tensorstore) wrap the file system's errors in their own."""
  seen = set()
  while e is not None and id(e) not in seen:
    if isinstance(e, OSError):
      return e
    seen.add(id(e))
    e = e.__cause__ or e.__context__
  return None


def os_error_line(e: OSError) -> str:
  """One line for a file-system error: what failed, where, and that a re-run resumes."""
  where = f" ({e.filename})" if getattr(e, "filename", None) else ""
  what = e.strerror or one_line(e)
  return f"{what}{where}; fix that and re-run the same command (the run resumes)"


def one_line(e: BaseException) -> str:
  """The first line of an exception's message (its type name if it has none)."""
  return str(e).splitlines()[0] if str(e) else type(e).__name__


def setup_logging(stream=None) -> None:
  """INFO lines with a time stamp on ``stream`` (default stdout); the libraries' chatter
  silenced (orbax logs every checkpoint save and restore at INFO through the ``absl`` logger).

  Called by the commands, never on import, so importing the library changes no logging."""
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                      stream=sys.stdout if stream is None else stream, force=True)
  for noisy in NOISY_LOGGERS:
    logging.getLogger(noisy).setLevel(logging.WARNING)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_one_line_records)
  threading.excepthook = _log_thread_exception
  sys.unraisablehook = _log_unraisable


NOISY_LOGGERS = ("absl", "jax", "orbax", "tensorflow_datasets", "etils")


def _one_line_records(record: logging.LogRecord) -> bool:
  """Keep log records to their message line, without a traceback: the libraries log one from
  their background threads (orbax's saves on a full disk, asyncio after a checkpoint that
  could not be read); the command's own ``error:`` line says what happened and what to do."""
  if record.exc_info:
    record.msg = f"{record.getMessage()} ({record.exc_info[0].__name__}: "\
                 f"{one_line(record.exc_info[1])})"
    record.args, record.exc_info, record.exc_text = None, None, None
  return True


def _log_thread_exception(args) -> None:
  """An exception that ends a background thread (e.g. an asynchronous checkpoint save on a
  full disk): one log line, not a traceback; the main thread reports the failure."""
  logging.getLogger("rnnlm_jax").warning("background thread %s: %s: %s", args.thread.name
                                         if args.thread else "?", args.exc_type.__name__,
                                         one_line(args.exc_value) if args.exc_value else "")


def _log_unraisable(args) -> None:
  """An exception Python cannot raise (in a finalizer, e.g. asyncio's "Event loop is closed"
  after tensorstore failed to read a corrupted checkpoint): one log line."""
  logging.getLogger("rnnlm_jax").debug("ignored in %r: %s: %s", args.object, args.exc_type.__name__,
                                       one_line(args.exc_value) if args.exc_value else "")


# ----------------------------------------------------------------------------- --help


@dataclasses.dataclass(frozen=True)
class Program:
  """What ``PROG --help`` says besides the flags."""
  usage: str
  description: str
  examples: tuple[str, ...]
  hidden: tuple[str, ...] = ()  # flags of the module that this program does not use
  overrides: str = ""           # help of --config.KEY=VALUE ("" = the program has none)


_OVERRIDES = ("Override one config key (repeatable), e.g. --config.model.hidden_size=650 "
              f"--config.optim.lr=0.5; {CONFIG_KEYS_HINT}.")

PROGRAMS = {
    "rnnlm-train": Program(
        usage="rnnlm-train --config FILE --workdir DIR [--config.KEY=VALUE ...]",
        description=(
            "Train the model a config file describes (its `task` key: lm, music, classify "
            "or synthetic; see rnnlm_jax/tasks/) in the run directory DIR: config.json, "
            "checkpoints, "
            "metrics and the final test scores are written there. Re-running the same "
            "command resumes from the latest checkpoint. Exit status: 0 done, 2 bad input, "
            "3 diverged (NaN/inf, not learning), 74 file-system error, 130 interrupted (re-run to "
            "resume)."),
        examples=("rnnlm-train --config configs/ptb_small.py --workdir runs/ptb_small",
                  "rnnlm-train --config configs/tiny.py --workdir /tmp/tiny "
                  "--config.model.cell=gru --config.seed=1"),
        hidden=("mode", "split", "text", "checkpoint"),
        overrides=_OVERRIDES),
    "rnnlm-eval": Program(
        usage="rnnlm-eval --workdir DIR [--split test | --text FILE] [--checkpoint best|latest]",
        description=(
            "Evaluate a trained run directory made by rnnlm-train with its own config.json "
            "and checkpoint, on a split of its data set or (language models) on a UTF-8 text "
            "file read with the model's tokenization, and print the scores as one JSON line. "
            "Exit status: 0 done, 2 bad input."),
        examples=("rnnlm-eval --workdir runs/ptb_small --split test",
                  "rnnlm-eval --workdir runs/ptb_small --text notes.txt --checkpoint latest"),
        hidden=("mode", "config")),
    "rnnlm-sweep": Program(
        usage=("rnnlm-sweep --config SWEEP_FILE --workdir DIR [--task_index=I --num_tasks=N] "
               "[--point=NAME ...] [--no_vmap] [--dry_run] [--search=halving --eta=3 "
               "--min_budget=B] [--config.KEY=VALUE ...]"),
        description=(
            "Expand a sweep file (get_config() and get_sweep()) into points, write "
            "DIR/sweep.json and train this task's points, each in DIR/<point name>/. The "
            "whole sweep is validated before anything is written. Re-running resumes: "
            "finished and diverged points are skipped (a finished point is trained on when "
            "train.num_epochs / train.max_steps is raised). --search=halving runs successive "
            "halving: every group of seeds for --min_budget epochs (steps when "
            "train.max_steps is set), the best 1/eta by validation on with eta times the "
            "budget, up to the config's run length. Exit status: 0 every point "
            "finished or diverged, 1 some point failed, 2 bad input, 75 a halving rung waits "
            "for other tasks (re-run), 130 interrupted."),
        examples=("rnnlm-sweep --config configs/sweeps/tiny_lm.py --workdir runs/tiny_lm "
                  "--dry_run",
                  "rnnlm-sweep --config configs/sweeps/tiny_lm.py --workdir runs/tiny_lm "
                  "--task_index=$SLURM_ARRAY_TASK_ID --num_tasks=4",
                  "rnnlm-sweep --config configs/sweeps/tiny_lm.py --workdir runs/tiny_halving "
                  "--search=halving --eta=3 --min_budget=1"),
        overrides=("Override one key of every point's base config (repeatable; a key the "
                   f"sweep varies may not be overridden); {CONFIG_KEYS_HINT}.")),
    "rnnlm-report": Program(
        usage=("rnnlm-report DIR [--tables KEYS] [--rows KEYS] [--cols KEYS] [--metric NAME] "
               "[--select valid [--group KEYS]] [--noplots] [--out OUT] | rnnlm-report DIR... "
               "--atlas [--out OUT]"),
        description=(
            "Tabulate a sweep directory DIR (sweep.json and one workdir per point, or just "
            "run subdirectories): write DIR/results.csv, results_cells.csv, results.md, "
            "results.tex and DIR/plots/*.png (or all of them under --out OUT, e.g. for "
            "committed records), and print the tables of the first metric. "
            "--select valid picks, per --group, the setting with the best validation metric "
            "(seeds aggregated) and reports the test metric of that setting only. "
            "--atlas draws the clipping atlas's figures (heatmaps over learning rate x "
            "clipping per cell, clip rate, gradient norms, best curves) of one sweep or of a "
            "directory of per-cell sweeps, into DIR/plots/ or --out. "
            "Exit status: 0 done, 2 bad input."),
        examples=("rnnlm-report runs/tiny_lm",
                  "rnnlm-report runs/cells --rows model.cell --cols optim.clip_mode "
                  "--metric test_perplexity --noplots",
                  "rnnlm-report runs/cells --select valid --group model.cell",
                  "rnnlm-report experiments/search/records/full --select valid --out /tmp/full",
                  "rnnlm-report ~/rnnlm_runs/atlas/ptb_word --atlas --out /tmp/atlas")),
    "rnnlm-sample": Program(
        usage=("rnnlm-sample --workdir DIR --prompt TEXT --length N [--temperature T] "
               "[--top_k K] [--top_p P] [--seed S] [--num_samples M] "
               "[--checkpoint best|latest]"),
        description=(
            "Continue a prompt with a trained language model (a run directory made by "
            "rnnlm-train; music, classification and synthetic-task runs cannot sample): the "
            "prompt is read with the model's tokenization and each sample is printed as the "
            "prompt followed by the generated text. The same --seed gives the same text; "
            "--temperature 0 is greedy. Exit status: 0 done, 2 bad input."),
        examples=('rnnlm-sample --workdir runs/ptb_small --prompt "the company said" '
                  "--length 50",
                  'rnnlm-sample --workdir runs/shakespeare_char --prompt "ROMEO:" --length 200 '
                  "--temperature 0.8 --top_p 0.95 --num_samples 3")),
}

# `python -m rnnlm_jax.X` runs have the module's file as argv[0].
_MODULE_PROGRAMS = {"main.py": "rnnlm-train", "sweep_main.py": "rnnlm-sweep",
                    "report_main.py": "rnnlm-report", "sample_main.py": "rnnlm-sample"}
_HELP_ARGS = ("-h", "--h", "-help", "--help", "-?", "--?", "-helpshort", "--helpshort")


def program_name(argv) -> str:
  """The command ``argv`` runs: ``rnnlm-train`` etc. (``rnnlm-eval`` is ``rnnlm-train`` with
  ``--mode=eval``), else the base name of ``argv[0]``."""
  name = os.path.basename(argv[0]) if argv else ""
  name = _MODULE_PROGRAMS.get(name, name)
  if name == "rnnlm-train" and ("--mode=eval" in argv or "-mode=eval" in argv):
    return "rnnlm-eval"
  return name


def wants_help(argv) -> bool:
  """Whether ``argv`` asks for ``--help`` (before a ``--`` that ends the flags)."""
  for arg in argv[1:]:
    if arg == "--":
      return False
    if arg in _HELP_ARGS:
      return True
  return False


def _own_flags(argv) -> list:
  """The flags the command's own modules define (rnnlm_jax's, or the script's), in order."""
  script = argv[0] if argv else None
  out = []
  for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
    if module.startswith("rnnlm_jax") or module == script or module == "__main__":
      out += [f for f in module_flags if f not in out]
  return out


def _default_str(default) -> str:
  if isinstance(default, bool):
    return str(default).lower()
  if isinstance(default, (list, tuple)):
    return ",".join(map(str, default))
  return str(default)


def _flag_lines(flag) -> list[str]:
  """``--name VALUE`` and its help, wrapped, with the default."""
  text = flag.help or ""
  choices = getattr(flag.parser, "enum_values", None)
  if isinstance(flag, flags.BooleanFlag):
    head = f"--[no]{flag.name}"
  elif choices:
    head = f"--{flag.name} {'|'.join(choices)}"
    text = re.sub(r"^<[^>]*>:\s*", "", text)  # absl's own "<a|b>: " prefix
  else:
    hint = {"int": "N", "float": "X"}.get(getattr(flag.parser, "flag_type", str)(), "VALUE")
    head = f"--{flag.name} {hint}"
  if isinstance(flag, flags.MultiFlag):
    text = re.sub(r";\s*repeat this option to specify a list of values$", "", text)
    text += " (repeatable)"
  if flag.default not in (None, "", [], ()) and flag.name != "config":
    text += f" (default: {_default_str(flag.default)})"
  return [f"  {head}"] + _wrap(text, "      ")


def _wrap(text: str, indent: str = "", subsequent: str | None = None) -> list[str]:
  return textwrap.wrap(text, width=90, initial_indent=indent, break_on_hyphens=False,
                       subsequent_indent=indent if subsequent is None else subsequent)


def help_text(argv) -> str:
  """The ``--help`` text of the command ``argv`` runs."""
  name = program_name(argv)
  prog = PROGRAMS.get(name, Program(usage=f"{name} [flags]", description="", examples=()))
  parts = _wrap(f"usage: {prog.usage}", "", " " * 7) + [""]
  if prog.description:
    parts += _wrap(prog.description) + [""]
  if prog.examples:
    parts += ["example:" if len(prog.examples) == 1 else "examples:"]
    parts += [f"  {e}" for e in prog.examples] + [""]  # not wrapped: copy-pasteable
  parts += ["flags:"]
  for flag in _own_flags(argv):
    if flag.name not in prog.hidden:
      parts += _flag_lines(flag)
  if prog.overrides:
    parts += ["  --config.KEY=VALUE"] + _wrap(prog.overrides, "      ")
  parts += ["  --help", "      Show this help and exit.", "  --helpfull",
            "      Every flag, the libraries' (absl's) included."]
  return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- parsing


def _config_overrides(argv) -> list[str]:
  """The ``KEY`` of each ``--config.KEY[=VALUE]`` (or ``--noconfig.KEY``) in ``argv``, in the
  order ml_collections applies them (each at its last occurrence)."""
  paths: dict[str, None] = {}
  for arg in argv[1:]:
    m = re.match(r"-{1,2}(?:no)?config\.([^=]+)", arg)
    if m:
      paths.pop(m.group(1), None)
      paths[m.group(1)] = None
  return list(paths)


def _unknown_key_message(e: BaseException, argv) -> str | None:
  """``unknown config key 'a.b'; did you mean 'a.c'?`` for a ConfigDict lookup error raised
  while applying a ``--config.*`` override, else ``None``.

  ml_collections raises ``AttributeError('\\'b\\'\\nDid you mean "c" instead of "b"?')``
  chained to the ``KeyError('b')`` of the lookup, without the path; the path is that of the
  first override holding the missing component.
  """
  key, err = None, e
  while err is not None:  # the innermost KeyError holds the bare key
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
      key = err.args[0]
    err = err.__context__
  if key is None or "\n" in key:
    key = str(e).strip("\"'").split("\n")[0].strip("\\'\"")
  suggestion = re.search(r'Did you mean "([^"]+)"', str(e))
  for path in _config_overrides(argv):
    parts = path.split(".")
    if key in parts:
      prefix = parts[:parts.index(key)]
      msg = f"unknown config key {'.'.join(prefix + [key])!r}"
      if suggestion:
        return msg + f"; did you mean {'.'.join(prefix + [suggestion.group(1)])!r}?"
      return msg + f"; {CONFIG_KEYS_HINT}"
  return None


def parse_flags(argv):
  """absl flag parsing (with --config files): ``--help`` answered here (exit 0), errors turned
  into one ``error:`` line (exit 2)."""
  if wants_help(argv):
    sys.stdout.write(help_text(argv))
    sys.stdout.flush()
    sys.exit(0)
  see_help = f"; see {program_name(argv)} --help"
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{one_line(e)}{see_help}")
  except (AttributeError, KeyError) as e:
    msg = _unknown_key_message(e, argv)
    if msg is None:
      fail(f"could not load the config: {type(e).__name__}: {one_line(e)}")
    fail(msg)
  except Exception as e:  # a config file that fails to load, a value of the wrong type
    fail(f"could not load the config: {type(e).__name__}: {one_line(e)}")
