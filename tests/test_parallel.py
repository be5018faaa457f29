"""Data-parallel training (rnnlm_jax/parallel.py): 4 simulated CPU devices train like 1.

The multi-device run happens in a subprocess, because the number of CPU devices is fixed when
JAX starts (``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from rnnlm_jax import loop, parallel
from rnnlm_jax.tasks import lm as lm_task

from helpers import HELPERS, REPO, make_corpus, tiny_config

# Runs in a fresh interpreter with 4 CPU devices: trains the tiny config with
# train.num_devices=4 and with train.num_devices=1, each 6 steps and then resumed from its
# checkpoint to 12, and prints one JSON line with the events and the shardings.
_SCRIPT = r"""
import json, pathlib, runpy, sys
import jax, numpy as np
from rnnlm_jax import checkpoint as ckpt_lib, cli, data as data_lib, loop, parallel
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.models import lm
from rnnlm_jax.workdir import Workdir
tiny_config = runpy.run_path(sys.argv[3])["tiny_config"]  # tests/helpers.py

cli.setup_logging()  # INFO lines on stdout
corpus, tmp = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
seen, current = {}, [None]
real = lm_task.make_train_step

def recording(*args, **kw):
  step_fn = real(*args, **kw)
  def wrapped(state, x, y):
    if current[0] not in seen:  # the shardings the first step of each run receives
      seen[current[0]] = {"x": parallel.sharding_summary(x),
                          "param": parallel.sharding_summary(state.params["embed"]),
                          "carry": parallel.sharding_summary(jax.tree.leaves(state.carry)[0]),
                          "opt": parallel.sharding_summary(jax.tree.leaves(state.opt_state)[0])}
    return step_fn(state, x, y)
  return wrapped

lm_task.make_train_step = recording
over = {"train.log_every": 1, "train.checkpoint_every_steps": 100, "train.eval_batch_size": 4}
out = {"devices": jax.device_count()}

def config(n, steps):
  return tiny_config(corpus, tmp / "tfds", **over, **{"train.num_devices": n,
                                                     "train.max_steps": steps})

for name, n in (("many", 4), ("one", 1)):
  current[0] = name
  loop.train_and_evaluate(config(n, 6), str(tmp / name))
  current[0] = name + "_resumed"
  loop.train_and_evaluate(config(n, 12), str(tmp / name))  # resumes from the step-6 checkpoint
out["shardings"] = seen
for name in ("many", "one"):
  out[name] = [e for e in Workdir(tmp / name).read_metrics()]

# A checkpoint comes back with the target's shardings, also across device counts: the
# 1-device run's onto the 4-device mesh, the 4-device run's onto one device.
c = config(4, 12)
corp = data_lib.load_lm_corpus(c.data, None)
spec = lm.LMSpec.from_config(c.model, len(corp.vocab))
spe = data_lib.num_train_windows(data_lib.batchify(corp.train, 4), c.data.bptt)

def restore(name, mesh):
  ck = ckpt_lib.Checkpointer(tmp / name / "checkpoints")
  state, _ = ck.restore_latest(lm_task.create_train_state(c, spec, spe, mesh))
  ck.close()
  return state

on4, on1 = restore("one", parallel.make_mesh(4)), restore("many", None)
out["restored"] = {"step": int(on4.step),
                   "param": parallel.sharding_summary(on4.params["embed"]),
                   "carry": parallel.sharding_summary(jax.tree.leaves(on4.carry)[0]),
                   "single": parallel.sharding_summary(on1.params["embed"])["devices"]}
out["max_param_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                            for a, b in zip(jax.tree.leaves(on4.params),
                                            jax.tree.leaves(on1.params)))
# A pipeline that feeds each process its own rows builds the same array (one process here).
mesh4, window = parallel.make_mesh(4), np.arange(40).reshape(4, 10)
rows = parallel.process_local_rows(mesh4, 4)
local = parallel.place_process_local_batch(window[rows], mesh4, 4)
out["local_batch_ok"] = (rows == slice(0, 4) and local.sharding == parallel.batch_sharded(mesh4)
                         and bool((np.asarray(local) == window).all()))
try:
  lm_task.validate_config(tiny_config(corpus, tmp / "tfds", **{"train.batch_size": 6}))
  out["indivisible_error"] = None
