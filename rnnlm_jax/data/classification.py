"""Text classification data: SST-2 (GLUE) and the SMS Spam Collection.

Splits (fixed and seeded, so every run sees the same examples; ``SPLIT_SEED``):

* ``sst2`` (GLUE's binary Stanford Sentiment Treebank; labels 0 = negative, 1 = positive):
  ``train`` = GLUE train minus a seeded 5 % (``SST2_VALID_FRACTION``) held out as ``valid``
  for model selection; ``test`` = GLUE dev (872 sentences), as is customary, since GLUE's own
  test labels are hidden. GLUE's train set holds every labelled phrase of the treebank's
  training trees (short, overlapping), dev holds whole sentences.
* ``sms_spam`` (UCI SMS Spam Collection v.1; 0 = ham, 1 = spam): no official split; a
  seeded, stratified 80/10/10 split (``SMS_RATIOS``): each class is shuffled on its own and
  cut at ``round(0.8 n_c)`` and ``round(0.9 n_c)``, so every split has the file's class mix.

Raw files (``shared/data/SOURCES.md`` section 6) are found like the language-model corpora
(``sources.resolve_raw_file``): ``data.dir``, ``$RNNLM_DATA_DIR``, the ``shared/data`` mirror
beside the repository, the download cache, else a download, verified by sha256::

    sst2/train.tsv  sst2/dev.tsv        (GLUE's SST-2.zip: SST-2/train.tsv, SST-2/dev.tsv)
    sms_spam/SMSSpamCollection          (UCI's zip: SMSSpamCollection)

The zips are fetched from the canonical URLs (``DOWNLOADS``) and the members extracted; the
checksums are those of the mirror's files (the canonical files as distributed; not checked
against a fresh download here, which has no network: a difference fails the sha256 check
with a clear message). One download of GLUE's zip stores both SST-2 files.

TFDS builders (``CLASSIFICATION_BUILDERS``) store one example per text, features ``text``
(UTF-8), ``label`` (ClassLabel) and ``index`` (the row of the raw file, 0-based, header not
counted), splits ``train``, ``valid``, ``test`` in raw-file order (no shuffling). The config is
``canonical`` when the raw files have the canonical sha256, else ``custom-<hash>``; prepared
data lives in ``<tfds_dir>/<name>/<config>/<version>/`` as for the other corpora.

After reading: ``tokenize`` (lowercase; runs of word characters and apostrophes, and every
other non-space character alone: GLUE's SST-2 is already tokenized, so it mostly splits on
spaces), ``build_vocab`` (``<pad>`` = 0, ``<unk>`` = 1, then by frequency) and
``encode_texts``. The classify task (:mod:`rnnlm_jax.tasks.classify`) builds the vocabulary
from the training split and batches the ids with :mod:`rnnlm_jax.data.padded`.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import pathlib
import re
import uuid
import zipfile
from typing import Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from rnnlm_jax.data import builders
from rnnlm_jax.data import sources
from rnnlm_jax.data.errors import DataError
from rnnlm_jax.data.vocab import UNK, Vocab

log = logging.getLogger(__name__)

SPLITS = builders.SPLITS            # ("train", "valid", "test")
SPLIT_SEED = 0                      # numpy default_rng seed of the held-out / stratified splits
SST2_VALID_FRACTION = 0.05          # of GLUE train, held out as valid
SMS_RATIOS = (0.8, 0.1, 0.1)        # stratified train / valid / test
PAD = "<pad>"
SPECIALS = (PAD, UNK)               # ids 0 and 1 of every classification vocabulary
PAD_ID, UNK_ID = 0, 1


@dataclasses.dataclass(frozen=True)
class RawSpec:
  """One raw file: its name in the data directory, canonical sha256 and zip member."""
  filename: str
  sha256: str
  member: str


_GLUE_SST2 = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
_UCI_SMS = ("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            "https://archive.ics.uci.edu/ml/machine-learning-databases/00228/"
            "smsspamcollection.zip")

# dataset -> {role: raw file}. Checksums from shared/data/SOURCES.md section 6.
RAW_FILES: dict[str, dict[str, RawSpec]] = {
    "sst2": {
        "train": RawSpec("train.tsv",
                         "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                         "SST-2/train.tsv"),
        "dev": RawSpec("dev.tsv",
                       "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
                       "SST-2/dev.tsv"),
    },
    "sms_spam": {
        "all": RawSpec("SMSSpamCollection",
                       "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
                       "SMSSpamCollection"),
    },
}
LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "sst2": ("negative", "positive"),
    "sms_spam": ("ham", "spam"),
}
_ZIP_URLS: dict[str, tuple[str, ...]] = {"sst2": (_GLUE_SST2,), "sms_spam": _UCI_SMS}


# ------------------------------------------------------------------------------------------
# Downloads: a zip, one member extracted (siblings listed in RAW_FILES stored on the way)


def zip_extractor(dataset: str, role: str):
  """A ``sources.RawFile.convert`` that extracts ``RAW_FILES[dataset][role]`` from a zip.

  The other files of the same data set in the zip are extracted too, each checked against
  its own sha256 and stored beside the converted file (the download cache) unless already
  there, so one download serves every file of the data set.
  """

  def convert(fetched: pathlib.Path, out: pathlib.Path) -> None:
    try:
      with zipfile.ZipFile(fetched) as zf:
        names = set(zf.namelist())
        spec = RAW_FILES[dataset][role]
        if spec.member not in names:
          raise DataError(f"the zip has no member {spec.member} (it has: "
                          f"{', '.join(sorted(names)[:8])}).")
        out.write_bytes(zf.read(spec.member))
        for other_role, other in RAW_FILES[dataset].items():
          final = out.parent / other.filename
          if other_role == role or other.member not in names or final.exists():
            continue
          data = zf.read(other.member)
          if hashlib.sha256(data).hexdigest() != other.sha256:
            log.warning("%s: %s in the zip does not have the canonical sha256; not stored",
                        dataset, other.member)
            continue
          tmp = out.parent / f".{other.filename}.{uuid.uuid4().hex[:8]}.part"
          tmp.write_bytes(data)
          os.replace(tmp, final)
    except zipfile.BadZipFile as e:
      raise DataError(f"not a valid zip file ({e}).") from None

  return convert


def download_sources(dataset: str, role: str) -> list[sources.RawFile]:
  """Where a raw file is downloaded from, in order of preference (zips, member extracted)."""
  spec = RAW_FILES[dataset][role]
  return [sources.RawFile(url, spec.sha256, convert=zip_extractor(dataset, role))
          for url in _ZIP_URLS[dataset]]


DOWNLOADS: dict[tuple[str, str], list[sources.RawFile]] = {
    (d, r): download_sources(d, r) for d, files in RAW_FILES.items() for r in files}


def resolve_file(dataset: str, role: str, data_dir: str | os.PathLike | None = None, *,
                 allow_download: bool = True) -> pathlib.Path:
  """Path of a raw file: local directories first, then a verified download."""
  spec = RAW_FILES[_check_name(dataset)][role]
  return sources.resolve_raw_file(dataset, spec.filename, data_dir,
                                  allow_download=allow_download,
                                  download_sources=DOWNLOADS[(dataset, role)])


# ------------------------------------------------------------------------------------------
# Parsing the raw files and splitting


def parse_sst2_tsv(text: str, where: str = "sst2 file") -> tuple[list[str], np.ndarray]:
  """GLUE SST-2 ``train.tsv`` / ``dev.tsv``: header ``sentence<TAB>label``, then one row each.

  Returns:
    ``(sentences, labels int32 [N])`` in file order; a sentence keeps its text (GLUE's
    trailing space included).

  Raises:
    DataError: another header (e.g. the unlabelled ``test.tsv``), a row without a tab, or a
      label other than 0/1 (the message gives the line number).
  """
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  if not lines or lines[0].rstrip("\r").split("\t") != ["sentence", "label"]:
    head = lines[0][:40] if lines else ""
    raise DataError(f"{where}: expected the header 'sentence<TAB>label' (got {head!r}); give "
                    "GLUE's SST-2 train.tsv or dev.tsv (test.tsv has no labels).")
  sentences, labels = [], []
  for i, line in enumerate(lines[1:], start=2):
    parts = line.rstrip("\r").rsplit("\t", 1)
    if len(parts) != 2 or parts[1] not in ("0", "1"):
      raise DataError(f"{where} line {i}: expected 'sentence<TAB>0|1', got {line[:60]!r}.")
    sentences.append(parts[0])
    labels.append(int(parts[1]))
  return sentences, np.asarray(labels, np.int32)


def parse_sms(text: str, where: str = "SMSSpamCollection") -> tuple[list[str], np.ndarray]:
  """The SMS Spam Collection: one message per line, ``ham|spam<TAB>text``.

  Returns:
    ``(messages, labels int32 [N])`` with 0 = ham, 1 = spam, in file order.

  Raises:
    DataError: a line without a tab or with another label (the message gives the line).
  """
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  messages, labels = [], []
  for i, line in enumerate(lines, start=1):
    parts = line.rstrip("\r").split("\t", 1)
    if len(parts) != 2 or parts[0] not in ("ham", "spam"):
      raise DataError(f"{where} line {i}: expected 'ham<TAB>text' or 'spam<TAB>text', got "
                      f"{line[:60]!r}.")
    messages.append(parts[1])
    labels.append(int(parts[0] == "spam"))
  if not messages:
    raise DataError(f"{where} holds no messages.")
  return messages, np.asarray(labels, np.int32)


def holdout_split(n: int, fraction: float, seed: int = SPLIT_SEED
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Seeded random hold-out: ``(keep, held_out)`` row indices, each ascending.

  ``round(fraction * n)`` rows (at least 1 when ``n > 1``), drawn by
  ``np.random.default_rng(seed).permutation(n)``, are held out.
  """
  if not 0 < fraction < 1:
    raise DataError(f"hold-out fraction must be in (0, 1), got {fraction}.")
  k = min(max(int(round(fraction * n)), 1 if n > 1 else 0), n - 1) if n else 0
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[k:]), np.sort(perm[:k])


