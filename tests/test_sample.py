"""The jitted sampler: deterministic per key, greedy at temperature 0, state carried correctly,
top-k / top-p filtering; prompt tokenization, workdir loading and the ``rnnlm-sample``
command."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import config_base, loop, sample
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.data import Vocab
from rnnlm_jax.models import lm

from helpers import REPO, tiny_config

V = 23


def _model():
  c = config_base.base_config()
  c.model.hidden_size = c.model.embed_size = 16
  spec = lm.LMSpec.from_config(c.model, V)
  params = lm.init_params(jax.random.PRNGKey(0), spec)
  params["head"]["w"] = params["head"]["w"] * 20  # peaked distributions: greedy is meaningful
  return spec, params


def test_same_key_same_samples_and_batch_rows_differ():
  spec, params = _model()
  carry, first = lm.init_carry(spec, 4), jnp.zeros((4, 1), jnp.int32)
  _, a = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(1), length=30)
  _, b = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(1), length=30)
  _, c = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(2), length=30)
  assert a.shape == (4, 30) and a.dtype == jnp.int32
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert len({tuple(r) for r in np.asarray(a)}) > 1  # each row draws its own tokens
  assert np.asarray(a).min() >= 0 and np.asarray(a).max() < V


def test_greedy_equals_a_step_by_step_argmax_loop():
  spec, params = _model()
  carry, tok = lm.init_carry(spec, 2), jnp.array([[3], [5]], jnp.int32)
  final, ids = sample.sample_ids(params, spec, carry, tok, jax.random.PRNGKey(0), length=12,
                                 temperature=0.0)
  expect = []
  for _ in range(12):  # the slow reference: one model call per token
    carry, h = lm.hidden_states(params, spec, carry, tok)
    tok = jnp.argmax(lm.logits(params, spec, h[0]), axis=-1).astype(jnp.int32)[:, None]
    expect.append(tok[:, 0])
  np.testing.assert_array_equal(ids, np.stack(expect, axis=1))
  for got, ref in zip(jax.tree.leaves(final), jax.tree.leaves(carry)):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- top-k / top-p


def _flat_logits(seed=0, scale=1.0):
  """One row of logits with distinct values (no ties), moderate spread."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=(1, V)) * scale, jnp.float32)


_next_token = jax.jit(sample.next_token, static_argnames=("temperature", "top_k", "top_p"))
_filter_logits = jax.jit(sample.filter_logits, static_argnames=("temperature", "top_k", "top_p"))


def _draws(logits_1V, n=4000, **kw):
  """``n`` independent draws from one row (a batch of ``n`` copies, one key)."""
  return np.asarray(_next_token(jnp.broadcast_to(logits_1V, (n, V)), jax.random.PRNGKey(7),
                                **kw))


def _kept(logits_1V, **kw):
  """The token ids :func:`sample.filter_logits` keeps (finite logits) in a one-row batch."""
  return set(np.flatnonzero(np.isfinite(np.asarray(_filter_logits(logits_1V, **kw)[0]))).tolist())


def _nucleus(probs, p):
  """The top-p set by hand: most likely first, stop once the kept mass reaches p."""
  order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
  kept, mass = set(), 0.0
  for i in order:
    kept.add(i)
    mass += probs[i]
    if mass >= p:
      break
  return kept


def _softmax64(x):
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max())
  return e / e.sum()


def test_top_k_never_draws_outside_the_k_largest():
  logits = _flat_logits()
  top5 = set(np.argsort(-np.asarray(logits[0]))[:5].tolist())
  drawn = _draws(logits, temperature=1.5, top_k=5)
  assert set(drawn.tolist()) == top5  # only those, and (4000 draws) each of them
  assert _kept(logits, temperature=1.5, top_k=5) == top5


