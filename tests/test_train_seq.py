"""The one loop on padded sequences (rnnlm_jax/loop.py with rnnlm_jax/tasks/padded.py) on a toy task defined here.

Toy task: sequences of +-1 of random length 3..12, padded to 12; label 1 if their sum is
positive. Model: a GRU over the masked sequence, last state -> 2 logits. It is learnable in a few
epochs, so the tests check learning, the workdir contract, exact resume, early stopping and
frozen parameters without any real dataset.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, config_base, loop, rnn, tasks
from rnnlm_jax.tasks import padded
from rnnlm_jax.loop import Interrupted

MAX_T = 12


class ToyTask:
  select_metric, select_mode = "accuracy", "max"

  def __init__(self, config, n=(256, 64, 64)):
    self.config = config
    rng = np.random.default_rng(1234)
    self.data = {}
    for split, size in zip(("train", "valid", "test"), n):
      lengths = rng.integers(3, MAX_T + 1, size)
      x = rng.choice([-1.0, 1.0], (size, MAX_T)).astype(np.float32)
      x[np.arange(MAX_T)[None, :] >= lengths[:, None]] = 0.0
      y = (x.sum(1) > 0).astype(np.int32)
      self.data[split] = (x, lengths.astype(np.int32), y)
    self.cell = cells.get_cell("gru")

  def batches(self, split, batch_size, rng):
    x, lengths, y = self.data[split]
    order = rng.permutation(len(y)) if rng is not None else np.arange(len(y))
    for i in range(0, len(y), batch_size):
      idx = order[i:i + batch_size]
      pad = batch_size - len(idx)
      take = lambda a: np.concatenate([a[idx], np.zeros((pad,) + a.shape[1:], a.dtype)])
      weight = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
      yield {"x": take(x)[..., None], "lengths": np.maximum(take(lengths), 1), "y": take(y),
             "weight": weight}

  def init_params(self, key):
    k1, k2 = jax.random.split(key)
    h = int(self.config.model.hidden_size)
    return {"rnn": self.cell.init(k1, 1, h, init_scale=0.3),
            "out": {"w": 0.1 * jax.random.normal(k2, (h, 2)), "b": jnp.zeros(2)}}

  def trainable(self, params):
    frozen = bool(self.config.get("freeze_rnn", False))
    return jax.tree.map(lambda _: True, params) | {
        "rnn": jax.tree.map(lambda _: not frozen, params["rnn"])}

  def loss(self, params, batch, rng):
    B = batch["x"].shape[0]
    carry = self.cell.init_carry(B, params["out"]["w"].shape[0])
    xs = jnp.swapaxes(batch["x"], 0, 1)
    _, hs = rnn.masked_scan_layer_time_major(self.cell, params["rnn"], carry, xs,
                                             batch["lengths"])
    last = hs[batch["lengths"] - 1, jnp.arange(B)]
    logits = last @ params["out"]["w"] + params["out"]["b"]
    nll = -jax.nn.log_softmax(logits)[jnp.arange(B), batch["y"]]
    w = batch["weight"]
    correct = (jnp.argmax(logits, -1) == batch["y"]) * w
    return jnp.sum(nll * w) / jnp.maximum(w.sum(), 1), {
        "nll": jnp.sum(nll * w), "correct": correct.sum(), "examples": w.sum()}

  def summarize(self, sums):
    n = max(sums["examples"], 1.0)
    return {"loss": sums["nll"] / n, "accuracy": sums["correct"] / n}


def toy_config(**train):
  c = config_base.seq_config("toy")
  c.data.name = "toy"
  c.model.cell = "gru"
  c.model.hidden_size = 16
  c.optim.learning_rate = 0.02
  c.train.batch_size = 32
  c.train.eval_batch_size = 32
  c.train.num_epochs = 6
  c.train.log_every = 4
  c.train.checkpoint_every_steps = 5
  c.train.progress_bar = False
  for k, v in train.items():
    c.train[k] = v
  return c


def validate_config(config) -> None:
  """The toy task has no fields of its own."""


def make_task(config, workdir=None) -> "ToyTask":
  return ToyTask(config)


TASK = padded.make_task_def("toy", make_task, validate_config)


@pytest.fixture(autouse=True)
def toy_task(monkeypatch):
  monkeypatch.setitem(tasks.REGISTRY, "toy", __name__)  # this module: TASK above


def _events(wd, timing=("steps_per_sec", "tokens_per_sec", "train_seconds")):
  lines = (wd / "metrics.jsonl").read_text().splitlines()
  return [{k: v for k, v in json.loads(l).items() if k not in timing} for l in lines]


def _params(wd, config):
  from rnnlm_jax import checkpoint
  ckpt = checkpoint.Checkpointer(wd / "checkpoints")
  state, _ = ckpt.restore_latest(padded.create_train_state(config, ToyTask(config)))
  ckpt.close()
  return state.params


def test_trains_and_honours_the_workdir_contract(tmp_path):
  config = toy_config()
  result = loop.train_and_evaluate(config, str(tmp_path / "run"))
  events = _events(tmp_path / "run")
  splits = [e["split"] for e in events]
  assert splits.count("valid") == 6 + 1 and splits[-1] == "test"  # 6 epochs + final valid
  assert result["accuracy"] > 0.9  # chance is about 0.5
  train = [e for e in events if e["split"] == "train"]
  assert {"loss", "accuracy", "grad_norm", "clipped", "lr"} <= set(train[0])
  assert train[-1]["loss"] < train[0]["loss"]
  status = json.loads((tmp_path / "run" / "status.json").read_text())
  assert status["state"] == "finished" and status["step"] == 6 * 8
  best = [e for e in events if e["split"] == "valid" and e.get("best")]
  final_valid = events[-2]
  assert final_valid["checkpoint"] == "best_valid"
  assert final_valid["accuracy"] == pytest.approx(best[-1]["accuracy"])


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
  config = toy_config(num_epochs=3)
  loop.train_and_evaluate(config, str(tmp_path / "ref"))
  real = padded.make_train_step

  def crashing(*args, **kw):
    step_fn = real(*args, **kw)

    def wrapped(state, batch):
      if int(state.step) == 13:  # mid epoch 2; checkpoints at 5, 8 (epoch), 10
        raise RuntimeError("simulated crash")
      return step_fn(state, batch)

    return wrapped

  monkeypatch.setattr(padded, "make_train_step", crashing)
  with pytest.raises(RuntimeError, match="simulated crash"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "failed"
  monkeypatch.setattr(padded, "make_train_step", real)
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert _events(tmp_path / "run") == _events(tmp_path / "ref")
  for a, b in zip(jax.tree.leaves(_params(tmp_path / "ref", config)),
                  jax.tree.leaves(_params(tmp_path / "run", config))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_signal_saves_and_resume_finishes(tmp_path, monkeypatch):
  config = toy_config(num_epochs=2)
  real = padded.make_train_step

  def signalling(*args, **kw):
    step_fn = real(*args, **kw)

    def wrapped(state, batch):
      if int(state.step) == 3:
        import os
        import signal
        os.kill(os.getpid(), signal.SIGTERM)
      return step_fn(state, batch)

    return wrapped

  monkeypatch.setattr(padded, "make_train_step", signalling)
  with pytest.raises(Interrupted):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  status = json.loads((tmp_path / "run" / "status.json").read_text())
  assert status["state"] == "interrupted" and status["step"] == 4
  monkeypatch.setattr(padded, "make_train_step", real)
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  loop.train_and_evaluate(config, str(tmp_path / "ref"))
  assert _events(tmp_path / "run") == _events(tmp_path / "ref")


def test_patience_stops_early(tmp_path):
  config = toy_config(num_epochs=50, patience=1)
  config.optim.learning_rate = 1e-9  # nothing improves after the first validation
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  status = json.loads((tmp_path / "run" / "status.json").read_text())
  assert status["step"] == 2 * 8 and "patience" in status["reason"]


def test_frozen_leaves_do_not_change(tmp_path):
  config = toy_config(num_epochs=1)
  config.freeze_rnn = True
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  init = ToyTask(config).init_params(jax.random.split(jax.random.PRNGKey(0))[0])
  final = _params(tmp_path / "run", config)
  for a, b in zip(jax.tree.leaves(init["rnn"]), jax.tree.leaves(final["rnn"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(init["out"]["w"]), np.asarray(final["out"]["w"]))


def test_bad_config_fails_before_writing(tmp_path):
  config = toy_config(patience=-1)
  with pytest.raises(ValueError, match="patience"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  config = toy_config()
  config.task = "nope"
  with pytest.raises(ValueError, match="unknown task"):
    tasks.validate_config(config)