def stratified_split(labels: np.ndarray, ratios: Sequence[float] = SMS_RATIOS,
                     seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
  """Seeded stratified split: ``{"train"|"valid"|"test": ascending row indices}``.

  Each class (ascending label) is permuted by one shared ``np.random.default_rng(seed)``
  and cut at ``round(r_train n_c)`` and ``round((r_train + r_valid) n_c)``.
  """
  r = builders.check_ratios(ratios)
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
  for c in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == c))
    a, b = int(round(r[0] * len(rows))), int(round((r[0] + r[1]) * len(rows)))
    for s, piece in zip(SPLITS, (rows[:a], rows[a:b], rows[b:])):
      parts[s].append(piece)
  return {s: np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64)
          for s, p in parts.items()}


def cv_fold_rows(labels: np.ndarray, folds: int, fold: int, seed: int = SPLIT_SEED
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Seeded stratified k-fold split of a training set: ``(train_rows, valid_rows)``, each
  ascending, ``valid_rows`` being fold ``fold`` of ``folds``.

  Each class (ascending label) is permuted by one shared ``np.random.default_rng(seed)`` and
  its rows dealt to the folds in turn (row ``j`` of the permutation to fold ``j mod folds``), so
  every fold has the class mix of the whole and the folds' sizes differ by at most one per
  class. The ``folds`` validation sets partition the rows.
  """
  if folds < 2 or not 0 <= fold < folds:
    raise DataError(f"cross-validation needs folds >= 2 and 0 <= fold < folds, got fold {fold} "
                    f"of {folds}")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  held = [rng.permutation(np.flatnonzero(labels == c))[fold::folds] for c in np.unique(labels)]
  valid = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
  return np.setdiff1d(np.arange(len(labels)), valid), valid


def subset(split: "TextSplit", rows: np.ndarray) -> "TextSplit":
  """The examples ``rows`` (ascending row numbers) of ``split``."""
  return TextSplit([split.texts[j] for j in rows], split.labels[rows], split.index[rows])


def split_rows(dataset: str, raw: Mapping[str, tuple[list[str], np.ndarray]]
               ) -> dict[str, tuple[str, np.ndarray]]:
  """``{split: (raw role, row indices)}``: which rows of which raw file form each split."""
  if dataset == "sst2":
    keep, held = holdout_split(len(raw["train"][0]), SST2_VALID_FRACTION)
    return {"train": ("train", keep), "valid": ("train", held),
            "test": ("dev", np.arange(len(raw["dev"][0])))}
  rows = stratified_split(raw["all"][1], SMS_RATIOS)
  return {s: ("all", rows[s]) for s in SPLITS}


def read_raw(dataset: str, paths: Mapping[str, str | os.PathLike]
             ) -> dict[str, tuple[list[str], np.ndarray]]:
  """``{role: (texts, labels)}`` of a data set's raw files."""
  parse = parse_sst2_tsv if dataset == "sst2" else parse_sms
  return {role: parse(sources.read_text(p), where=f"{dataset} file {p}")
          for role, p in paths.items()}


# ------------------------------------------------------------------------------------------
# Builders


class ClassificationBuilder(builders.LineBuilder, skip_registration=True):
  """Base: one example per text, ``{"text", "label", "index"}``, raw-file order per split.

  Construct through ``make_classification_builder``; ``split_sources`` map each split to the
  raw file it is cut from (the split rows are computed from all raw files at once).
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Seeded splits (seed 0): SST-2 5 % of train held out as valid, "
                            "GLUE dev as test; SMS stratified 80/10/10."}
  DATASET = ""

  def __init__(self, *, raw_paths: Mapping[str, str] | None = None, **kwargs):
    super().__init__(**kwargs)
    self._raw_paths = dict(raw_paths or {})
    self._original_state.update(raw_paths=self._raw_paths)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(LABEL_NAMES[self.DATASET])),
            "index": tfds.features.Scalar(dtype=np.int32),
        }),
        homepage=self.HOMEPAGE or None,
        citation=self.CITATION or None,
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Raw files come from rnnlm_jax.data.sources.
    if set(self._raw_paths) != set(RAW_FILES[self.DATASET]):
      raise DataError(f"{self.name}: raw files unknown for preparing {self.data_dir}; build it "
                      "with rnnlm_jax.data.classification.make_classification_builder.")
    raw = read_raw(self.DATASET, self._raw_paths)
    rows = split_rows(self.DATASET, raw)
    return {s: self._generate_examples((raw, rows[s])) for s in SPLITS}

  def _generate_examples(self, source) -> Iterator[tuple[int, dict]]:
    raw, (role, idx) = source
    texts, labels = raw[role]
    for i in idx.tolist():
      yield i, {"text": texts[i], "label": int(labels[i]), "index": np.int32(i)}


class Sst2(ClassificationBuilder, skip_registration=True):
  """GLUE SST-2: binary sentiment of movie-review phrases and sentences."""
  name = "sst2"
  DATASET = "sst2"
  DESCRIPTION = ("GLUE SST-2. train: GLUE train minus a seeded 5 % held out as valid; test: "
                 "GLUE dev.")
  HOMEPAGE = "https://gluebenchmark.com/"
  CITATION = ("Socher et al. (2013), Recursive Deep Models for Semantic Compositionality Over "
              "a Sentiment Treebank, EMNLP; Wang et al. (2018), GLUE.")


class SmsSpam(ClassificationBuilder, skip_registration=True):
  """The SMS Spam Collection v.1 (UCI): ham or spam."""
  name = "sms_spam"
  DATASET = "sms_spam"
  DESCRIPTION = "SMS Spam Collection v.1, seeded stratified 80/10/10 split."
  HOMEPAGE = "https://archive.ics.uci.edu/dataset/228/sms+spam+collection"
  CITATION = ("Almeida, Gomez Hidalgo & Yamakami (2011), Contributions to the Study of SMS "
              "Spam Filtering: New Collection and Results, DocEng.")


CLASSIFICATION_BUILDERS: dict[str, type[ClassificationBuilder]] = {
    b.name: b for b in (Sst2, SmsSpam)}
CLASSIFICATION_DATASETS = tuple(CLASSIFICATION_BUILDERS)


def _check_name(name: str) -> str:
  if name not in CLASSIFICATION_BUILDERS:
    raise DataError(f"unknown classification data set data.name={name!r}; choose one of: "
                    f"{', '.join(CLASSIFICATION_BUILDERS)}.")
  return name


def make_classification_builder(name: str, *, data_dir: str | os.PathLike | None = None,
                                tfds_dir: str | os.PathLike | None = None,
                                prepare: bool = True) -> ClassificationBuilder:
  """Builder for ``sst2`` or ``sms_spam``, prepared (unless ``prepare=False``).

  Raises:
    DataError: unknown name, raw files missing (with downloads failed or disabled) or
      malformed.
  """
  cls = CLASSIFICATION_BUILDERS[_check_name(name)]
  specs = RAW_FILES[name]
  root = builders.resolve_tfds_dir(tfds_dir)
  found = {r: sources.find_local_file(name, s.filename, data_dir)[0] for r, s in specs.items()}
  if not any(found.values()) and builders._prepared(root, cls, builders.CANONICAL):  # pylint: disable=protected-access
    log.info("%s: raw files not found locally; using the prepared canonical copy", name)
    config_name, raw_paths, desc = builders.CANONICAL, {}, ""
  else:
    paths = {r: (p or resolve_file(name, r, data_dir)) for r, p in found.items()}
    digests = {r: sources.file_sha256(p) for r, p in paths.items()}
    if all(digests[r] == specs[r].sha256 for r in specs):
      config_name = builders.CANONICAL
    else:
      config_name = "custom-" + builders._digest([digests[r] for r in sorted(specs)])  # pylint: disable=protected-access
      log.warning("%s: raw files differ from the canonical ones (sha256 %s); preparing them as "
                  "config %s", name, ", ".join(f"{r}={d[:12]}" for r, d in digests.items()),
                  config_name)
    raw_paths = {r: str(p) for r, p in paths.items()}
    desc = "; ".join(f"{r}: {paths[r]} sha256={digests[r]}" for r in sorted(specs))
  split_sources = {s: builders.SplitSource(p) for s, p in zip(
      SPLITS, [raw_paths.get(r, "") for r in (("train", "train", "dev") if name == "sst2"
                                               else ("all",) * 3)])} if raw_paths else {}

  def construct() -> ClassificationBuilder:
    return cls(config=builders._config(config_name, desc), data_dir=root,  # pylint: disable=protected-access
               split_sources=split_sources, raw_paths=raw_paths)

  return builders.construct_prepared(construct, root, prepare)


@dataclasses.dataclass
class TextSplit:
  """A split: ``texts`` (N strings), ``labels`` int32 [N], ``index`` int32 [N] (raw rows)."""
  texts: list[str]
  labels: np.ndarray
  index: np.ndarray

  def __len__(self) -> int:
    return len(self.texts)


def read_split(builder: ClassificationBuilder, split: str) -> TextSplit:
  """All examples of a prepared split, in raw-file order."""
  ds = builder.as_data_source(split=split)
  n = len(ds)
  exs = ds.__getitems__(list(range(n))) if n else []
  return TextSplit([e["text"].decode("utf-8") for e in exs],
                   np.asarray([int(e["label"]) for e in exs], np.int32),
                   np.asarray([int(e["index"]) for e in exs], np.int32))


def load_classification(name: str, data_dir: str | os.PathLike | None = None,
                        tfds_dir: str | os.PathLike | None = None) -> dict[str, TextSplit]:
  """``{"train"|"valid"|"test": TextSplit}`` of ``sst2`` or ``sms_spam`` (first use prepares)."""
  builder = make_classification_builder(name, data_dir=data_dir, tfds_dir=tfds_dir)
  return {s: read_split(builder, s) for s in SPLITS}


# ------------------------------------------------------------------------------------------
# Tokens, vocabulary, ids

_TOKEN_RE = re.compile(r"[\w']+|[^\w\s]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
  """Word tokens: runs of word characters and apostrophes; any other non-space character is a
  token of its own. ``"It's £5!"`` -> ``["it's", "£", "5", "!"]`` (lowercased by default)."""
  return _TOKEN_RE.findall(text.lower() if lowercase else text)


def build_vocab(token_lists: Sequence[Sequence[str]], min_count: int = 1) -> Vocab:
  """``<pad>`` (id 0), ``<unk>`` (id 1), then every token seen ``>= min_count`` times in
  ``token_lists`` (the training split), by descending count, ties by the token."""
  if min_count < 1:
    raise DataError(f"data.min_count must be >= 1, got {min_count}.")
  counts = collections.Counter(t for toks in token_lists for t in toks)
  kept = [t for t, c in counts.items() if c >= min_count and t not in SPECIALS]
  kept.sort(key=lambda t: (-counts[t], t))
  return Vocab(list(SPECIALS) + kept)


def encode_texts(token_lists: Sequence[Sequence[str]], vocab: Vocab, max_length: int = 0,
                 extra: Mapping[str, int] | None = None) -> tuple[list[np.ndarray], int, int]:
  """Token ids of each text: ``(ids, num_unknown, num_truncated)``.

  Unknown tokens map to ``<unk>``, or, if ``extra`` (``{token: j}``, tokens outside the
  vocabulary that have a pretrained vector ``j``) holds them, to ``len(vocab) + j``. An empty
  text becomes ``[<unk>]`` (every sequence has at least one step); with ``max_length > 0``
  longer texts keep their first ``max_length`` tokens. ``num_unknown`` counts ``<unk>``s.
  """
  if vocab.unk_id != UNK_ID or vocab.tokens[PAD_ID] != PAD:
    raise DataError(f"a classification vocabulary starts with {PAD}, {UNK}; got "
                    f"{vocab.tokens[:2]}.")
  index = vocab.index
  if extra:
    base = len(vocab)
    index = dict(index)
    for t, j in extra.items():
      index.setdefault(t, base + j)
  out, unknown, truncated = [], 0, 0
  for toks in token_lists:
    ids = np.fromiter((index.get(t, UNK_ID) for t in toks), np.int32, len(toks))
    unknown += int(np.sum(ids == UNK_ID))
    if max_length and len(ids) > max_length:
      ids, truncated = ids[:max_length], truncated + 1
    out.append(ids if len(ids) else np.asarray([UNK_ID], np.int32))
  return out, unknown, truncated