def test_top_k_keeps_exactly_k_on_ties_lower_ids_first():
  logits = jnp.zeros((1, V)).at[0, 4].set(2.0)  # one clear winner, then 22 tied tokens
  assert _kept(logits, temperature=1.0, top_k=3) == {0, 1, 4}
  assert set(_draws(logits, temperature=1.0, top_k=3).tolist()) <= {0, 1, 4}


def test_top_p_never_draws_outside_the_nucleus():
  logits = _flat_logits(seed=1, scale=1.5)
  for temperature, p in ((0.7, 0.8), (2.0, 0.3)):
    probs = _softmax64(np.asarray(logits[0]) / temperature)
    allowed = _nucleus(probs, p)
    cum = np.cumsum(np.sort(probs)[::-1])
    assert np.min(np.abs(cum - p)) > 1e-4  # no float32-vs-float64 borderline case
    assert 1 < len(allowed) < V
    drawn = set(_draws(logits, temperature=temperature, top_p=p).tolist())
    assert drawn <= allowed and len(drawn) > 1
    assert _kept(logits, temperature=temperature, top_p=p) == allowed


def test_top_k_then_top_p_uses_the_renormalised_top_k_probabilities():
  logits = _flat_logits(seed=2, scale=1.0)
  k, p = 8, 0.6
  top = np.argsort(-np.asarray(logits[0]))[:k]
  probs = _softmax64(np.asarray(logits[0])[top])
  allowed = {int(top[i]) for i in _nucleus(probs, p)}
  assert np.min(np.abs(np.cumsum(np.sort(probs)[::-1]) - p)) > 1e-4
  assert _kept(logits, temperature=1.0, top_k=k, top_p=p) == allowed
  assert set(_draws(logits, temperature=1.0, top_k=k, top_p=p).tolist()) <= allowed


def test_top_k_1_and_tiny_top_p_equal_greedy():
  spec, params = _model()
  carry, first = lm.init_carry(spec, 3), jnp.array([[1], [2], [3]], jnp.int32)
  _, greedy = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(0), length=15,
                                temperature=0.0)
  for key in (1, 2):
    _, k1 = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(key), length=15,
                              temperature=1.3, top_k=1)
    np.testing.assert_array_equal(k1, greedy)
  _, p0 = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(3), length=15,
                            temperature=1.0, top_p=1e-6)
  np.testing.assert_array_equal(p0, greedy)


def test_scanned_sampler_applies_top_k_at_every_step():
  spec, params = _model()
  params["head"]["w"] = params["head"]["w"] / 20  # flat distributions: many candidates
  carry, first = lm.init_carry(spec, 8), jnp.full((8, 1), 2, jnp.int32)
  _, ids = sample.sample_ids(params, spec, carry, first, jax.random.PRNGKey(4), length=20,
                             temperature=1.0, top_k=3)
  # Replay the drawn tokens through the model: each was among its step's 3 largest logits.
  inputs = jnp.concatenate([first, ids[:, :-1]], axis=1)
  _, h_TBH = lm.hidden_states(params, spec, carry, inputs)
  logits_BTV = np.asarray(jnp.swapaxes(lm.logits(params, spec, h_TBH), 0, 1))
  rank = (logits_BTV > np.take_along_axis(logits_BTV, np.asarray(ids)[..., None], -1)).sum(-1)
  assert rank.max() < 3 and rank.max() > 0


def test_generate_primes_with_the_prompt_and_rows_are_independent():
  spec, params = _model()
  prompt = [3, 7, 1, 9]
  greedy = sample.generate(params, spec, prompt, jax.random.PRNGKey(0), length=6,
                           num_samples=2, temperature=0.0)
  # Reference: the whole prompt through the model, then greedy steps on the full logits.
  carry, h = lm.hidden_states(params, spec, lm.init_carry(spec, 1),
                              jnp.asarray([prompt], jnp.int32))
  _, ref = sample.sample_ids(params, spec, carry, jnp.asarray([[prompt[-1]]]),
                             jax.random.PRNGKey(0), length=6, temperature=0.0)
  first = int(jnp.argmax(lm.logits(params, spec, h[-1])[0]))
  np.testing.assert_array_equal(greedy, np.repeat(np.asarray(ref), 2, axis=0))
  assert int(greedy[0, 0]) == first
  a = sample.generate(params, spec, prompt, jax.random.PRNGKey(5), length=6, num_samples=2)
  b = sample.generate(params, spec, prompt, jax.random.PRNGKey(5), length=6, num_samples=2)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a[0], a[1])  # each row draws its own tokens


