"""What runs cost: CPU and wall time summed from their provenance.json records.

Each run directory's provenance.json lists its invocations (``Workdir.start_provenance``): start
and end time, and since 2026-12-07 ``cpu_seconds``, the CPU time of the whole process (every
thread) while the invocation was open. Summing them gives a budget that is never an estimate:
invocations recorded before ``cpu_seconds`` existed count in the wall column only; an
invocation never closed (the process was killed, e.g. at a session's end: no end time) counts
up to its last checkpoint (``checkpoint_time``, ``checkpoint_cpu_seconds``, recorded at every
checkpoint since 2026-12-07), or not at all if it has none; each is reported as such. Members
of one vmapped synthetic group share one process window (``vmap_group`` in their entries): the
group counts once, at its longest member.

A second measure comes from the metrics instead: :func:`training_time`, the time the kept
training steps took at their logged rates. It counts runs whose invocations were all killed
(long runs that span sessions) and leaves out lost work: a resumed run's metrics.jsonl is cut
back to its checkpoint.

    print(line("tanh", cost(run_dirs(pathlib.Path("records/ptb_word/cell=rnn_tanh")))))
"""

from __future__ import annotations

import datetime
import json
import pathlib
from typing import NamedTuple


class Cost(NamedTuple):
  """The summed cost of a set of runs."""
  runs: int
  cpu_s: float  # over invocations that recorded cpu_seconds
  wall_s: float  # every counted invocation's end (or last checkpoint) - start
  counted: int  # invocations (a vmapped group once) in wall_s
  without_cpu: int  # closed invocations with no cpu_seconds (recorded before it existed)
  partial: int  # invocations never closed (killed; running now): counted to their last checkpoint
  unclosed: int  # invocations never closed and with no checkpoint recorded: not counted
  start: str | None  # the first invocation's start (ISO 8601)
  end: str | None  # the last invocation's end


def run_dirs(path: pathlib.Path) -> list[pathlib.Path]:
  """``path`` if it is a run directory (has provenance.json), else its subdirectories that
  are, sorted."""
  if (path / "provenance.json").is_file():
    return [path]
  return sorted(p for p in path.iterdir() if (p / "provenance.json").is_file())


def _time(stamp: str) -> datetime.datetime:
  return datetime.datetime.fromisoformat(stamp)


def cost(dirs: list[pathlib.Path]) -> Cost:
  """The summed :class:`Cost` of the runs in ``dirs`` (their provenance.json entries; an
  invocation never closed counts up to its last checkpoint, or adds nothing without one; a
  vmapped group's entries count once, with the largest CPU and wall time among them)."""
  partial = unclosed = 0
  starts, ends = [], []
  windows: dict[object, tuple[float, float | None]] = {}  # invocation/group -> (wall, cpu)
  for d in dirs:
    for i, inv in enumerate(json.loads((d / "provenance.json").read_text()).get("runs", [])):
      closed = bool(inv.get("end_time"))
      end = inv.get("end_time") or inv.get("checkpoint_time")
      if not inv.get("start_time") or not end:
        unclosed += 1
        continue
      partial += not closed
      starts.append(inv["start_time"])
      ends.append(end)
      wall = (_time(end) - _time(inv["start_time"])).total_seconds()
      cpu = inv.get("cpu_seconds" if closed else "checkpoint_cpu_seconds")
      cpu = None if cpu is None else float(cpu)
      key = ("group", inv["vmap_group"]) if inv.get("vmap_group") else (str(d), i)
      if key in windows:
        w0, c0 = windows[key]
        wall, cpu = max(wall, w0), (c0 if cpu is None else cpu if c0 is None else max(cpu, c0))
      windows[key] = (wall, cpu)
  return Cost(len(dirs), sum(c for _, c in windows.values() if c is not None),
              sum(w for w, _ in windows.values()), len(windows),
              sum(c is None for _, c in windows.values()), partial, unclosed,
              min(starts, default=None), max(ends, default=None))


def line(name: str, c: Cost) -> str:
  """One line: runs, CPU hours (and what they leave out), wall hours, first start .. last end."""
  measured = " measured" if c.without_cpu else ""
  return (f"{name}: {c.runs} run(s), {c.cpu_s / 3600:.2f} CPU-h{measured}, "
          f"{c.wall_s / 3600:.2f} h open (wall)" + "".join(f" ({n})" for n in not_counted(c))
          + f", {c.start or '-'} .. {c.end or '-'}")


def not_counted(c: Cost) -> list[str]:
  """What the totals leave out (empty if nothing): invocations recorded before cpu_seconds
  existed (wall time only), and invocations never closed."""
  return ([f"{c.without_cpu} invocation(s) recorded before cpu_seconds (wall only)"]
          if c.without_cpu else []) + (
      [f"{c.partial} invocation(s) never closed (killed): counted to their last checkpoint"]
      if c.partial else []) + (
      [f"{c.unclosed} invocation(s) never closed, with no checkpoint recorded: not counted"]
      if c.unclosed else [])


def _tokens_per_step(run_dir: pathlib.Path) -> int | None:
  """A language-model run's tokens per update (batch x bptt) from its config.json, else None."""
  path = run_dir / "config.json"
  config = json.loads(path.read_text()) if path.is_file() else {}
  try:
    return int(config["train"]["batch_size"]) * int(config["data"]["bptt"])
  except (KeyError, TypeError, ValueError):
    return None


def training_time(dirs: list[pathlib.Path]) -> tuple[float, int]:
  """(seconds, intervals without a rate): per train event of each run's metrics.jsonl, the
  updates since the previous train event over the event's logged ``steps_per_sec`` (language
  models' events from before it was logged: ``tokens_per_sec`` over batch x bptt; the first
  interval of an invocation, which compiled, logs none for the synthetic tasks)."""
  seconds, unrated = 0.0, 0
  for d in dirs:
    path = d / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    prev, per_step = 0, _tokens_per_step(d)
    for e in (json.loads(x) for x in lines if x):
      if e.get("split") != "train":
        continue
      rate = e.get("steps_per_sec", e.get("updates_per_sec"))
      if not rate and e.get("tokens_per_sec") and per_step:
        rate = float(e["tokens_per_sec"]) / per_step
      if rate:
        seconds += (e["step"] - prev) / float(rate)
      else:
        unrated += 1
      prev = e["step"]
  return seconds, unrated
