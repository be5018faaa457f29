"""Tests of rnnlm_jax.data: builders, tokenization, vocabulary, batching, downloads, errors.

Tiny corpora are written into tmp_path with the local mirror hidden and downloads disabled.
The real-corpus tests use the local mirror (``shared/data`` beside the repository) and the
default prepared-data cache (``$RNNLM_TFDS_DIR`` or ``~/.cache/rnnlm_jax/tfds``), so only
their first run prepares the datasets.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import pathlib
import subprocess
import sys
import tarfile
import types

import numpy as np
import pytest

from rnnlm_jax import data
from rnnlm_jax.data import builders, sources
from rnnlm_jax.data.errors import DataError
from rnnlm_jax.data.vocab import EOS, UNK, Vocab

REPO = pathlib.Path(__file__).resolve().parents[1]


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.encode("utf-8"))
  return path


def _decode(corpus, split):
  return corpus.vocab.decode(getattr(corpus, split))


# ------------------------------------------------------------------------------------------
# Builders on tiny corpora


PTB_TRAIN = " the cat sat \n the dog sat <unk> \n\n a cat \n"   # 4 lines, one empty
PTB_VALID = " the bird sat \n"
PTB_TEST = " a dog \n the end"                                   # last line without newline


def test_word_corpus_tiny(iso):
  for name, text in [("train", PTB_TRAIN), ("valid", PTB_VALID), ("test", PTB_TEST)]:
    _write(iso / "raw" / "ptb" / f"ptb.{name}.txt", text)
  c = data.load_lm_corpus({"name": "ptb", "dir": str(iso / "raw")})
  assert c.level == "word" and c.tokenizer == "word"
  assert _decode(c, "train") == ("the cat sat <eos> the dog sat <unk> <eos> <eos> "
                                 "a cat <eos>").split()
  # Vocabulary from train only; <eos>, <unk> first, then by frequency, then by string.
  assert c.vocab.tokens == [EOS, UNK, "cat", "sat", "the", "a", "dog"]
  assert c.train.dtype == np.int32 and c.train.ndim == 1
  assert _decode(c, "valid") == ["the", UNK, "sat", EOS]            # "bird" unseen in train
  assert _decode(c, "test") == ["a", "dog", EOS, "the", UNK, EOS]    # "end": <unk>
  # Prepared under a content-derived config, so an edited file is never served stale.
  b = builders.make_builder("ptb", data_dir=iso / "raw")
  assert b.builder_config.name.startswith("custom-")
  assert pathlib.Path(b.data_dir).is_relative_to(iso / "tfds")
  _write(iso / "raw" / "ptb" / "ptb.train.txt", " cat cat \n")
  c2 = data.load_lm_corpus({"name": "ptb", "dir": str(iso / "raw")})
  assert _decode(c2, "train") == ["cat", "cat", EOS]
  assert builders.make_builder("ptb", data_dir=iso / "raw").builder_config.name != \
      b.builder_config.name


def test_canonical_copy_served_without_raw_files(iso, monkeypatch):
  ml_collections = pytest.importorskip("ml_collections")
  texts = {"train": PTB_TRAIN, "valid": PTB_VALID, "test": PTB_TEST}
  for name, text in texts.items():
    _write(iso / "raw" / "ptb" / f"ptb.{name}.txt", text)
    # Pretend these are the canonical files.
    monkeypatch.setitem(sources.SOURCES, ("ptb", f"ptb.{name}.txt"), sources.RawFile(
        "file:///nonexistent", hashlib.sha256(text.encode()).hexdigest()))
  cfg = ml_collections.ConfigDict({"name": "ptb", "dir": str(iso / "raw"), "tfds_dir": "",
                                   "path": "", "level": "char", "split": (0.8, 0.1, 0.1)})
  c = data.load_lm_corpus(cfg)
  assert builders.make_builder("ptb", data_dir=iso / "raw").builder_config.name == "canonical"
  for name in texts:
    (iso / "raw" / "ptb" / f"ptb.{name}.txt").unlink()
  cfg.dir = ""
  c2 = data.load_lm_corpus(cfg)          # no raw file anywhere, prepared copy still used
  assert c2.vocab == c.vocab and np.array_equal(c2.test, c.test) and c2.level == "word"


def test_char_corpus_tiny_flat_layout_and_xz(iso):
  raw = iso / "raw"
  raw.mkdir()
  # Mikolov's format: symbols separated by spaces, '_' word boundary, file ends in "\n ".
  train = " a _ b b \n c _ a \n "
  with lzma.open(raw / "ptb.char.train.txt.xz", "wb") as f:   # flat layout, xz-compressed
    f.write(train.encode())
  _write(raw / "ptb.char.valid.txt", " a b \n ")
  _write(raw / "ptb.char.test.txt", " c \n ")
  c = data.load_lm_corpus({"name": "ptb_char", "dir": str(raw)})
  assert c.level == "char"
  assert _decode(c, "train") == ["a", "_", "b", "b", EOS, "c", "_", "a", EOS]  # no junk token
  assert c.vocab.tokens == [EOS, "_", "a", "b", "c"]   # valid/test chars all seen: no <unk>
  assert _decode(c, "test") == ["c", EOS]
  # An unseen character in valid adds <unk> (first).
  _write(raw / "ptb.char.valid.txt", " a z \n ")
  c = data.load_lm_corpus({"name": "ptb_char", "dir": str(raw)})
  assert c.vocab.tokens[0] == UNK and len(c.vocab) == 6
  assert _decode(c, "valid") == ["a", UNK, EOS]


def test_text_file_char_split_contiguous(iso):
  text = "".join(f"l{i:02d} abcde\n" for i in range(50))  # 50 lines of 10 chars = 500 chars
  p = _write(iso / "my.txt", text)
  c = data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "char",
                           "split": (0.8, 0.1, 0.1)})
  parts = ["".join(_decode(c, s)) for s in ("train", "valid", "test")]
  assert "".join(parts) == text                            # contiguous, nothing lost
  assert [len(x) for x in parts] == [400, 50, 50]          # exact character cuts
  assert set(c.vocab.tokens) == set(text[:400])            # newline and space included
  # Other ratios or level give another config (never a stale cache).
  c2 = data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "char",
                            "split": (0.5, 0.25, 0.25)})
  assert len(c2.train) == 250


def test_text_file_word_split_on_lines(iso):
  lines = [" ".join(f"w{(i * 7 + j) % 13}" for j in range(i % 5 + 1)) for i in range(40)]
  text = "\n".join(lines) + "\n"
  p = _write(iso / "words.txt", text)
  c = data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "word"})
  toks = {s: _decode(c, s) for s in ("train", "valid", "test")}
  # Cut at line starts: each split is whole lines, in order, each line ending in <eos>.
  all_tokens = [t for s in ("train", "valid", "test") for t in toks[s]]
  assert all(toks[s][-1] == EOS for s in toks)
  assert all_tokens.count(EOS) == 40
  train_lines = " ".join(toks["train"]).split(" <eos>")[:-1]
  n_train = len(train_lines)
  assert [line.strip() for line in train_lines] == lines[:n_train]
  assert abs(len("\n".join(lines[:n_train])) / len(text) - 0.8) < 0.05
  assert UNK in c.vocab and c.vocab.tokens[:2] == [EOS, UNK]


def test_tiny_shakespeare_split_rule(iso):
  text = "".join(f"Speaker {i}:\nSome words here.\n\n" for i in range(100))
  _write(iso / "raw" / "tinyshakespeare" / "input.txt", text)
  b = builders.make_builder("tiny_shakespeare", data_dir=iso / "raw")
  parts = ["".join(builders.read_split_lines(b, s)) for s in ("train", "valid", "test")]
  assert "".join(parts) == text
  assert all(p.endswith("\n") for p in parts[:2])                  # cut at line boundaries
  assert abs(len(parts[0]) / len(text) - 0.9) < 0.01
  assert abs(len(parts[1]) / len(text) - 0.05) < 0.01


# ------------------------------------------------------------------------------------------
# Real corpora (from the local mirror; prepared once into the default cache)


def _need_local(dataset, filename):
  if sources.find_local_file(dataset, filename)[0] is None:
    pytest.skip(f"{dataset}/{filename} not found in RNNLM_DATA_DIR, the shared/data mirror "
                "beside the repository or the download cache")


@pytest.fixture(scope="module")
def real_env():
  mp = pytest.MonkeyPatch()
  mp.setenv(sources.ENV_NO_DOWNLOAD, "1")
  yield
  mp.undo()


def test_ptb_counts(real_env):
  _need_local("ptb", "ptb.train.txt")
  c = data.load_lm_corpus({"name": "ptb"})
  assert (len(c.train), len(c.valid), len(c.test)) == (929_589, 73_760, 82_430)
  assert len(c.vocab) == 10_000
  assert _decode(c, "train")[:4] == ["aer", "banknote", "berlitz", "calloway"]   # file order


def test_ptb_char_counts(real_env):
  _need_local("ptb_char", "ptb.char.train.txt")
  c = data.load_lm_corpus({"name": "ptb_char"})
  # SOURCES.md: train has 4,975,414 character tokens on 42,068 lines, all non-empty; one
  # <eos> per non-empty line gives 4,975,414 + 42,068 = 5,017,482 (the trailing " " after
  # the final newline adds nothing). valid: 389,672 + 3,370; test: 438,662 + 3,761.
  assert (len(c.train), len(c.valid), len(c.test)) == (5_017_482, 393_042, 442_423)
  assert len(c.vocab) == 50                      # 49 symbols + <eos>; no <unk> needed
  assert c.vocab.unk_id is None


def test_tiny_shakespeare_counts(real_env):
  _need_local("tiny_shakespeare", "input.txt")
  c = data.load_lm_corpus({"name": "tiny_shakespeare"})
  assert len(c.vocab) == 65
  assert len(c.train) + len(c.valid) + len(c.test) == 1_115_394
  assert abs(len(c.train) / 1_115_394 - 0.9) < 1e-3


def test_wikitext2_counts(real_env):
  _need_local("wikitext2", "train.txt")
  c = data.load_lm_corpus({"name": "wikitext2"})
  assert (len(c.train), len(c.valid), len(c.test)) == (2_088_628, 217_646, 245_569)
  assert len(c.vocab) == 33_278


# ------------------------------------------------------------------------------------------
# Batching


def test_batchify_and_windows():
  ids = np.arange(23, dtype=np.int32)
  b = data.batchify(ids, 3)                        # n = 7, remainder 2 dropped
  assert b.shape == (3, 7)
  np.testing.assert_array_equal(b[1], np.arange(7, 14))
  assert data.num_train_windows(b, 2) == 3         # (7 - 1) // 2
  x, y = data.get_window(b, 1, 2)
  np.testing.assert_array_equal(x, [[2, 3], [9, 10], [16, 17]])
  np.testing.assert_array_equal(y, [[3, 4], [10, 11], [17, 18]])
  with pytest.raises(IndexError):
    data.get_window(b, 3, 2)
  # Eval: full windows then one shorter one; every target exactly once.
  wins = list(data.eval_windows(b, 4))
  assert [w[0].shape for w in wins] == [(3, 4), (3, 2)]
  targets = np.concatenate([y for _, y in wins], axis=1)
  np.testing.assert_array_equal(targets, b[:, 1:])
  for x, y in wins:
    np.testing.assert_array_equal(x + 1, y)        # shift by one (ids are consecutive)
  assert [w[0].shape[1] for w in data.eval_windows(b, 3)] == [3, 3]


def test_batching_too_small():
  with pytest.raises(DataError, match=r"5 tokens, too few for batch_size=3 \(need at least 6\)"):
    data.batchify(np.arange(5), 3)
  b = data.batchify(np.arange(20), 4)              # [4, 5]
  with pytest.raises(DataError, match=r"5 tokens per row .* bptt=5 \(need at least 6"):
    data.num_train_windows(b, 5)
  with pytest.raises(DataError, match="bptt=0"):
    data.num_train_windows(b, 0)


# ------------------------------------------------------------------------------------------
# Vocabulary


def test_vocab_roundtrip_special_characters(tmp_path):
  tokens = ["\n", " ", "a", '"', "\\", "\t", "é", "<unk>", "\r", "x y"]
  v = Vocab(tokens)
  v.save(tmp_path / "vocab.txt")
  assert len((tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")) == 11
  w = Vocab.load(tmp_path / "vocab.txt")
  assert w.tokens == tokens and w == v
  np.testing.assert_array_equal(w.encode(["a", "\n", "zz"]), [2, 0, 7])   # zz -> <unk>


def test_vocab_build_and_unknown_without_unk():
  v = Vocab.build(list("abracadabra"), specials=("<eos>",))
  assert v.tokens == ["<eos>", "a", "b", "r", "c", "d"]      # freq desc, then string
  ids, dropped = v.encode(list("abz!"), return_num_dropped=True)
  assert dropped == 2 and v.decode(ids) == ["a", "b"]
  with pytest.raises(DataError, match="twice"):
    Vocab(["a", "a"])


def test_workdir_vocab_mismatch(iso):
  p = _write(iso / "t.txt", "hello world\n" * 30)
  wd = iso / "run"
  c = data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "char"}, workdir=wd)
  assert Vocab.load(wd / "vocab.txt") == c.vocab
  data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "char"}, workdir=wd)
  p2 = _write(iso / "t2.txt", "other text!\n" * 30)
  with pytest.raises(DataError, match="was made with another vocabulary.*new --workdir"):
    data.load_lm_corpus({"name": "text_file", "path": str(p2), "level": "char"}, workdir=wd)


def test_encode_text_file(iso):
  v = Vocab([EOS, UNK, "the", "cat"])
  p = _write(iso / "u.txt", "the cat\nthe dog\n")
  np.testing.assert_array_equal(data.encode_text_file(p, v, "word"), [2, 3, 0, 2, 1, 0])
  # A ptb_char vocabulary (it has <eos>) with level "char" uses the ptb_char rule.
  vc = Vocab([EOS, "_", "a", "b"])
  p2 = _write(iso / "c.txt", " a _ b \n b \n ")
  np.testing.assert_array_equal(data.encode_text_file(p2, vc, "char"), [2, 1, 3, 0, 3, 0])
  with pytest.raises(DataError, match="level='bogus'"):
    data.encode_text_file(p, v, "bogus")


# ------------------------------------------------------------------------------------------
# Downloads (file:// URLs standing in for the canonical ones)


def _sha(b: bytes) -> str:
  return hashlib.sha256(b).hexdigest()


def test_download_verified(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  content = b" the cat \n"
  src = _write(iso / "remote" / "ptb.train.txt", content.decode())
  monkeypatch.setitem(sources.SOURCES, ("ptb", "ptb.train.txt"),
                      sources.RawFile(src.as_uri(), _sha(content)))
  path = sources.resolve_raw_file("ptb", "ptb.train.txt", None)
  assert path == iso / "cache" / "ptb" / "ptb.train.txt" and path.read_bytes() == content
  assert sorted(p.name for p in (iso / "cache" / "ptb").iterdir()) == ["ptb.train.txt"]
  src.unlink()                                     # second time: served from the cache
  assert sources.resolve_raw_file("ptb", "ptb.train.txt") == path


def test_download_archive_members(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  members = {f"ptb.char.{s}.txt": f" a _ {s} \n ".encode() for s in ("train", "valid", "test")}
  tgz = iso / "remote" / "simple-examples.tgz"
  tgz.parent.mkdir()
  with tarfile.open(tgz, "w:gz") as tar:
    for name, b in members.items():
      info = tarfile.TarInfo(f"./simple-examples/data/{name}")
      info.size = len(b)
      tar.addfile(info, io.BytesIO(b))
  for name, b in members.items():
    monkeypatch.setitem(sources.SOURCES, ("ptb_char", name), sources.RawFile(
        tgz.as_uri(), _sha(b), f"./simple-examples/data/{name}"))
  path = sources.resolve_raw_file("ptb_char", "ptb.char.valid.txt")
  assert path.read_bytes() == members["ptb.char.valid.txt"]
  # The archive was fetched once, all its members extracted and verified, the archive removed.
  assert sorted(p.name for p in path.parent.iterdir()) == sorted(members)


def test_download_checksum_mismatch_leaves_nothing(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  src = _write(iso / "remote" / "input.txt", "tampered\n")
  monkeypatch.setitem(sources.SOURCES, ("tiny_shakespeare", "input.txt"),
                      sources.RawFile(src.as_uri(), "0" * 64))
  with pytest.raises(DataError, match="checksum mismatch.*expected 0000"):
    sources.resolve_raw_file("tiny_shakespeare", "input.txt")
  cache = iso / "cache"
  assert not [p for p in cache.rglob("*") if p.is_file()]


def test_download_failure_message(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  monkeypatch.setitem(sources.SOURCES, ("ptb", "ptb.valid.txt"),
                      sources.RawFile((iso / "nope.txt").as_uri(), "0" * 64))
  with pytest.raises(DataError, match="could not download ptb file ptb.valid.txt"):
    sources.resolve_raw_file("ptb", "ptb.valid.txt")


def test_no_download_lists_locations(iso, monkeypatch):
  (iso / "d").mkdir()
  monkeypatch.setenv(sources.ENV_DATA_DIR, str(iso / "e"))
  (iso / "e").mkdir()
  with pytest.raises(DataError) as e:
    sources.resolve_raw_file("ptb", "ptb.train.txt", iso / "d")
  msg = str(e.value)
  assert "\n" not in msg
  for s in ("ptb.train.txt not found", f"data.dir {iso / 'd' / 'ptb'}", str(iso / "e"),
            str(iso / "cache"), "RNNLM_NO_DOWNLOAD=1", "Set data.dir or RNNLM_DATA_DIR"):
    assert s in msg, s


# ------------------------------------------------------------------------------------------
# Bad inputs


def test_missing_files(iso):
  with pytest.raises(DataError, match=r"data.path='.*nothere.txt' not found"):
    data.load_lm_corpus({"name": "text_file", "path": str(iso / "nothere.txt")})
  with pytest.raises(DataError, match="ptb file ptb.train.txt not found"):
    data.load_lm_corpus(types.SimpleNamespace(name="ptb", dir=None, tfds_dir=None))
  with pytest.raises(DataError, match=r"data.dir='.*nodir' is not a directory"):
    data.load_lm_corpus({"name": "ptb", "dir": str(iso / "nodir")})
  with pytest.raises(DataError, match="data.path is required"):
    data.load_lm_corpus({"name": "text_file"})


def test_empty_corpus(iso):
  p = _write(iso / "empty.txt", "")
  with pytest.raises(DataError, match=r"empty\.txt is empty"):
    data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "word"})
  p = _write(iso / "blank.txt", "\n\n\n")
  with pytest.raises(DataError, match="the train split is empty"):
    data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "word"})


def test_non_utf8_corpus(iso):
  p = iso / "latin1.txt"
  p.write_bytes("caf\u00e9 au lait\n".encode("latin-1") * 3)
  with pytest.raises(DataError, match=r"latin1\.txt is not valid UTF-8 \(byte offset 3"):
    data.load_lm_corpus({"name": "text_file", "path": str(p)})


def test_bad_names_and_options(iso):
  with pytest.raises(DataError, match="unknown dataset data.name='ptb2'.*ptb, ptb_char, "
                     "wikitext2, tiny_shakespeare, text_file"):
    data.load_lm_corpus({"name": "ptb2"})
  p = _write(iso / "x.txt", "abc\n" * 10)
  with pytest.raises(DataError, match="data.level='byte'"):
    data.load_lm_corpus({"name": "text_file", "path": str(p), "level": "byte"})
  with pytest.raises(DataError, match=r"data.split=\(0.5, 0.5\) is not valid"):
    data.load_lm_corpus({"name": "text_file", "path": str(p), "split": (0.5, 0.5)})


# ------------------------------------------------------------------------------------------
# Preparation under concurrency / interruption


def test_concurrent_prepare_and_stale_leftovers(iso):
  text = "".join(f"{i} lorem ipsum\n" for i in range(200))
  p = _write(iso / "c.txt", text)
  cfg = {"name": "text_file", "path": str(p), "level": "char"}
  b = builders.make_builder("text_file", path=p, level="char", prepare=False)
  stale = pathlib.Path(b.data_dir).parent / "incomplete.ABC123_1.0.0"
  stale.mkdir(parents=True)                          # leftover of a killed preparation
  code = ("import sys; from rnnlm_jax import data; "
          f"c = data.load_lm_corpus({cfg!r}); print(len(c.train))")
  env = dict(os.environ, PYTHONPATH=str(REPO))
  procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
  outs = [proc.communicate(timeout=120) for proc in procs]
  assert [proc.returncode for proc in procs] == [0, 0], outs
  assert [o[0].strip().splitlines()[-1] for o in outs] == [str(round(0.8 * len(text)))] * 2
  assert sum("preparing text_file" in o[0] for o in outs) == 1   # prepared once
  assert not stale.exists()


def test_builder_constructed_mid_preparation_is_constructed_again(iso):
  # The race behind a CI failure: a process constructs its builder (no dataset_info.json yet,
  # so no splits), another process finishes preparing, and the first must not keep its
  # split-less builder. Made deterministic: the "other process" prepares inside construct().
  p = _write(iso / "r.txt", "".join(f"{i} dolor sit\n" for i in range(100)))
  calls = []

  def construct():
    builder = builders.make_builder("text_file", path=p, level="char", prepare=False)
    if not calls:
      builders.make_builder("text_file", path=p, level="char")  # the other process, done now
    calls.append(builder)
    return builder

  builder = builders.construct_prepared(construct, builders.resolve_tfds_dir(None), prepare=True)
  assert list(builder.info.splits) == ["train", "valid", "test"]
  assert len(calls) == 2 and not calls[0].info.splits
