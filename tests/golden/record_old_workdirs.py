"""Records the old-code workdirs of tests/test_old_workdirs.py (tests/golden/old_workdirs/<case>/).

    # from the frozen checkout of the code the goldens were recorded from (see record.py):
    cd /tmp && PYTHONPATH=/tmp/rnnlm_golden_src python /path/to/tests/golden/record_old_workdirs.py

Each case of ``OLD_WORKDIR_STOPS`` runs its golden command plus ``--config.train.max_steps=
<stop>`` (the cases of ``OLD_WORKDIR_INTERRUPTED``: its command, stopped by SIGTERM at <stop>)
in ``OLD_WORKDIR_TMP/<case>`` (data in its ``data/``), with the case's config file as
committed with the goldens (``CONFIGS_COMMIT``: the keys of the old code; later edits of
tests/golden/configs follow the new code's key names). The workdir is then stored
without what a resume does not read: ``tb/`` goes, and of each checkpoint kind only the newest
step is kept (orbax keeps ``checkpoint_keep`` of them; an empty ``best/`` of a synthetic run is
left out); config.json, status.json,
metrics.jsonl, provenance.json and vocab.txt stay as the old code wrote them.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from golden import cases  # noqa: E402  tests/golden/cases.py

CONFIGS_COMMIT = "ecf1d13"  # the commit that added tests/golden (recorded from 3a2ae4b)
# rnnlm-train that sends itself SIGTERM once the train event of step %d is written: the loop
# checkpoints there and stops as after a real kill ("failed", outcome "interrupted"). The step
# must not be a checkpoint step: 3a2ae4b's synthetic loop then saves twice and fails with
# StepAlreadyExistsError instead.
INTERRUPT_AT = """
import os, runpy, signal
from rnnlm_jax import workdir
write = workdir.MetricWriter.write
def write_then_stop(self, event):
  write(self, event)
  if event.get("split") == "train" and event.get("step") == %d:
    os.kill(os.getpid(), signal.SIGTERM)
workdir.MetricWriter.write = write_then_stop
runpy.run_module("rnnlm_jax.main", run_name="__main__", alter_sys=True)
"""
KEEP = ("config.json", "status.json", "metrics.jsonl", "provenance.json", "vocab.txt")


def record(case: str) -> None:
  stop = cases.OLD_WORKDIR_STOPS[case]
  tmp = pathlib.Path(cases.OLD_WORKDIR_TMP) / case
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  cases.write_data(tmp / "data")
  config = cases.CASES[case][1]
  (tmp / "golden" / "configs").mkdir(parents=True)
  (tmp / "golden" / "configs" / config).write_text(subprocess.run(
      ["git", "-C", str(cases.REPO), "show", f"{CONFIGS_COMMIT}:tests/golden/configs/{config}"],
      capture_output=True, text=True, check=True).stdout)
  if case in cases.OLD_WORKDIR_INTERRUPTED:
    proc = cases.run_cli(case, tmp, golden=tmp / "golden", check=False,
                         launcher=[sys.executable, "-c", INTERRUPT_AT % stop])
    status = json.loads((tmp / "run" / "status.json").read_text())
    if status["state"] != "failed" or "interrupted by signal" not in status["reason"]:
      raise SystemExit(f"{case}: not interrupted at step {stop}: exit {proc.returncode}, "
                       f"status {status}\n{proc.stderr[-2000:]}")
  else:
    cases.run_cli(case, tmp, [f"--config.train.max_steps={stop}"], golden=tmp / "golden")
  src, dst = tmp / "run", cases.OLD_WORKDIRS / case
  shutil.rmtree(dst, ignore_errors=True)
  dst.mkdir(parents=True)
  for name in KEEP:
    if (src / name).exists():
      shutil.copyfile(src / name, dst / name)
  for kind in sorted(p for p in (src / "checkpoints").iterdir() if p.is_dir()):
    steps = [p for p in kind.iterdir() if p.name.isdigit()]  # synthetic: no best checkpoint
    if steps:
      newest = max(steps, key=lambda p: int(p.name))
      shutil.copytree(newest, dst / "checkpoints" / kind.name / newest.name)
  latest = dst / "checkpoints" / "latest" / str(stop)
  if not latest.is_dir():
    raise SystemExit(f"{case}: no latest checkpoint at step {stop}")
  kept = {k.name: sorted(p.name for p in k.iterdir()) for k in (dst / "checkpoints").iterdir()}
  size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
  print(f"{case}: stopped at {stop}, checkpoints {kept}, {size / 1024:.0f} kB -> {dst}")


def main(argv: list[str]) -> None:
  out = subprocess.run([sys.executable, "-c", "import rnnlm_jax; print(rnnlm_jax.__file__)"],
                       capture_output=True, text=True, check=True).stdout.strip()
  root = pathlib.Path(out).parent.parent
  sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                       text=True).stdout.strip()
  print(f"recording with {out} ({sha})")
  if root == cases.REPO:
    raise SystemExit("this imports the repository's own rnnlm_jax: set PYTHONPATH to the old "
                     "checkout and run from outside the repository")
  for case in argv or list(cases.OLD_WORKDIR_STOPS):
    record(case)
  print(json.dumps({"source": out, "commit": sha}))


if __name__ == "__main__":
  main(sys.argv[1:])