def test_bad_filter_values_are_refused():
  for kw, msg in (({"temperature": -0.1}, "temperature"), ({"top_k": -1}, "top_k"),
                  ({"top_k": V + 1}, "top_k"), ({"top_p": 0.0}, "top_p"),
                  ({"top_p": 1.01}, "top_p")):
    with pytest.raises(ValueError, match=msg):
      sample.check_filters(V, **kw)
  sample.check_filters(V, 0.0, V, 1.0)  # the limits themselves are fine


# ----------------------------------------------------------------------------- prompts


def test_word_prompt_unknown_words_newlines_and_empty_prompt():
  vocab = Vocab(["<eos>", "<unk>", "the", "cat", "sat"])
  ids, unknown = sample.encode_prompt("the dog sat\nthe zebra", vocab, "word")
  assert ids == [2, 1, 4, 0, 2, 1] and unknown == ["dog", "zebra"]
  ids, _ = sample.encode_prompt("the cat\n", vocab, "word")
  assert ids == [2, 3, 0]  # a final newline is an <eos>
  assert sample.encode_prompt("", vocab, "word") == ([0], [])
  assert sample.encode_prompt("  ", vocab, "word") == ([0], [])
  text = sample.detokenize(vocab.decode([2, 3, 0, 4, 0, 0, 2]), "word")
  assert text == "the cat\nsat\n\nthe"


def test_char_prompts():
  chars = Vocab(list("ab \n"))
  assert sample.encode_prompt("ba b", chars, "char") == ([1, 0, 2, 1], [])
  assert sample.encode_prompt("", chars, "char") == ([3], [])  # no <eos>: a newline
  assert sample.encode_prompt("axb", chars, "char") == ([0, 1], ["x"])  # no <unk>: dropped
  with pytest.raises(ValueError, match="no <eos>"):
    sample.encode_prompt("", Vocab(list("ab")), "char")
  with pytest.raises(ValueError, match="none of the prompt"):
    sample.encode_prompt("xyz", chars, "char")
  assert sample.detokenize(list("ab \nb"), "char") == "ab \nb"
  ptb = Vocab(["<eos>", "_", "a", "b"])
  ids, unknown = sample.encode_prompt("ab b\nba", ptb, "ptb_char")
  assert ptb.decode(ids) == ["a", "b", "_", "b", "<eos>", "b", "a"] and not unknown
  assert sample.detokenize(ptb.decode(ids), "ptb_char") == "ab b\nba"


# ----------------------------------------------------------------------------- rnnlm-sample


