"""Records the golden files of tests/test_golden.py (tests/golden/<case>.json).

    # from a frozen checkout of the code whose numbers are the reference:
    git worktree add /tmp/rnnlm_golden_src <commit>
    PYTHONPATH=/tmp/rnnlm_golden_src python tests/golden/record.py [CASE ...]

Each case runs twice (fresh scratch dirs); the two runs must agree exactly or nothing is
written. A case with an old workdir (``cases.OLD_WORKDIR_STOPS``) also resumes that workdir
twice; if its losses differ from the fresh run's (the numerics changed on purpose since the old
code wrote it, e.g. a faster float32 head whose rounding differs), they are stored as
``old_workdir_losses``, what tests/test_old_workdirs.py then expects. Stored: the command (placeholders {golden}, {tmp}, {workdir}), the source it was
recorded from, the losses that the test asserts, and for reference only (not asserted) each
run's config.json and metrics.jsonl events without timing fields.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from golden import cases as tg  # noqa: E402  tests/golden/cases.py


def _source() -> dict:
  out = subprocess.run([sys.executable, "-c", "import rnnlm_jax, jax; "
                        "print(rnnlm_jax.__file__); print(jax.__version__)"],
                       capture_output=True, text=True, check=True).stdout.split()
  root = pathlib.Path(out[0]).parent.parent
  git = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                       text=True)
  dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "rnnlm_jax"],
                         capture_output=True, text=True).stdout.strip()
  return {"commit": git.stdout.strip(), "package_dirty": bool(dirty), "jax": out[1]}


def _events(metrics: pathlib.Path) -> list[dict]:
  timing = ("per_sec", "seconds", "time")
  return [{k: v for k, v in json.loads(l).items() if not any(t in k for t in timing)}
          for l in metrics.read_text().splitlines() if l.strip()]


def _resumed_old_workdir_losses(case: str) -> dict[str, list[list]]:
  """The losses of the case's old workdir (tests/golden/old_workdirs) resumed by this code,
  twice; they must agree exactly."""
  got = []
  for attempt in range(2):
    with tempfile.TemporaryDirectory(prefix=f"golden_old_{case}_") as d:
      _, proc = tg.resume_old_workdir(case, pathlib.Path(d))
      if proc.returncode != 0:
        raise SystemExit(f"{case}: the old workdir did not resume:\n{proc.stderr[-2000:]}")
      got.append(tg.extract_losses(pathlib.Path(d) / "run" / "metrics.jsonl"))
  if got[0] != got[1]:
    raise SystemExit(f"{case}: the resumed old workdir is not deterministic")
  return got[0]


def record(case: str, source: dict) -> None:
  runs = []
  for attempt in range(2):
    with tempfile.TemporaryDirectory(prefix=f"golden_{case}_") as d:
      got = tg.run_case(case, pathlib.Path(d))
      got["events"] = {run: _events(pathlib.Path(d) / "run" / run / "metrics.jsonl")
                       for run in got["losses"]}
      runs.append(got)
  if runs[0]["losses"] != runs[1]["losses"]:
    raise SystemExit(f"{case}: not deterministic: "
                     f"{tg.first_difference(runs[1]['losses'], runs[0]['losses'])}")
  out = {"case": case, "command": tg.command(case), "recorded_from": source,
         "losses": runs[0]["losses"]}
  if case in tg.OLD_WORKDIR_STOPS:
    resumed = _resumed_old_workdir_losses(case)
    if resumed != out["losses"]["."]:  # numerics changed since the old workdirs were written
      out["old_workdir_losses"] = resumed
  out["reference_only"] = {"configs": runs[0]["configs"], "events": runs[0]["events"]}
  path = HERE / f"{case}.json"
  path.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
  n = sum(len(v) for r in out["losses"].values() for v in r.values())
  print(f"{case}: {n} losses over {len(out['losses'])} run(s), identical twice -> {path}")


def main(argv: list[str]) -> None:
  cases = argv or list(tg.CASES)
  unknown = [c for c in cases if c not in tg.CASES]
  if unknown:
    raise SystemExit(f"unknown case(s) {unknown}; cases: {list(tg.CASES)}")
  source = _source()
  print(f"recording from {source}")
  for case in cases:
    record(case, source)


if __name__ == "__main__":
  main(sys.argv[1:])
