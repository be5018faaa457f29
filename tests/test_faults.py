"""The fast subset of the fault-injection harness (scripts/fault_harness.py, issue 19): kill -9
at three moments, a corrupted checkpoint, two runs on one workdir, two bad inputs; each drives
the real ``rnnlm-train`` on the harness's tiny config and is checked against one uninterrupted
reference run (shared by the pytest-xdist workers).
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sys

import pytest

from helpers import REPO


def _load_harness():
  """scripts/fault_harness.py, loaded by path (scripts/ is no package)."""
  spec = importlib.util.spec_from_file_location("fault_harness",
                                                REPO / "scripts" / "fault_harness.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


fh = _load_harness()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
  """A harness whose root (corpus, reference run, interrupted snapshot) the xdist workers
  share; each test uses its own trial directory."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # this session's directory, above the workers' own
  return fh.Harness(base / "fault_harness", seed=0, warm=False, timeout=300)


def _passed(trial) -> None:
  assert trial.status == "pass", (f"{trial.group} {trial.name}: {trial.reason} "
                                  f"(fault: {trial.trigger}; {trial.happening})")


# ----------------------------------------------------------------------------- kill -9


@pytest.mark.slow  # the in-process twin runs by default: tests/test_reliability.py
def test_kill_between_best_and_latest_save(harness):
  """Item 1: killed once best/<first validation step> is committed, before latest/<step>."""
  step = harness.reference().valid_steps[0]
  _passed(harness.kill_trial("best-latest", fh.Trigger("best", step)))


@pytest.mark.slow  # CLI twin of what tests/test_reliability.py resumes crashed runs in-process
def test_kill_mid_run(harness):
  """Killed half-way through the reference's wall time (training or saving)."""
  _passed(harness.kill_trial("mid", fh.Trigger("time", 0.5 * harness.reference().wall)))


@pytest.mark.slow  # scripts/fault_harness.py kills during the final test too
def test_kill_during_final_test(harness):
  """Killed after the last validation, while the best checkpoint is scored on test."""
  ref = harness.reference()
  _passed(harness.kill_trial("final-test", fh.eval_trigger(ref.total_steps, ref, 0.01)))


def test_random_kill_triggers_cover_the_run():
  """The harness's 50 moments: half uniform over the wall time, the rest at events."""
  ref = fh.Reference(events=[], wall=10.0, valid_steps=[21, 42, 63], total_steps=63,
                     steps_per_epoch=21)
  triggers = fh.random_kill_triggers(50, ref, random.Random(0))
  kinds = [t.kind for t in triggers]
  assert kinds.count("time") == sum(i % 6 < 3 for i in range(50))  # 26
  assert {"best", "save", "log"} <= set(kinds)
  times = [float(t.value) for t in triggers if t.kind == "time"]
  assert 0 <= min(times) < 2 and 8 < max(times) <= 10
  assert any("final test" in t.describe() for t in triggers)


# ----------------------------------------------------------------------------- SIGTERM


@pytest.mark.slow  # CLI twin of what tests/test_train_seq.py signals in-process
def test_sigterm_is_recorded_interrupted(harness):
  """Item 8: SIGTERM exits 130 with state 'interrupted' (the run used by the corruption test)."""
  wd, res, newest = harness.interrupted()
  assert res.rc == fh.EXIT_INTERRUPTED and newest > 0, res.err[-500:]
  assert fh.read_state(wd) == fh.STATE_INTERRUPTED


# ----------------------------------------------------------------------------- corruption


@pytest.mark.slow  # CLI twin of what tests/test_reliability.py flips bytes in-process
def test_flipped_bytes_fall_back_to_an_older_checkpoint(harness):
  """Item 2: 100 bytes of the newest checkpoint's arrays flipped: a warning naming the step,
  the older checkpoint used, the events identical to the reference."""
  _passed(harness.corrupt_trial("flip"))


# ----------------------------------------------------------------------------- two runs


@pytest.mark.slow  # three CLI runs; in-process: tests/test_reliability.py's lock test
def test_second_run_on_a_busy_workdir_is_refused(harness):
  """Item 4: the second run exits with one line naming the holder's pid; the first ends as
  the reference."""
  _passed(harness.concurrent_trial())


# ----------------------------------------------------------------------------- bad input


@pytest.mark.slow  # CLI runs; in-process: tests/test_prewrite_checks.py
@pytest.mark.parametrize("name", ["hidden_size_0", "eval_batch_gt_valid"])
def test_bad_input_one_line_and_no_workdir(harness, name):
  """Item 6: one line on stderr, exit 2, the workdir not created."""
  _passed(harness.badinput_trial(name))


# ----------------------------------------------------------------------------- the checks


def test_checks_catch_what_they_should(tmp_path):
  """The harness's own checks: a traceback, two lines, a changed event, a changed tree."""
  ok = fh.Result(2, "", "error: model.hidden_size=0 gives an empty layer\n", 1.0)
  assert fh.one_line_error(ok) == ""
  tb = fh.Result(1, "", "Traceback (most recent call last):\n  x\nValueError: y\n", 1.0)
  assert fh.one_line_error(tb).startswith("traceback")
  two = fh.Result(2, "", "error: a\nerror: b\n", 1.0)
  assert "2 stderr lines" in fh.one_line_error(two)
  want = [{"step": 2, "split": "train", "loss": 1.0}, {"step": 4, "split": "valid", "loss": 0.5}]
  assert fh.events_diff(want, want) == ""
  assert "loss" in fh.events_diff([want[0], {**want[1], "loss": 0.6}], want)
  assert "1 events, reference 2" == fh.events_diff(want[:1], want)
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "f").write_bytes(b"abc")
  before = fh.tree_digest(tmp_path / "d")
  (tmp_path / "d" / "f").write_bytes(b"abd")
  assert fh.tree_digest(tmp_path / "d") != before
  assert fh.tree_digest(tmp_path / "nope") is None


def test_corrupt_checkpoint_changes_the_array_files(tmp_path):
  """flip changes 100 bytes of every array data file, truncate halves them, metadata deletes
  the metadata files only."""
  step = tmp_path / "wd" / "checkpoints" / "latest" / "8"
  (step / "state" / "d").mkdir(parents=True)
  data, meta = step / "state" / "d" / "abc", step / "state" / "_METADATA"
  data.write_bytes(bytes(1000))
  meta.write_bytes(b"{}" * 1000)
  fh.corrupt_checkpoint(step, "flip", random.Random(0))
  assert sum(b != 0 for b in data.read_bytes()) == fh.FLIPPED_BYTES
  fh.corrupt_checkpoint(step, "truncate", random.Random(0))
  assert data.stat().st_size == 500 and meta.stat().st_size == 2000
  fh.corrupt_checkpoint(step, "metadata", random.Random(0))
  assert not meta.exists() and data.exists()


def test_harness_help_and_unknown_group(capsys):
  with pytest.raises(SystemExit) as e:
    fh.parse_args(["--help"])
  assert e.value.code == 0 and "--trials" in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    fh.parse_args(["--only", "kill,nope"])
  assert e.value.code == 2 and "unknown group" in capsys.readouterr().err
  assert signal.SIGKILL  # the harness kills with SIGKILL (POSIX only)
