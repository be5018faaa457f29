"""TFDS builders for the language-model corpora (array_record files, read with as_data_source).

Every builder stores one example per line of the raw text, ``{"text": tfds.features.Text()}``
(read back as UTF-8 ``bytes``), with the line's newline kept, in file order (shuffling is
disabled), so that the concatenation of a split's examples is exactly the split's raw text.
Tokenization happens after reading (``rnnlm_jax.data.lm``), not in the builders.

Builders, with their TFDS names and splits:

* ``Ptb`` ("ptb"): ``ptb.{train,valid,test}.txt`` (Mikolov's PTB, word level).
* ``PtbChar`` ("ptb_char"): ``ptb.char.{train,valid,test}.txt`` (Mikolov's PTB, characters
  separated by spaces, ``_`` = word boundary).
* ``Wikitext2`` ("wikitext2"): ``{train,valid,test}.txt`` (WikiText-2 v1 tokenized, as in
  pytorch/examples).
* ``TinyShakespeare`` ("tiny_shakespeare"): ``input.txt``. It has no official split: we use
  a contiguous 90/5/5 split by characters, each cut moved forward to the next line start
  (train = the first ~90% of the characters, valid = the next ~5%, test = the rest).
* ``TextFile`` ("text_file"): any UTF-8 file given by path, split contiguously by the ratios
  (default 0.8/0.1/0.1) of its characters; for ``level="word"`` each cut is moved forward to
  the next line start, for ``level="char"`` the cut is exact.

Raw files are found by ``sources.resolve_raw_file`` (data.dir, RNNLM_DATA_DIR, local mirror,
verified download); TFDS's download manager is not used.

Config names make stale caches impossible: for the named corpora the config is
``canonical`` when the raw files have the canonical sha256 (SOURCES.md), otherwise
``custom-<hash of the contents>``; for ``text_file`` it is
``<level>-<r_train>-<r_valid>-<r_test>-<content sha256[:16]>``. Prepared data goes to
``<tfds_dir>/<name>/<config>/<version>/`` where ``tfds_dir`` is ``data.tfds_dir``,
``$RNNLM_TFDS_DIR`` or ``~/.cache/rnnlm_jax/tfds``.

Preparation is safe under concurrency and interruption: it runs under an exclusive file
lock per (dataset, config), TFDS writes into a temporary ``incomplete.*`` directory that is
renamed into place when complete, and leftovers of an interrupted run are removed under the
lock before the next attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import logging
import os
import pathlib
import shutil
import time
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from rnnlm_jax.data import sources
from rnnlm_jax.data.errors import DataError

log = logging.getLogger(__name__)

ENV_TFDS_DIR = "RNNLM_TFDS_DIR"
DEFAULT_TFDS_DIR = "~/.cache/rnnlm_jax/tfds"
SPLITS = ("train", "valid", "test")
CANONICAL = "canonical"
BuilderT = TypeVar("BuilderT", bound=tfds.core.GeneratorBasedBuilder)  # Any of our builders.


class _DropCustomConfigWarning(logging.Filter):
  """Our configs are built at run time by design; TFDS warns about that on every load."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Using custom data configuration")


logging.getLogger("absl").addFilter(_DropCustomConfigWarning())


