"""Runs survive faults (issue 19): checkpoints verified with fallback, no wedge between the
best and latest saves, non-finite validation and runs that do not learn recorded as
divergence, one process per workdir, TensorBoard equal to metrics.jsonl after a resume.

The end-to-end fault injection (kill -9 at random moments, corruption, concurrent runs, bad
input and OS errors through the CLI) is scripts/fault_harness.py; tests/test_faults.py runs a
fast subset of it.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import struct

import numpy as np
import pytest

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import loop
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.workdir import Workdir, WorkdirError, atomic_write_text

import helpers
from helpers import tiny_config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """(config, workdir) of an uninterrupted tiny run: 40 steps, checkpoints every 10 (trained
  once for the module; tests read it or copy it, never change it)."""
  root = tmp_path_factory.mktemp("reference")
  config = tiny_config(helpers.make_corpus(root / "corpus.txt"), root / "tfds")
  ref = root / "ref"
  loop.train_and_evaluate(config, str(ref))
  return config, ref


def _crashed_run(tmp_path, config, monkeypatch, crash_step: int = 26) -> pathlib.Path:
  run = tmp_path / "run"
  with monkeypatch.context() as m:
    helpers.crash_at(m, crash_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
      loop.train_and_evaluate(config, str(run))
  return run


def _steps(run: pathlib.Path, kind: str) -> list[int]:
  return sorted(int(p.name) for p in (run / "checkpoints" / kind).iterdir() if p.name.isdigit())


def test_best_saved_and_latest_lost_does_not_wedge(reference, tmp_path):
  """kill -9 after best/N committed and before latest/N: the re-run resumes from an older
  checkpoint, saves best/N again and ends as the uninterrupted run did."""
  config, ref = reference
  run = tmp_path / "run"
  shutil.copytree(ref, run)
  best = _steps(run, "best")[-1]
  for step in _steps(run, "latest"):
    if step >= best:
      shutil.rmtree(run / "checkpoints" / "latest" / str(step))
  Workdir(run).write_status("running", best, 0.0)
  loop.train_and_evaluate(config, str(run))
  assert helpers.events(run) == helpers.events(ref)
  assert Workdir(run).read_status()["state"] == "finished"


def test_run_restored_from_its_archived_records_starts_over_identical(reference, tmp_path,
                                                                      monkeypatch):
  """A lost machine: only the records scripts/archive_runs.py committed survive (no
  checkpoints). Copied back as the workdir, the same command trains from step 0, drops the
  lost run's events and ends with the uninterrupted run's events."""
  from rnnlm_jax.sweeps.spec import import_file
  archive_runs = import_file(helpers.REPO / "scripts" / "archive_runs.py")
  config, ref = reference
  crashed = _crashed_run(tmp_path, config, monkeypatch)
  archive_runs.archive(tmp_path, tmp_path / "records")  # tmp_path holds the one run dir
  restored = tmp_path / "restored"
  shutil.copytree(tmp_path / "records" / crashed.name, restored)
  assert not (restored / "checkpoints").exists() and helpers.events(restored)
  loop.train_and_evaluate(config, str(restored))
  assert helpers.events(restored) == helpers.events(ref)
  assert Workdir(restored).read_status()["state"] == "finished"


def _flip_bytes(path: pathlib.Path) -> None:
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  for i in range(middle, min(middle + 100, len(data))):
    data[i] ^= 0xFF
  path.write_bytes(bytes(data))


def _largest_file(directory: pathlib.Path) -> pathlib.Path:
  return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


CORRUPTIONS = {
    "flip": lambda d: _flip_bytes(_largest_file(d)),
    "truncate": lambda d: _largest_file(d).write_bytes(_largest_file(d).read_bytes()[:7]),
    "delete_metadata": lambda d: [p.unlink() for p in d.rglob("*metadata*") if p.is_file()],
}


@pytest.mark.parametrize("corruption", [
    "flip", pytest.param("truncate", marks=pytest.mark.slow),
    pytest.param("delete_metadata", marks=pytest.mark.slow)])  # all three: the harness too
def test_corrupt_newest_checkpoint_falls_back(reference, tmp_path, monkeypatch, caplog,
                                              corruption):
  config, ref = reference
  run = _crashed_run(tmp_path, config, monkeypatch)  # checkpoints at 10 and 20
  newest = _steps(run, "latest")[-1]
  CORRUPTIONS[corruption](run / "checkpoints" / "latest" / str(newest))
  with caplog.at_level("WARNING", logger="rnnlm_jax"):
    loop.train_and_evaluate(config, str(run))
  assert f"checkpoint checkpoints/latest/{newest} skipped" in caplog.text
  assert helpers.events(run) == helpers.events(ref)
  assert list((run / "checkpoints" / "corrupt").iterdir())  # kept aside, not deleted


def test_no_checkpoint_verifies_is_one_clear_error(reference, tmp_path, monkeypatch):
  config, _ = reference
  run = _crashed_run(tmp_path, config, monkeypatch)
  for step in _steps(run, "latest"):
    _flip_bytes(_largest_file(run / "checkpoints" / "latest" / str(step)))
  with pytest.raises(ckpt_lib.CheckpointError, match="no usable checkpoint.*move the workdir"):
    loop.train_and_evaluate(config, str(run))


def test_checkpoints_carry_a_manifest_that_matches(reference):
  _, ref = reference
  manifests = sorted((ref / "checkpoints" / "manifests").glob("*.json"))
  kinds = {m.name.split("-")[0] for m in manifests}
  assert kinds == {"latest", "best"}
  names = {f"latest-{s}.json" for s in _steps(ref, "latest")}
  names |= {f"best-{s}.json" for s in _steps(ref, "best")}
  assert {m.name for m in manifests} == names  # the manifests of deleted steps are pruned


def test_non_finite_validation_is_a_divergence(tmp_path, corpus, monkeypatch):
  config = tiny_config(corpus, tmp_path / "tfds")
  real = lm_task.LMRun.evaluate

  def nan_valid(self, params, split):
    metrics = real(self, params, split)
    return {**metrics, "loss": float("nan"), "perplexity": float("nan")}

  monkeypatch.setattr(lm_task.LMRun, "evaluate", nan_valid)
  with pytest.raises(loop.Diverged, match="non-finite validation"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  status = Workdir(tmp_path / "run").read_status()
  assert status["state"] == "diverged" and "non-finite validation loss" in status["reason"]
  valid = [e for e in Workdir(tmp_path / "run").read_metrics() if e["split"] == "valid"]
  assert valid and not valid[0]["best"]  # NaN never becomes the best


def test_not_learning_is_recorded(tmp_path, corpus, monkeypatch):
  """A run whose train loss stays above the uniform prediction's is stopped, ``diverged``
  with the reason "not learning" (here: every loss counts as above, by the margin)."""
  config = tiny_config(corpus, tmp_path / "tfds", **{"train.not_learning_steps": 1})
  monkeypatch.setattr(loop, "NOT_LEARNING_MARGIN", -1e9)
  with pytest.raises(loop.Diverged, match="not learning"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  status = Workdir(tmp_path / "run").read_status()
  assert status["state"] == "diverged" and status["reason"].startswith("not learning")


def test_not_learning_rule():
  assert loop.not_learning(9.35, 9.21, 1327, 1000).startswith("not learning")  # tanh, lr 1
  assert loop.not_learning(9.35, 9.21, 999, 1000) is None  # too early
  assert loop.not_learning(5.0, 9.21, 5000, 1000) is None  # learning
  assert loop.not_learning(9.35, 9.21, 5000, 0) is None  # check off
  assert loop.not_learning(9.35, None, 5000, 1000) is None  # no uniform loss defined


def test_second_run_on_a_workdir_is_refused(tmp_path, corpus):
  config = tiny_config(corpus, tmp_path / "tfds")
  holder = Workdir(tmp_path / "run")
  holder.acquire()
  try:
    with pytest.raises(WorkdirError, match=r"in use by pid \d+ on .* since"):
      loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "config.json").exists()
  finally:
    holder.release()


def test_stale_running_status_is_recognised(tmp_path):
  wd = Workdir(tmp_path / "run")
  wd.acquire()
  wd.write_status("running", 5, 0.5)
  status = wd.read_status()
  assert status["pid"] > 0 and status["host"] and status["time"]
  assert not Workdir(tmp_path / "run").is_stale()  # held: a live run
  wd.release()  # as when the process is killed
  assert Workdir(tmp_path / "run").is_stale()
  wd.write_status("finished", 10, 1.0)
  assert not Workdir(tmp_path / "run").is_stale()


def _tensorboard_scalars(tb_dir: pathlib.Path) -> set[tuple[str, int, float]]:
  """(tag, step, value) of every scalar in the event files (TFRecord framing, Event protos)."""
  from tensorboardX.proto import event_pb2
  out = set()
  for path in sorted(tb_dir.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for v in event.summary.value:
        out.add((v.tag, int(event.step), float(np.float32(v.simple_value))))
  return out


def _metric_scalars(run: pathlib.Path) -> set[tuple[str, int, float]]:
  out = set()
  for e in Workdir(run).read_metrics():
    for k, v in e.items():
      if k not in ("step", "epoch", "split") and isinstance(v, (int, float)) \
          and not isinstance(v, bool):
        out.add((f"{e['split']}/{k}", int(e["step"]), float(np.float32(v))))
  return out


def test_tensorboard_equals_metrics_after_a_resume(reference, tmp_path, monkeypatch):
  config, _ = reference
  run = _crashed_run(tmp_path, config, monkeypatch)
  loop.train_and_evaluate(config, str(run))
  assert _tensorboard_scalars(run / "tb") == _metric_scalars(run)


def test_state_files_are_written_atomically(tmp_path):
  atomic_write_text(tmp_path / "a.json", "{}\n")
  atomic_write_text(tmp_path / "a.json", '{"x": 1}\n')
  assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
  assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


def test_resume_on_changed_data_is_refused(tmp_path, monkeypatch):
  corpus = helpers.make_corpus(tmp_path / "corpus.txt")
  config = tiny_config(corpus, tmp_path / "tfds")
  run = _crashed_run(tmp_path, config, monkeypatch)
  assert json.loads((run / "data.json").read_text())  # recorded on the first run
  words = corpus.read_text().split(" ")
  i = next(i for i in range(len(words) - 1) if words[i] != words[i + 1] and "\n" not in
           words[i] + words[i + 1])
  words[i] = words[i + 1]  # one token changed, the vocabulary the same
  corpus.write_text(" ".join(words))
  before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
  with pytest.raises(WorkdirError, match=r"the data changed since .*--accept_data_change"):
    loop.train_and_evaluate(config, str(run))
  assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before
  loop.train_and_evaluate(config, str(run), accept_data_change=True)
  prov = json.loads((run / "provenance.json").read_text())
  assert prov["runs"][-1]["data_changed"]["field"]
  assert Workdir(run).read_status()["state"] == "finished"
