"""Copy the text records of finished sweep points into the repository, without checkpoints.

    python scripts/archive_runs.py runs/remedies_best experiments/remedies/records/remedies_best

A sweep directory lives under ``runs/`` (ignored by git), so a fresh checkout has none of the
runs behind a README's numbers. This copies what the reports read, a few kB per point:
``DST/sweep.json`` and, per point, ``config.json``, ``status.json``, ``metrics.jsonl`` and
``provenance.json`` (no checkpoints, TensorBoard files or vocabularies). The reporting
scripts then read ``DST`` like the original, e.g.
``python experiments/remedies/table.py experiments/remedies/records/remedies_best``.
Points that have not started (no ``config.json``) are skipped; existing files in ``DST`` are
overwritten, so re-running after more points finished brings the archive up to date.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

RECORDS = ("config.json", "status.json", "metrics.jsonl", "provenance.json")


def archive(src: str | pathlib.Path, dst: str | pathlib.Path) -> list[str]:
  """Copy ``src``'s sweep.json and each started point's records to ``dst``.

  Returns:
    The names of the points copied.

  Raises:
    FileNotFoundError: ``src`` has no point with a ``config.json``.
  """
  src, dst = pathlib.Path(src), pathlib.Path(dst)
  points = sorted(p for p in src.iterdir() if (p / "config.json").is_file()) if src.is_dir() else []
  if not points:
    raise FileNotFoundError(f"{src}: no run directories with a config.json")
  dst.mkdir(parents=True, exist_ok=True)
  if (src / "sweep.json").is_file():
    shutil.copyfile(src / "sweep.json", dst / "sweep.json")
  for p in points:
    (dst / p.name).mkdir(exist_ok=True)
    for f in RECORDS:
      if (p / f).is_file():
        shutil.copyfile(p / f, dst / p.name / f)
  return [p.name for p in points]


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("src", help="sweep directory (or a directory of run directories)")
  ap.add_argument("dst", help="where to copy the records (created)")
  args = ap.parse_args(argv)
  try:
    names = archive(args.src, args.dst)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"copied the records of {len(names)} point(s) to {args.dst}: {', '.join(names)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
