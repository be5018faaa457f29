"""What runs cost: CPU and wall time summed from their provenance.json records.

    python scripts/run_cost.py experiments/clipping/records/ptb_word/cell=rnn_tanh
    python scripts/run_cost.py experiments/clipping/records/ptb_word/*   # one line per directory

Each DIR is a run directory or a directory of them (a sweep, or its archived records: the
files ``scripts/archive_runs.py`` keeps). Per DIR it prints the number of runs, the CPU hours,
the wall hours the invocations were open, and the first start and last end; what is counted
and what is reported as not countable: :mod:`rnnlm_jax.report.cost`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from rnnlm_jax.report.cost import (  # pylint: disable=wrong-import-position
    cost, line, run_dirs, training_time)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("dirs", nargs="+", help="run directories or directories of them")
  args = ap.parse_args(argv)
  for name in args.dirs:
    path = pathlib.Path(name)
    if not path.is_dir():
      print(f"error: {path} is not a directory", file=sys.stderr)
      return 2
    dirs = run_dirs(path)
    train_s, unrated = training_time(dirs)
    print(f"{line(name, cost(dirs))}; training {train_s / 3600:.2f} h at the logged rates"
          + (f" ({unrated} interval(s) without a rate)" if unrated else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main())
