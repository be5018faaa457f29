"""Multi-process training on JAX's own runtime (``jax.distributed``), for real on this machine:
2 processes x 2 CPU devices (gloo collectives, coordinator on 127.0.0.1) against one process
with 4 CPU devices, through the real ``rnnlm-train`` (and ``scripts/launch_local.sh``).

Every 2-process launch starts two JAX runtimes and compiles in both (15-20 s each on a 2-core
machine), and the module launches six: the whole file is marked slow (``-m slow``, about 2-3
minutes here).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import REPO, TIMING_FIELDS, make_corpus

pytestmark = pytest.mark.slow

STEPS, CKPT_EVERY = 40, 5
LAUNCHER = REPO / "scripts" / "launch_local.sh"


def _args(corpus: pathlib.Path, tfds: pathlib.Path, workdir: pathlib.Path) -> list[str]:
  """``rnnlm-train`` flags: configs/tiny.py on the test corpus, every step logged."""
  return ["--config", str(REPO / "configs" / "tiny.py"), f"--workdir={workdir}",
          "--config.data.name=text_file", f"--config.data.path={corpus}",
          "--config.data.level=word", f"--config.data.tfds_dir={tfds}",
          "--config.train.log_every=1", f"--config.train.max_steps={STEPS}",
          f"--config.train.checkpoint_every_steps={CKPT_EVERY}"]


def _env(devices: int, **extra) -> dict:
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS_ID",
                              "RNNLM_DISTRIBUTED"))}
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu", RNNLM_HEARTBEAT_TIMEOUT="10", PYTHONUNBUFFERED="1", **extra)
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(args: list[str], log: pathlib.Path, n: int = 2) -> list[subprocess.Popen]:
  """``n`` processes of ``rnnlm-train args`` (2 CPU devices each), one log file each."""
  port, procs = _free_port(), []
  for i in range(n):
    env = _env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(n),
               JAX_PROCESS_ID=str(i))
    out = open(f"{log}.{i}", "w")
    procs.append(subprocess.Popen([sys.executable, "-m", "rnnlm_jax.main", *args], cwd=REPO,
                                  env=env, stdout=out, stderr=subprocess.STDOUT))
  return procs


def _wait(procs, timeout: float = 300) -> list[int]:
  end = time.monotonic() + timeout
  return [p.wait(timeout=max(1.0, end - time.monotonic())) for p in procs]


def _wait_for_step(workdir: pathlib.Path, procs, step: int, timeout: float = 240) -> int:
  """Block until status.json says ``running`` at ``step`` or later; returns that step."""
  end = time.monotonic() + timeout
  while time.monotonic() < end:
    assert all(p.poll() is None for p in procs), "a process ended early"
    try:
      status = json.loads((workdir / "status.json").read_text())
      if status["state"] == "running" and status["step"] >= step:
        return status["step"]
    except (OSError, ValueError, KeyError):
      pass
    time.sleep(0.05)
  raise AssertionError(f"no step {step} in {timeout} s")


def _events(workdir: pathlib.Path) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [{k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS}
          for line in lines]


def _status(workdir: pathlib.Path) -> dict:
  return json.loads((workdir / "status.json").read_text())


def _assert_close(got: list[dict], want: list[dict], rel: float = 1e-5) -> float:
  """Same events (step, split), every loss within ``rel``; returns the largest difference."""
  assert [(e["step"], e["split"]) for e in got] == [(e["step"], e["split"]) for e in want]
  worst = max(abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(got, want))
  assert worst <= rel, worst
  return worst


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """The corpus, and the reference: one process with 4 CPU devices."""
  tmp = tmp_path_factory.mktemp("multiprocess")
  corpus, tfds = make_corpus(tmp / "corpus.txt"), tmp / "tfds"
  ref = tmp / "one_process"
  subprocess.run([sys.executable, "-m", "rnnlm_jax.main", *_args(corpus, tfds, ref)], cwd=REPO,
                 env=_env(4), check=True, capture_output=True, timeout=300)
  return {"tmp": tmp, "args": lambda wd: _args(corpus, tfds, wd), "ref": _events(ref)}


@pytest.fixture(scope="module")
def two_processes(setup):
  """The same run as 2 processes x 2 devices, started by scripts/launch_local.sh."""
  wd = setup["tmp"] / "two_processes"
  out = subprocess.run(["bash", str(LAUNCHER), "2", *setup["args"](wd)], cwd=REPO,
                       env={**_env(2), "RNNLM_TRAIN": f"{sys.executable} -m rnnlm_jax.main"},
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return wd, out.stdout + out.stderr


def test_two_processes_train_like_one(setup, two_processes):
  wd, log = two_processes
  got = _events(wd)
  worst = _assert_close(got, setup["ref"])
  print(f"2 processes x 2 devices vs 1 x 4: {len(got)} events, largest relative loss "
        f"difference {worst:.2e}")
  lines = (wd / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == len(set(lines)) == STEPS + 2  # every step, valid, test: written once
  assert _status(wd)["state"] == "finished"
  prov = json.loads((wd / "provenance.json").read_text())
  assert len(prov["runs"]) == 1 and prov["runs"][0]["outcome"] == "finished"
  assert "[0] " in log and "process 0 of 2" in log and "process 1 of 2" in log
  assert (wd / "vocab.txt").is_file() and (wd / "tb").is_dir()
  assert not list(wd.glob("*.tmp")) and not (wd / "checkpoints" / "manifests").exists()


def test_kill_both_mid_run_then_resume(setup, two_processes):
  wd = setup["tmp"] / "killed"
  procs = _start(setup["args"](wd), setup["tmp"] / "killed.log")
  step = _wait_for_step(wd, procs, CKPT_EVERY * 3 + 2)
  for p in procs:
    p.kill()
  _wait(procs)
  assert _status(wd)["state"] == "running" and _status(wd)["step"] >= step
  again = _start(setup["args"](wd), setup["tmp"] / "resumed.log")
  assert _wait(again) == [0, 0]
  log = (setup["tmp"] / "resumed.log.0").read_text()
  assert "resumed from step" in log
  got = _events(wd)
  assert got == _events(two_processes[0])  # exactly the uninterrupted 2-process run
  _assert_close(got, setup["ref"])
  lines = (wd / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == len(set(lines))


def test_sigterm_to_one_process_stops_both_at_one_step(setup, two_processes):
  wd = setup["tmp"] / "sigterm"
  procs = _start(setup["args"](wd), setup["tmp"] / "sigterm.log")
  _wait_for_step(wd, procs, 12)
  procs[1].send_signal(signal.SIGTERM)
  assert _wait(procs, 120) == [130, 130]
  status = _status(wd)
  assert status["state"] == "interrupted", status
  stopped = status["step"]
  latest = sorted(int(p.name) for p in (wd / "checkpoints" / "latest").iterdir()
                  if p.name.isdigit())
  assert latest[-1] == stopped
  for i in (0, 1):  # both say where they stopped: the same step
    log = (setup["tmp"] / f"sigterm.log.{i}").read_text()
    assert f"interrupted by signal {int(signal.SIGTERM)} at step {stopped}" in log
  assert _events(wd)[-1]["step"] == stopped
  again = _start(setup["args"](wd), setup["tmp"] / "sigterm_resumed.log")
  assert _wait(again) == [0, 0]
  assert _events(wd) == _events(two_processes[0])


def test_a_dead_process_stops_the_other(setup):
  """kill -9 of process 1: process 0 exits within the heartbeat timeout (10 s here)."""
  wd = setup["tmp"] / "dead"
  procs = _start(setup["args"](wd), setup["tmp"] / "dead.log")
  _wait_for_step(wd, procs, 8)
  procs[1].kill()
  t0 = time.monotonic()
  code = procs[0].wait(timeout=60)
  waited = time.monotonic() - t0
  print(f"process 0 exited {code} {waited:.1f} s after process 1 was killed")
  assert code != 0 and waited < 10 + 20
