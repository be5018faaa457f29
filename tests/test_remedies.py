"""Issue 8 remedies: each option's defining property, and defaults that change nothing.

LN output statistics and weight-scale invariance, residual sums, locked-dropout mask constant
over time, embedding dropout per word, weight-drop mask fixed within a window (and gradients
of the fast recurrences through it equal autodiff of a plain scan), AR/TAR formulas, the
attention head causal and streaming across windows (so sampling carries its memory), the
auxiliary head off = unchanged loss, NT-ASGD's average and trigger, old workdirs still resume,
and one tiny end-to-end run with everything on that resumes exactly after a crash.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlm_jax import cells, loop, optim, remedies, rnn, sample
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.config_base import base_config
from rnnlm_jax.models import attention, lm
from rnnlm_jax.workdir import ADDED_KEY_DEFAULTS, Workdir, config_conflicts

import helpers
from helpers import make_corpus, tiny_config

REMEDY_MODEL_KEYS = ("norm", "residual", "locked_dropout", "embed_dropout", "weight_drop",
                     "attention_window", "aux_weight")


def _spec(vocab=23, **model):
  c = base_config().model
  c.hidden_size, c.embed_size = 12, 12
  for k, v in model.items():
    c[k] = v
  return lm.LMSpec.from_config(c, vocab)


def _tokens(key, batch=3, steps=9, vocab=23):
  return jax.random.randint(jax.random.PRNGKey(key), (batch, steps), 0, vocab)


def _scan_reference(cell, params, carry, xs_TBI):
  """Plain autodiff of lax.scan over cell.step (no hand-written backward)."""
  gx = cell.project_inputs(params, xs_TBI)
  return jax.lax.scan(lambda c, g: cell.step(params, c, g), carry, gx)


# ----------------------------------------------------------------------------- defaults


def test_defaults_are_off_and_old_workdirs_resume():
  c = base_config()
  for k in REMEDY_MODEL_KEYS:
    assert c.model[k] == ADDED_KEY_DEFAULTS[f"model.{k}"]
  for k in ("nonmono", "ar", "tar"):
    assert c.optim[k] == ADDED_KEY_DEFAULTS[f"optim.{k}"]
  assert not (c.model.residual or c.model.locked_dropout or c.model.embed_dropout
              or c.model.weight_drop or c.model.attention_window or c.model.aux_weight
              or c.optim.ar or c.optim.tar) and c.model.norm == "none"
  new = c.to_dict()
  old = json.loads(json.dumps(new))  # a config.json written before these keys existed
  for k in REMEDY_MODEL_KEYS:
    del old["model"][k]
  for k in ("nonmono", "ar", "tar"):
    del old["optim"][k]
  assert config_conflicts(old, new) == []
  new["model"]["weight_drop"] = 0.5
  assert config_conflicts(old, new) == ["model.weight_drop"]


def test_defaults_leave_the_lm_bit_for_bit_unchanged():
  """With every remedy off the LM computes exactly what it computed before issue 8."""
  spec = _spec(dropout=0.3)
  params = lm.init_params(jax.random.PRNGKey(0), spec)
  assert set(params) == {"embed", "rnn", "head"}
  assert set(params["rnn"][0]) == {"w_ih", "w_hh", "b_ih", "b_hh"}
  carry = lm.init_carry(spec, 3)
  assert len(carry) == spec.num_layers
  x, rng = _tokens(1), jax.random.PRNGKey(5)

  def before(p):  # lm.hidden_states as it was
    rngs = jax.random.split(rng, 3)
    h = rnn.dropout(jnp.take(p["embed"], x.T, axis=0), spec.dropout, rngs[0])
    c, h = rnn.stack_time_major(cells.lstm, p["rnn"], carry, h, dropout_rate=spec.dropout,
                                rng=rngs[1])
    return rnn.dropout(h, spec.dropout, rngs[2]).sum(), c

  def now(p):
    c, h = lm.hidden_states(p, spec, carry, x, rng)
    return h.sum(), c

  (v0, c0), g0 = jax.value_and_grad(before, has_aux=True)(params)
  (v1, c1), g1 = jax.value_and_grad(now, has_aux=True)(params)
  assert float(v0) == float(v1)
  for a, b in zip(jax.tree.leaves((c0, g0)), jax.tree.leaves((c1, g1))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_remedy_values_are_one_line_errors():
  for model, match in [({"norm": "bogus"}, "model.norm"), ({"weight_drop": 1.0}, "weight_drop"),
                       ({"embed_dropout": -0.1}, "embed_dropout"),
                       ({"attention_window": -1}, "attention_window"),
                       ({"aux_weight": -1.0}, "aux_weight")]:
    with pytest.raises(ValueError, match=match):
      _spec(**model)
  c = base_config()
  c.optim.name, c.optim.nonmono = "ntasgd", 0
  with pytest.raises(ValueError, match="optim.nonmono"):
    optim.validate(c.optim)
  c.optim.nonmono, c.optim.ar = 5, -1.0
  with pytest.raises(ValueError, match="optim.ar"):
    optim.validate(c.optim)
  c = base_config()
  c.data.bptt, c.model.aux_weight = 1, 0.1
  with pytest.raises(ValueError, match="bptt >= 2"):
    lm_task.validate_config(c)


# ----------------------------------------------------------------------------- layer norm


def test_layer_norm_output_statistics():
  x = 3.0 + 5.0 * jax.random.normal(jax.random.PRNGKey(0), (7, 5, 4 * 16))
  y = cells.layer_norm(x, 4).reshape(7, 5, 4, 16)
  np.testing.assert_allclose(np.asarray(y.mean(-1)), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(y.var(-1)), 1.0, atol=1e-3)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_ln_cell_is_invariant_to_weight_scale_and_normalises(name, monkeypatch):
  monkeypatch.setattr(cells, "LN_EPS", 1e-12)  # exact invariance (eps breaks it slightly)
  cell = cells.get_cell(name, "layer")
  assert cell.name == f"{name}_ln" and cell.recurrence is None  # autodiff of lax.scan
  assert cells.get_cell(name, "layer") is cell  # one object per (name, norm)
  params = cell.init(jax.random.PRNGKey(0), 5, 8, init_scale=1.0)  # variances >> LN's eps
  xs = jax.random.normal(jax.random.PRNGKey(1), (6, 3, 5))
  carry = cell.init_carry(3, 8)
  _, hs = rnn.scan_layer_time_major(cell, params, carry, xs)
  scaled = dict(params, w_ih=params["w_ih"] * 7.0, w_hh=params["w_hh"] * 0.25)
  _, hs_scaled = rnn.scan_layer_time_major(cell, scaled, carry, xs)
  np.testing.assert_allclose(np.asarray(hs), np.asarray(hs_scaled), atol=1e-5)
  # The input projection is layer-normalised per gate block (unit gains, before the biases).
  gx = cell.project_inputs(dict(params, b_ih=0 * params["b_ih"], b_hh=0 * params["b_hh"]), xs)
  blocks = gx.reshape(6, 3, cell.num_gates, 8)
  np.testing.assert_allclose(np.asarray(blocks.mean(-1)), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(blocks.var(-1)), 1.0, atol=1e-3)
  # The plain cell is not invariant (the property is the LN's).
  base = cells.get_cell(name)
  plain = {k: params[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
  _, p1 = rnn.scan_layer_time_major(base, plain, carry, xs)
  _, p2 = rnn.scan_layer_time_major(base, dict(plain, w_ih=plain["w_ih"] * 7.0), carry, xs)
  assert float(jnp.max(jnp.abs(p1 - p2))) > 1e-2


# slow: the default run took 7:54 and 8:41 in two clean clones on an AVX2 host (2026-12-07)
@pytest.mark.slow
def test_ln_lstm_layer_gradient_equals_plain_scan():
  cell = cells.get_cell("lstm", "layer")
  params = cell.init(jax.random.PRNGKey(0), 4, 6)
  params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(9), a.shape),
                        params)  # non-trivial gains and biases
  xs = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 4))
  carry = (0.1 * jnp.ones((2, 6)), -0.2 * jnp.ones((2, 6)))
  loss = lambda f: lambda p, c: jnp.sum(jnp.sin(f(cell, p, c, xs)[1]))
  g_stack = jax.grad(loss(rnn.scan_layer_time_major), argnums=(0, 1))(params, carry)
  g_ref = jax.grad(loss(_scan_reference), argnums=(0, 1))(params, carry)
  for a, b in zip(jax.tree.leaves(g_stack), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- residual


def test_residual_stack_adds_the_input_or_its_projection():
  cell = cells.gru
  for embed in (8, 5):
    params = rnn.init_stack(jax.random.PRNGKey(0), cell, 2, embed, 8)
    proj = remedies.init_res_proj(jax.random.PRNGKey(3), embed, 8, 0.1) if embed != 8 else None
    carries = rnn.init_stack_carry(cell, 2, 3, 8)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 3, embed))
    _, hs = rnn.stack_time_major(cell, params, carries, xs, residual=True, res_proj=proj)
    _, o0 = rnn.scan_layer_time_major(cell, params[0], carries[0], xs)
    h0 = o0 + (xs if proj is None else xs @ proj)
    _, o1 = rnn.scan_layer_time_major(cell, params[1], carries[1], h0)
    np.testing.assert_allclose(np.asarray(hs), np.asarray(h0 + o1), rtol=1e-6, atol=1e-6)
  spec = _spec(residual=True, embed_size=5)
  assert lm.init_params(jax.random.PRNGKey(0), spec)["res_proj"].shape == (5, 12)
  assert "res_proj" not in lm.init_params(jax.random.PRNGKey(0), _spec(residual=True))


# ----------------------------------------------------------------------------- dropout


def test_locked_dropout_mask_is_constant_over_time():
  x = jnp.ones((20, 4, 50))
  y = rnn.locked_dropout(x, 0.4, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(np.asarray(y), np.asarray(jnp.broadcast_to(y[:1], y.shape)))
  np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1 / 0.6], rtol=1e-6)
  assert 0.25 < float(jnp.mean(y[0] == 0)) < 0.55
  assert rnn.locked_dropout(x, 0.4, None) is x
  plain = rnn.dropout(x, 0.4, jax.random.PRNGKey(0))  # the standard mask changes every step
  assert not bool(jnp.all(plain == plain[:1]))
  # In the LM: the input dropout mask of a locked model is the same at every step (a word
  # repeated over the window gets the same dropped units each time).
  params = lm.init_params(jax.random.PRNGKey(0), _spec(num_layers=1))
  params["rnn"][0] = jax.tree.map(jnp.zeros_like, params["rnn"][0])  # h = 0: see the input mask
  # Input feeds the g block only: c_t = f c_{t-1} + tanh(x) / 2, so a unit of h is exactly 0
  # at a step iff its input unit was dropped at that step and every step before.
  params["rnn"][0]["w_ih"] = jnp.zeros((12, 48)).at[:, 36:].set(jnp.eye(12))
  x_same = jnp.full((2, 6), 4)
  for locked in (True, False):
    spec_l = _spec(dropout=0.5, locked_dropout=locked, num_layers=1)
    _, out = lm.forward(params, spec_l, lm.init_carry(spec_l, 2), x_same, jax.random.PRNGKey(1))
    zero_units = np.asarray(out["rnn"] == 0)
    assert zero_units.any() and not zero_units.all()
    assert (zero_units == zero_units[:1]).all() == locked


def test_embedding_dropout_drops_whole_words():
  embed = jax.random.normal(jax.random.PRNGKey(0), (40, 6)) + 3.0
  tokens = jax.random.randint(jax.random.PRNGKey(1), (5, 30), 0, 40)
  x = remedies.embedding_dropout(embed, tokens, 0.5, jax.random.PRNGKey(2))  # [T, B, E]
  dropped = np.asarray(jnp.all(x == 0, axis=-1)).T  # [B, T]
  kept = ~dropped
  tok = np.asarray(tokens)
  for w in np.unique(tok):  # every occurrence of a word: all dropped or all kept
    assert dropped[tok == w].all() or kept[tok == w].all()
  np.testing.assert_allclose(np.asarray(x).transpose(1, 0, 2)[kept],
                             np.asarray(embed)[tok[kept]] * 2.0, rtol=1e-6)
  assert 0 < dropped.mean() < 1
  np.testing.assert_array_equal(np.asarray(remedies.embedding_dropout(embed, tokens, 0.5, None)),
                                np.asarray(jnp.take(embed, tokens.T, axis=0)))


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_weight_drop_mask_is_fixed_within_a_window_and_gradients_match(name, monkeypatch):
  cell = cells.get_cell(name)
  params = rnn.init_stack(jax.random.PRNGKey(0), cell, 2, 5, 7, init_scale=0.5)
  carries = rnn.init_stack_carry(cell, 2, 3, 7)
  xs = jax.random.normal(jax.random.PRNGKey(1), (6, 3, 5))
  rng = jax.random.PRNGKey(4)

  def run(p):
    return rnn.stack_time_major(cell, p, carries, xs, weight_drop_rate=0.5, rng=rng)[1]

  # Reference: each layer scanned with ONE masked W_hh, the one weight_drop draws for it.
  def reference(p):
    h = xs
    for layer in range(2):
      q = rnn.weight_drop(p[layer], 0.5, jax.random.fold_in(rng, 1000 + layer))
      h = _scan_reference(cell, q, carries[layer], h)[1]
    return h

  np.testing.assert_allclose(np.asarray(run(params)), np.asarray(reference(params)),
                             rtol=1e-5, atol=1e-6)
  masked = rnn.weight_drop(params[0], 0.5, jax.random.fold_in(rng, 1000))
  frac = float(jnp.mean(masked["w_hh"] == 0))
  assert 0.3 < frac < 0.7
  np.testing.assert_allclose(np.asarray(masked["w_hh"])[np.asarray(masked["w_hh"]) != 0],
                             2 * np.asarray(params[0]["w_hh"])[np.asarray(masked["w_hh"]) != 0])
  assert cell.recurrence is not None  # run() takes the hand-written recurrences
  loss = lambda f: lambda p: jnp.sum(jnp.sin(3 * f(p)))
  g_fast, g_ref = jax.grad(loss(run))(params), jax.grad(loss(reference))(params)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  # Evaluation (no rng): nothing dropped.
  np.testing.assert_array_equal(
      np.asarray(rnn.stack_time_major(cell, params, carries, xs, weight_drop_rate=0.5)[1]),
      np.asarray(rnn.stack_time_major(cell, params, carries, xs)[1]))


# ----------------------------------------------------------------------------- AR / TAR


def test_activation_penalties_formulas():
  f = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
  h = np.random.default_rng(1).normal(size=(5, 3, 4)).astype(np.float32)
  ar, tar = remedies.activation_penalties(jnp.asarray(f), jnp.asarray(h))
  np.testing.assert_allclose(float(ar) / 15, (f ** 2).mean(), rtol=1e-5)
  np.testing.assert_allclose(float(tar) / 12, ((h[1:] - h[:-1]) ** 2).mean(), rtol=1e-5)


# ----------------------------------------------------------------------------- attention


_hidden_states = jax.jit(lm.hidden_states, static_argnums=1)  # cached per shape


@pytest.mark.slow  # 11 s; .ci/run runs test_remedies.py's slow tests after the default suite
def test_attention_head_is_causal_and_streams_across_windows():
  spec = _spec(attention_window=4, norm="layer")
  params = lm.init_params(jax.random.PRNGKey(0), spec)
  params["attn"] = jax.tree.map(lambda a: 5 * a + 0.1, params["attn"])  # sharp attention
  x = _tokens(1, steps=10)
  carry = lm.init_carry(spec, 3)
  assert carry[-1]["h"].shape == (3, 4, 12) and carry[-1]["valid"].shape == (3, 4)
  _, feats = _hidden_states(params, spec, carry, x)
  # Causal: changing tokens from position 6 on leaves the outputs at 0..5 unchanged.
  x2 = x.at[:, 6:].set((x[:, 6:] + 1) % 23)
  _, feats2 = _hidden_states(params, spec, carry, x2)
  np.testing.assert_array_equal(np.asarray(feats[:6]), np.asarray(feats2[:6]))
  assert float(jnp.max(jnp.abs(feats[6:] - feats2[6:]))) > 1e-4
  # Streaming: two windows with the carried memory equal one long window.
  c1, fa = _hidden_states(params, spec, carry, x[:, :3])
  c2, fb = _hidden_states(params, spec, c1, x[:, 3:])
  np.testing.assert_allclose(np.asarray(jnp.concatenate([fa, fb])), np.asarray(feats),
                             rtol=1e-5, atol=1e-6)
  # The memory matters: without it the second window's outputs differ.
  fresh = c1[:-1] + [attention.init_memory(3, 4, 12)]
  _, fc = _hidden_states(params, spec, fresh, x[:, 3:])
  assert float(jnp.max(jnp.abs(fc - fb))) > 1e-4
  # Finite gradients from an empty memory (the first step attends over nothing).
  g = jax.jit(jax.grad(lambda p: lm.token_nll(p, spec, carry, x, x)[1].sum()))(params)
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))


@pytest.mark.slow  # 14 s; the attention head streams across windows by default (above)
def test_sampling_carries_the_attention_memory():
  spec = _spec(attention_window=3, residual=True, norm="layer")
  params = lm.init_params(jax.random.PRNGKey(0), spec)
  prompt = _tokens(2, batch=1, steps=6)
  # The logits of the first drawn token equal those of a full forward pass over the prompt.
  carry = sample.prime(params, spec, lm.init_carry(spec, 1), prompt[:, :-1])
  _, h_last = lm.hidden_states(params, spec, carry, prompt[:, -1:])
  _, h_full = lm.hidden_states(params, spec, lm.init_carry(spec, 1), prompt)
  np.testing.assert_allclose(np.asarray(h_last[0]), np.asarray(h_full[-1]), rtol=1e-5,
                             atol=1e-6)
  ids = sample.generate(params, spec, prompt[0], jax.random.PRNGKey(0), length=7,
                        num_samples=2, temperature=0.0)
  assert ids.shape == (2, 7)
  np.testing.assert_array_equal(np.asarray(ids[0]), np.asarray(ids[1]))  # greedy: same rows
  # Greedy decoding by full forward passes gives the same tokens. The model is causal (the
  # test above), so one forward pass over prompt + samples holds every prefix's last state:
  # the argmax after position t must be the token at t + 1, for every drawn token.
  seq = jnp.concatenate([prompt[0], ids[0]])[None]  # [1, 13]
  _, h = lm.hidden_states(params, spec, lm.init_carry(spec, 1), seq[:, :-1])  # [12, 1, F]
  greedy = jnp.argmax(lm.logits(params, spec, h[5:, 0]), axis=-1)  # after positions 5..11
  np.testing.assert_array_equal(np.asarray(greedy), np.asarray(ids[0]))


# ----------------------------------------------------------------------------- aux head


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_aux_head_off_leaves_the_loss_unchanged_and_on_adds_its_term():
  plain, aux = _spec(), _spec(aux_weight=0.3)
  p_plain = lm.init_params(jax.random.PRNGKey(0), plain)
  p_aux = lm.init_params(jax.random.PRNGKey(0), aux)
  assert set(p_aux) - set(p_plain) == {"aux_head"}
  for a, b in zip(jax.tree.leaves(p_plain), jax.tree.leaves({k: p_aux[k] for k in p_plain})):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  x, y = _tokens(1), _tokens(2)
  carry = lm.init_carry(plain, 3)
  _, nll = lm.token_nll(p_plain, plain, carry, x, y)
  _, terms_off = lm.window_losses(p_plain, plain, carry, x, y)
  assert set(terms_off) == {"nll"}
  np.testing.assert_array_equal(np.asarray(terms_off["nll"]), np.asarray(nll))
  _, terms = lm.window_losses(p_aux, aux, carry, x, y)
  np.testing.assert_array_equal(np.asarray(terms["nll"]), np.asarray(nll))  # main loss as is
  # The aux NLL at t is the aux head's NLL of y[:, t + 1] from the features at t.
  _, h = lm.hidden_states(p_aux, aux, carry, x)
  logits = h[:-1] @ p_aux["aux_head"]["w"] + p_aux["aux_head"]["b"]
  ref = optax.softmax_cross_entropy_with_integer_labels(logits, y.T[1:])
  np.testing.assert_allclose(np.asarray(terms["aux_nll"]), np.asarray(ref), rtol=1e-5)
  # The train step's objective: with weight 0 (no head) exactly the plain path's.
  cfg = base_config().optim
  state = loop.TrainState.create(apply_fn=None, params=p_plain,  # donated by the step
                                  tx=optim.make_optimizer(cfg, 10), carry=lm.init_carry(plain, 3),
                                  rng=jax.random.PRNGKey(0))
  _, m = lm_task.make_train_step(plain, cfg)(state, x, y)
  assert set(m) == {"nll_sum", "lr", "grad_norm", "clipped", "clip_fraction"}
  cfg.ar, cfg.tar = 2.0, 1.0
  state = loop.TrainState.create(apply_fn=None, params=p_aux, tx=optim.make_optimizer(cfg, 10),
                                  carry=lm.init_carry(aux, 3), rng=jax.random.PRNGKey(0))
  _, m2 = lm_task.make_train_step(aux, cfg)(state, x, y)
  assert {"aux_nll_sum", "ar_sum", "tar_sum"} <= set(m2)
  np.testing.assert_allclose(float(m2["nll_sum"]), float(nll.sum()), rtol=1e-6)
  np.testing.assert_allclose(float(m2["aux_nll_sum"]), float(ref.sum()), rtol=1e-5)


# ----------------------------------------------------------------------------- NT-ASGD


def test_ntasgd_averages_after_the_switch_and_the_trigger_is_awd_lstm_s():
  cfg = base_config().optim
  cfg.name, cfg.learning_rate = "ntasgd", 0.1
  tx = optim.make_optimizer(cfg, 10)
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  grad = lambda p: {"w": 2 * p["w"] + 1.0}
  seen = []
  for step in range(6):
    if step == 2:
      state = optim.start_averaging(state)
      assert optim.averaging_active(state)
      np.testing.assert_array_equal(np.asarray(optim.eval_params(state, params)["w"]),
                                    np.asarray(params["w"]))  # nothing averaged yet
    upd, state = tx.update(grad(params), state, params)
    new = optax.apply_updates(params, upd)
    np.testing.assert_allclose(np.asarray(new["w"]),
                               np.asarray(params["w"] - 0.1 * grad(params)["w"]), rtol=1e-6)
    params = new
    if step >= 2:
      seen.append(np.asarray(params["w"]))
    else:
      assert not optim.averaging_active(state)
      assert optim.eval_params(state, params) is params or np.array_equal(
          np.asarray(optim.eval_params(state, params)["w"]), np.asarray(params["w"]))
  np.testing.assert_allclose(np.asarray(optim.eval_params(state, params)["w"]),
                             np.mean(seen, axis=0), rtol=1e-6)
  assert float(optim.get_learning_rate(state)) == pytest.approx(0.1)
  other = optim.make_optimizer(base_config().optim, 10).init(params)
  assert optim.eval_params(other, params) is params and not optim.averaging_active(other)
  # Trigger: worse than the best of the validations more than `nonmono` ago.
  assert not optim.should_start_averaging([5.0, 4.0], 4.5, 2)  # too few
  assert optim.should_start_averaging([5.0, 4.0, 4.1, 4.2], 4.3, 2)  # > min([5, 4])
  assert not optim.should_start_averaging([5.0, 4.0, 3.9, 3.8], 3.7, 2)


# ----------------------------------------------------------------------------- end to end


# slow: the same remedies train bit for bit in tests/test_golden.py (lm_remedies, NT-ASGD
# switching) and resume a mid-run workdir exactly in tests/test_old_workdirs.py.
@pytest.mark.slow
def test_tiny_run_with_every_remedy_resumes_exactly(tmp_path, monkeypatch):
  """All options on (NT-ASGD forced to switch at the 2nd validation): the run trains, logs
  the extra terms, averages, and a crash + resume ends exactly like the uninterrupted run."""
  corpus = make_corpus(tmp_path / "corpus.txt", num_lines=300)
  overrides = {
      "model.hidden_size": 16, "model.embed_size": 8, "model.dropout": 0.2,
      "model.norm": "layer", "model.residual": True, "model.locked_dropout": True,
      "model.embed_dropout": 0.1, "model.weight_drop": 0.2, "model.attention_window": 3,
      "model.aux_weight": 0.2, "optim.ar": 1.0, "optim.tar": 1.0, "optim.name": "ntasgd",
      "optim.schedule": "constant", "optim.nonmono": 1, "train.batch_size": 10,
      "train.num_epochs": 3, "train.max_steps": 0, "train.checkpoint_every_steps": 7,
      "train.log_every": 4}
  config = tiny_config(corpus, tmp_path / "tfds", **overrides)
  real_trigger = optim.should_start_averaging
  monkeypatch.setattr(optim, "should_start_averaging", lambda h, loss, n: len(h) >= 1)
  ref = tmp_path / "ref"
  loop.train_and_evaluate(config, str(ref))
  events = Workdir(ref).read_metrics()
  tr = [e for e in events if e["split"] == "train"]
  assert all(k in e for e in tr for k in ("aux_loss", "ar", "tar"))
  valid = [e for e in events if e["split"] == "valid"]  # 16 steps per epoch
  assert [v["averaging"] for v in valid] == [False, False, True]
  assert valid[-1]["loss"] < valid[0]["loss"] - 0.25  # 2.80 -> 2.39 nats on an AMD EPYC
  state, meta = helpers.final_state(ref, config)
  assert len(meta["valid_history"]) == 3 and optim.averaging_active(state.opt_state)
  assert isinstance(state.carry[-1], dict)  # the attention memory is checkpointed

  run = tmp_path / "run"  # crash after the switch (step 32), between checkpoints 35 and 42
  helpers.crash_then_resume(monkeypatch, config, run, at_step=38)
  assert helpers.events(run) == helpers.events(ref)
  s_run, _ = helpers.final_state(run, config)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(s_run)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert real_trigger is not optim.should_start_averaging
