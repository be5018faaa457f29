"""Running a sweep's share: the ``sweep.json`` record, skip/resume, final statuses.

Point ``p`` runs in ``WORKDIR/<p.name>/`` under the single-run workdir contract of
:mod:`rnnlm_jax.workdir`. ``WORKDIR/sweep.json`` is ``{"config": <sweep file as given>,
"keys": [every key some point sets, in order of first appearance], "points": [{"name",
"overrides"}, ...]}``.

Run a sweep with ``rnnlm-sweep --config configs/sweeps/NAME.py --workdir runs/NAME`` (see
:mod:`rnnlm_jax.sweep_main`). The whole sweep is validated (keys, values, names, existing
``sweep.json`` and point configs) before anything is written. Re-running the command skips
the points whose ``status.json`` says ``finished`` or ``diverged`` (diverging again would be
deterministic) and resumes the others from their checkpoints; a point whose config changed in
a non-resumable key is refused. A finished language-model or whole-sequence point is trained
on (resumed) when its run length changed: re-run the sweep with a larger
``--config.train.num_epochs`` or ``--config.train.max_steps`` (or raise it in the sweep file)
and every such point continues from its checkpoint, as ``rnnlm-train`` would on its directory.
Synthetic-task points stop at their own success or step cap and are never extended.

Any number of processes may run over the same points at once (array-job shards, ``--claim``
workers, a run by hand): a point is claimed by taking its workdir lock, and whether it is
still to do is read, it is trained and its final status written under that one hold
(:func:`claim`), so each point is trained by one process; ``sweep.json`` is written
atomically with the same content by whichever starts first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Callable, Mapping, Sequence

from rnnlm_jax import tasks
from rnnlm_jax.sweeps.spec import Point, SweepError, swept_keys
from rnnlm_jax.workdir import DONE_STATES, RUN_LENGTH_KEYS, Workdir, WorkdirBusy, \
    atomic_write_text, flatten

SWEEP_FILE = "sweep.json"
FINAL_STATES = ("finished", "diverged", "failed")


class SweepInterrupted(RuntimeError):
  """SIGINT/SIGTERM during a point; its checkpoint was saved. ``result`` holds the counts so
  far. Re-running the same command resumes the sweep."""

  def __init__(self, message: str, result: "SweepResult"):
    super().__init__(message)
    self.result = result


# ----------------------------------------------------------------------------- sweep.json


def _jsonable(v):
  return json.loads(json.dumps(v))


def sweep_record(config_path: str, points: Sequence[Point]) -> dict:
  """The content of ``sweep.json``."""
  return {"config": str(config_path), "keys": swept_keys([p.overrides for p in points]),
          "points": [{"name": p.name, "overrides": _jsonable(p.overrides)} for p in points]}


def read_sweep_json(path: pathlib.Path, tries: int = 3, pause_s: float = 0.2) -> dict:
  """``sweep.json``'s record. Another worker may be replacing it (an atomic rename: a reader
  sees one whole version, but a network file system may fail the open meanwhile): a failed
  read is tried up to ``tries`` times.

  Raises:
    SweepError: it stays unreadable.
  """
  for attempt in range(tries):
    try:
      return json.loads(path.read_text())
    except (OSError, ValueError) as e:
      if attempt == tries - 1:
        raise SweepError(f"{path} is unreadable ({e}); move it away to start over") from None
      time.sleep(pause_s)


def check_workdir(workdir: str | os.PathLike, record: dict, points: Sequence[Point]) -> None:
  """Check, without writing, that the sweep may use ``workdir``: an existing ``sweep.json``
  must list the same points, and every existing point directory's ``config.json`` must agree
  with the point's config (resumable keys such as ``train.max_steps`` may differ).

  Raises:
    SweepError: the sweep or a point's config conflicts with what is on disk.
  """
  path = pathlib.Path(workdir) / SWEEP_FILE
  if path.exists():
    old = read_sweep_json(path)
    old_points = old.get("points")
    if old_points != record["points"]:
      old_names = [p.get("name") for p in old_points or []]
      new_names = [p["name"] for p in record["points"]]
      if old_names != new_names:
        extra = sorted(set(new_names) - set(old_names))[:3]
        missing = sorted(set(old_names) - set(new_names))[:3]
        detail = (f"{len(old_names)} points before, {len(new_names)} now"
                  + (f"; new: {extra}" if extra else "")
                  + (f"; gone: {missing}" if missing else ""))
      else:
        detail = "the same names with different override values"
      raise SweepError(f"{path} was written for a different sweep ({old.get('config')!r}: "
                       f"{detail}); use a new --workdir, or restore the sweep to resume it")
  for p in points:
    wd = Workdir(pathlib.Path(workdir) / p.name)
    try:
      wd.check_config(p.config.to_dict())
    except ValueError as e:
      raise SweepError(f"point {p.name}: {e}") from None


def write_sweep_json(workdir: str | os.PathLike, record: dict) -> None:
  """Write ``sweep.json`` unless it exists (check first with :func:`check_workdir`).

  Safe when several workers start at once: each writes the same content through
  :func:`rnnlm_jax.workdir.atomic_write_text` (a private temporary file renamed into place),
  so a reader sees no file or a whole one.
  """
  d = pathlib.Path(workdir)
  d.mkdir(parents=True, exist_ok=True)
  path = d / SWEEP_FILE
  if not path.exists():
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass
class SweepResult:
  """What a task of a sweep did.

  Attributes:
    states: point name -> final state (finished | diverged | failed) of this task's points,
      or ``running`` for a point another process holds.
    skipped: names of points already finished or diverged before this run, or held elsewhere.
  """
  states: dict[str, str] = dataclasses.field(default_factory=dict)
  skipped: list[str] = dataclasses.field(default_factory=list)

  def counts(self) -> dict[str, int]:
    out = {s: 0 for s in FINAL_STATES}
    for s in self.states.values():
      out[s] = out.get(s, 0) + 1
    return out

  @property
  def exit_code(self) -> int:
    """1 if a point failed, else 0 (points finished, diverged or running elsewhere)."""
    return 1 if any(s == "failed" for s in self.states.values()) else 0

  def summary(self) -> str:
    c = self.counts()
    elsewhere = c.pop("running", 0)
    parts = [f"{k} {v}" for k, v in c.items()]
    done = len(self.skipped) - sum(1 for n in self.skipped if self.states.get(n) == "running")
    skipped = ([f"{done} already done"] if done else []) + (
        [f"{elsewhere} running elsewhere"] if elsewhere else [])
    return (f"{len(self.states)} points: " + ", ".join(parts)
            + (f" ({', '.join(skipped)}, skipped)" if skipped else ""))


def _first_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {e}".splitlines()[0]


def _settle_status(wd: Workdir, before: dict | None, error: BaseException | None,
                   diverged: bool, returned: Mapping | None = None) -> dict:
  """Make sure ``wd`` ends with a final status after a training call; return it.

  Kept as written by the trainer if final and (when the call raised) rewritten by this call;
  otherwise a status the trainer returned, else ``failed`` (``diverged`` for a divergence
  exception) with the reason.
  """
  status = wd.read_status()
  state = (status or {}).get("state")
  fresh = status is not None and status != before
  if state in FINAL_STATES and (error is None or fresh):
    return status
  prev = status or before or {}
  step, epoch = prev.get("step", 0), prev.get("epoch", 0.0)
  if error is None and returned and returned.get("state") in FINAL_STATES:
    extra = {k: v for k, v in returned.items()
             if k not in ("state", "step", "epoch", "reason", "time")}
    wd.path.mkdir(parents=True, exist_ok=True)
    wd.write_status(returned["state"], returned.get("step", step), returned.get("epoch", epoch),
                    returned.get("reason", ""), **extra)
    return wd.read_status()
  if error is not None:
    new_state, reason = ("diverged" if diverged else "failed"), _first_line(error)
  else:
    new_state = "failed"
    reason = f"the trainer returned without a final status (status.json state: {state})"
  wd.path.mkdir(parents=True, exist_ok=True)
  wd.write_status(new_state, step, epoch, reason)
  return wd.read_status()


def _run_lengthened(path: pathlib.Path, config, status: Mapping) -> bool:
  """A finished language-model or whole-sequence point whose run length (``train.num_epochs``
  / ``train.max_steps``) is now set differently: it is trained on (resumed) rather than
  skipped, like ``rnnlm-train`` on a finished workdir. Synthetic points stop at their own
  success or cap and are always skipped once ended."""
  if status.get("state") != "finished" or tasks.get_task(config).group_key is not None:
    return False
  try:
    old = flatten(Workdir(path).read_config())
  except (OSError, ValueError):
    return False
  new = flatten(config.to_dict())
  return any(k in old and old[k] != new.get(k) for k in RUN_LENGTH_KEYS)


def claim(wd: Workdir, point: Point) -> tuple[bool, str, dict | None]:
  """Try to take point ``point``'s workdir ``wd`` for training: ``(taken, why, status)``.

  The lock is taken first (non-blocking) and the status read under it, so the decision cannot
  race another process: a point another process holds is not taken (``why``: "running
  elsewhere (pid ...)"), nor one already finished or diverged (its lock released again; a
  finished point whose run length changed is taken, see :func:`_run_lengthened`). A taken
  point's lock is held and lent (:meth:`rnnlm_jax.workdir.Workdir.lend`) to the trainer; the
  caller releases it.
  """
  try:
    wd.acquire()
  except WorkdirBusy:
    return False, f"running elsewhere ({wd.holder() or 'another process'})", None
  status = wd.read_status()
  if (status and status.get("state") in DONE_STATES
      and not _run_lengthened(wd.path, point.config, status)):
    wd.release()
    return False, f"already {status['state']} (step {status.get('step')})", status
  wd.lend()
  return True, "", status


def run_sweep(units: Sequence[Sequence[Point]], workdir: str | os.PathLike, *,
              vmap: bool = True, out: Callable[[str], None] | None = None) -> SweepResult:
  """Run the given execution units (this task's share, see :mod:`rnnlm_jax.sweeps.plan`).

  Every point is first claimed (:func:`claim`): its workdir lock is taken and its status read
  under it. A point another process holds is skipped ("running elsewhere"), and so are points
  already ``finished`` or ``diverged``, unless a finished language-model or whole-sequence
  point's run length (``train.num_epochs`` / ``train.max_steps``) changed
  (``--config.train.num_epochs=N`` trains a whole sweep on); the others are trained (resuming
  from their checkpoints) and their final status settled, all under the lock, so any number
  of processes may run over the same points at once and each point is trained by one. A
  point that diverges or fails is recorded in its ``status.json`` (state, step, reason;
  written here when the trainer did not) and the sweep goes on.

  Args:
    units: lists of points; language-model units hold one point. A synthetic unit trains the
      points of it this process claimed as one group.
    workdir: the sweep directory; point ``p`` runs in ``workdir/p.name``.
    vmap: passed to the task's ``train_group`` (synthetic).
    out: progress printer (default: print to stdout, flushed).

  Raises:
    SweepInterrupted: SIGINT/SIGTERM (``train.Interrupted``) or KeyboardInterrupt; the
      interrupted points are left resumable and the remaining ones are not started.
  """
  out = out or (lambda s: print(s, flush=True))
  root = pathlib.Path(workdir)
  result = SweepResult()
  total = sum(len(u) for u in units)
  done = 0
  for unit in units:
    held: list[tuple[Point, Workdir, dict | None]] = []
    try:
      for p in unit:
        wd = Workdir(root / p.name)
        taken, why, status = claim(wd, p)
        if taken:
          held.append((p, wd, status))
          continue
        done += 1
        result.states[p.name] = status["state"] if status else "running"
        result.skipped.append(p.name)
        out(f"[sweep {done}/{total}] skip {p.name}: {why}")
      if held:
        done = _train_unit(held, root, vmap, result, done, total, out)
    finally:
      for _, wd, _ in held:
        wd.release()
  return result


def _train_unit(held: Sequence[tuple[Point, Workdir, dict | None]], root: pathlib.Path,
                vmap: bool, result: SweepResult, done: int, total: int,
                out: Callable[[str], None]) -> int:
  """Train the claimed points of one unit (their locks held), settle and report their final
  statuses into ``result``; returns the progress count ``done``.

  Raises:
    SweepInterrupted: as :func:`run_sweep`.
  """
  from rnnlm_jax import loop  # heavy (jax): imported once there is work
  todo = [p for p, _, _ in held]
  task = tasks.get_task(todo[0].config)
  grouped = task.train_group is not None
  for k, (p, _, before) in enumerate(held):
    group = f" (group of {len(todo)})" if grouped and len(todo) > 1 else ""
    # The lock is ours: a "running" status is that of a run killed before it ended.
    stale = (" (stale: its last run was killed; resuming)"
             if (before or {}).get("state") == "running" else "")
    out(f"[sweep {done + k + 1}/{total}] start {p.name}{group}{stale}")
  t0 = time.perf_counter()
  error: BaseException | None = None
  returned: list = [None] * len(todo)
  try:
    if grouped:
      returned = list(task.train_group([p.config for p in todo],
                                       [str(root / p.name) for p in todo],
                                       vmap="auto" if vmap else False))
      returned += [None] * (len(todo) - len(returned))
    else:
      loop.train_and_evaluate(todo[0].config, str(root / todo[0].name))
  except BaseException as e:  # noqa: BLE001  recorded below; interrupts re-raised after
    error = e
  elapsed = time.perf_counter() - t0
  interrupted = isinstance(error, (KeyboardInterrupt, loop.Interrupted))
  diverged = isinstance(error, loop.Diverged)
  for (p, wd, before), ret in zip(held, returned):
    if isinstance(error, WorkdirBusy):  # taken by another process meanwhile: its status
      done += 1
      result.states[p.name] = "running"
      out(f"[sweep {done}/{total}] skip {p.name}: {_first_line(error)}")
      continue
    status = _settle_status(wd, before, error, diverged,
                            ret if isinstance(ret, Mapping) else None)
    done += 1
    result.states[p.name] = status["state"]
    reason = f": {status['reason']}" if status.get("reason") else ""
    out(f"[sweep {done}/{total}] {status['state']} {p.name} at step {status.get('step')} "
        f"in {elapsed:.1f} s{reason}")
  if interrupted:
    raise SweepInterrupted(f"sweep interrupted during {', '.join(p.name for p in todo)} "
                           f"({_first_line(error)})", result)
  return done
