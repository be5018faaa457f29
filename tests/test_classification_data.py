"""SST-2 / SMS spam data: parsing, seeded splits, TFDS builders, downloads, tokens (the padded
batches: test_padded_batches.py).

Tiny files are written into tmp_path with the local mirror hidden and downloads disabled
(``iso``); the tests on the real files skip when ``shared/data`` is absent.
"""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest

from rnnlm_jax.data import sources
from rnnlm_jax.data import classification as cdata
from rnnlm_jax.data.errors import DataError

SST_TRAIN = "sentence\tlabel\n" + "".join(
    f"phrase number {i} is {'good' if i % 3 else 'bad'} \t{int(i % 3 != 0)}\n" for i in range(40))
SST_DEV = "sentence\tlabel\nit 's a charming journey . \t1\nunflinchingly bleak \t0\n"
SMS = "".join(f"{'spam' if i % 5 == 0 else 'ham'}\tmessage {i}: Call 0800-{i} NOW!\n"
              for i in range(50))


def _sha(data: str | bytes) -> str:
  return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")
  return path


# ------------------------------------------------------------------------------------------
# Parsing


def test_parse_sst2_and_errors():
  texts, labels = cdata.parse_sst2_tsv(SST_DEV)
  assert texts == ["it 's a charming journey . ", "unflinchingly bleak "]
  np.testing.assert_array_equal(labels, [1, 0])
  with pytest.raises(DataError, match="header 'sentence<TAB>label'.*test.tsv has no labels"):
    cdata.parse_sst2_tsv("index\tsentence\n0\tfoo\n")
  with pytest.raises(DataError, match=r"line 3: expected 'sentence<TAB>0\|1'"):
    cdata.parse_sst2_tsv("sentence\tlabel\ngood \t1\nbad \t2\n")


def test_parse_sms_and_errors():
  texts, labels = cdata.parse_sms("ham\thi there\nspam\tWIN £100\ttoday\n")
  assert texts == ["hi there", "WIN £100\ttoday"]
  np.testing.assert_array_equal(labels, [0, 1])
  with pytest.raises(DataError, match="line 2: expected 'ham<TAB>text'"):
    cdata.parse_sms("ham\tok\nmaybe\tnot\n")
  with pytest.raises(DataError, match="no messages"):
    cdata.parse_sms("")


# ------------------------------------------------------------------------------------------
# Splits


def test_holdout_split_seeded_disjoint():
  keep, held = cdata.holdout_split(1000, 0.05)
  assert len(held) == 50 and len(keep) == 950
  assert not set(keep) & set(held) and set(keep) | set(held) == set(range(1000))
  assert list(held) == sorted(held)
  k2, h2 = cdata.holdout_split(1000, 0.05)
  np.testing.assert_array_equal(held, h2)
  assert not np.array_equal(held, cdata.holdout_split(1000, 0.05, seed=1)[1])


def test_stratified_split_keeps_class_mix():
  labels = np.array([1] * 100 + [0] * 900)
  rng = np.random.default_rng(3)
  labels = labels[rng.permutation(len(labels))]
  parts = cdata.stratified_split(labels, (0.8, 0.1, 0.1))
  assert [len(parts[s]) for s in cdata.SPLITS] == [800, 100, 100]
  assert [int(labels[parts[s]].sum()) for s in cdata.SPLITS] == [80, 10, 10]
  every = np.concatenate(list(parts.values()))
  assert sorted(every) == list(range(1000))
  again = cdata.stratified_split(labels, (0.8, 0.1, 0.1))
  assert all(np.array_equal(parts[s], again[s]) for s in cdata.SPLITS)


# ------------------------------------------------------------------------------------------
# Builders on tiny files


