"""Clipping, schedules and the loss scale."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlm_jax import optim
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.config_base import base_config


def _grads():
  return {"a": jnp.array([3.0, -4.0]), "b": {"c": jnp.array([[12.0]])}}  # global norm 13


def test_global_norm_clipping_rescales_when_above_threshold():
  g, stats = optim.clip_gradients(_grads(), "global_norm", 6.5)
  assert float(stats["grad_norm"]) == pytest.approx(13.0)
  assert float(stats["clipped"]) == 1.0 and float(stats["clip_fraction"]) == 1.0
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
  assert float(stats["clipped"]) == 0.0 and float(stats["clip_fraction"]) == 0.0


def test_no_clipping_reports_norm():
  g, stats = optim.clip_gradients(_grads(), "none", 0.0)
  assert float(stats["grad_norm"]) == pytest.approx(13.0) and float(stats["clipped"]) == 0.0
  assert float(stats["clip_fraction"]) == 0.0
  np.testing.assert_array_equal(g["a"], _grads()["a"])


def _lm_like_grads():
  """An LM-shaped tree; group norms: embed 5, rnn[0] 13, rnn[1] 2, head 25."""
  return {"embed": jnp.array([[3.0, 4.0]]),
          "rnn": [{"w_ih": jnp.array([[5.0]]), "w_hh": jnp.array([[12.0]]),
                   "b_ih": jnp.zeros(1), "b_hh": jnp.zeros(1)},
                  {"w_ih": jnp.array([[2.0]]), "w_hh": jnp.zeros((1, 1)),
                   "b_ih": jnp.zeros(1), "b_hh": jnp.zeros(1)}],
          "head": {"w": jnp.array([[7.0]]), "b": jnp.array([24.0])}}


def test_per_layer_norm_clips_each_group_on_its_own():
  g0 = _lm_like_grads()
  g, stats = jax.jit(lambda g: optim.clip_gradients(g, "per_layer_norm", 6.5))(g0)
  # embed (5) and rnn[1] (2) are below 6.5: unchanged.
  np.testing.assert_array_equal(g["embed"], g0["embed"])
  for k in g0["rnn"][1]:
    np.testing.assert_array_equal(g["rnn"][1][k], g0["rnn"][1][k])
  # rnn[0] (13) and head (25) are rescaled as a whole to norm 6.5.
  np.testing.assert_allclose(g["rnn"][0]["w_ih"], [[2.5]], rtol=1e-6)
  np.testing.assert_allclose(g["rnn"][0]["w_hh"], [[6.0]], rtol=1e-6)
  np.testing.assert_allclose(g["head"]["w"], [[7.0 * 6.5 / 25]], rtol=1e-6)
  np.testing.assert_allclose(g["head"]["b"], [24.0 * 6.5 / 25], rtol=1e-6)
  global_norm = np.sqrt(25 + 169 + 4 + 625)
  assert float(stats["grad_norm"]) == pytest.approx(global_norm, rel=1e-6)
  assert float(stats["clipped"]) == 1.0 and float(stats["clip_fraction"]) == 0.5
  _, stats = optim.clip_gradients(g0, "per_layer_norm", 25.5)
  assert float(stats["clipped"]) == 0.0 and float(stats["clip_fraction"]) == 0.0


def test_per_layer_norm_groups():
  """Innermost dicts are groups; a bare array (even next to dicts, or in a list) is its own."""
  tree = {"a": jnp.zeros(2), "b": {"c": jnp.zeros(1), "d": jnp.zeros(3)},
          "e": {"f": jnp.zeros(1), "g": {"h": jnp.zeros(1)}}, "l": [jnp.zeros(1), jnp.zeros(1)]}
  _, group_of, n = optim._layer_groups(tree)
  # Leaf order: a, b.c, b.d, e.f, e.g.h, l[0], l[1].
  assert n == 6 and group_of == [0, 1, 1, 2, 3, 4, 5]


def _agc_case():
  """Columns of w: unit 0 ratio 5/5 = 1 (below lambda 2), unit 1 ratio 10/1 (above), unit 2
  zero params (max norm lambda * eps = 2e-3, grad norm 1: above); bias ratio 5/0.5 (above)."""
  params = {"w": jnp.array([[3.0, 1.0, 0.0], [4.0, 0.0, 0.0]]), "b": jnp.array([0.3, 0.4])}
  grads = {"w": jnp.array([[3.0, 6.0, 0.6], [4.0, 8.0, 0.8]]), "b": jnp.array([3.0, 4.0])}
  return grads, params


def test_agc_matches_hand_computation():
  grads, params = _agc_case()
  g, stats = optim.clip_gradients(grads, "agc", 2.0, params=params)
  want_w = np.array([[3.0, 6.0 * 2 / 10, 0.6 * 2e-3], [4.0, 8.0 * 2 / 10, 0.8 * 2e-3]])
  np.testing.assert_allclose(g["w"], want_w, rtol=1e-6)
  np.testing.assert_allclose(g["b"], [3.0 * 1 / 5, 4.0 * 1 / 5], rtol=1e-6)  # to 2 * 0.5 = 1
  global_norm = np.sqrt(25 + 100 + 1 + 25)
  assert float(stats["grad_norm"]) == pytest.approx(global_norm, rel=1e-6)
  assert float(stats["clipped"]) == 1.0 and float(stats["clip_fraction"]) == 0.75  # 3 / 4 units
  _, stats = optim.clip_gradients({"w": grads["w"][:, :1]}, "agc", 2.0,
                                  params={"w": params["w"][:, :1]})
  assert float(stats["clipped"]) == 0.0 and float(stats["clip_fraction"]) == 0.0


def test_agc_matches_optax_and_jits():
  optax = pytest.importorskip("optax")
  if not hasattr(optax, "adaptive_grad_clip"):
    pytest.skip("optax has no adaptive_grad_clip")
  rng = np.random.default_rng(0)
  params = {"embed": rng.normal(size=(7, 4)),
            "rnn": [{"w_ih": rng.normal(size=(4, 12)), "w_hh": rng.normal(size=(3, 12)) * 1e-4,
                     "b_ih": np.zeros(12), "b_hh": rng.normal(size=12)}],
            "head": {"w": rng.normal(size=(3, 7)), "b": np.zeros(7)}}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape) * 0.1, jnp.float32),
                       params)
  tx = optax.adaptive_grad_clip(0.1, eps=optim.AGC_EPS)
  want, _ = tx.update(grads, tx.init(params), params)
  got, stats = jax.jit(lambda g, p: optim.clip_gradients(g, "agc", 0.1, p))(grads, params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)
  assert 0.0 < float(stats["clip_fraction"]) < 1.0 and float(stats["clipped"]) == 1.0


def test_agc_needs_params():
  with pytest.raises(ValueError, match="params"):
    optim.clip_gradients(_grads(), "agc", 0.01)


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


@pytest.mark.parametrize("mode,value", [("global_norm", 6.5), ("value", 3.5),
                                        ("per_layer_norm", 6.5), ("agc", 0.5), ("none", 0.0)])
def test_clipping_is_the_chain_first_link_and_its_state_holds_the_stats(mode, value):
  """make_optimizer's chain clips exactly as clip_gradients does, then applies the rule; the
  ClipState holds that update's pre-clip norm, whether clipping fired and the fraction."""
  c = base_config().optim
  c.name, c.learning_rate, c.schedule, c.clip_mode, c.clip_value = "adam", 1e-2, "constant", \
      mode, value
  tx = optim.make_optimizer(c, steps_per_epoch=1)
  params = {"layer": {"w": jnp.full((2, 3), 0.5), "b": jnp.zeros(3)}, "embed": jnp.ones((4, 2))}
  grads = jax.tree.map(lambda p: jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) - 2.0,
                       params)
  upd, state = jax.jit(tx.update)(grads, tx.init(params), params)
  clipped, stats = optim.clip_gradients(grads, mode, value, params)
  rule = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)  # the rule alone, fed the
  # clipped gradient
  want, _ = jax.jit(rule.update)(clipped, rule.init(params), params)
  jax.tree.map(np.testing.assert_array_equal, upd, want)
  got = optim.clip_stats(state)
  assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in stats.items()}
  assert float(got["grad_norm"]) > value and (mode == "none") == (float(got["clipped"]) == 0.0)


