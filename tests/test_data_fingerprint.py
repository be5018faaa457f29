"""Issue 19 item 5: each run's ``data_fingerprint()`` (content hashes of the prepared arrays,
builder name and version, vocabulary hash), which the loop stores in the workdir and compares
on resume: equal for the same data loaded twice, different when one token changes; cheap
(numpy bytes, no Python loop over tokens); JSON-able.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pytest

from helpers import REPO, make_corpus, tiny_config
from rnnlm_jax import tasks
from rnnlm_jax.data import fingerprint
from rnnlm_jax.sweeps.spec import apply_overrides
from rnnlm_jax.tasks import music as music_task
from rnnlm_jax.tasks import padded, synthetic


def _fingerprint(config, workdir=None) -> dict:
  fp = tasks.get_task(config).make_run(config, workdir).data_fingerprint()
  assert json.loads(json.dumps(fp)) == fp
  return fp


def _load_config(name):
  spec = importlib.util.spec_from_file_location(f"cfg_{name}", REPO / "configs" / f"{name}.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


# ------------------------------------------------------------------------------------------
# The hashing helpers


def test_hashes_fix_dtype_order_and_boundaries():
  a = np.arange(12, dtype=np.int64)
  # the same values in another dtype or byte order: the same digest; another shape: not
  assert fingerprint.array_sha256(a, "<i4") == fingerprint.array_sha256(
      a.astype(">i4"), "<i4") == fingerprint.array_sha256(a[::-1][::-1], "<i4")
  assert fingerprint.array_sha256(a, "<i4") != fingerprint.array_sha256(a.reshape(3, 4), "<i4")
  seqs = [a[:5], a[5:]]
  assert fingerprint.sequences_sha256(seqs, "<i4") != fingerprint.sequences_sha256(
      [a[:6], a[6:]], "<i4")
  assert fingerprint.sequences_sha256(seqs, "<i4", np.array([0, 1])) != \
      fingerprint.sequences_sha256(seqs, "<i4", np.array([1, 0]))
  tokens = ["<eos>", "the", " ", "\n", '"']
  text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tokens)
  assert fingerprint.tokens_sha256(tokens) == hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------
# Language model


def test_lm_fingerprint_stable_and_sensitive_to_one_token(tmp_path):
  corpus = make_corpus(tmp_path / "corpus.txt")
  c = tiny_config(corpus, tmp_path / "tfds")
  fp = _fingerprint(c)
  assert fp == _fingerprint(c)
  assert (fp["task"], fp["builder"], fp["builder_version"], fp["tokenizer"]) == (
      "lm", "text_file", "1.0.0", "word")
  assert [fp["splits"][s]["tokens"] for s in ("train", "valid", "test")] == [3360, 420, 420]
  # one train token changed (same length, so the split cuts stay where they were)
  lines = corpus.read_text().splitlines(keepends=True)
  first = lines[0].split()
  first[1] = "n0" if first[1] != "n0" else "n1"
  lines[0] = " ".join(first) + "\n"
  corpus.write_text("".join(lines))
  changed = _fingerprint(c)
  assert changed["splits"]["train"]["sha256"] != fp["splits"]["train"]["sha256"]
  assert changed["splits"]["train"]["tokens"] == fp["splits"]["train"]["tokens"]


def test_lm_vocab_hash_is_that_of_vocab_txt(tmp_path, corpus):
  from rnnlm_jax.workdir import Workdir
  c = tiny_config(corpus, tmp_path / "tfds")
  run = tasks.get_task(c).make_run(c, None)
  wd = tmp_path / "run"
  wd.mkdir()
  run.write_files(Workdir(wd))
  vocab = run.data_fingerprint()["vocab"]
  assert vocab["sha256"] == hashlib.sha256((wd / "vocab.txt").read_bytes()).hexdigest()
  assert vocab["size"] == len(run.corpus.vocab)


def test_lm_fingerprint_is_of_the_data_not_the_batching(tmp_path, corpus):
  base = _fingerprint(tiny_config(corpus, tmp_path / "tfds"))
  other = _fingerprint(tiny_config(corpus, tmp_path / "tfds",
                                   **{"train.batch_size": 2, "data.bptt": 5}))
  assert other == base


# ------------------------------------------------------------------------------------------
# Music and classification (padded tasks), synthetic


def _music_config(monkeypatch, data):
  monkeypatch.setattr(music_task.music_data, "load_music", lambda *a, **k: data)
  c = _load_config("music")
  c.model.hidden_size = 4
  c.train.batch_size, c.train.eval_batch_size = 3, 2
  return c


def test_music_fingerprint(monkeypatch):
  rng = np.random.default_rng(0)
  data = {s: [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in lengths]
          for s, lengths in (("train", [5, 9, 14]), ("valid", [4, 13]), ("test", [10, 6]))}
  c = _music_config(monkeypatch, data)
  fp = _fingerprint(c)
  assert fp == _fingerprint(c)
  assert (fp["task"], fp["builder"], fp["builder_version"]) == ("music", "jsb_chorales", "1.0.0")
  assert fp["splits"]["train"] == {"sequences": 3, "steps": 28,
                                   "sha256": fp["splits"]["train"]["sha256"]}
  data["valid"][1] = data["valid"][1].copy()
  data["valid"][1][3, 40] ^= 1   # one note of one frame
  changed = _fingerprint(c)
  assert changed["splits"]["valid"]["sha256"] != fp["splits"]["valid"]["sha256"]
  assert changed["splits"]["train"] == fp["splits"]["train"]


SMS = "".join(f"spam\tWIN a FREE prize {i}! call 0800{i} now\n" if i % 4 == 0 else
              f"ham\tok see you at {i} later , love\n" for i in range(40))


def test_classify_fingerprint(iso):
  raw = iso / "data" / "sms_spam" / "SMSSpamCollection"
  raw.parent.mkdir(parents=True)
  raw.write_text(SMS)
  c = _load_config("sms_spam")
  c.data.dir = str(iso / "data")
  c.model.hidden_size, c.model.embed_size, c.model.attention_size = 8, 6, 4
  c.train.batch_size, c.train.eval_batch_size = 8, 16
  fp = _fingerprint(c)
  assert fp == _fingerprint(c)
  assert (fp["task"], fp["builder"], fp["labels"]) == ("classify", "sms_spam", ["ham", "spam"])
  assert sum(fp["splits"][s]["examples"] for s in ("train", "valid", "test")) == 40
  raw.write_text(SMS.replace("later , love", "later ; love", 1))   # one token of one message
  changed = _fingerprint(c)
  assert changed["splits"] != fp["splits"] or changed["vocab"] != fp["vocab"]
  assert changed != fp


def test_padded_fallback_hashes_the_evaluation_batches():
  """A padded task without its own fingerprint: the evaluation batches of every split."""

  class Task:
    def __init__(self, value):
      self.value = value

    def batches(self, split, batch_size, rng):
      yield {"x": np.full((batch_size, 3), self.value, np.float32)}

  a, b = (padded.batches_fingerprint(Task(v), 4) for v in (1.0, 2.0))
  assert a == padded.batches_fingerprint(Task(1.0), 4) and a["train"] != b["train"]


def test_synthetic_fingerprint():
  from rnnlm_jax.config_base import synthetic_config
  c = apply_overrides(synthetic_config(), {"synthetic.problem": "addition",
                                           "synthetic.length": 60})
  fp = synthetic.data_fingerprint(c)
  assert fp == {"task": "synthetic", "problem": "addition", "length": 60,
                "test_size": int(c.synthetic.test_size)}
  assert json.loads(json.dumps(fp)) == fp