except ValueError as e:
  out["indivisible_error"] = str(e)
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow  # 22 s on 2 cores; .ci/run runs it after the default suite
def test_four_devices_train_like_one(tmp_path):
  corpus = make_corpus(tmp_path / "corpus.txt")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "")
                        + " --xla_force_host_platform_device_count=4").strip())
  env.pop("RNNLM_DISTRIBUTED", None)
  # The resumed runs load their programs from this cache instead of compiling them again.
  env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(corpus), str(tmp_path),
                         str(HELPERS)], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  out = json.loads(line[len("RESULT "):])
  print(json.dumps(out["shardings"], indent=1))  # shown with pytest -s
  assert out["devices"] == 4
  assert "devices: 4 cpu device(s), mesh {'data': 4}" in proc.stdout  # the start-up log line

  # Really sharded: each device holds 1 of the 4 columns of the window and of the carry; the
  # parameters and optimizer state are whole on all 4 devices. Also after the resume.
  for run in ("many", "many_resumed"):
    s = out["shardings"][run]
    assert s["x"] == {"spec": "P('data',)", "devices": 4, "shard_shape": [1, 10],
                      "replicated": False}, s
    assert s["carry"] == {"spec": "P('data',)", "devices": 4, "shard_shape": [1, 32],
                          "replicated": False}, s
    assert s["param"]["devices"] == 4 and s["param"]["replicated"], s
    assert s["opt"]["devices"] == 4 and s["opt"]["replicated"], s
  assert out["shardings"]["one"]["x"]["devices"] == 1
  assert out["shardings"]["one_resumed"]["carry"]["devices"] == 1
  assert out["restored"]["step"] == 12
  assert out["restored"]["carry"]["devices"] == 4
  assert out["restored"]["carry"]["shard_shape"] == [1, 32]
  assert out["restored"]["param"]["replicated"] and out["restored"]["param"]["devices"] == 4
  assert out["restored"]["single"] == 1

  # The loss curve (every step), gradient norms, valid and test losses equal the single-device
  # run's to float tolerance (4 devices sum the batch in a different order).
  def split(events, name, key="loss"):
    return np.array([e[key] for e in events if e["split"] == name], np.float64)

  many, one = out["many"], out["one"]
  assert [(e["split"], e["step"]) for e in many] == [(e["split"], e["step"]) for e in one]
  assert split(one, "train", "step").tolist() == list(range(1, 13))
  assert split(one, "valid", "step").tolist() == [6, 12]
  for name in ("train", "valid", "test"):
    np.testing.assert_allclose(split(many, name), split(one, name), rtol=1e-5, err_msg=name)
  np.testing.assert_allclose(split(many, "train", "grad_norm"), split(one, "train", "grad_norm"),
                             rtol=1e-4)
  assert (split(many, "test", "checkpoint_step").tolist()
          == split(one, "test", "checkpoint_step").tolist())
  assert out["max_param_diff"] < 1e-5
  assert out["local_batch_ok"]
  assert out["indivisible_error"] == (
      "train.batch_size=6 is not divisible by the 4 devices in use (all devices); set "
      "train.batch_size to a multiple of 4 or --config.train.num_devices to a divisor of 6 "
      "(1 = a single device)")


def test_indivisible_batch_is_a_one_line_error():
  with pytest.raises(ValueError) as e:
    parallel.check_divisible(20, 3, 3)
  msg = str(e.value)
  assert "\n" not in msg
  assert msg.startswith("train.batch_size=20 is not divisible by the 3 devices in use "
                        "(train.num_devices=3)")
  assert "--config.train.num_devices" in msg
  parallel.check_divisible(20, 4, 0)  # divisible: fine


def test_num_devices_out_of_range(tmp_path):
  with pytest.raises(ValueError, match=r"train.num_devices must be >= 0"):
    parallel.resolve_num_devices(-1, available=4)
  with pytest.raises(ValueError, match=r"train.num_devices=8 but only 4 .* device"):
    parallel.resolve_num_devices(8, available=4)
  assert parallel.resolve_num_devices(0, available=4) == 4
  assert parallel.resolve_num_devices(2, available=4) == 2
  # Through the config validation (this process has one device).
  config = tiny_config(tmp_path / "c.txt", tmp_path / "tfds", **{"train.num_devices": 2})
  with pytest.raises(ValueError, match=r"train.num_devices=2 but only 1"):
    lm_task.validate_config(config)
  lm_task.validate_config(tiny_config(tmp_path / "c.txt", tmp_path / "tfds"))


