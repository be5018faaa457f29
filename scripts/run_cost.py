"""What runs cost: CPU and wall time summed from their provenance.json records.

    python scripts/run_cost.py experiments/clipping/records/ptb_word/cell=rnn_tanh
    python scripts/run_cost.py experiments/clipping/records/ptb_word/*   # one line per directory

Each DIR is a run directory or a directory of them (a sweep, or its archived records: the
files ``scripts/archive_runs.py`` keeps). Per DIR it prints the number of runs, the CPU hours
(``cpu_seconds`` of every invocation, recorded since 2026-12-07; the whole process, all
threads), the wall hours the invocations were open (a point shares its process's wall time with
nothing else only when it is trained alone), and the first start and last end. Invocations
recorded before ``cpu_seconds`` existed count in the wall column only, and invocations never
closed (the process was killed, e.g. at a session's end: no end time) count in neither; both
are reported as such, so a total is never an estimate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
from typing import NamedTuple


class Cost(NamedTuple):
  """The summed cost of a set of runs."""
  runs: int
  cpu_s: float  # over invocations that recorded cpu_seconds
  wall_s: float  # every closed invocation's end - start
  without_cpu: int  # closed invocations with no cpu_seconds (recorded before it existed)
  unclosed: int  # invocations with no end time (killed; the one running now): not counted
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
  invocation still open, with no end time, adds nothing)."""
  cpu = wall = 0.0
  without = unclosed = 0
  starts, ends = [], []
  for d in dirs:
    for inv in json.loads((d / "provenance.json").read_text()).get("runs", []):
      if not inv.get("start_time") or not inv.get("end_time"):
        unclosed += 1
        continue
      starts.append(inv["start_time"])
      ends.append(inv["end_time"])
      wall += (_time(inv["end_time"]) - _time(inv["start_time"])).total_seconds()
      if inv.get("cpu_seconds") is None:
        without += 1
      else:
        cpu += float(inv["cpu_seconds"])
  return Cost(len(dirs), cpu, wall, without, unclosed, min(starts, default=None),
              max(ends, default=None))


def line(name: str, c: Cost) -> str:
  cpu = (f"{c.cpu_s / 3600:.2f} CPU-h" if c.without_cpu == 0 else
         f"{c.cpu_s / 3600:.2f} CPU-h measured + {c.without_cpu} invocation(s) recorded before "
         "cpu_seconds existed")
  unclosed = (f" ({c.unclosed} invocation(s) never closed, e.g. killed: not counted)"
              if c.unclosed else "")
  return (f"{name}: {c.runs} run(s), {cpu}, {c.wall_s / 3600:.2f} h open (wall){unclosed}, "
          f"{c.start or '-'} .. {c.end or '-'}")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("dirs", nargs="+", help="run directories or directories of them")
  args = ap.parse_args(argv)
  for name in args.dirs:
    path = pathlib.Path(name)
    if not path.is_dir():
      print(f"error: {path} is not a directory", file=sys.stderr)
      return 2
    print(line(name, cost(run_dirs(path))))
  return 0


if __name__ == "__main__":
  sys.exit(main())
