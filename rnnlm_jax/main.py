"""Command line: ``rnnlm-train`` and ``rnnlm-eval`` (also ``python -m rnnlm_jax.main``).

    rnnlm-train --config configs/ptb_small.py --workdir runs/ptb_small [--config.seed=1 ...]
    rnnlm-eval  --workdir runs/ptb_small [--split test | --text FILE] [--checkpoint best|latest]

Re-running ``rnnlm-train`` with the same workdir resumes it. Training uses every visible
device (data parallel; ``--config.train.num_devices``); with ``RNNLM_DISTRIBUTED=1`` (or the
``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` variables) the process
first joins a multi-host run (:func:`rnnlm_jax.parallel.maybe_initialize_distributed`).

Bad input ends with one line on stderr saying what is wrong and how to fix it, and a non-zero
exit status: 2 bad input, 3 diverged (NaN/inf), 130 interrupted (resumable).
"""

from __future__ import annotations

import json
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from rnnlm_jax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "The run directory: rnnlm-train creates it or resumes the "
                    "run in it; rnnlm-eval reads its config and checkpoints.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "train, or evaluate a workdir.")
flags.DEFINE_string("split", "test", "rnnlm-eval: split to evaluate (train, valid, test).")
flags.DEFINE_string("text", None, "rnnlm-eval: evaluate on this UTF-8 text file instead.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "rnnlm-eval: which checkpoint.")
flags.DEFINE_bool("accept_data_change", False, "rnnlm-train: resume although the prepared data "
                  "differs from the workdir's data.json (recorded in provenance.json).")


def _main(argv) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; flags are --config, --workdir, --config.KEY=VALUE")
  cli.setup_logging()
  if not FLAGS.workdir:
    cli.fail("--workdir is required (the run directory; re-use it to resume)")
  from rnnlm_jax import parallel
  try:  # multi-host runs: connect the processes before anything touches the devices
    parallel.maybe_initialize_distributed()
  except ValueError as e:
    cli.fail(cli.one_line(e))
  from rnnlm_jax import loop, tasks  # heavy imports after flag checks
  from rnnlm_jax.checkpoint import CheckpointError
  from rnnlm_jax.data import DataError
  from rnnlm_jax.workdir import Workdir, WorkdirError
  try:
    if FLAGS.mode == "eval":
      task = tasks.get_task(Workdir(FLAGS.workdir).read_config())
      print(json.dumps(task.evaluate_workdir(FLAGS.workdir, FLAGS.split, FLAGS.checkpoint,
                                             text=FLAGS.text)))
      return
    if FLAGS.config is None:
      cli.fail("--config is required, e.g. --config configs/ptb_small.py")
    print(json.dumps(loop.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                                             accept_data_change=FLAGS.accept_data_change)))
  except (DataError, WorkdirError, ValueError, FileNotFoundError, CheckpointError) as e:
    cli.fail(cli.one_line(e))
  except loop.Diverged as e:
    cli.fail(f"training diverged: {e}", cli.EXIT_DIVERGED)
  except loop.Interrupted as e:
    cli.fail(str(e), cli.EXIT_INTERRUPTED)
  except Exception as e:  # noqa: BLE001  a file-system error, however a library wrapped it
    os_error = cli.os_error_in(e)
    if os_error is not None:
      cli.fail(cli.os_error_line(os_error), cli.EXIT_OS_ERROR)
    lost = parallel.peer_lost_line(e)
    if lost is None:
      raise
    cli.fail(lost, cli.EXIT_FAILED)


def train_cli() -> None:
  """Entry point of ``rnnlm-train``."""
  try:
    app.run(_main, flags_parser=cli.parse_flags)
  except SystemExit as e:
    _exit_now_if_failed_alone(e.code)
    raise
  except Exception:  # an unexpected error: the same, after its traceback
    _exit_now_if_failed_alone(cli.EXIT_FAILED, print_traceback=True)
    raise


def _exit_now_if_failed_alone(code, print_traceback: bool = False) -> None:
  """In a multi-process run, a process that fails alone (exit 1, an unexpected error or a lost
  peer, or 74, its file system; not 0, 2 bad input, 3 diverged or 130 interrupted, which every
  process reaches together) ends at once after its one line, skipping ``jax.distributed``'s shutdown barrier: the others may wait in
  a collective for it, and the barrier would hold it for ``shutdown_timeout_seconds`` (300 s)
  while its heartbeats keep them waiting too. Once it is gone, a collective of theirs fails
  (gloo: connection reset) or the coordination service declares it dead after
  ``RNNLM_HEARTBEAT_TIMEOUT`` and stops them."""
  together = (0, None, cli.EXIT_BAD_INPUT, cli.EXIT_DIVERGED, cli.EXIT_INTERRUPTED)
  if code in together or "jax" not in sys.modules:
    return
  import jax
  if not jax.distributed.is_initialized() or jax.process_count() == 1:
    return
  if print_traceback:
    import traceback
    traceback.print_exc()
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code if isinstance(code, int) else 1)


def eval_cli() -> None:
  """Entry point of ``rnnlm-eval``."""
  sys.argv.insert(1, "--mode=eval")
  app.run(_main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  train_cli()
