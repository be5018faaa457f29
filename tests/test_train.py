"""End-to-end training on tiny generated corpora: loss falls, exact resume, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import loop
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.sweeps.spec import import_file
from rnnlm_jax.workdir import Workdir, WorkdirError

import helpers
from helpers import REPO, tiny_config


def test_tiny_run_loss_falls_and_writes_contract(tmp_path, corpus):
  config = tiny_config(corpus, tmp_path / "tfds")
  wd = tmp_path / "run"
  result = loop.train_and_evaluate(config, str(wd))
  for name in ("config.json", "provenance.json", "status.json", "vocab.txt", "metrics.jsonl"):
    assert (wd / name).exists(), name
  assert (wd / "checkpoints" / "latest").is_dir() and (wd / "checkpoints" / "best").is_dir()
  assert list((wd / "tb").glob("events.out.tfevents.*"))
  status = json.loads((wd / "status.json").read_text())
  assert status["state"] == "finished" and status["step"] == 40
  events = Workdir(wd).read_metrics()
  train_events = [e for e in events if e["split"] == "train"]
  for key in ("step", "epoch", "loss", "perplexity", "grad_norm", "clipped", "lr",
              "tokens_per_sec"):
    assert key in train_events[0], key
  # 40 small SGD steps: the loss falls clearly below the uniform predictor's log(V).
  vocab_size = len((wd / "vocab.txt").read_text().splitlines())
  assert train_events[-1]["loss"] < train_events[0]["loss"] - 0.25
  valid = [e for e in events if e["split"] == "valid"]
  assert valid and valid[-1]["loss"] < np.log(vocab_size) - 0.3
  test = [e for e in events if e["split"] == "test"]
  assert len(test) == 1 and test[0]["checkpoint"] == "best_valid"
  assert result["perplexity"] == pytest.approx(test[0]["perplexity"])
  prov = json.loads((wd / "provenance.json").read_text())
  run = prov["runs"][0]
  assert run["versions"]["jax"] == jax.__version__ and run["end_time"]
  assert run["outcome"] == "finished" and 0 < run["cpu_seconds"] < 600  # the run's CPU cost
  # The CPU, as every script records it (rnnlm_jax.workdir): model and instruction-set signature.
  from rnnlm_jax import workdir
  assert run["hardware"]["cpu"] == workdir.cpu_model() and run["hardware"]["cpu"]
  assert run["hardware"]["cpu_signature"] == workdir.cpu_signature()
  # How far it got at its last checkpoint: what counts if the process is killed before closing.
  assert run["start_time"] <= run["checkpoint_time"] <= run["end_time"]
  assert 0 < run["checkpoint_cpu_seconds"] <= run["cpu_seconds"]
  cfg = json.loads((wd / "config.json").read_text())
  assert cfg["model"]["hidden_size"] == 32


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, corpus, monkeypatch):
  config = tiny_config(corpus, tmp_path / "tfds")
  ref = tmp_path / "ref"
  loop.train_and_evaluate(config, str(ref))

  # Crash (like kill -9: no clean-up of our own) during step 27; checkpoints exist at 10, 20
  # (and the epoch end), and metrics.jsonl holds events written after the last checkpoint.
  real = lm_task.make_train_step

  def crashing(*args, **kw):
    step_fn = real(*args, **kw)
    calls = {"n": 0}

    def wrapped(state, x, y):
      if int(state.step) == 26:
        raise RuntimeError("simulated crash")
      calls["n"] += 1
      return step_fn(state, x, y)

    return wrapped

  run = tmp_path / "run"
  monkeypatch.setattr(lm_task, "make_train_step", crashing)
  with pytest.raises(RuntimeError, match="simulated crash"):
    loop.train_and_evaluate(config, str(run))
  assert json.loads((run / "status.json").read_text())["state"] == "failed"
  monkeypatch.setattr(lm_task, "make_train_step", real)
  loop.train_and_evaluate(config, str(run))

  assert helpers.events(run) == helpers.events(ref)
  s_ref, _ = helpers.final_state(ref, config)
  s_run, _ = helpers.final_state(run, config)
  for a, b in zip(jax.tree.leaves(s_ref), jax.tree.leaves(s_run)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert len(json.loads((run / "provenance.json").read_text())["runs"]) == 2


def test_raising_max_steps_continues_a_finished_run(tmp_path, corpus):
  config = tiny_config(corpus, tmp_path / "tfds", **{"train.max_steps": 20})
  wd = tmp_path / "run"
  loop.train_and_evaluate(config, str(wd))
  config.train.max_steps = 30
  loop.train_and_evaluate(config, str(wd))
  status = json.loads((wd / "status.json").read_text())
  assert status["state"] == "finished" and status["step"] == 30
  steps = [e["step"] for e in Workdir(wd).read_metrics() if e["split"] == "train"]
  assert steps == sorted(steps) and steps[-1] == 30


def test_changed_model_field_is_refused(tmp_path, corpus):
  config = tiny_config(corpus, tmp_path / "tfds", **{"train.max_steps": 5})
  wd = tmp_path / "run"
  loop.train_and_evaluate(config, str(wd))
  before = (wd / "metrics.jsonl").read_text()
  config.model.hidden_size = 64
  with pytest.raises(WorkdirError, match="model.hidden_size"):
    loop.train_and_evaluate(config, str(wd))
  assert (wd / "metrics.jsonl").read_text() == before
  assert json.loads((wd / "config.json").read_text())["model"]["hidden_size"] == 32


def test_divergence_is_recorded(tmp_path, corpus):
  config = tiny_config(corpus, tmp_path / "tfds", **{"optim.learning_rate": 1e38,
                                                     "optim.clip_mode": "none"})
  wd = tmp_path / "run"
  with pytest.raises(loop.Diverged):
    loop.train_and_evaluate(config, str(wd))
  status = json.loads((wd / "status.json").read_text())
  assert status["state"] == "diverged" and "non-finite" in status["reason"]
  # No checkpoint holds non-finite parameters.
  latest = ckpt_lib.Checkpointer(wd / "checkpoints").latest_step()
  assert latest is None or latest < status["step"]


@pytest.mark.parametrize("mode", ["none", "global_norm", "value"])
def test_clip_modes_run(tmp_path, corpus, mode):
  config = tiny_config(corpus, tmp_path / "tfds", **{"train.max_steps": 6,
                                                     "optim.clip_mode": mode,
                                                     "optim.clip_value": 0.01})
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  events = [e for e in Workdir(tmp_path / "run").read_metrics() if e["split"] == "train"]
  assert events[0]["clipped"] == (0.0 if mode == "none" else 1.0)


# slow: the default run took 7:54 and 8:41 in two clean clones on an AVX2 host (2026-12-07)
@pytest.mark.slow
def test_evaluate_workdir_on_text(tmp_path, corpus):
  config = tiny_config(corpus, tmp_path / "tfds", **{"train.max_steps": 10})
  wd = tmp_path / "run"
  loop.train_and_evaluate(config, str(wd))
  out = lm_task.evaluate_workdir(str(wd), "test")
  test_event = [e for e in Workdir(wd).read_metrics() if e["split"] == "test"][0]
  assert out["loss"] == pytest.approx(test_event["loss"], rel=1e-6)
  text = tmp_path / "mine.txt"
  text.write_text("the n1 v2 the n3 .\nthe n4 zzz the n5 .\n")
  out = lm_task.evaluate_workdir(str(wd), text_file=str(text))
  assert out["tokens"] > 0 and np.isfinite(out["loss"])
  # latest works too; a workdir without checkpoints: one clear error, nothing written
  assert lm_task.evaluate_workdir(str(wd), "test", checkpoint="latest")["checkpoint_step"] == 10
  bare = tmp_path / "bare"
  bare.mkdir()
  for name in ("config.json", "data.json", "vocab.txt"):
    if (wd / name).exists():
      (bare / name).write_bytes((wd / name).read_bytes())
  before = sorted(p.name for p in bare.rglob("*"))
  with pytest.raises(FileNotFoundError, match="no best checkpoint .*train first"):
    lm_task.evaluate_workdir(str(bare), "test")
  assert sorted(p.name for p in bare.rglob("*")) == before
  # The state-reset diagnostic (scripts/carry_probe.py): windows as long as a column are the
  # carried evaluation itself; short ones score each window from the initial state.
  config, corp, spec, params, _ = lm_task.restore_workdir(str(wd))
  step, bptt = lm_task.make_eval_step(spec), int(config.data.bptt)
  carried = lm_task.evaluate(step, params, spec, corp.test, 2, bptt)[0]
  assert lm_task.evaluate(step, params, spec, corp.test, 2, bptt,
                          reset_every=corp.test.size)[0] == pytest.approx(carried, rel=1e-6)
  assert lm_task.evaluate(step, params, spec, corp.test, 2, bptt, reset_every=2)[0] != carried
  probe = import_file(REPO / "scripts" / "carry_probe.py")
  assert probe.main(["--workdir", str(wd), "--reset_every", "3"]) == 0
  assert probe.main(["--workdir", str(bare / "nope")]) == 2


# ----------------------------------------------------------------------------- CLI


def _cli(args, env_extra=None, **kw):
  env = dict(os.environ, JAX_PLATFORMS="cpu", **(env_extra or {}))
  return subprocess.run([sys.executable, "-m", "rnnlm_jax.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, **kw)


def _tiny_args(corpus, tmp_path, workdir):
  return ["--config", str(REPO / "configs" / "tiny.py"), "--workdir", str(workdir),
          "--config.data.name=text_file", f"--config.data.path={corpus}",
          f"--config.data.tfds_dir={tmp_path / 'tfds'}"]


def test_cli_bad_inputs(tmp_path, corpus):
  wd = tmp_path / "run"
  base = _tiny_args(corpus, tmp_path, wd)
  cases = [
      (base + ["--config.model.cell=lstmm"], "unknown cell 'lstmm'"),
      (base + ["--config.model.no_such_key=1"], "no_such_key"),
      (base[:-3] + ["--config.data.name=text_file", f"--config.data.path={tmp_path}/nope.txt",
                    f"--config.data.tfds_dir={tmp_path / 'tfds'}"], "nope.txt"),
  ]
  empty = tmp_path / "empty.txt"
  empty.write_text("")
  cases.append((base[:-3] + ["--config.data.name=text_file", f"--config.data.path={empty}",
                             f"--config.data.tfds_dir={tmp_path / 'tfds'}"], "empty"))
  binary = tmp_path / "latin1.txt"
  binary.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
  cases.append((base[:-3] + ["--config.data.name=text_file", f"--config.data.path={binary}",
                             f"--config.data.tfds_dir={tmp_path / 'tfds'}"], "UTF-8"))
  for args, expected in cases:
    proc = _cli(args)
    assert proc.returncode != 0, args
    last = proc.stderr.strip().splitlines()[-1]
    assert expected in proc.stderr, (expected, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith("error: "), last
    assert not wd.exists(), f"bad input {args} wrote into the workdir"


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_cli_conflicting_workdir_keeps_files(tmp_path, corpus):
  wd = tmp_path / "run"
  args = _tiny_args(corpus, tmp_path, wd) + ["--config.train.max_steps=5"]
  assert _cli(args).returncode == 0
  before = {p.name: p.read_bytes() for p in wd.iterdir() if p.is_file()}
  proc = _cli(args + ["--config.model.hidden_size=16"])
  assert proc.returncode == 2 and "different config" in proc.stderr
  assert "Traceback" not in proc.stderr
  after = {p.name: p.read_bytes() for p in wd.iterdir() if p.is_file()}
  assert before == after


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_cli_kill_9_then_resume_equals_uninterrupted(tmp_path, corpus):
  """A real ``kill -9`` while training, then the same command again."""
  ref, run = tmp_path / "ref", tmp_path / "run"
  extra = ["--config.train.max_steps=60", "--config.train.num_epochs=3"]
  assert _cli(_tiny_args(corpus, tmp_path, ref) + extra).returncode == 0
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, "-m", "rnnlm_jax.main",
                           *_tiny_args(corpus, tmp_path, run), *extra], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  latest = run / "checkpoints" / "latest"
  while time.time() < deadline and proc.poll() is None:
    steps = [p for p in latest.glob("*") if p.name.isdigit()] if latest.exists() else []
    if steps:
      break
    time.sleep(0.05)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert json.loads((run / "status.json").read_text())["state"] == "running"  # really cut short
  assert _cli(_tiny_args(corpus, tmp_path, run) + extra).returncode == 0
  assert helpers.events(run) == helpers.events(ref)
