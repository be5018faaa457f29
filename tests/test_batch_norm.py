"""Recurrent batch normalisation (issue 22 item 3; Cooijmans et al. 2016), ``model.norm=batch``.

Its defining properties: in training mode every time step is normalised with that step's own
batch statistics (returned, and equal to statistics computed here from the layer's outputs);
evaluation uses population statistics, per step up to T_max and the last one beyond, so each
example is scored on its own and a batch of one evaluates; the BN scales start at 0.1. The LM
estimates the population from training windows, trains, evaluates, samples and resumes
exactly; cells without a batch-normalised version are refused in one line.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, loop, rnn, sample
from rnnlm_jax.config_base import base_config
from rnnlm_jax.models import lm
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.workdir import Workdir

import helpers
from helpers import make_corpus, tiny_config

BN_CELLS = ("lstm", "gru")


def _layer_inputs(name, batch=16, steps=5, inputs=6, hidden=8):
  cell = cells.get_cell(name, "batch")
  params = cell.init(jax.random.PRNGKey(0), inputs, hidden)
  params = jax.tree.map(lambda a: a + 0.2 * jax.random.normal(jax.random.PRNGKey(3), a.shape),
                        params)  # moved off the init, so every parameter matters
  xs = 2.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(1), (steps, batch, inputs))
  carry = jax.tree.map(lambda a: jax.random.normal(jax.random.PRNGKey(2), a.shape),
                       cell.init_carry(batch, hidden))
  return cell, params, carry, xs


# lstm slow (19 s): the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "lstm" else n
                                  for n in BN_CELLS])
def test_training_mode_normalises_each_step_with_its_own_batch_statistics(name, monkeypatch):
  monkeypatch.setattr(cells, "BN_EPS", 1e-12)  # so the scale invariance below is exact
  cell, params, carry, xs = _layer_inputs(name)
  assert cell is cells.get_cell(name, "batch") and cell.layer is not None
  _, hs, stats = cell.layer(params, carry, xs)
  # The statistics it used are each step's batch moments of x W_ih and of h_{t-1} W_hh.
  xw = np.einsum("tbi,ig->tbg", np.asarray(xs, np.float64), np.asarray(params["w_ih"]))
  np.testing.assert_allclose(stats["ih"]["mean"], xw.mean(axis=1), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(stats["ih"]["var"], xw.var(axis=1), rtol=1e-3)
  h0 = np.asarray(cell.carry_output(carry))
  h_prev = np.concatenate([h0[None], np.asarray(hs)[:-1]], axis=0)
  hw = np.einsum("tbh,hg->tbg", h_prev.astype(np.float64), np.asarray(params["w_hh"]))
  np.testing.assert_allclose(stats["hh"]["mean"], hw.mean(axis=1), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stats["hh"]["var"], hw.var(axis=1), rtol=1e-3, atol=1e-7)
  # The statistics differ from step to step (they are per step, not pooled over time).
  assert float(jnp.abs(stats["hh"]["mean"][1] - stats["hh"]["mean"][2]).max()) > 1e-3
  # Normalisation makes the layer blind to the scale of its weight matrices (training mode).
  scaled = dict(params, w_ih=7.0 * params["w_ih"], w_hh=0.3 * params["w_hh"])
  np.testing.assert_allclose(cell.layer(scaled, carry, xs)[1], hs, atol=2e-5)
  # ... and an example's output depends on the rest of the batch.
  alone = cell.layer(params, jax.tree.map(lambda a: a[:4], carry), xs[:, :4])[1]
  assert float(jnp.abs(alone - hs[:, :4]).max()) > 1e-3
  # The single step (training mode) is the layer's step.
  step_carry, h_1 = cell.apply(params, carry, xs[0])
  np.testing.assert_allclose(h_1, hs[0], atol=1e-6)


# lstm slow (10 s): the default run took 7:54 and 8:41 in two clean clones on an AVX2 host
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "lstm" else n
                                  for n in BN_CELLS])
def test_evaluation_uses_population_statistics_and_a_batch_of_one_evaluates(name):
  cell, params, carry, xs = _layer_inputs(name)
  _, hs_train, stats = cell.layer(params, carry, xs)
  # Population = this batch's own statistics: evaluation reproduces the training-mode output.
  evaluating = dict(params, population=stats)
  _, hs_eval, used = cell.layer(evaluating, carry, xs)
  np.testing.assert_allclose(hs_eval, hs_train, atol=1e-6)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), used, stats))
  # Each example on its own: a batch of one gives the same output as inside the full batch.
  for b in (0, 5):
    one = jax.tree.map(lambda a: a[b:b + 1], carry)
    _, hs_one, _ = cell.layer(evaluating, one, xs[:, b:b + 1])
    assert hs_one.shape == (xs.shape[0], 1, hs_train.shape[-1])
    np.testing.assert_allclose(hs_one[:, 0], hs_eval[:, b], atol=1e-6)


def test_steps_beyond_t_max_read_the_last_steps_statistics():
  cell, params, carry, xs = _layer_inputs("gru", steps=7)  # the LSTM runs the same code
  _, _, stats = cell.layer(params, carry, xs[:3])  # T_max = 3
  extended = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], 4, axis=0)]), stats)
  got = cell.layer(dict(params, population=stats), carry, xs)[1]
  want = cell.layer(dict(params, population=extended), carry, xs)[1]
  np.testing.assert_array_equal(got, want)
  rows = cells.population_steps({"m": jnp.arange(3.0)[:, None]}, 6)["m"][:, 0]
  np.testing.assert_array_equal(rows, [0, 1, 2, 2, 2, 2])


def test_scales_start_at_one_tenth_and_the_cell_shift_at_zero():
  p = cells.get_cell("lstm", "batch").init(jax.random.PRNGKey(0), 4, 5)
  for k in ("g_ih", "g_hh", "g_c"):
    np.testing.assert_array_equal(p[k], np.full(p[k].shape, cells.BN_GAMMA_INIT, np.float32))
  assert cells.BN_GAMMA_INIT == 0.1 and not np.any(np.asarray(p["b_c"]))
  assert set(cells.get_cell("gru", "batch").init(jax.random.PRNGKey(0), 4, 5)) == {
      "w_ih", "w_hh", "b_ih", "b_hh", "g_ih", "g_hh"}


def test_population_averages_means_and_corrects_the_variance():
  w1 = [{"ih": {"mean": jnp.array([[1.0]]), "var": jnp.array([[2.0]])}}]
  w2 = [{"ih": {"mean": jnp.array([[3.0]]), "var": jnp.array([[4.0]])}}]
  pop = lm.population_statistics([w1, w2], batch_size=4)
  assert float(pop[0]["ih"]["mean"][0, 0]) == 2.0
  assert float(pop[0]["ih"]["var"][0, 0]) == pytest.approx(3.0 * 4 / 3)


def test_refusals_are_one_line():
  c = base_config().model
  c.norm = "batch"
  for cell in ("rnn_tanh", "rnn_relu", "min_gru"):
    c.cell = cell
    with pytest.raises(ValueError, match="lstm and gru only") as e:
      lm.LMSpec.from_config(c, 10)
    assert "\n" not in str(e.value)
  c.cell, c.remat = "lstm", "step"
  with pytest.raises(ValueError, match="model.remat='none'"):
    lm.LMSpec.from_config(c, 10)
  c.remat, c.bn_population_windows = "none", 0
  with pytest.raises(ValueError, match="bn_population_windows"):
    lm.LMSpec.from_config(c, 10)
  cell = cells.get_cell("gru", "batch")
  p = cell.init(jax.random.PRNGKey(0), 3, 4)
  with pytest.raises(ValueError, match="remat"):
    rnn.scan_layer_time_major(cell, p, cell.init_carry(2, 4), jnp.ones((3, 2, 3)), remat="step")


def _tiny_bn_config(tmp_path):
  corpus = make_corpus(tmp_path / "corpus.txt", num_lines=200)
  return tiny_config(corpus, tmp_path / "tfds", **{
      "model.norm": "batch", "model.hidden_size": 16, "model.embed_size": 8,
      "model.bn_population_windows": 5, "train.batch_size": 8, "train.num_epochs": 2,
      "train.max_steps": 0, "train.checkpoint_every_steps": 5, "train.log_every": 4,
      "train.eval_batch_size": 4, "optim.learning_rate": 0.5})


def test_eval_params_estimates_the_population_once_per_parameter_set(tmp_path, monkeypatch):
  # A validation and the training sample after it read the same parameters: one estimate.
  run = lm_task.make_run(_tiny_bn_config(tmp_path))
  state = run.init_state()
  calls = []
  real = lm_task.population_params
  monkeypatch.setattr(lm_task, "population_params",
                      lambda params, *a, **k: calls.append(1) or real(params, *a, **k))
  first = run.eval_params(state.params)
  assert run.eval_params(state.params) is first and len(calls) == 1
  moved = jax.tree.map(lambda w: w * 1.0, state.params)  # new arrays: estimated again
  assert run.eval_params(moved) is not first and len(calls) == 2


@pytest.mark.slow  # 12 s; .ci/run runs it after the default suite
def test_lm_trains_evaluates_and_samples(tmp_path):
  """A tiny batch-normalised LSTM LM: it learns, its evaluation reads population statistics
  from training windows (so a batch of one scores like any batch), sampling works from the
  workdir."""
  config = _tiny_bn_config(tmp_path)
  ref = tmp_path / "ref"
  loop.train_and_evaluate(config, str(ref))
  valid = [e for e in Workdir(ref).read_metrics() if e["split"] == "valid"]
  run = lm_task.make_run(config)
  assert valid[-1]["loss"] < run.uniform_loss - 0.4, valid  # 2.56 nats against log V = 3.09
  state, _ = helpers.final_state(ref, config)
  assert "population" not in state.params["rnn"][0]  # statistics are not trained parameters

  # Evaluation reads the population statistics: an example scores the same alone (a batch of
  # one) as inside a batch, which training-mode statistics would not give.
  run.init_state()
  params = run.eval_params(state.params)
  pop = params["rnn"][0]["population"]
  assert pop["hh"]["mean"].shape == (config.data.bptt, 4 * 16)
  spec, steps = run.spec, run.bptt
  tokens = jnp.asarray(run.corpus.valid[:4 * (steps + 1)].reshape(4, steps + 1))
  x, y = tokens[:, :-1], tokens[:, 1:]
  _, nll_batch = lm.token_nll(params, spec, lm.init_carry(spec, 4), x, y)
  _, nll_one = lm.token_nll(params, spec, lm.init_carry(spec, 1), x[2:3], y[2:3])
  np.testing.assert_allclose(nll_one[:, 0], nll_batch[:, 2], rtol=1e-5)
  _, nll_train_mode = lm.token_nll(state.params, spec, lm.init_carry(spec, 4), x, y)
  assert float(jnp.abs(nll_train_mode - nll_batch).max()) > 1e-4
  # rnnlm-eval's path estimates the population from the training split too: it re-scores the
  # best checkpoint exactly as the run's final test event did.
  final = [e for e in Workdir(ref).read_metrics() if e["split"] == "test"][-1]
  assert lm_task.evaluate_workdir(str(ref), "test")["loss"] == pytest.approx(final["loss"],
                                                                           rel=1e-6)
  texts = sample.sample_texts(str(ref), "the", 6, checkpoint="latest")
  assert texts and all(isinstance(t, str) for t in texts)


@pytest.mark.slow  # .ci/run runs it after the default suite
def test_lm_resumes_exactly(tmp_path, monkeypatch):
  """A crash + resume ends exactly like the uninterrupted run (the population statistics are
  a function of the parameters and the data, nothing to checkpoint)."""
  config = _tiny_bn_config(tmp_path)
  ref = tmp_path / "ref"
  loop.train_and_evaluate(config, str(ref))
  resumed = tmp_path / "resumed"  # crash between checkpoints 10 and 15
  helpers.crash_then_resume(monkeypatch, config, resumed, at_step=12)
  assert helpers.events(resumed) == helpers.events(ref)


_TWO_DEVICES = r"""
import json, pathlib, runpy, sys
from rnnlm_jax import loop
from rnnlm_jax.workdir import Workdir
helpers = runpy.run_path(sys.argv[2])  # tests/helpers.py
tmp = pathlib.Path(sys.argv[1])
corpus = helpers["make_corpus"](tmp / "corpus.txt", num_lines=200)
losses = {}
for n in (1, 2):
  config = helpers["tiny_config"](corpus, tmp / "tfds", **{
      "model.norm": "batch", "model.hidden_size": 16, "model.embed_size": 8,
      "model.bn_population_windows": 5, "train.batch_size": 8, "train.num_epochs": 1,
      "train.max_steps": 0, "train.log_every": 4, "train.eval_batch_size": 4,
      "optim.learning_rate": 0.5, "train.num_devices": n})
  loop.train_and_evaluate(config, str(tmp / f"devices{n}"))
  losses[n] = [e["loss"] for e in Workdir(tmp / f"devices{n}").read_metrics()]
print(json.dumps(losses))
"""


@pytest.mark.slow  # a subprocess with 2 CPU devices; .ci/run runs it after the default suite
def test_batch_moments_span_the_devices(tmp_path):
  """Data parallel over 2 devices trains like 1 device: each step's batch statistics are
  those of the whole batch, not of each device's columns."""
  import json
  import os
  import subprocess
  import sys
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  out = subprocess.run([sys.executable, "-c", _TWO_DEVICES, str(tmp_path), helpers.__file__],
                       env=env, capture_output=True, text=True, timeout=600, check=True)
  losses = json.loads(out.stdout.strip().splitlines()[-1])
  assert len(losses["1"]) == len(losses["2"]) >= 5
  np.testing.assert_allclose(losses["2"], losses["1"], rtol=1e-5)
