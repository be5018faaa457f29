"""Records the golden files of tests/test_golden.py (tests/golden/<case>.json).

    # from a frozen checkout of the code whose numbers are the reference:
    git worktree add /tmp/rnnlm_golden_src <commit>
    PYTHONPATH=/tmp/rnnlm_golden_src python tests/golden/record.py [CASE ...]

Each case runs twice (fresh scratch dirs); the two runs must agree exactly or nothing is
written. A case with an old workdir (``cases.OLD_WORKDIR_STOPS``) also resumes that workdir
twice; if its losses differ from the fresh run's (the numerics changed on purpose since the old
code wrote it, e.g. a faster float32 head whose rounding differs), they are stored as
``old_workdir_losses``, what tests/test_old_workdirs.py then expects. Stored: the command
(placeholders {golden}, {tmp}, {workdir}), the source it was recorded from, the CPU it ran on
(``cpu``: rnnlm_jax.workdir.cpu_signature), the losses that the test asserts, and for reference
only (not asserted) each run's config.json and metrics.jsonl events without timing fields.

The losses are bit for bit only on CPUs with the same signature. On a CPU other than the
file's, recording adds this CPU's losses under ``other_cpus`` and leaves the rest alone. Record
them from the reference's source where it still runs the case's command (so that every CPU
checks the same code), else from the code of the day (``recorded_from`` says which):

    python tests/golden/record.py lm_word lm_char     # on an AVX2 host, say

``--reference`` records the whole file on this CPU instead, as a re-record of the numerics
on purpose does, and drops the other CPUs' recordings (stale from then on: re-record them on
those CPUs).
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


def _checkout_module(name: str):
  """This checkout's ``rnnlm_jax/<name>.py`` (stdlib imports only), whatever ``rnnlm_jax`` the
  recorded source puts on the path (an old commit may lack the function wanted)."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location(f"_checkout_{name}", tg.REPO / "rnnlm_jax" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


cpu_signature = _checkout_module("workdir").cpu_signature


def _source() -> dict:
  out = subprocess.run([sys.executable, "-c", "import rnnlm_jax, jax; "
                        "print(rnnlm_jax.__file__); print(jax.__version__)"],
                       capture_output=True, text=True, check=True,
                       cwd=tempfile.gettempdir()).stdout.split()  # not the checkout: PYTHONPATH's
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


def record(case: str, source: dict, reference: bool) -> None:
  """Runs ``case`` twice (and resumes its old workdir twice) and writes its golden file: the
  whole file, recorded on this CPU (``reference``, or no file yet, or the file is this CPU's),
  dropping other CPUs' recordings, which a change of the numerics makes stale; else this CPU's
  losses added under ``other_cpus`` beside the reference's."""
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
  cpu = cpu_signature()
  mine = {"recorded_from": source, "losses": runs[0]["losses"]}
  if case in tg.OLD_WORKDIR_STOPS:
    resumed = _resumed_old_workdir_losses(case)
    if resumed != mine["losses"]["."]:  # numerics changed since the old workdirs were written
      mine["old_workdir_losses"] = resumed
  path = HERE / f"{case}.json"
  old = json.loads(path.read_text()) if path.is_file() else None
  if old is not None and not reference and old.get("cpu") != cpu:
    old.setdefault("other_cpus", {})[cpu] = mine
    path.write_text(json.dumps(old, indent=1, sort_keys=False) + "\n")
    print(f"{case}: this CPU's losses ({cpu}) added beside the {old.get('cpu')!r} reference")
    return
  out = {"case": case, "command": tg.command(case), "cpu": cpu, **mine,
         "reference_only": {"configs": runs[0]["configs"], "events": runs[0]["events"]}}
  path.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
  n = sum(len(v) for r in out["losses"].values() for v in r.values())
  print(f"{case}: {n} losses over {len(out['losses'])} run(s), identical twice -> {path}")
  dropped = sorted((old or {}).get("other_cpus", {}))
  if dropped:
    print(f"{case}: dropped the recordings of {dropped}: re-record on those CPUs")


def main(argv: list[str]) -> None:
  reference = "--reference" in argv
  argv = [a for a in argv if a != "--reference"]
  cases = argv or list(tg.CASES)
  unknown = [c for c in cases if c not in tg.CASES]
  if unknown:
    raise SystemExit(f"unknown case(s) {unknown}; cases: {list(tg.CASES)}")
  source = _source()
  print(f"recording from {source} on {cpu_signature()}")
  for case in cases:
    record(case, source, reference)


if __name__ == "__main__":
  main(sys.argv[1:])
