"""Command line: ``rnnlm-sweep`` (also ``python -m rnnlm_jax.sweep_main``).

    rnnlm-sweep --config configs/sweeps/tiny_lm.py --workdir runs/tiny_lm
        [--task_index=I --num_tasks=N | --claim] [--point=NAME ...] [--no_vmap] [--dry_run]
        [--cv=K]
        [--search=halving --eta=3 --min_budget=B [--halving_wait_s=S]]
        [--config.KEY=VALUE ...]

Expands the sweep file (``get_config()`` and ``get_sweep()``, see :mod:`rnnlm_jax.sweeps`),
writes ``WORKDIR/sweep.json`` and trains this task's points, each in ``WORKDIR/<name>/``.
``--config.KEY=VALUE`` overrides the base config of every point (a swept key may not be
overridden). Re-running resumes: finished and diverged points are skipped (a finished point
is trained on when ``train.num_epochs`` / ``train.max_steps`` is raised).

``--task_index=I --num_tasks=N`` runs the I-th of N shares (a SLURM array job:
``--task_index=$SLURM_ARRAY_TASK_ID --num_tasks=4`` with ``--array=0-3``). ``--claim`` splits
nothing: any number of workers started with the same command on one ``--workdir`` go through
all the points and each takes (under the point's workdir lock) those no other worker holds and
that are not done, so a heterogeneous cluster finishes the sweep without a static split; it
refuses ``--num_tasks`` > 1 and ``--search=halving``. Every point is decided on, trained and
recorded under its lock in either mode, so shards and workers never train a point twice.
``--point=NAME`` (repeatable) runs only the named points of this task's share; ``sweep.json``
still records every point. ``--dry_run`` lists the points (name, execution unit, shard) and
exits without writing anything.

``--cv=K`` (classifier sweeps) cross-validates: every point runs once per fold of the training
split (``data.cv_fold`` 0..K-1 with ``data.cv_folds=K``; the data set's valid split is unused),
and ``rnnlm-report`` averages the folds like seeds.

``--search=halving --eta=3 --min_budget=B`` runs successive halving instead of the full grid
(:mod:`rnnlm_jax.sweeps.halving`): every group of seeds trains for ``B`` epochs
(``train.num_epochs``; ``train.max_steps`` steps when the base config sets it), the best
``1/eta`` by validation go on with ``eta`` times the budget, up to the config's own run length.
Resumable and shardable like the grid; a task whose share of a rung is done waits up to
``--halving_wait_s`` for the other tasks' points, then exits 75 (re-run to continue).

Exit status: 0 every point of this task finished, diverged or is running elsewhere, 1 some
point failed, 2 bad input (one ``error:`` line on stderr, nothing written), 130 interrupted
(re-run to resume).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

from rnnlm_jax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Path to a sweep file (configs/sweeps/*.py) defining get_config() and "
    "get_sweep().", lock_config=True)
flags.DEFINE_string("workdir", None, "Sweep directory (created; re-use it to resume).")
flags.DEFINE_integer("task_index", 0, "This task's share of the sweep, 0 <= i < num_tasks.")
flags.DEFINE_integer("num_tasks", 1, "How many tasks share the sweep (array job size).")
flags.DEFINE_bool("claim", False, "No static split: every worker started with this command on "
                  "the --workdir goes through all the points and trains each one that no other "
                  "worker holds and that is not done (taken under the point's workdir lock). "
                  "Not with --num_tasks > 1 or --search=halving.")
flags.DEFINE_multi_string("point", None, "Run only this point (its name as --dry_run lists it, "
                          "e.g. residual=true,seed=1); repeat the flag for several.")
flags.DEFINE_bool("no_vmap", False, "Train every synthetic point as its own unit. By default "
                  "points that may share a program form groups, trained as one vmapped program "
                  "where that is faster (several devices, e.g. --cpu_devices=2, or a GPU/TPU) "
                  "and one after another (compiled once) on a single CPU device.")
flags.DEFINE_bool("dry_run", False, "List the points, their units and shards; train nothing.")
flags.DEFINE_integer("cv", 0, "k >= 2: k-fold cross-validation (classifier sweeps): every "
                     "point runs once per fold of the training split (data.cv_folds=k, "
                     "data.cv_fold=0..k-1, named like seeds); rnnlm-report gives the folds' "
                     "mean and std.")
flags.DEFINE_enum("search", "grid", ["grid", "halving"], "grid: train every point to the "
                  "config's run length. halving: successive halving (--eta, --min_budget): "
                  "train every point for --min_budget, keep the best 1/eta groups of seeds by "
                  "validation, give them eta times the budget, ... up to the run length.")
flags.DEFINE_integer("eta", 3, "--search=halving: keep the best 1/eta groups per rung and "
                     "multiply the budget by eta (an integer >= 2).")
flags.DEFINE_float("min_budget", None, "--search=halving: the first rung's budget, in epochs "
                   "(train.num_epochs) or, when the base config sets train.max_steps > 0, in "
                   "steps (train.max_steps).")
flags.DEFINE_float("halving_wait_s", 0.0, "--search=halving with --num_tasks > 1: how long a "
                   "task whose share of a rung is done waits for the other tasks' points "
                   "(seconds; then it exits 75: re-run it to continue).")
flags.DEFINE_float("halving_poll_s", 30.0, "--search=halving: seconds between checks while "
                   "waiting for a rung.")
flags.DEFINE_integer("cpu_devices", 1, "On a CPU host, split each vmapped group across this many "
                     "XLA CPU devices (one thread each; sets --xla_force_host_platform_device_count)."
                     " Use 1 when running one sweep shard per core.")


def _raise_keyboard_interrupt(signum, frame):
  raise KeyboardInterrupt(f"signal {signum}")


def _validate_points(points) -> None:
  """Each point's config passes its task's validation (before anything is written)."""
  from rnnlm_jax import tasks
  from rnnlm_jax.sweeps.spec import SweepError
  checks = [([p], tasks.get_task(p.config).validate_config) for p in points]
  for pts, validate in checks:
    for p in pts:
      try:
        validate(p.config)
      except (ValueError, KeyError, TypeError) as e:
        raise SweepError(f"point {p.name}: {cli.one_line(e)}") from None


def _main(argv) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; flags are --config, --workdir, --task_index, "
          "--num_tasks, --claim, --point, --no_vmap, --dry_run, --search, --eta, --min_budget, "
          "--halving_wait_s, --halving_poll_s, --config.KEY=VALUE")
  if FLAGS.config is None:
    cli.fail("--config is required, e.g. --config configs/sweeps/tiny_lm.py")
  if not FLAGS.workdir:
    cli.fail("--workdir is required (the sweep directory; re-use it to resume)")
  if FLAGS.cpu_devices < 1:
    cli.fail(f"--cpu_devices must be >= 1, got {FLAGS.cpu_devices}")
  if FLAGS.cpu_devices > 1:  # before JAX creates its backend
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={FLAGS.cpu_devices}")
  from rnnlm_jax.sweeps.plan import plan, select, shard
  from rnnlm_jax.sweeps.run import (check_workdir, run_sweep, sweep_record,
                                    write_sweep_json)
  from rnnlm_jax.sweeps.spec import SweepError, expand, load_sweep_module, swept_keys
  from rnnlm_jax.workdir import WorkdirError

  n, i, vmap = FLAGS.num_tasks, FLAGS.task_index, not FLAGS.no_vmap
  path = config_flags.get_config_filename(FLAGS["config"])
  try:
    if n < 1 or not 0 <= i < n:
      raise SweepError(f"need 0 <= --task_index < --num_tasks, got --task_index={i} "
                       f"--num_tasks={n}")
    if FLAGS.claim and n > 1:
      raise SweepError("--claim takes points as workers get to them; drop --task_index/"
                       "--num_tasks (a static split), or drop --claim")
    if FLAGS.claim and FLAGS.search == "halving":
      raise SweepError("--claim cannot be combined with --search=halving; split a search "
                       "with --task_index/--num_tasks")
    module = load_sweep_module(path)
    try:
      overrides = module.get_sweep()
    except SweepError:
      raise
    except Exception as e:
      raise SweepError(f"{path}: get_sweep() failed: {type(e).__name__}: "
                       f"{cli.one_line(e)}") from None
    overridden = set(config_flags.get_override_values(FLAGS["config"]))
    if FLAGS.cv:
      overrides = cv_points(FLAGS.config, overrides, FLAGS.cv, overridden)
    points = expand(FLAGS.config, overrides)
    clash = [k for k in swept_keys(overrides) if k in overridden]
    if clash:
      raise SweepError(f"--config.{clash[0]} sets a key the sweep varies; change the sweep "
                       "file instead")
    _validate_points(points)
    units = plan(points, n, vmap)
    mine = select(shard(units, i, n), FLAGS.point)
    record = sweep_record(path, points)
    check_workdir(FLAGS.workdir, record, points)
    search = None
    if FLAGS.search == "halving":
      from rnnlm_jax.sweeps import halving
      if FLAGS.point:
        raise SweepError("--point cannot be combined with --search=halving (the rungs decide "
                         "which points train)")
      if FLAGS.min_budget is None:
        raise SweepError("--search=halving needs --min_budget (the first rung's budget)")
      search = halving.make_search(points, FLAGS.eta, FLAGS.min_budget)
      halving.check_search(FLAGS.workdir, search)
  except (SweepError, WorkdirError, ValueError) as e:
    cli.fail(cli.one_line(e))

  n_mine = sum(len(u) for u in mine)
  who = _who(i, n, FLAGS.claim)
  verb = "claims from" if FLAGS.claim else "runs"
  print(f"sweep {path}: {len(points)} points in {len(units)} units; {who} {verb} {n_mine} "
        f"points in {len(mine)} units (swept: {', '.join(record['keys']) or 'nothing'})",
        flush=True)
  if FLAGS.dry_run:
    width = max(len(p.name) for p in points)
    chosen = {p.name for u in mine for p in u}
    for p in points:
      # The vmap group key is long (the config less what may vary in a group): a short hash.
      group = (f"  vmap_group={hashlib.sha1(p.group_key.encode()).hexdigest()[:8]}"
               if p.group_key else "")
      mark = "*" if p.name in chosen else " "
      shard_of = "" if FLAGS.claim else f" shard={p.shard}"
      print(f"{mark} {p.name:<{width}}  unit={p.unit}{shard_of}{group}", flush=True)
    by = "claimed by any worker" if FLAGS.claim else f"run by --task_index={i}"
    print(f"(dry run: nothing written; * = {by})", flush=True)
    if search is not None:
      n_groups = len(halving.groups_of(points))
      per = len(points) / n_groups
      for r, b in enumerate(search.budgets):
        print(f"halving rung {r + 1}: {search.key}={b}, {n_groups} groups "
              f"({round(n_groups * per)} points)", flush=True)
        n_groups = max(1, n_groups // search.eta)
    return

  write_sweep_json(FLAGS.workdir, record)
  cli.setup_logging()
  # SIGTERM (a cluster's time limit, scancel) between points stops the sweep like Ctrl-C;
  # inside a point the trainer catches it, saves a checkpoint and raises Interrupted.
  signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
  if search is not None:
    _run_halving(points, search, i, n, vmap)
    return
  result = _interruptible(lambda: run_sweep(mine, FLAGS.workdir, vmap=vmap), who, "sweep")
  print(f"sweep summary ({who}): {result.summary()}", flush=True)
  if result.exit_code:
    failed = [name for name, s in result.states.items() if s == "failed"]
    print(f"error: {len(failed)} point(s) failed: {', '.join(failed[:5])}"
          + (" ..." if len(failed) > 5 else "") + "; see their status.json, fix, and re-run "
          "to retry them", file=sys.stderr, flush=True)
  sys.exit(result.exit_code)


def _who(i: int, n: int, claim: bool) -> str:
  """How the progress and summary lines name this process: its share, or the claiming
  worker (pid and host)."""
  import socket
  return f"worker pid {os.getpid()} on {socket.gethostname()}" if claim else f"task {i} of {n}"


def cv_points(base, overrides: list[dict], folds: int, overridden: set[str]) -> list[dict]:
  """``--cv k``: sets ``data.cv_folds = k`` in ``base`` and repeats every point once per fold
  (``data.cv_fold`` 0..k-1, varying fastest, like seeds). SweepError on a bad ``k``, a
  non-classifier sweep, or a sweep that sets the fold keys itself."""
  from rnnlm_jax.sweeps.spec import SweepError, swept_keys
  if folds < 2:
    raise SweepError(f"--cv needs k >= 2 folds, got {folds}")
  if str(base.get("task", "lm")) != "classify":
    raise SweepError(f"--cv (k-fold cross-validation) is for classifier sweeps (task "
                     f"'classify'); this sweep's task is {base.get('task', 'lm')!r}")
  taken = [k for k in ("data.cv_folds", "data.cv_fold")
           if k in overridden or k in swept_keys(overrides)]
  if taken:
    raise SweepError(f"--cv sets {taken[0]} itself; drop it from the sweep or the command line")
  base.data.cv_folds = folds
  return [dict(o, **{"data.cv_fold": f}) for o in overrides for f in range(folds)]


def _interruptible(run, who: str, what: str):
  """``run()``, with SIGINT/SIGTERM turned into the summary so far, one line and exit 130."""
  from rnnlm_jax.sweeps.run import SweepInterrupted
  try:
    return run()
  except SweepInterrupted as e:
    print(f"sweep summary ({who}, interrupted): {e.result.summary()}", flush=True)
    cli.fail(str(e), cli.EXIT_INTERRUPTED)
  except KeyboardInterrupt:
    cli.fail(f"interrupted between points; re-run the same command to resume the {what}",
             cli.EXIT_INTERRUPTED)


def _run_halving(points, search, i: int, n: int, vmap: bool) -> None:
  """Run this task's share of a halving search and exit with its status."""
  from rnnlm_jax.sweeps import halving
  result = _interruptible(lambda: halving.run_halving(
      points, FLAGS.workdir, search, task_index=i, num_tasks=n, vmap=vmap,
      wait_s=FLAGS.halving_wait_s, poll_s=FLAGS.halving_poll_s), _who(i, n, False), "search")
  print(f"sweep summary (task {i} of {n}): {result.sweep.summary()}", flush=True)
  if result.failed:
    print(f"error: {len(result.failed)} point(s) failed: {', '.join(result.failed[:5])}; "
          f"{result.message}", file=sys.stderr, flush=True)
  else:
    print(result.message, flush=True)
  sys.exit(result.exit_code)


def main() -> None:
  """Entry point of ``rnnlm-sweep``."""
  app.run(_main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
