"""The text classifier: masking (padded batch == each text alone, both directions, every
pooling), loss sums and metrics, frozen embeddings, the task on tiny data through the one loop,
and the configs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, rnn
from rnnlm_jax.models import classifier as C
from rnnlm_jax.sweeps.spec import apply_overrides
from rnnlm_jax.tasks import classify

REPO = pathlib.Path(__file__).resolve().parent.parent
IN, H, T = 3, 5, 7
LENGTHS = [7, 3, 1, 5]


def _garbage_padded(key, lengths, steps=T, width=IN):
  xs = jax.random.normal(key, (steps, len(lengths), width))
  pad = jnp.arange(steps)[:, None] >= jnp.asarray(lengths)[None, :]
  return jnp.where(pad[..., None], 1e3, xs)   # padding must not matter


# lstm slow (14 s): the default run took 9:20 in a clean clone on an AVX2 host (2026-12-07); .ci/run runs it
@pytest.mark.parametrize("name", [pytest.param("lstm", marks=pytest.mark.slow), "gru", "rnn_tanh"])
def test_fused_bidirectional_layer_equals_masked_reference(name):
  cell = cells.get_cell(name)
  k = jax.random.split(jax.random.PRNGKey(0), 3)
  lp = {"fw": cell.init(k[0], IN, H), "bw": cell.init(k[1], IN, H)}
  xs, lengths = _garbage_padded(k[2], LENGTHS), jnp.asarray(LENGTHS)
  hs, last = C.rnn_layer(cell, lp, xs, lengths)
  (fw, bw), ref = rnn.bidirectional_time_major(cell, lp["fw"], lp["bw"], xs, lengths)
  np.testing.assert_allclose(hs, ref, rtol=1e-5, atol=1e-6)
  out = cell.carry_output
  np.testing.assert_allclose(last, jnp.concatenate([out(fw), out(bw)], -1), rtol=1e-5, atol=1e-6)

  # the same gradients (w.r.t. the parameters and the real inputs) as the masked reference
  mask = (jnp.arange(T)[:, None] < lengths[None, :])[..., None]
  w = jax.random.normal(jax.random.PRNGKey(9), hs.shape)
  def f_fused(p, x):
    h, l = C.rnn_layer(cell, p, x, lengths)
    return jnp.sum(h * w) + jnp.sum(l ** 2)
  def f_ref(p, x):
    (a, b), h = rnn.bidirectional_time_major(cell, p["fw"], p["bw"], x, lengths)
    return jnp.sum(h * w) + jnp.sum(jnp.concatenate([out(a), out(b)], -1) ** 2)
  g1 = jax.grad(f_fused, argnums=(0, 1))(lp, xs)
  g2 = jax.grad(f_ref, argnums=(0, 1))(lp, xs)
  for a, b in zip(jax.tree.leaves(g1[0]), jax.tree.leaves(g2[0])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
  np.testing.assert_allclose(g1[1] * mask, g2[1] * mask, rtol=2e-4, atol=1e-5)
  assert not np.any(np.asarray(g1[1] * ~mask))   # nothing flows into the padding


def test_unidirectional_layer_equals_masked_scan():
  cell = cells.lstm
  k = jax.random.split(jax.random.PRNGKey(1), 2)
  p = cell.init(k[0], IN, H)
  xs, lengths = _garbage_padded(k[1], LENGTHS), jnp.asarray(LENGTHS)
  hs, last = C.rnn_layer(cell, {"fw": p}, xs, lengths)
  final, ref = rnn.masked_scan_layer_time_major(cell, p, cell.init_carry(len(LENGTHS), H), xs,
                                                lengths)
  np.testing.assert_allclose(hs, ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(last, final[0], rtol=1e-5, atol=1e-6)


def _spec(**kw):
  base = dict(vocab_size=30, num_classes=2, embed_size=6, hidden_size=5, num_layers=2)
  base.update(kw)
  return C.ClassifierSpec(**base)


# mean and max slow (7 s, 6 s; the masking they share is last's and attention's): the default run took 7:54 in a clean clone on an AVX2 host (2026-12-07)
@pytest.mark.parametrize("pooling,bidirectional",
                         [pytest.param(p, True, marks=pytest.mark.slow) if p in ("mean", "max")
                          else (p, True) for p in C.POOLINGS] +
                         [("last", False), ("attention", False)])
def test_padded_batch_logits_equal_each_text_alone(pooling, bidirectional):
  spec = _spec(pooling=pooling, bidirectional=bidirectional, head_hidden=4 if pooling == "max"
               else 0, cell="gru" if pooling == "mean" else "lstm")
  params = C.init_params(jax.random.PRNGKey(2), spec)
  rng = np.random.default_rng(0)
  tokens = rng.integers(2, 30, (len(LENGTHS), T)).astype(np.int32)
  for b, n in enumerate(LENGTHS):
    tokens[b, n:] = rng.integers(2, 30, T - n)   # garbage, not <pad>, after each text
  lengths = jnp.asarray(LENGTHS)
  f = jax.jit(C.logits, static_argnums=1)
  z = f(params, spec, jnp.asarray(tokens), lengths)
  assert z.shape == (len(LENGTHS), 2)
  for b, n in enumerate(LENGTHS):
    alone = f(params, spec, jnp.asarray(tokens[b:b + 1, :n]), jnp.asarray([n]))
    np.testing.assert_allclose(z[b], alone[0], rtol=1e-5, atol=1e-6)


# slow: the default run took 7:54 and 8:41 in two clean clones on an AVX2 host (2026-12-07)
@pytest.mark.slow
def test_dropout_only_in_training_and_follows_rng():
  spec = _spec(input_dropout=0.5, word_dropout=0.3, dropout=0.3, pooling="mean")
  params = C.init_params(jax.random.PRNGKey(0), spec)
  tokens, lengths = jnp.ones((2, 6), jnp.int32) * 5, jnp.asarray([6, 4])
  ev = C.logits(params, spec, tokens, lengths)
  np.testing.assert_array_equal(ev, C.logits(params, spec, tokens, lengths, None))
  a = C.logits(params, spec, tokens, lengths, jax.random.PRNGKey(1))
  b = C.logits(params, spec, tokens, lengths, jax.random.PRNGKey(1))
  c = C.logits(params, spec, tokens, lengths, jax.random.PRNGKey(2))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, ev) and not np.allclose(a, c)


def _batch(rows, length=6, pad_rows=0):
  n = len(rows) + pad_rows
  tokens = np.zeros((n, length), np.int32)
  lens, labels, w = np.ones(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.float32)
  for i, (toks, y) in enumerate(rows):
    tokens[i, :len(toks)] = toks
    lens[i], labels[i], w[i] = len(toks), y, 1.0
  return {"tokens": tokens, "lengths": lens, "labels": labels, "weights": w}


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_weight_zero_rows_add_nothing():
  spec = _spec(pooling="attention")
  params = C.init_params(jax.random.PRNGKey(0), spec)
  rows = [([3, 4, 5], 1), ([7], 0), ([9, 9, 2, 8, 11], 1)]
  o1, s1 = C.batch_stats(params, spec, _batch(rows), None)
  padded = _batch(rows, pad_rows=5)
  padded["tokens"][3:] = 17          # whatever the padding rows hold
  padded["labels"][3:] = 1
  o2, s2 = C.batch_stats(params, spec, padded, None)
  np.testing.assert_allclose(o1, o2, rtol=1e-6)
  for k in s1:
    np.testing.assert_allclose(s1[k], s2[k], rtol=1e-6, err_msg=k)
  assert float(s1["examples"]) == 3 and float(s1["true1"]) == 2
  np.testing.assert_allclose(s1["nll"] / 3, o1, rtol=1e-6)


def test_summarize_by_hand():
  # 10 examples: class 1 (minority) 4 true; predicted 1: 3, of which 2 right.
  sums = {"nll": 5.0, "examples": 10.0, "correct": 7.0, "tp0": 5.0, "pred0": 7.0, "true0": 6.0,
          "tp1": 2.0, "pred1": 3.0, "true1": 4.0}
  m = classify.summarize(sums, 2, positive=1)
  assert m["loss"] == 0.5 and m["accuracy"] == 0.7
  assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 0.5
  assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
  f1_0 = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
  assert m["macro_f1"] == pytest.approx((f1_0 + m["f1"]) / 2)
  assert classify.summarize({"examples": 0.0}, 2, 1)["f1"] == 0.0   # no division by zero


def test_frozen_embeddings_get_no_gradient():
  spec = _spec(embeddings_trainable=False)
  params = C.init_params(jax.random.PRNGKey(0), spec)
  batch = _batch([([3, 4, 5], 1), ([7, 2], 0)])
  g = jax.grad(lambda p: C.batch_stats(p, spec, batch, jax.random.PRNGKey(0))[0])(params)
  assert not np.any(np.asarray(g["embed"]))
  assert np.any(np.asarray(g["head"]["w"]))
  mask = C.trainable(params, spec)
  assert mask["embed"] is False and all(jax.tree.leaves(mask["rnn"]))


def test_spec_errors():
  c = _config()
  c.model.pooling = "sum"
  with pytest.raises(ValueError, match="unknown model.pooling 'sum'; choose one of last, mean"):
    C.ClassifierSpec.from_config(c.model, 10, 2)
  c = _config()
  c.model.input_dropout = 1.0
  with pytest.raises(ValueError, match=r"model.input_dropout must be in \[0, 1\)"):
    C.ClassifierSpec.from_config(c.model, 10, 2)


def test_backoff_vectors_read_like_table_rows():
  spec = _spec(pooling="mean", word_dropout=0.5)
  params = C.init_params(jax.random.PRNGKey(0), spec)
  u = np.float32([[1, -2, 3, 0.5, 0, 1], [0, 0, 1, 1, 2, 2]])   # words 30 and 31
  tokens = np.array([[3, 30, 5, 31], [31, 7, 0, 0]], np.int32)
  lengths = jnp.asarray([4, 2])
  bo = classify.backoff_vectors(tokens, spec.vocab_size, u)
  assert bo.shape == (2, 4, 6) and not bo[0, 0].any()
  np.testing.assert_array_equal(bo[1, 0], u[1])
  z = C.logits(params, spec, jnp.asarray(tokens), lengths, None, jnp.asarray(bo))
  big = dataclasses.replace(spec, vocab_size=32)
  p2 = dict(params, embed=jnp.concatenate([params["embed"], jnp.asarray(u)]))
  np.testing.assert_allclose(z, C.logits(p2, big, jnp.asarray(tokens), lengths), rtol=1e-6)
  # the backoff vectors are constants: no gradient reaches the table through them
  g = jax.grad(lambda p: C.logits(p, spec, jnp.asarray(tokens), lengths, None,
                                  jnp.asarray(bo)).sum())(params)
  assert not np.any(np.asarray(g["embed"])[spec.unk_id])


# ------------------------------------------------------------------------------------------
# The task, on tiny data, through the one loop


def _load_config(name):
  path = REPO / "configs" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"cfg_{name}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def _config():
  return _load_config("sms_spam")


SMS = "".join(
    f"spam\tWIN a FREE prize {i}! call 0800{i} now\n" if i % 4 == 0 else
    f"ham\tok see you at {i} later , love\n" for i in range(80))


def _tiny(iso, **over):
  d = iso / "data" / "sms_spam"
  d.mkdir(parents=True, exist_ok=True)
  (d / "SMSSpamCollection").write_text(SMS)
  c = _config()
  c.data.dir = str(iso / "data")
  c.model.hidden_size, c.model.embed_size, c.model.attention_size = 8, 6, 4
  c.train.batch_size, c.train.eval_batch_size, c.train.num_epochs = 8, 16, 2
  c.train.log_every, c.train.progress_bar = 5, False
  return apply_overrides(c, over)


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_task_protocol_and_training(iso):
  from rnnlm_jax import loop, tasks
  from rnnlm_jax.workdir import Workdir
  c = _tiny(iso, **{"model.cell": "gru"})
  wd = iso / "run"
  task = classify.make_task(c, str(wd))
  assert (task.select_metric, task.select_mode, task.positive) == ("accuracy", "max", 1)
  assert (wd / "vocab.txt").read_text().splitlines()[:2] == ['"<pad>"', '"<unk>"']
  bs = list(task.batches("train", 8, np.random.default_rng(0)))
  assert sum(int(b["weights"].sum()) for b in bs) == 64
  assert {b["tokens"].shape for b in bs} <= {(8, 8), (8, 16)}
  params = task.init_params(jax.random.PRNGKey(0))
  obj, sums = jax.jit(task.loss)(params, bs[0], jax.random.PRNGKey(1))
  assert np.isfinite(obj) and float(sums["examples"]) == 8
  result = loop.train_and_evaluate(c, str(wd))
  events = Workdir(wd).read_metrics()
  test = [e for e in events if e["split"] == "test"][-1]
  assert test["checkpoint"] == "best_valid" and test == {**test, **result}
  for key in ("loss", "accuracy", "precision", "recall", "f1", "macro_f1"):
    assert key in test
  assert test["examples"] == 8     # 80 messages: 64 / 8 / 8
  assert json.loads((wd / "status.json").read_text())["state"] == "finished"


def test_task_with_pretrained_vectors_and_dim_mismatch(iso):
  vec = iso / "vecs.txt"
  vec.write_text("ok 1 2 3 4 5 6\nfree 6 5 4 3 2 1\nprize 0 0 0 0 0 1\n")
  c = _tiny(iso, **{"model.embeddings": str(vec), "model.embeddings_trainable": False})
  task = classify.make_task(c, str(iso / "run"))
  info = json.loads((iso / "run" / classify.EMBEDDINGS_FILE).read_text())
  assert (info["found"], info["dim"], info["trainable"]) == (3, 6, False)
  assert info["oov"] == info["vocab_size"] - 3 and info["oov"] > 0
  params = task.init_params(jax.random.PRNGKey(0))
  vocab = (iso / "run" / "vocab.txt").read_text().splitlines()
  np.testing.assert_array_equal(params["embed"][vocab.index('"free"')], [6, 5, 4, 3, 2, 1])
  assert task.trainable(params)["embed"] is False
  # backoff: "zebra" (in the vectors, not in the training texts) gets its own id and vector
  c.model.embeddings_backoff = True
  vec.write_text("ok 1 2 3 4 5 6\nfree 6 5 4 3 2 1\nZebra 1 1 1 1 1 1\nzebra 2 2 2 2 2 2\n")
  task = classify.make_task(c, str(iso / "run"))
  np.testing.assert_array_equal(task.backoff, [[1, 1, 1, 1, 1, 1]])   # first "zebra" row
  assert json.loads((iso / "run" / classify.EMBEDDINGS_FILE).read_text())["backoff_words"] == 1
  from rnnlm_jax.data import classification as cdata
  vocab = cdata.build_vocab([cdata.tokenize(t) for t in ["ok free"]])
  ids, unknown, _ = cdata.encode_texts([["zebra", "ok", "gnu"]], vocab, extra={"zebra": 0})
  assert ids[0].tolist() == [len(vocab), vocab.index["ok"], cdata.UNK_ID] and unknown == 1
  batch = next(task.batches("valid", 4, None))
  assert batch["backoff"].shape == batch["tokens"].shape + (6,)
  from rnnlm_jax.data.errors import DataError
  c.model.embed_size = 50
  with pytest.raises(DataError, match="model.embed_size=50 does not match the 6-dimensional"):
    classify.make_task(c, None)


# ------------------------------------------------------------------------------------------
# Configs


def test_renamed_keys_are_refused_and_old_workdirs_read_with_the_new_names(tmp_path):
  """model.embed_dropout / embed_init_scale of a classifier are now input_dropout /
  embed_init_std (the LM's embed_dropout drops whole words; init_scale is a range)."""
  from rnnlm_jax import tasks
  from rnnlm_jax.workdir import Workdir
  c = _load_config("sms_spam")
  c.model.embed_dropout = 0.3  # a config file written for the old name
  with pytest.raises(ValueError, match="^model.embed_dropout was renamed model.input_dropout "
                                       "for the classify task; set model.input_dropout instead$"):
    tasks.validate_config(c)
  new = _load_config("sms_spam").to_dict()
  old = json.loads(json.dumps(new))  # config.json as the code before the renames wrote it
  old["kind"] = old.pop("task")
  old["model"]["embed_dropout"] = old["model"].pop("input_dropout")
  old["model"]["embed_init_scale"] = old["model"].pop("embed_init_std")
  wd = Workdir(tmp_path / "run")
  wd.path.mkdir()
  wd.config_file.write_text(json.dumps(old))
  read = wd.read_config()
  assert read["task"] == "classify" and "kind" not in read
  assert read["model"]["input_dropout"] == new["model"]["input_dropout"] == 0.3
  assert "embed_dropout" not in read["model"]
  wd.check_config(new)  # the same config under today's names: no conflict
  changed = json.loads(json.dumps(new))
  changed["model"]["input_dropout"] = 0.5
  with pytest.raises(ValueError, match="model.input_dropout: 0.3 -> 0.5"):
    wd.check_config(changed)


@pytest.mark.parametrize("name", ["sst2_bilstm", "sms_spam"])
def test_configs_validate(name):
  from rnnlm_jax import tasks
  c = _load_config(name)
  assert c.task == "classify"
  tasks.validate_config(c)
  classify.validate_config(c)
  C.ClassifierSpec.from_config(c.model, 100, 2)
  src = (REPO / "configs" / f"{name}.py").read_text().splitlines()
  assigns = [l for l in src if l.strip().startswith("c.") and " = " in l]
  new_fields = [l for l in assigns if l.strip().split(" = ")[0].split(".")[-1] in (
      "lowercase", "min_count", "max_length", "buckets", "bidirectional", "pooling",
      "attention_size", "head_hidden", "embed_size", "embeddings", "embeddings_trainable",
      "embeddings_backoff",
      "embed_init_std", "input_dropout", "word_dropout", "select_metric")]
  assert all("#" in l for l in new_fields), [l for l in new_fields if "#" not in l]


def test_sweep_file_points():
  from rnnlm_jax.sweeps.spec import apply_overrides, load_sweep_module
  mod = load_sweep_module(REPO / "configs" / "sweeps" / "classify_cells.py")
  base = mod.get_config()
  points = list(mod.get_sweep())
  cells_ = {p["model.cell"] for p in points}
  clips = {p["optim.clip_mode"] for p in points}
  assert cells_ == {"rnn_tanh", "lstm", "gru"} and "none" in clips and len(clips) >= 2
  assert len(points) == len(cells_) * len(clips) * len({p.get("seed", 0) for p in points})
  for p in points:
    classify.validate_config(apply_overrides(base, p))