def test_sst2_builder_tiny(iso):
  _write(iso / "d" / "sst2" / "train.tsv", SST_TRAIN)
  _write(iso / "d" / "sst2" / "dev.tsv", SST_DEV)
  b = cdata.make_classification_builder("sst2", data_dir=iso / "d")
  assert b.builder_config.name.startswith("custom-")   # not the canonical files
  d = cdata.load_classification("sst2", data_dir=iso / "d")
  assert [len(d[s]) for s in cdata.SPLITS] == [38, 2, 2]   # round(0.05 * 40) = 2 held out
  raw_texts, raw_labels = cdata.parse_sst2_tsv(SST_TRAIN)
  for s in ("train", "valid"):
    assert d[s].texts == [raw_texts[i] for i in d[s].index]
    np.testing.assert_array_equal(d[s].labels, raw_labels[d[s].index])
  assert sorted(np.concatenate([d["train"].index, d["valid"].index])) == list(range(40))
  np.testing.assert_array_equal(d["valid"].index, cdata.holdout_split(40, 0.05)[1])
  assert d["test"].texts == ["it 's a charming journey . ", "unflinchingly bleak "]


def test_sms_builder_tiny_and_unknown_name(iso):
  _write(iso / "d" / "SMSSpamCollection", SMS)   # directly in data.dir works too
  d = cdata.load_classification("sms_spam", data_dir=iso / "d")
  assert [len(d[s]) for s in cdata.SPLITS] == [40, 5, 5]
  assert [int(d[s].labels.sum()) for s in cdata.SPLITS] == [8, 1, 1]   # 10 spam, stratified
  raw_texts, _ = cdata.parse_sms(SMS)
  assert all(d[s].texts == [raw_texts[i] for i in d[s].index] for s in cdata.SPLITS)
  with pytest.raises(DataError, match="unknown classification data set.*sst2, sms_spam"):
    cdata.load_classification("imdb")


def test_missing_files_message(iso):
  with pytest.raises(DataError, match=r"sst2 file train.tsv not found .*RNNLM_NO_DOWNLOAD"):
    cdata.load_classification("sst2")


# ------------------------------------------------------------------------------------------
# Downloads: a zip served from a file:// URL stands in for GLUE's / UCI's


def _zip(path, members: dict[str, str]):
  path.parent.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(path, "w") as zf:
    for name, text in members.items():
      zf.writestr(name, text)
  return path


def _patch_sources(monkeypatch, dataset, specs, url):
  monkeypatch.setitem(cdata.RAW_FILES, dataset, specs)
  monkeypatch.setitem(cdata._ZIP_URLS, dataset, (url,))
  for role in specs:
    monkeypatch.setitem(cdata.DOWNLOADS, (dataset, role), cdata.download_sources(dataset, role))


