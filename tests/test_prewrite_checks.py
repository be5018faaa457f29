"""Issue 19 item 6: everything that can be wrong with a run's input is found before its workdir
is written, as one-line ``ValueError``s that say the fix: config values (``validate_config``),
every split's size against the batch and window sizes (``make_run``), shapes by
``jax.eval_shape`` of the init and of one step (``run.check()``). Also the runs' attributes the
loop reads to flag runs that do not learn (``uniform_loss``, item 3).

Language model on the tiny word corpus of tests/helpers.py; music on in-memory piano rolls
(``load_music`` patched); the classifier on a tiny SMS file.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import REPO, make_corpus, tiny_config
from rnnlm_jax import loop, tasks
from rnnlm_jax.models import lm as lm_model
from rnnlm_jax.models import music as music_model
from rnnlm_jax.sweeps.spec import apply_overrides
from rnnlm_jax.tasks import music as music_task
from rnnlm_jax.tasks import synthetic


def _tree(path: pathlib.Path) -> dict:
  """Every file under ``path`` with its bytes (``None`` if ``path`` does not exist)."""
  if not path.exists():
    return None
  return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
          if p.is_file()}


def _refused(config, workdir: pathlib.Path, match: str) -> str:
  """Train ``config`` in ``workdir``: a one-line ``ValueError`` matching ``match``, and the
  workdir as it was (not created if it did not exist)."""
  before = _tree(workdir)
  with pytest.raises(ValueError, match=match) as info:
    loop.train_and_evaluate(config, str(workdir))
  message = str(info.value)
  assert "\n" not in message and message.strip() == message
  assert _tree(workdir) == before
  return message


# ------------------------------------------------------------------------------------------
# Language model


def test_lm_empty_layer_is_refused_before_writing(corpus, tmp_path):
  for key in ("model.hidden_size", "model.embed_size", "model.num_layers"):
    c = tiny_config(corpus, tmp_path / "tfds", **{key: 0})
    msg = _refused(c, tmp_path / "run", rf"^{key}=0 gives an empty layer")
    assert "positive" in msg


def test_lm_corpus_too_small_for_one_step(tmp_path):
  small = make_corpus(tmp_path / "small.txt", num_lines=12)   # 70 train tokens
  c = tiny_config(small, tmp_path / "tfds", **{"train.batch_size": 8})  # 8 x (10 + 1) = 88
  msg = _refused(c, tmp_path / "run", r"^data: the train split has 70 tokens")
  assert "train.batch_size=8" in msg and "data.bptt=10" in msg and "= 88" in msg
  # exactly enough: 7 columns x 11 = 77 > 70 still refused; 6 x 11 = 66 fits (make_run only)
  c.train.batch_size = 7
  _refused(c, tmp_path / "run", "train split has 70 tokens")
  c.train.batch_size = 6
  run = tasks.get_task(c).make_run(c, str(tmp_path / "run"))
  assert run.steps_per_epoch == 1 and not (tmp_path / "run").exists()


def test_lm_eval_batch_larger_than_valid(corpus, tmp_path):
  c = tiny_config(corpus, tmp_path / "tfds", **{"train.eval_batch_size": 10_000})
  msg = _refused(c, tmp_path / "run", r"^data: the valid split has 420 tokens, too few for "
                 r"train.eval_batch_size=10000")
  assert msg.endswith("set train.eval_batch_size <= 210")
  c.train.eval_batch_size = 210   # the largest that works: 2 tokens per column
  assert tasks.get_task(c).make_run(c, None).eval_batch_size == 210


def test_existing_workdir_is_left_unchanged(corpus, tmp_path):
  """A refused run on a workdir that exists (here with a file of the user's) changes nothing."""
  wd = tmp_path / "run"
  wd.mkdir()
  (wd / "notes.txt").write_text("mine\n")
  c = tiny_config(corpus, tmp_path / "tfds", **{"train.eval_batch_size": 10_000})
  _refused(c, wd, "valid split has 420 tokens")


def test_lm_check_traces_init_and_step(corpus, tmp_path, monkeypatch):
  """``run.check()`` passes on a good config and turns a shape error of the step into one
  line (here: an output layer one row too tall for the hidden state)."""
  c = tiny_config(corpus, tmp_path / "tfds")
  run = tasks.get_task(c).make_run(c, None)
  run.check()
  good = lm_model.init_params

  def bad_init(key, spec):
    params = good(key, spec)
    params["head"]["w"] = jnp.zeros((spec.hidden_size + 1, spec.vocab_size))
    return params

  monkeypatch.setattr(lm_model, "init_params", bad_init)
  with pytest.raises(ValueError, match=r"^one train step on \[train.batch_size=4, data.bptt=10\] "
                     r"windows fails on these shapes \((TypeError|ValueError): ") as info:
    run.check()
  assert "\n" not in str(info.value)


def test_lm_make_run_writes_nothing_and_checks_an_existing_vocab(corpus, tmp_path):
  from rnnlm_jax.data import DataError
  from rnnlm_jax.workdir import Workdir
  c = tiny_config(corpus, tmp_path / "tfds")
  wd = tmp_path / "run"
  run = tasks.get_task(c).make_run(c, str(wd))
  assert not wd.exists()
  wd.mkdir()
  run.write_files(Workdir(wd))
  tasks.get_task(c).make_run(c, str(wd))  # the same vocabulary: fine
  (wd / "vocab.txt").write_text('"<eos>"\n"x"\n')
  with pytest.raises(DataError, match="made with another vocabulary"):
    tasks.get_task(c).make_run(c, str(wd))
  assert (wd / "vocab.txt").read_text() == '"<eos>"\n"x"\n'


def test_lm_uniform_loss_is_the_initial_loss(corpus, tmp_path):
  """``uniform_loss`` is log V in the units of the loss the run reports (nats per token): an
  untrained model (small uniform weights) scores about that."""
  c = tiny_config(corpus, tmp_path / "tfds")
  run = tasks.get_task(c).make_run(c, None)
  assert run.uniform_loss == pytest.approx(math.log(len(run.corpus.vocab)))
  state = run.init_state()
  assert run.evaluate(state.params, "valid")["loss"] == pytest.approx(run.uniform_loss, rel=0.02)


# ------------------------------------------------------------------------------------------
# Music (a padded task)


def _rolls(lengths, seed):
  rng = np.random.default_rng(seed)
  return [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in lengths]


def _music(monkeypatch, tmp_path, data, **overrides):
  """configs/music.py shrunk, on the in-memory ``data`` ({split: [roll [T, 88]]})."""
  monkeypatch.setattr(music_task.music_data, "load_music", lambda *a, **k: data)
  spec = importlib.util.spec_from_file_location("cfg_music", REPO / "configs" / "music.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  c.model.hidden_size = 4
  c.train.batch_size, c.train.eval_batch_size, c.train.max_steps = 3, 2, 2
  return apply_overrides(c, overrides)


def _music_data():
  return {"train": _rolls([5, 9, 14, 3], 0), "valid": _rolls([4, 13], 1),
          "test": _rolls([10, 6], 2)}


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_music_split_without_batches(split, monkeypatch, tmp_path):
  data = {**_music_data(), split: []}
  c = _music(monkeypatch, tmp_path, data)
  key = "batch_size" if split == "train" else "eval_batch_size"
  _refused(c, tmp_path / "run", rf"^data: the {split} split of jsb_chorales gives no batches of "
           rf"train.{key}=")


def test_music_split_without_time_steps(monkeypatch, tmp_path):
  data = {**_music_data(), "valid": _rolls([0, 0], 1)}
  c = _music(monkeypatch, tmp_path, data)
  _refused(c, tmp_path / "run", "^data: the valid split of jsb_chorales has 2 rolls but no "
           "time steps")


def test_music_empty_layer_and_shape_check(monkeypatch, tmp_path):
  c = _music(monkeypatch, tmp_path, _music_data(), **{"model.hidden_size": 0})
  _refused(c, tmp_path / "run", "^model.hidden_size must be >= 1, got 0")
  c.model.hidden_size = 4
  run = tasks.get_task(c).make_run(c, str(tmp_path / "run"))
  run.check()
  good = music_model.init_params

  def bad_init(key, spec):
    params = good(key, spec)
    params["out"]["w"] = jnp.zeros((spec.hidden_size, 87))
    return params

  monkeypatch.setattr(music_model, "init_params", bad_init)
  with pytest.raises(ValueError, match=r"^one train step on a batch of train.batch_size=3 fails "
                     r"on these shapes \((TypeError|ValueError): "):
    run.check()


def test_music_uniform_loss_is_the_initial_loss(monkeypatch, tmp_path):
  """The music loss is the NLL per time step summed over the 88 keys: a model at p = 1/2
  scores 88 log 2; the untrained model (zero output bias, small weights) about that."""
  c = _music(monkeypatch, tmp_path, _music_data())
  run = tasks.get_task(c).make_run(c, None)
  assert run.uniform_loss == pytest.approx(88 * math.log(2))
  state = run.init_state()
  assert run.evaluate(state.params, "valid")["loss"] == pytest.approx(run.uniform_loss, rel=0.02)


# ------------------------------------------------------------------------------------------
# Classification (a padded task that keeps files in its workdir)


SMS = "".join(f"spam\tWIN a FREE prize {i}! call 0800{i} now\n" if i % 4 == 0 else
              f"ham\tok see you at {i} later , love\n" for i in range(40))


def _sms(iso, **overrides):
  d = iso / "data" / "sms_spam"
  d.mkdir(parents=True, exist_ok=True)
  (d / "SMSSpamCollection").write_text(SMS)
  spec = importlib.util.spec_from_file_location("cfg_sms", REPO / "configs" / "sms_spam.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  c.data.dir = str(iso / "data")
  c.model.hidden_size, c.model.embed_size, c.model.attention_size = 8, 6, 4
  c.train.batch_size, c.train.eval_batch_size, c.train.max_steps = 8, 16, 2
  return apply_overrides(c, overrides)


def test_classify_make_run_writes_nothing(iso):
  from rnnlm_jax.workdir import Workdir
  c = _sms(iso)
  wd = iso / "run"
  run = tasks.get_task(c).make_run(c, str(wd))
  assert not wd.exists()
  run.check()
  assert run.uniform_loss == pytest.approx(math.log(2))
  wd.mkdir()
  run.write_files(Workdir(wd))   # what make_task(config, workdir) wrote before
  assert (wd / "vocab.txt").read_text().splitlines()[:2] == ['"<pad>"', '"<unk>"']
  _refused(_sms(iso, **{"model.hidden_size": 0}), wd, "^model.hidden_size must be >= 1, got 0")


# ------------------------------------------------------------------------------------------
# Synthetic (its own validate_config)


@pytest.mark.parametrize("key,value,match", [
    ("model.hidden_size", 0, "model.hidden_size must be positive"),
    ("train.batch_size", 0, "train.batch_size must be positive"),
    ("synthetic.success_error_rate", -0.1, "success_error_rate must be >= 0"),
    ("synthetic.success_error_rate", float("nan"), "success_error_rate must be >= 0"),
    ("model.init_scale", -0.1, "model.init_scale must be >= 0"),
])
def test_synthetic_config_checks(key, value, match):
  from rnnlm_jax.config_base import synthetic_config
  c = synthetic_config()
  synthetic.validate_config(c)
  with pytest.raises(ValueError, match=match):
    synthetic.validate_config(apply_overrides(c, {key: value}))
