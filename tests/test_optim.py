"""Clipping, schedules and the loss scale."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import optim, train
from rnnlm_jax.config_base import base_config


def _grads():
  return {"a": jnp.array([3.0, -4.0]), "b": {"c": jnp.array([[12.0]])}}  # global norm 13


def test_global_norm_clipping_rescales_when_above_threshold():
  g, stats = optim.clip_gradients(_grads(), "global_norm", 6.5)
  assert float(stats["grad_norm"]) == pytest.approx(13.0)
  assert float(stats["clipped"]) == 1.0
  np.testing.assert_allclose(g["a"], [1.5, -2.0], rtol=1e-6)
  np.testing.assert_allclose(g["b"]["c"], [[6.0]], rtol=1e-6)
  g, stats = optim.clip_gradients(_grads(), "global_norm", 13.5)
  assert float(stats["clipped"]) == 0.0
  np.testing.assert_array_equal(g["a"], _grads()["a"])


def test_value_clipping_clamps_elements():
  g, stats = optim.clip_gradients(_grads(), "value", 3.5)
  np.testing.assert_array_equal(g["a"], [3.0, -3.5])
  np.testing.assert_array_equal(g["b"]["c"], [[3.5]])
  assert float(stats["clipped"]) == 1.0 and float(stats["grad_norm"]) == pytest.approx(13.0)
  _, stats = optim.clip_gradients(_grads(), "value", 12.0)
  assert float(stats["clipped"]) == 0.0


def test_no_clipping_reports_norm():
  g, stats = optim.clip_gradients(_grads(), "none", 0.0)
  assert float(stats["grad_norm"]) == pytest.approx(13.0) and float(stats["clipped"]) == 0.0
  np.testing.assert_array_equal(g["a"], _grads()["a"])


def test_zaremba_schedule_holds_then_decays():
  c = base_config().optim
  c.schedule, c.learning_rate, c.lr_hold_epochs, c.lr_decay = "zaremba", 1.0, 4, 0.5
  sched = optim.learning_rate_schedule(c, steps_per_epoch=10)
  lrs = [float(sched(jnp.asarray(epoch * 10 + 3))) for epoch in range(7)]
  assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]


def test_sgd_step_uses_schedule_and_reports_lr():
  c = base_config().optim
  c.schedule, c.lr_hold_epochs, c.lr_decay = "zaremba", 1, 0.5
  tx = optim.make_optimizer(c, steps_per_epoch=2)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  seen = []
  for _ in range(5):
    upd, state = tx.update({"w": jnp.ones(3)}, state, params)
    seen.append((float(optim.get_learning_rate(state)), float(upd["w"][0])))
  assert seen == [(1.0, -1.0), (1.0, -1.0), (0.5, -0.5), (0.5, -0.5), (0.25, -0.25)]


def test_plateau_rate_lives_in_optimizer_state():
  c = base_config().optim
  c.schedule, c.learning_rate = "plateau", 20.0
  tx = optim.make_optimizer(c, steps_per_epoch=5)
  params = {"w": jnp.ones(2)}
  state = optim.set_learning_rate(tx.init(params), 5.0)
  upd, state = tx.update({"w": jnp.ones(2)}, state, params)
  assert float(upd["w"][0]) == -5.0 and float(optim.get_learning_rate(state)) == 5.0


def test_adam_runs():
  c = base_config().optim
  c.name, c.learning_rate, c.schedule = "adam", 1e-3, "constant"
  tx = optim.make_optimizer(c, steps_per_epoch=1)
  upd, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
  np.testing.assert_allclose(upd["w"], [-1e-3, -1e-3], rtol=1e-4)


@pytest.mark.parametrize("key,value,msg", [
    ("name", "rmsprop", "optim.name"), ("clip_mode", "norm", "optim.clip_mode"),
    ("schedule", "cosine", "optim.schedule"), ("loss_reduction", "sum", "optim.loss_reduction"),
    ("learning_rate", -1.0, "learning_rate"), ("clip_value", 0.0, "clip_value")])
def test_bad_optim_fields(key, value, msg):
  c = base_config().optim
  c[key] = value
  with pytest.raises(ValueError, match=msg):
    optim.validate(c)


def test_loss_reduction_scales():
  """sum_time = batch mean summed over time (Zaremba); mean = per token."""
  assert train._reduce(jnp.asarray(800.0), 20, 20, "sum_time") == 40.0
  assert train._reduce(jnp.asarray(800.0), 20, 20, "mean") == 2.0