def test_download_zip_once_for_both_sst2_files(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  z = _zip(iso / "remote" / "SST-2.zip", {"SST-2/train.tsv": SST_TRAIN, "SST-2/dev.tsv": SST_DEV,
                                          "SST-2/test.tsv": "index\tsentence\n"})
  _patch_sources(monkeypatch, "sst2", {
      "train": cdata.RawSpec("train.tsv", _sha(SST_TRAIN), "SST-2/train.tsv"),
      "dev": cdata.RawSpec("dev.tsv", _sha(SST_DEV), "SST-2/dev.tsv")}, z.as_uri())
  path = cdata.resolve_file("sst2", "train")
  assert path == iso / "cache" / "sst2" / "train.tsv" and path.read_text() == SST_TRAIN
  assert sorted(p.name for p in path.parent.iterdir()) == ["dev.tsv", "train.tsv"]
  z.unlink()   # dev.tsv came with the same download
  assert cdata.resolve_file("sst2", "dev").read_text() == SST_DEV
  assert [len(d) for d in cdata.load_classification("sst2").values()] == [38, 2, 2]


def test_download_checksum_mismatch_and_bad_zip(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  z = _zip(iso / "remote" / "sms.zip", {"SMSSpamCollection": SMS, "readme": "x"})
  _patch_sources(monkeypatch, "sms_spam", {
      "all": cdata.RawSpec("SMSSpamCollection", "0" * 64, "SMSSpamCollection")}, z.as_uri())
  with pytest.raises(DataError, match="checksum mismatch for sms_spam file SMSSpamCollection"):
    cdata.resolve_file("sms_spam", "all")
  assert not [p for p in (iso / "cache").rglob("*") if p.is_file()]
  _patch_sources(monkeypatch, "sms_spam", {
      "all": cdata.RawSpec("SMSSpamCollection", _sha(SMS), "other/name")}, z.as_uri())
  with pytest.raises(DataError, match="the zip has no member other/name"):
    cdata.resolve_file("sms_spam", "all")
  junk = iso / "remote" / "junk.zip"
  junk.write_bytes(b"not a zip")
  _patch_sources(monkeypatch, "sms_spam", {
      "all": cdata.RawSpec("SMSSpamCollection", _sha(SMS), "SMSSpamCollection")}, junk.as_uri())
  with pytest.raises(DataError, match="not a valid zip"):
    cdata.resolve_file("sms_spam", "all")
  _patch_sources(monkeypatch, "sms_spam", {
      "all": cdata.RawSpec("SMSSpamCollection", _sha(SMS), "SMSSpamCollection")}, z.as_uri())
  assert cdata.resolve_file("sms_spam", "all").read_text() == SMS


def test_download_table():
  assert cdata.DOWNLOADS[("sst2", "train")][0].url == "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
  assert all("archive.ics.uci.edu" in s.url for s in cdata.DOWNLOADS[("sms_spam", "all")])
  for (d, r), srcs in cdata.DOWNLOADS.items():
    assert all(s.sha256 == cdata.RAW_FILES[d][r].sha256 and s.convert for s in srcs)


# ------------------------------------------------------------------------------------------
# Tokens, vocabulary, ids


def test_tokenize_vocab_encode():
  assert cdata.tokenize("It's £5!  Call NOW") == ["it's", "£", "5", "!", "call", "now"]
  assert cdata.tokenize("it 's a charming-ish film . ") == ["it", "'s", "a", "charming", "-",
                                                             "ish", "film", "."]
  assert cdata.tokenize("Mixed Case", lowercase=False) == ["Mixed", "Case"]
  v = cdata.build_vocab([["b", "a", "b"], ["c", "b", "a"]], min_count=2)
  assert v.tokens == ["<pad>", "<unk>", "b", "a"]
  ids, unknown, cut = cdata.encode_texts([["a", "zz", "b"], [], ["b"] * 5], v, max_length=3)
  assert [x.tolist() for x in ids] == [[3, 1, 2], [1], [2, 2, 2]]
  assert (unknown, cut) == (1, 1)
  with pytest.raises(DataError, match="min_count must be >= 1"):
    cdata.build_vocab([["a"]], min_count=0)


# ------------------------------------------------------------------------------------------
# The real files (shared/data), when present


def _need(dataset, role):
  spec = cdata.RAW_FILES[dataset][role]
  if sources.find_local_file(dataset, spec.filename)[0] is None:
    pytest.skip(f"{dataset}/{spec.filename} not found in RNNLM_DATA_DIR, the shared/data "
                "mirror beside the repository or the download cache")


@pytest.fixture(scope="module")
def real_tfds(tmp_path_factory):
  mp = pytest.MonkeyPatch()
  mp.setenv(sources.ENV_NO_DOWNLOAD, "1")
  yield tmp_path_factory.mktemp("tfds_cls")
  mp.undo()


@pytest.mark.slow  # the default run took 10 min on an AVX2 host (2026-12-07); .ci/run runs it
def test_real_sst2_splits(real_tfds):
  _need("sst2", "train")
  b = cdata.make_classification_builder("sst2", tfds_dir=real_tfds)
  assert b.builder_config.name == "canonical"
  d = cdata.load_classification("sst2", tfds_dir=real_tfds)
  assert [len(d[s]) for s in cdata.SPLITS] == [63_982, 3_367, 872]   # 67,349 = 63,982 + 3,367
  assert int(d["test"].labels.sum()) == 444                          # SOURCES.md: dev 444 pos.
  assert (int(d["train"].labels.sum()) + int(d["valid"].labels.sum())) == 37_569
  assert d["valid"].index[0] == 0 and d["valid"].texts[0] == (
      "hide new secretions from the parental units ")   # the seeded hold-out took row 0
  assert d["train"].texts[0] == "contains no wit , only labored gags "


def test_real_sms_splits(real_tfds):
  _need("sms_spam", "all")
  d = cdata.load_classification("sms_spam", tfds_dir=real_tfds)
  assert [len(d[s]) for s in cdata.SPLITS] == [4_460, 556, 558]
  assert [int(d[s].labels.sum()) for s in cdata.SPLITS] == [598, 74, 75]   # 747 spam
