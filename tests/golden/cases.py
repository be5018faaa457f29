"""The golden cases of tests/test_golden.py, shared with tests/test_old_workdirs.py and the
recording scripts (tests/golden/record.py, tests/golden/record_old_workdirs.py): the case
table, the tiny data, the command lines, running a case through the CLI, reading the losses.

Imported as ``golden.cases`` (tests/ is on sys.path under pytest's default import mode).
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys

GOLDEN = pathlib.Path(__file__).resolve().parent
REPO = GOLDEN.parent.parent


def extract_losses(metrics_path: str | os.PathLike) -> dict[str, list[list]]:
  """The losses of one run: ``{split: [[step, loss], ...]}`` in metrics.jsonl order.

  THE one place that knows the metrics.jsonl event format (adapt it here if a redesign renames
  fields). An event counts when it has a ``loss``; its ``split`` (train / valid / test) and
  ``step`` (updates done when it was logged) place it. Every other field (``clipped`` vs
  ``clip_rate``, timings, perplexity, ...) is ignored, so extra or renamed fields do not
  matter. Repeated (split, step) pairs are kept in order (e.g. the final valid pass of the
  best checkpoint at the same step as the last epoch's valid pass).
  """
  out: dict[str, list[list]] = {}
  for line in pathlib.Path(metrics_path).read_text().splitlines():
    if not line.strip():
      continue
    event = json.loads(line)
    if "loss" not in event:
      continue
    out.setdefault(str(event["split"]), []).append([int(event["step"]), event["loss"]])
  return out


# The public entry points (pyproject.toml [project.scripts]), run with this interpreter so that
# the rnnlm_jax on its path (PYTHONPATH included) is the one under test.
CLI = {
    "train": [sys.executable, "-m", "rnnlm_jax.main"],  # rnnlm-train
    "sweep": [sys.executable, "-m", "rnnlm_jax.sweep_main"],  # rnnlm-sweep
}

# name -> (cli, config file under tests/golden/configs, extra args). Placeholders: {golden}
# (tests/golden), {tmp} (the case's scratch dir, data in {tmp}/data), {workdir}.
CASES: dict[str, tuple[str, str, list[str]]] = {
    # 1. word-level LM: 2x16 LSTM, dropout, Zaremba lr decay, 2 epochs of 21 updates.
    "lm_word": ("train", "lm_word.py", [
        "--config.data.path={tmp}/data/word.txt", "--config.data.tfds_dir={tmp}/tfds"]),
    # 2. char-level LM: 1x24 GRU, Adam, 25 updates.
    "lm_char": ("train", "lm_char.py", [
        "--config.data.path={tmp}/data/char.txt", "--config.data.tfds_dir={tmp}/tfds"]),
    # 3. word LM with every remedy on (LN, residual, locked/embedding dropout, weight drop,
    #    attention, aux head, AR/TAR, NT-ASGD switching to averaging at epoch 3), 4 epochs.
    "lm_remedies": ("train", "lm_remedies.py", [
        "--config.data.path={tmp}/data/word.txt", "--config.data.tfds_dir={tmp}/tfds"]),
    # 4. polyphonic music (kind=music): 1x8 LSTM, RMSProp, 3 epochs of 3 updates.
    "music": ("train", "music.py", [
        "--config.data.dir={tmp}/data", "--config.data.tfds_dir={tmp}/tfds"]),
    # 5. text classification (kind=classify): BiGRU, attention pooling, Adam, 2 epochs.
    "classify": ("train", "classify.py", [
        "--config.data.dir={tmp}/data", "--config.data.tfds_dir={tmp}/tfds"]),
    # 6. one synthetic run (temporal order, tanh RNN, Omega regulariser, SGD-C), 40 updates.
    "synthetic": ("train", "synthetic.py", []),
    # 7. a vmapped group of 3 synthetic points (addition, LSTM, AGC) trained as one program
    #    split over 2 XLA CPU devices.
    "synthetic_group": ("sweep", "synthetic_group_sweep.py", ["--cpu_devices=2"]),
}


def write_data(data_dir: pathlib.Path) -> None:
  """The tiny data sets of all cases, from tests/golden/data, into ``data_dir``."""
  data_dir.mkdir(parents=True, exist_ok=True)
  src = GOLDEN / "data"
  shutil.copyfile(src / "word.txt", data_dir / "word.txt")
  shutil.copyfile(src / "char.txt", data_dir / "char.txt")
  sms = data_dir / "sms_spam" / "SMSSpamCollection"
  sms.parent.mkdir(parents=True, exist_ok=True)
  shutil.copyfile(src / "sms.txt", sms)
  # Piano rolls as in the original pickles: per split a list of sequences of note tuples.
  rolls = json.loads((src / "music_rolls.json").read_text())
  rolls = {split: [[tuple(frame) for frame in seq] for seq in seqs]
           for split, seqs in rolls.items()}
  music = data_dir / "polyphonic_music" / "JSB_Chorales.pickle"
  music.parent.mkdir(parents=True, exist_ok=True)
  music.write_bytes(pickle.dumps(rolls, protocol=2))


def command(case: str) -> list[str]:
  """The case's command line with placeholders (as stored in the golden file)."""
  cli, config, extra = CASES[case]
  name = "rnnlm-train" if cli == "train" else "rnnlm-sweep"
  return [name, "--config", "{golden}/configs/" + config, "--workdir", "{workdir}", *extra]


def run_cli(case: str, tmp: pathlib.Path, extra: list[str] = (), golden: pathlib.Path = GOLDEN,
            launcher: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
  """Runs ``case``'s command (then ``extra`` arguments) in ``tmp`` on the workdir ``tmp/run``,
  with the case's data in ``tmp/data`` (written by the caller: :func:`write_data`), the data
  caches in ``tmp`` and the config files in ``golden/configs``; with ``check``, raises
  AssertionError (with the end of stderr) unless it exits 0. ``launcher`` replaces the
  interpreter command of the CLI (``CLI``) for a recording script's own driver."""
  workdir = tmp / "run"
  subst = {"golden": str(golden), "tmp": str(tmp), "workdir": str(workdir)}
  cli = CASES[case][0]
  args = [a.format(**subst) for a in command(case)[1:]] + list(extra)
  env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLM_", "XLA_", "JAX_"))}
  env.update(JAX_PLATFORMS="cpu", RNNLM_NO_DOWNLOAD="1", RNNLM_CACHE_DIR=str(tmp / "cache"),
             RNNLM_TFDS_DIR=str(tmp / "tfds"))
  proc = subprocess.run((launcher or CLI[cli]) + args, cwd=tmp, env=env, capture_output=True,
                        text=True, timeout=600)
  if check and proc.returncode != 0:
    raise AssertionError(f"{case}: exit status {proc.returncode}\n{proc.stderr[-3000:]}")
  return proc


def read_runs(workdir: pathlib.Path) -> dict:
  """``{"losses": {run: extract_losses(...)}, "configs": {run: config.json contents}}`` of the
  runs under ``workdir`` (run "." for a single training run, the point directory names for a
  sweep)."""
  losses, configs = {}, {}
  for metrics in sorted(workdir.rglob("metrics.jsonl")):
    run = metrics.parent.relative_to(workdir).as_posix()
    losses[run] = extract_losses(metrics)
    cfg = metrics.parent / "config.json"
    configs[run] = json.loads(cfg.read_text()) if cfg.exists() else None
  return {"losses": losses, "configs": configs}


def run_case(case: str, tmp: pathlib.Path) -> dict:
  """Runs ``case`` from scratch in ``tmp``; returns :func:`read_runs` of its workdir."""
  tmp.mkdir(parents=True, exist_ok=True)
  write_data(tmp / "data")
  run_cli(case, tmp)
  return read_runs(tmp / "run")


def _same(a: list, b: list, rtol: float) -> bool:
  """Two ``[step, loss]`` entries: the same step, and the same loss (within ``rtol``)."""
  if rtol == 0 or not all(isinstance(x, float) for x in (a[1], b[1])):
    return a == b
  return a[0] == b[0] and abs(a[1] - b[1]) <= rtol * abs(b[1])


def first_difference(got: dict, want: dict, rtol: float = 0.0) -> str | None:
  """A readable description of the first place where two ``losses`` dicts differ (losses
  within ``rtol`` relative count as equal; 0: bit for bit), or None where they do not."""
  for run in sorted(set(got) | set(want)):
    if run not in got or run not in want:
      return f"run {run!r}: only in {'golden' if run in want else 'this run'}"
    for split in list(want[run]) + [s for s in got[run] if s not in want[run]]:
      g, w = got[run].get(split, []), want[run].get(split, [])
      for i, (a, b) in enumerate(zip(g, w)):
        if not _same(a, b, rtol):
          return (f"run {run!r} split {split!r} entry {i}: got step {a[0]} loss {a[1]!r}, "
                  f"golden step {b[0]} loss {b[1]!r}")
      if len(g) != len(w):
        return f"run {run!r} split {split!r}: {len(g)} losses, golden has {len(w)}"
  return None


# Goldens are bit for bit per CPU signature (rnnlm_jax.workdir.cpu_signature): XLA:CPU compiles
# for the host's extensions, so an AVX2 host and an AVX-512 one round float32 differently
# (~1e-8 relative on these tiny runs, growing with the steps). A golden file holds the losses
# of the CPU it was recorded on ("cpu") and, under "other_cpus", those of other CPUs
# (tests/golden/record.py adds them). On a CPU with no recording the test compares with the
# reference recording within OTHER_CPU_RTOL and warns that it could not check bit for bit
# (measured AVX2 vs AVX-512: classify 1.2e-7, lm_word 1.1e-7, synthetic_group 5.2e-8, lm_char
# 2.4e-8 relative at most; music and synthetic identical), except for the CHAOTIC cases,
# which it skips there: their losses move far under float rounding (lm_remedies: up to 37 %
# relative, AVX2 vs AVX-512).
OTHER_CPU_RTOL = 1e-4
CHAOTIC = ("lm_remedies",)


def recording_for(golden: dict, cpu: str) -> tuple[dict, float]:
  """(the recording to compare with: a dict with ``losses`` and, where the old workdir resumes
  to other losses, ``old_workdir_losses``; the relative tolerance: 0 where it was recorded on
  ``cpu``, else OTHER_CPU_RTOL). Skips the test for a CHAOTIC case with no recording on
  ``cpu``."""
  import pytest  # pylint: disable=import-outside-toplevel
  if golden.get("cpu") == cpu:
    return golden, 0.0
  if cpu in golden.get("other_cpus", {}):
    return golden["other_cpus"][cpu], 0.0
  if golden["case"] in CHAOTIC:
    pytest.skip(f"{golden['case']}: no golden recorded on this CPU ({cpu}), and its losses are "
                "not comparable across CPUs; record one with tests/golden/record.py")
  return golden, OTHER_CPU_RTOL


# tests/test_old_workdirs.py: workdirs written by the old code (3a2ae4b) part-way through a case,
# stored in tests/golden/old_workdirs/<case>/ by tests/golden/record_old_workdirs.py: the case's
# command plus --config.train.max_steps=<stop> (an epoch / evaluation boundary, so that stopping
# there adds no evaluation the full run does not do), or for the cases in OLD_WORKDIR_INTERRUPTED
# its full command interrupted by SIGTERM at <stop> (a finished synthetic run is never resumed,
# whatever its max_steps; 25: between checkpoints, see the recording script). They were recorded
# with {tmp} = OLD_WORKDIR_TMP/<case>: the absolute paths in their config.json start with it.
OLD_WORKDIR_TMP = "/tmp/rnnlm_old_workdir"
OLD_WORKDIR_STOPS = {"lm_word": 21, "lm_remedies": 26, "music": 6, "classify": 8, "synthetic": 25}
OLD_WORKDIR_INTERRUPTED = ("synthetic",)
OLD_WORKDIRS = GOLDEN / "old_workdirs"


def old_workdir_metrics_lines(workdir: pathlib.Path, stop: int) -> int:
  """The metrics.jsonl line count stored in the meta of the latest checkpoint (at ``stop``)."""
  meta = workdir / "checkpoints" / "latest" / str(stop) / "meta" / "metadata"
  return int(json.loads(meta.read_text())["metrics_lines"])


def resume_old_workdir(case: str,
                       tmp: pathlib.Path) -> tuple[list[str], subprocess.CompletedProcess]:
  """Copies the case's old workdir to ``tmp/run`` (data paths pointed at ``tmp/data``) and runs
  the case's full command on it; returns the metrics.jsonl lines that the latest checkpoint
  covers (from before the resume) and the finished process."""
  workdir = tmp / "run"
  shutil.copytree(OLD_WORKDIRS / case, workdir)
  write_data(tmp / "data")
  config = workdir / "config.json"
  text = config.read_text()
  recorded = f"{OLD_WORKDIR_TMP}/{case}"
  assert (recorded in text) == bool(CASES[case][2]), "the fixture's data paths are not as recorded"
  config.write_text(text.replace(recorded, str(tmp)))
  before = (workdir / "metrics.jsonl").read_text().splitlines(keepends=True)
  kept = before[:old_workdir_metrics_lines(workdir, OLD_WORKDIR_STOPS[case])]
  return kept, run_cli(case, tmp)


def assert_losses(case: str, got: dict, want: dict, rtol: float, what: str = "losses") -> None:
  """Fails the test at the first difference of ``got`` from ``want`` (``losses`` dicts; bit for
  bit, or within ``rtol`` relative where :func:`recording_for` found no recording of this CPU)
  and warns when it could only compare within ``rtol``."""
  import warnings  # pylint: disable=import-outside-toplevel
  import pytest  # pylint: disable=import-outside-toplevel
  from rnnlm_jax.workdir import cpu_signature  # pylint: disable=import-outside-toplevel
  diff = first_difference(got, want, rtol)
  if diff:
    how = f"within {rtol:g} relative" if rtol else "recorded on this CPU"
    pytest.fail(f"{case}: {what} differ from tests/golden/{case}.json ({how}): {diff}",
                pytrace=False)
  if rtol:
    warnings.warn(f"{case}: no golden recorded on this CPU ({cpu_signature()}): {what} "
                  f"compared within {rtol:g} relative; record one with tests/golden/record.py")


def old_workdir_expected(recording: dict) -> dict[str, list[list]]:
  """The losses a resumed old workdir must end with (``recording``: a golden, or one CPU's
  recording of :func:`recording_for`): the golden run's, unless they differ from what the old
  workdir resumes to (the numerics changed on purpose after the old workdirs were written, or
  the CPU is not the old code's): then tests/golden/record.py stored what it resumed to under
  the recording commit, ``old_workdir_losses``."""
  return recording.get("old_workdir_losses", recording["losses"]["."])