def test_distributed_only_when_asked():
  ask = parallel.distributed_requested
  assert not ask({})
  assert not ask({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0"})
  assert ask({"RNNLM_DISTRIBUTED": "1"}) and ask({"RNNLM_DISTRIBUTED": "True"})
  manual = {"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}
  assert ask(manual) and not ask(dict(manual, RNNLM_DISTRIBUTED="0"))
  assert not ask({"JAX_COORDINATOR_ADDRESS": "h:1234"})
  with pytest.raises(ValueError, match="RNNLM_DISTRIBUTED"):
    ask({"RNNLM_DISTRIBUTED": "maybe"})
  assert parallel.maybe_initialize_distributed({}) is False


def test_initialize_arguments_and_cpu_collectives(monkeypatch):
  kw = parallel.initialize_kwargs
  assert kw({}) == {"heartbeat_timeout_seconds": parallel.HEARTBEAT_TIMEOUT_S}
  assert kw({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1", "RNNLM_HEARTBEAT_TIMEOUT": "10"}) \
      == {"num_processes": 2, "process_id": 1, "heartbeat_timeout_seconds": 10}
  for bad in ("ten", "0"):
    with pytest.raises(ValueError, match="RNNLM_HEARTBEAT_TIMEOUT"):
      kw({"RNNLM_HEARTBEAT_TIMEOUT": bad})
  assert parallel.cpu_platform({"JAX_PLATFORMS": "cpu"})
  assert not parallel.cpu_platform({"JAX_PLATFORMS": "cuda,cpu"})
  assert parallel.cpu_platform({}) == (jax.default_backend() == "cpu")  # no GPU/TPU plugin


def test_process_helpers_with_one_process():
  assert parallel.is_primary() and parallel.process_line() == "process 0 of 1"
  assert parallel.max_over_processes(15) == 15 and parallel.from_primary(7) == 7
  assert parallel.peer_lost_line(jax.errors.JaxRuntimeError("x")) is None
  flag = loop.StopFlag()
  assert loop.stop_signal(flag) is None
  flag.signum = 15
  assert loop.stop_signal(flag) == 15


def test_other_tasks_refuse_several_processes(monkeypatch):
  loop.check_processes("music")  # one process: fine
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  loop.check_processes("lm")
  for task in ("music", "classify", "synthetic"):
    with pytest.raises(ValueError, match=f"task '{task}' runs in one process only"):
      loop.check_processes(task)


def test_a_non_primary_workdir_writes_nothing(tmp_path):
  from rnnlm_jax.workdir import MetricWriter, Workdir
  wd = Workdir(tmp_path / "wd", primary=False)
  wd.acquire()
  wd.write_config({"a": 1})
  wd.record_data({"b": 2})
  assert wd.start_provenance() == -1
  wd.note_provenance(x=1)
  wd.end_provenance(-1)
  wd.write_status("running", 3, 0.5)
  writer = MetricWriter(wd, lines=4)
  writer.write({"step": 1, "split": "train", "loss": 1.0})
  writer.close()
  assert writer.lines == 5
  assert not (tmp_path / "wd").exists()


def test_launch_local_sets_the_variables_and_returns_the_worst_code():
  """scripts/launch_local.sh with a stand-in command (no JAX): the three variables per process,
  prefixed output, the highest exit code; a SIGTERM to it reaches every process."""
  import signal
  import time
  launcher = str(REPO / "scripts" / "launch_local.sh")
  env = {**os.environ, "RNNLM_TRAIN": "sh -c"}
  out = subprocess.run(["bash", launcher, "3", 'echo "$JAX_COORDINATOR_ADDRESS '
                        '$JAX_NUM_PROCESSES $JAX_PROCESS_ID"; exit $((JAX_PROCESS_ID * 2))'],
                       env=env, capture_output=True, text=True, timeout=60)
  assert out.returncode == 4
  lines = sorted(out.stdout.splitlines())
  assert [line.split()[0] for line in lines] == ["[0]", "[1]", "[2]"]
  assert [line.split()[2:] for line in lines] == [["3", "0"], ["3", "1"], ["3", "2"]]
  assert len({line.split()[1] for line in lines}) == 1
  assert lines[0].split()[1].startswith("127.0.0.1:")
  proc = subprocess.Popen(["bash", launcher, "2", "trap 'exit 130' TERM; while :; do sleep 0.1; done"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  time.sleep(1.0)
  t0 = time.monotonic()
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=20) == 130 and time.monotonic() - t0 < 10
  bad = subprocess.run(["bash", launcher, "x"], env=env, capture_output=True, text=True)
  assert bad.returncode == 2 and "usage" in bad.stderr