def test_adam_runs():
  c = base_config().optim
  c.name, c.learning_rate, c.schedule = "adam", 1e-3, "constant"
  tx = optim.make_optimizer(c, steps_per_epoch=1)
  upd, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
  np.testing.assert_allclose(upd["w"], [-1e-3, -1e-3], rtol=1e-4)


@pytest.mark.parametrize("key,value,msg", [
    ("name", "adagrad", "optim.name"), ("clip_mode", "norm", "optim.clip_mode"),
    ("schedule", "cosine", "optim.schedule"), ("loss_reduction", "sum", "optim.loss_reduction"),
    ("learning_rate", -1.0, "learning_rate"), ("clip_value", 0.0, "clip_value"),
    ("clip_mode", "agc", "clip_value"), ("clip_mode", "per_layer_norm", "clip_value")])
def test_bad_optim_fields(key, value, msg):
  c = base_config().optim
  if key == "clip_mode" and value in optim.CLIP_MODES:
    c.clip_value = 0.0
  c[key] = value
  with pytest.raises(ValueError, match=msg):
    optim.validate(c)


def test_loss_reduction_scales():
  """sum_time = batch mean summed over time (Zaremba); mean = per token."""
  assert lm_task._reduce(jnp.asarray(800.0), 20, 20, "sum_time") == 40.0
  assert lm_task._reduce(jnp.asarray(800.0), 20, 20, "mean") == 2.0


def test_rmsprop_and_adamw_are_the_optax_updates():
  """optim.name=rmsprop (Chung et al. 2014's optimiser), adam with weight_decay (AdamW), and
  weight_decay as an L2 gradient term for sgd / rmsprop (it used to be ignored there)."""
  import ml_collections
  import optax
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  grads = {"w": jnp.array([0.5, 0.25, -1.0])}
  for name, extra, ref in [
      ("rmsprop", {"rmsprop_decay": 0.95, "momentum": 0.0}, optax.rmsprop(0.01, decay=0.95)),
      ("adam", {"weight_decay": 0.1}, optax.adamw(0.01, weight_decay=0.1)),
      ("sgd", {"weight_decay": 0.1, "momentum": 0.9},
       optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.01, momentum=0.9))),
      ("rmsprop", {"weight_decay": 0.1},
       optax.chain(optax.add_decayed_weights(0.1), optax.rmsprop(0.01, decay=0.9)))]:
    cfg = ml_collections.ConfigDict({"name": name, "learning_rate": 0.01, "clip_mode": "none",
                                     "clip_value": 1.0, **extra})
    tx = optim.make_optimizer(cfg, 10)
    ours, _ = tx.update(grads, tx.init(params), params)
    want, _ = ref.update(grads, ref.init(params), params)
    np.testing.assert_allclose(ours["w"], want["w"], rtol=1e-4)  # hyperparams held as f32