def resolve_tfds_dir(tfds_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Where prepared datasets live: ``tfds_dir`` or ``$RNNLM_TFDS_DIR`` or the default."""
  if tfds_dir is not None and str(tfds_dir).strip():
    return pathlib.Path(tfds_dir).expanduser()
  env = os.environ.get(ENV_TFDS_DIR, "").strip()
  return pathlib.Path(env or DEFAULT_TFDS_DIR).expanduser()


# ------------------------------------------------------------------------------------------
# Text helpers


def split_lines(text: str) -> list[str]:
  """Lines of ``text`` split after each ``"\\n"`` only, newlines kept (``"".join`` inverts)."""
  lines = text.split("\n")
  last = lines.pop()
  out = [line + "\n" for line in lines]
  if last:
    out.append(last)
  return out


def _next_line_start(text: str, pos: int) -> int:
  """The first line start at or after ``pos`` (``len(text)`` if none)."""
  if pos <= 0:
    return 0
  if pos >= len(text):
    return len(text)
  if text[pos - 1] == "\n":
    return pos
  nl = text.find("\n", pos)
  return len(text) if nl < 0 else nl + 1


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
  """Validates (train, valid, test) split ratios: three positive numbers summing to 1."""
  try:
    r = tuple(float(x) for x in ratios)
  except (TypeError, ValueError):
    r = ()
  if len(r) != 3 or min(r) <= 0 or abs(sum(r) - 1.0) > 1e-6:
    raise DataError(f"data.split={tuple(ratios) if ratios is not None else None} is not valid; "
                    "give three positive (train, valid, test) ratios summing to 1, e.g. "
                    "(0.8, 0.1, 0.1).")
  return r  # type: ignore[return-value]


def ratio_cuts(text: str, ratios: Sequence[float], on_lines: bool
               ) -> dict[str, tuple[int, int]]:
  """Character ranges ``{split: (start, end)}`` of a contiguous split by ratios.

  The cuts are at ``round(r_train * N)`` and ``round((r_train + r_valid) * N)`` characters,
  moved forward to the next line start when ``on_lines``.
  """
  r = check_ratios(ratios)
  n = len(text)
  a, b = round(r[0] * n), round((r[0] + r[1]) * n)
  if on_lines:
    a, b = _next_line_start(text, a), _next_line_start(text, b)
  return {"train": (0, a), "valid": (a, b), "test": (b, n)}


def _fmt_ratio(r: float) -> str:
  return f"{r:g}"


# ------------------------------------------------------------------------------------------
# Builders


@dataclasses.dataclass(frozen=True)
class SplitSource:
  """Where a split's text comes from: ``read_text(path)[start:end]``."""
  path: str
  start: int = 0
  end: int | None = None


class LineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base: one example per line of raw text, ``{"text": Text()}``, file order kept.

  Construct through ``make_builder`` (which resolves the raw files and the config name);
  the constructor takes the ready config and the per-split sources.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One example per raw line (newline kept), unshuffled."}
  LEVEL = "word"       # "word" or "char"
  TOKENIZER = "word"   # see rnnlm_jax.data.lm.TOKENIZERS
  DESCRIPTION = ""
  HOMEPAGE = ""
  CITATION = ""

  def __init__(self, *, config: tfds.core.BuilderConfig, data_dir: str | os.PathLike,
               split_sources: Mapping[str, SplitSource] | None = None, version=None,
               file_format: str = "array_record"):
    self._split_sources = dict(split_sources or {})
    super().__init__(data_dir=os.fspath(data_dir), config=config, version=version,
                     file_format=file_format)
    self._original_state.update(split_sources=self._split_sources, file_format=file_format)

  # TFDS's own code_path probes `importlib_resources` (not a dependency here) for builders
  # defined in packages; the plain file path is all it is used for (looking up checksums.tsv).
  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path | None:
    try:
      return epath.Path(inspect.getfile(cls))
    except (TypeError, OSError):
      return None

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        homepage=self.HOMEPAGE or None,
        citation=self.CITATION or None,
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Raw files come from rnnlm_jax.data.sources.
    if set(self._split_sources) != set(SPLITS):
      raise DataError(f"{self.name}: raw files unknown for preparing {self.data_dir}; build it "
                      "with rnnlm_jax.data.builders.make_builder.")
    return {s: self._generate_examples(self._split_sources[s]) for s in SPLITS}

  def _generate_examples(self, source: SplitSource) -> Iterator[tuple[int, dict]]:
    text = sources.read_text(source.path)[source.start:source.end]
    for i, line in enumerate(split_lines(text)):
      yield i, {"text": line}

  # TFDS prints two bold lines around preparation; make_builder prints its own one line.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  @property
  def split_sources(self) -> dict[str, SplitSource]:
    """The raw text of each split (empty when built from an already prepared copy)."""
    return dict(self._split_sources)


class _ThreeFileBuilder(LineBuilder, skip_registration=True):
  FILES: dict[str, str] = {}


class Ptb(_ThreeFileBuilder, skip_registration=True):
  """Penn Treebank, word level (Mikolov's preprocessed 10k-vocabulary version)."""
  name = "ptb"
  LEVEL = "word"
  TOKENIZER = "word"
  FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
  DESCRIPTION = "Penn Treebank (Mikolov's preprocessing), one sentence per example."
  HOMEPAGE = "http://www.fit.vutbr.cz/~imikolov/rnnlm/"
  CITATION = "Marcus, Marcinkiewicz & Santorini (1993); Mikolov et al. (2010)."


class PtbChar(_ThreeFileBuilder, skip_registration=True):
  """Penn Treebank, character level (Mikolov's ptb.char.*: symbols separated by spaces)."""
  name = "ptb_char"
  LEVEL = "char"
  TOKENIZER = "ptb_char"
  FILES = {"train": "ptb.char.train.txt", "valid": "ptb.char.valid.txt",
           "test": "ptb.char.test.txt"}
  DESCRIPTION = "Penn Treebank characters (Mikolov), '_' marks word boundaries."
  HOMEPAGE = "http://www.fit.vutbr.cz/~imikolov/rnnlm/"
  CITATION = "Marcus, Marcinkiewicz & Santorini (1993); Mikolov et al. (2012)."


class Wikitext2(_ThreeFileBuilder, skip_registration=True):
  """WikiText-2 (v1, tokenized), files as in pytorch/examples word_language_model."""
  name = "wikitext2"
  LEVEL = "word"
  TOKENIZER = "word"
  FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
  DESCRIPTION = "WikiText-2 v1 (tokenized), one line per example."
  HOMEPAGE = ("https://www.salesforce.com/blog/"
              "the-wikitext-long-term-dependency-language-modeling-dataset/")
  CITATION = "Merity, Xiong, Bradbury & Socher (2016), Pointer Sentinel Mixture Models."


class TinyShakespeare(LineBuilder, skip_registration=True):
  """Tiny Shakespeare (Karpathy), characters; contiguous 90/5/5 split cut at line starts."""
  name = "tiny_shakespeare"
  LEVEL = "char"
  TOKENIZER = "char"
  FILE = "input.txt"
  RATIOS = (0.9, 0.05, 0.05)
  DESCRIPTION = ("Tiny Shakespeare (char-rnn). No official split: contiguous 90/5/5 by "
                 "characters, cuts moved to the next line start.")
  HOMEPAGE = "https://github.com/karpathy/char-rnn"
  CITATION = "Karpathy (2015), char-rnn."


class TextFile(LineBuilder, skip_registration=True):
  """Any UTF-8 text file, char or word level, contiguous split by ratios."""
  name = "text_file"
  DESCRIPTION = "A user text file split contiguously by ratios."

  def __init__(self, *, level: str = "char", **kwargs):
    self.LEVEL = self.TOKENIZER = level
    super().__init__(**kwargs)
    self._original_state.update(level=level)


BUILDERS: dict[str, type[LineBuilder]] = {
    b.name: b for b in (Ptb, PtbChar, Wikitext2, TinyShakespeare, TextFile)}


# ------------------------------------------------------------------------------------------
# Construction and preparation


def _digest(parts: Sequence[str]) -> str:
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _config(name: str, description: str) -> tfds.core.BuilderConfig:
  return tfds.core.BuilderConfig(name=name, description=description)


def _complete(data_dir: str | os.PathLike) -> bool:
  """Whether a prepared variant dir is complete (TFDS renames it into place when done).

  Used instead of ``builder.is_prepared()``, which logs a warning for a missing dir.
  """
  d = pathlib.Path(data_dir)
  return (d / "dataset_info.json").is_file() and (d / "features.json").is_file()


def _prepared(root: pathlib.Path, cls: type[LineBuilder], config_name: str) -> bool:
  return _complete(root / cls.name / config_name / str(cls.VERSION))


def _three_file_sources(cls: type[_ThreeFileBuilder], data_dir, root: pathlib.Path
                        ) -> tuple[str, dict[str, SplitSource], str]:
  found = {s: sources.find_local_file(cls.name, fn, data_dir)[0] for s, fn in cls.FILES.items()}
  if not any(found.values()) and _prepared(root, cls, CANONICAL):
    log.info("%s: raw files not found locally; using the prepared canonical copy", cls.name)
    return CANONICAL, {}, ""
  paths = {s: (p or sources.resolve_raw_file(cls.name, cls.FILES[s], data_dir))
           for s, p in found.items()}
  digests = {s: sources.file_sha256(p) for s, p in paths.items()}
  canonical = all(digests[s] == sources.SOURCES[(cls.name, fn)].sha256
                  for s, fn in cls.FILES.items())
  if canonical:
    config_name = CANONICAL
  else:
    config_name = "custom-" + _digest([digests[s] for s in SPLITS])
    log.warning("%s: raw files differ from the canonical ones (sha256 %s); preparing them as "
                "config %s", cls.name, ", ".join(f"{s}={d[:12]}" for s, d in digests.items()),
                config_name)
  desc = "; ".join(f"{s}: {paths[s]} sha256={digests[s]}" for s in SPLITS)
  return config_name, {s: SplitSource(str(p)) for s, p in paths.items()}, desc


def _check_cuts(what: str, cuts: Mapping[str, tuple[int, int]], text: str, words: bool,
                hint: str) -> None:
  for s, (a, b) in cuts.items():
    piece = text[a:b]
    if not (piece.strip() if words else piece):
      raise DataError(f"{what}: the {s} split is empty ({len(text)} characters, "
                      f"{text.count(chr(10))} newlines); {hint}")


def make_builder(name: str, *, data_dir: str | os.PathLike | None = None,
                 tfds_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                 level: str | None = None, split: Sequence[float] | None = None,
                 prepare: bool = True) -> LineBuilder:
  """Builder for a corpus, prepared (unless ``prepare=False``) and ready for as_data_source.

  Args:
    name: ptb | ptb_char | wikitext2 | tiny_shakespeare | text_file.
    data_dir: ``data.dir``: where to look first for raw files (see ``sources``).
    tfds_dir: ``data.tfds_dir``: where prepared datasets live (see ``resolve_tfds_dir``).
    path: text_file only: the UTF-8 file.
    level: text_file only: "char" or "word".
    split: text_file only: (train, valid, test) ratios, default (0.8, 0.1, 0.1).
    prepare: prepare the dataset if it is not prepared yet.

  Raises:
    DataError: unknown name, bad text_file arguments, missing/invalid raw files.
  """
  if name not in BUILDERS:
    raise DataError(f"unknown dataset data.name={name!r}; choose one of: "
                    f"{', '.join(BUILDERS)}.")
  cls = BUILDERS[name]
  root = resolve_tfds_dir(tfds_dir)
  extra: dict = {}
  if issubclass(cls, _ThreeFileBuilder):
    config_name, split_sources, desc = _three_file_sources(cls, data_dir, root)
  elif cls is TinyShakespeare:
    p = sources.find_local_file(cls.name, cls.FILE, data_dir)[0]
    if p is None and _prepared(root, cls, CANONICAL):
      config_name, split_sources, desc = CANONICAL, {}, ""
    else:
      p = p or sources.resolve_raw_file(cls.name, cls.FILE, data_dir)
      data = sources.read_bytes(p)
      sha = hashlib.sha256(data).hexdigest()
      config_name = (CANONICAL if sha == sources.SOURCES[(cls.name, cls.FILE)].sha256
                     else "custom-" + sha[:16])
      if not data:
        raise DataError(f"file {p} is empty; give a non-empty UTF-8 text corpus.")
      text = sources.decode_utf8(data, p)
      cuts = ratio_cuts(text, cls.RATIOS, on_lines=True)
      _check_cuts(f"tiny_shakespeare file {p}", cuts, text, True, "the file is too short.")
      split_sources = {s: SplitSource(str(p), a, b) for s, (a, b) in cuts.items()}
      desc = f"{p} sha256={sha}; 90/5/5 split at characters " + ", ".join(
          f"{s}=[{a}:{b}]" for s, (a, b) in cuts.items())
  else:  # TextFile
    if path is None or not str(path).strip():
      raise DataError("data.path is required for data.name=text_file; set it to a UTF-8 text "
                      "file.")
    level = level or "char"
    if level not in ("char", "word"):
      raise DataError(f"data.level={level!r} is not valid for text_file; use 'char' or 'word'.")
    ratios = check_ratios(split if split is not None else (0.8, 0.1, 0.1))
    p = pathlib.Path(path).expanduser()
    if not p.is_file():
      raise DataError(f"text file data.path={str(path)!r} not found; check the path.")
    text = sources.read_text(p)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cuts = ratio_cuts(text, ratios, on_lines=(level == "word"))
    _check_cuts(f"text_file {p}", cuts, text, level == "word",
                "use a longer file (more lines for level=word) or other data.split ratios.")
    config_name = f"{level}-{'-'.join(_fmt_ratio(r) for r in ratios)}-{sha[:16]}"
    split_sources = {s: SplitSource(str(p.resolve()), a, b) for s, (a, b) in cuts.items()}
    desc = f"{p.resolve()} sha256={sha}; {level} level; ratios {ratios}"
    extra = {"level": level}

  def construct() -> LineBuilder:
    return cls(config=_config(config_name, desc), data_dir=root, split_sources=split_sources,
               **extra)

  return construct_prepared(construct, root, prepare)


def construct_prepared(construct: Callable[[], BuilderT], root: pathlib.Path,
                       prepare: bool) -> BuilderT:
  """``construct()``, after preparing its dataset under ``root`` when ``prepare`` and not yet done.

  A builder reads its ``dataset_info.json`` when constructed. One constructed while another
  process was still preparing has read no splits, even if the data is complete a moment later;
  so the test is on the constructed builder's splits, and it is constructed again after
  ``_prepare`` (which returns at once when another process finished first).
  """
  builder = construct()
  if prepare and not builder.info.splits:
    _prepare(builder, root)
    builder = construct()  # Re-reads the prepared dataset_info.json.
  return builder


@contextlib.contextmanager
def _file_lock(path: pathlib.Path):
  path.parent.mkdir(parents=True, exist_ok=True)
  try:
    import fcntl  # pylint: disable=import-outside-toplevel
  except ImportError:  # Not POSIX: no locking (TFDS's rename still guards completeness).
    yield
    return
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _no_tfds_progress_bar():
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=import-outside-toplevel
  before = getattr(tqdm_utils, "_active", True)
  tfds.display_progress_bar(False)
  try:
    yield
  finally:
    tfds.display_progress_bar(before)


def _prepare(builder: LineBuilder, root: pathlib.Path) -> None:
  data_dir = pathlib.Path(builder.data_dir)
  config_dir = data_dir.parent
  with _file_lock(config_dir.parent / f".{config_dir.name}.lock"):
    if _complete(builder.data_dir):  # Another process finished it while we waited.
      return
    for stale in config_dir.glob("incomplete.*"):  # From an interrupted run.
      shutil.rmtree(stale, ignore_errors=True)
    srcs = sorted({s.path for s in builder.split_sources.values()})
    print(f"[rnnlm_jax.data] preparing {builder.name} ({builder.builder_config.name}) for first "
          f"use: {', '.join(srcs)} -> {data_dir}", flush=True)
    t0 = time.time()
    try:
      with _no_tfds_progress_bar():
        builder.download_and_prepare(
            download_dir=root / "downloads",
            download_config=tfds.download.DownloadConfig(try_download_gcs=False),
            file_format="array_record")
    except OSError:
      if not _complete(builder.data_dir):  # Unlocked: another process may have won the rename.
        raise
    log.info("prepared %s in %.1f s", data_dir, time.time() - t0)


def read_split_lines(builder: LineBuilder, split: str) -> list[str]:
  """All examples of a prepared split, in order, as ``str`` lines (newlines kept).

  Reads ``as_data_source(split)``. As TFDS's generic per-example decoding costs ~40 us per
  line, the records are read as raw bytes and their ``text`` field taken from the
  ``tf.train.Example`` proto directly; the first and last records are checked against
  TFDS's own decoding, and any difference falls back to it.
  """
  ds = builder.as_data_source(split=split)
  n = len(ds)
  if n == 0:
    return []
  keys = list(range(n))
  try:
    from tensorflow_datasets.core import decode  # pylint: disable=import-outside-toplevel
    from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=import-outside-toplevel
    raw = builder.as_data_source(split=split,
                                 deserialize_method=decode.DeserializeMethod.RAW_BYTES)
    parse = tf_example_pb2.Example.FromString
    texts = [parse(r).features.feature["text"].bytes_list.value[0]
             for r in raw.__getitems__(keys)]
    if len(texts) == n and all(texts[i] == ds[i]["text"] for i in {0, n - 1}):
      return [t.decode("utf-8") for t in texts]
    log.warning("%s/%s: fast record decoding disagrees with TFDS; using TFDS decoding",
                builder.name, split)
  except Exception as e:  # pylint: disable=broad-except
    log.warning("%s/%s: fast record decoding failed (%s); using TFDS decoding",
                builder.name, split, e)
  return [r["text"].decode("utf-8") for r in ds.__getitems__(keys)]