def _sample_cli(*args, runs=1):
  """``runs`` concurrent ``python -m rnnlm_jax.sample_main ARGS``; their CompletedProcesses."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", "rnnlm_jax.sample_main", *args]
  procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(runs)]
  out = []
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=300)
    out.append(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr))
  return out


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_cli_samples_from_a_trained_workdir(tmp_path, corpus):
  wd = tmp_path / "run"
  loop.train_and_evaluate(tiny_config(corpus, tmp_path / "tfds", **{"train.max_steps": 5,
                                                                      "train.sample_length": 7}),
                           str(wd))
  # train.sample_length: a sample after the (end-of-run) validation, in samples.txt
  logged = (wd / "samples.txt").read_text(encoding="utf-8")
  assert logged.startswith("==> step 5 (epoch ")
  body = logged.split("<==\n", 1)[1].split()
  assert 1 <= len(body) <= 7 and set(body) <= set(Vocab.load(wd / "vocab.txt").tokens)
  args = ["--workdir", str(wd), "--prompt", "the n1 zzz", "--length", "12", "--num_samples", "2",
          "--top_k", "10", "--top_p", "0.95", "--seed", "3"]
  first, again = _sample_cli(*args, runs=2)  # two separate processes, same seed
  assert first.returncode == 0, first.stderr
  assert first.stdout == again.stdout  # same seed, same text
  assert "warning:" in first.stderr and "'zzz'" in first.stderr and "<unk>" in first.stderr
  parts = first.stdout.split("==> sample ")
  assert parts[0] == "" and [p.split(" <==")[0] for p in parts[1:]] == ["1/2", "2/2"]
  vocab = set(Vocab.load(wd / "vocab.txt").tokens)
  for part in parts[1:]:
    text = part.split("<==\n", 1)[1]
    assert text.startswith("the n1 <unk>")
    words = text.split()
    assert len([w for w in words if w != "<eos>"]) <= 3 + 12 and set(words) <= vocab
  # In-process: the same text as the command; another seed differs; bad input refused.
  kw = dict(top_k=10, top_p=0.95, num_samples=2)
  same = sample.sample_texts(str(wd), "the n1 zzz", 12, seed=3, **kw)
  assert [p.split("<==\n", 1)[1].rstrip("\n") for p in parts[1:]] == [
      t.rstrip("\n") for t in same]
  assert sample.sample_texts(str(wd), "the n1 zzz", 12, seed=4, **kw) != same
  for bad, msg in (({"temperature": -1.0}, "temperature"), ({"top_k": 10_000}, "vocabulary size"),
                   ({"top_p": 0.0}, "top_p"), ({"num_samples": 0}, "num_samples")):
    with pytest.raises(ValueError, match=msg):
      sample.sample_texts(str(wd), "the", 5, **bad)
  bare = tmp_path / "bare"
  bare.mkdir()
  for name in ("config.json", "vocab.txt"):
    (bare / name).write_bytes((wd / name).read_bytes())
  with pytest.raises(ValueError, match="no best checkpoint"):
    sample.sample_texts(str(bare), "the", 5)
  missing, = _sample_cli("--workdir", str(tmp_path / "nope"), "--prompt", "the")
  assert missing.returncode == 2 and missing.stderr.startswith("error: workdir")
  assert len(missing.stderr.strip().splitlines()) == 1


def _non_lm_workdir(path, config_file: str):
  """A workdir holding only the config.json a run of ``configs/<config_file>`` writes."""
  config = runpy.run_path(str(REPO / "configs" / config_file))["get_config"]()
  path.mkdir()
  (path / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
  return path


def test_music_classifier_and_synthetic_workdirs_are_refused(tmp_path):
  """Sampling needs a language model: the others get one ``error:`` line, exit 2, no
  traceback (the command) and a one-line ValueError (the library)."""
  music = _non_lm_workdir(tmp_path / "music", "music.py")
  classify = _non_lm_workdir(tmp_path / "classify", "sst2_bilstm.py")
  synthetic = _non_lm_workdir(tmp_path / "synthetic", "synthetic.py")
  for wd, what in ((music, "music"), (classify, "classify"), (synthetic, "synthetic(-task)?")):
    with pytest.raises(ValueError, match=rf"is a {what} run\b.*not a language model") as e:
      sample.read_workdir(str(wd))
    assert "\n" not in str(e.value)
  procs = [subprocess.Popen([sys.executable, "-m", "rnnlm_jax.sample_main", "--workdir", str(wd),
                             "--prompt", "the"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
           for wd in (music, classify)]
  for proc, wd, what in zip(procs, (music, classify), ("music", "classify")):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert out == "" and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip("\n").endswith(errors[0])
    assert errors[0].startswith(f"error: {wd} is a {what} run")
    assert errors[0].endswith("not a language model; sampling needs a language-model workdir")
