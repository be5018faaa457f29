"""Language-model corpora as int32 token streams, and Zaremba-style batching.

Tokenization rules (``TOKENIZERS``), applied to the lines stored by the builders:

* ``word`` (ptb, wikitext2, text_file level=word): ``line.split() + ["<eos>"]`` for every
  line, empty lines included, as pytorch/examples ``word_language_model/data.py``.
  Vocabulary: ``<eos>``, ``<unk>`` first (``<unk>`` is always present), then the training
  words by descending frequency, then by string.
* ``ptb_char`` (ptb_char): the whitespace-separated symbols of each line (``_`` is the word
  boundary) plus ``<eos>``, for lines with at least one symbol only; whitespace-only lines,
  e.g. the " " after the final newline of Mikolov's files, give no tokens.
  Vocabulary: ``<eos>`` first, then the training symbols.
* ``char`` (tiny_shakespeare, text_file level=char): every character of the text, newlines
  and spaces included; no ``<eos>``. Vocabulary: the training characters.

For the char-level tokenizers ``<unk>`` is added (first) only when valid or test contain a
character absent from train. The vocabulary is built from the train split only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from rnnlm_jax.data import builders
from rnnlm_jax.data import sources
from rnnlm_jax.data.errors import DataError
from rnnlm_jax.data.vocab import EOS, UNK, Vocab

log = logging.getLogger(__name__)

SPLITS = builders.SPLITS
VOCAB_FILENAME = "vocab.txt"


def tokenize_word(lines: Iterable[str]) -> list[str]:
  """Words of each line plus ``<eos>`` per line (every line, empty ones too)."""
  out: list[str] = []
  for line in lines:
    out.extend(line.split())
    out.append(EOS)
  return out


def tokenize_ptb_char(lines: Iterable[str]) -> list[str]:
  """Whitespace-separated symbols plus ``<eos>``, for lines that have any symbol."""
  out: list[str] = []
  for line in lines:
    toks = line.split()
    if toks:
      out.extend(toks)
      out.append(EOS)
  return out


def tokenize_char(lines: Iterable[str]) -> list[str]:
  """Every character (newlines included) of the concatenated lines."""
  return list("".join(lines))


TOKENIZERS: dict[str, Callable[[Iterable[str]], list[str]]] = {
    "word": tokenize_word,
    "ptb_char": tokenize_ptb_char,
    "char": tokenize_char,
}


@dataclasses.dataclass
class LMCorpus:
  """A tokenized corpus: vocabulary and one int32 token-id stream per split.

  Attributes:
    vocab: the vocabulary (built from train).
    train, valid, test: int32 ``[num_tokens]`` id streams.
    level: "word" or "char" (report perplexity for word, bits per character for char).
    name: the dataset name (``data.name``).
    tokenizer: key of ``TOKENIZERS`` used; pass it to ``encode_text_file``.
  """
  vocab: Vocab
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  level: str
  name: str = ""
  tokenizer: str = ""

  def describe(self) -> str:
    """One line: name, level, vocabulary size, tokens per split."""
    return (f"{self.name or 'corpus'} ({self.level} level): vocab {len(self.vocab)}, tokens "
            f"train {len(self.train)}, valid {len(self.valid)}, test {len(self.test)}")


def _cfg(cfg: Any, key: str, default=None):
  if isinstance(cfg, dict):
    value = cfg.get(key, default)
  else:
    value = getattr(cfg, key, default)
  return default if value is None else value


def _specials(tokenizer: str, train: list[str], others: Sequence[list[str]]) -> tuple[str, ...]:
  if tokenizer == "word":
    return (EOS, UNK)
  specials: tuple[str, ...] = (EOS,) if tokenizer == "ptb_char" else ()
  seen = set(train)
  if any(t not in seen for toks in others for t in toks):
    specials = (UNK,) + specials
  return specials


def load_lm_corpus(data_config: Any, workdir: str | os.PathLike | None = None) -> LMCorpus:
  """Prepares (first time only), reads, tokenizes and encodes a corpus.

  Args:
    data_config: ConfigDict (or any object/dict) with ``name`` (ptb | ptb_char | wikitext2 |
      tiny_shakespeare | text_file) and optional ``dir``, ``tfds_dir``, and for text_file
      ``path``, ``level`` ("char" | "word"), ``split`` (three ratios).
    workdir: if given, the vocabulary is written to ``workdir/vocab.txt``; if that file
      exists it must equal the vocabulary built now.

  Returns:
    LMCorpus with int32 ``[num_tokens]`` streams for train, valid and test.

  Raises:
    DataError: unknown dataset, missing/invalid files, empty splits, or a workdir made with
      another vocabulary.
  """
  name = _cfg(data_config, "name")
  if not name:
    raise DataError(f"data.name is not set; choose one of: {', '.join(builders.BUILDERS)}.")
  t0 = time.time()
  builder = builders.make_builder(
      str(name), data_dir=_cfg(data_config, "dir") or None,
      tfds_dir=_cfg(data_config, "tfds_dir") or None, path=_cfg(data_config, "path") or None,
      level=_cfg(data_config, "level") or None, split=_cfg(data_config, "split"))
  tokenizer = builder.TOKENIZER
  tokens = {s: TOKENIZERS[tokenizer](builders.read_split_lines(builder, s)) for s in SPLITS}
  for s in SPLITS:
    if not tokens[s]:
      raise DataError(f"{name}: the {s} split has no tokens ({builder.data_dir}); check the "
                      "raw files.")
  vocab = Vocab.build(tokens["train"],
                      specials=_specials(tokenizer, tokens["train"],
                                         [tokens["valid"], tokens["test"]]))
  ids = {s: vocab.encode(tokens[s]) for s in SPLITS}
  if workdir is not None:
    check_or_write_vocab(vocab, workdir)
  corpus = LMCorpus(vocab=vocab, level=builder.LEVEL, name=str(name), tokenizer=tokenizer, **ids)
  log.info("loaded %s in %.1f s", corpus.describe(), time.time() - t0)
  return corpus


def check_or_write_vocab(vocab: Vocab, workdir: str | os.PathLike) -> pathlib.Path:
  """Writes ``workdir/vocab.txt``, or checks that the existing one equals ``vocab``.

  Raises:
    DataError: the existing file holds another vocabulary.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / VOCAB_FILENAME
  if path.exists():
    old = Vocab.load(path)
    if old != vocab:
      diff = next((i for i, (a, b) in enumerate(zip(old.tokens, vocab.tokens)) if a != b),
                  min(len(old), len(vocab)))
      raise DataError(f"workdir {workdir} was made with another vocabulary ({path}: size "
                      f"{len(old)}, now {len(vocab)}, first difference at id {diff}); use a "
                      "new --workdir.")
  else:
    vocab.save(path)
  return path


def encode_text_file(path: str | os.PathLike, vocab: Vocab, level: str) -> np.ndarray:
  """Encodes a user's UTF-8 text file with a corpus's vocabulary and tokenization.

  Args:
    path: the text file.
    vocab: the model's vocabulary.
    level: "word" (words + ``<eos>`` per line), "char" (every character) or "ptb_char"
      (space-separated symbols + ``<eos>`` per non-empty line); ``corpus.tokenizer`` gives
      the corpus's rule. ``"char"`` with a vocabulary holding ``<eos>`` (which only the
      ptb_char rule produces at char level) means ``"ptb_char"``, so ``corpus.level`` works
      too.

  Returns:
    int32 ``[num_tokens]``; unknown tokens map to ``<unk>`` (or are dropped with a warning if
    the vocabulary has no ``<unk>``).

  Raises:
    DataError: unknown level, missing/empty/non-UTF-8 file, or no known tokens.
  """
  if level not in TOKENIZERS:
    raise DataError(f"level={level!r} is not valid; use one of: {', '.join(TOKENIZERS)}.")
  if level == "char" and EOS in vocab:
    level = "ptb_char"
  p = pathlib.Path(path).expanduser()
  if not p.is_file():
    raise DataError(f"text file {str(path)!r} not found; check the path.")
  text = sources.read_text(p)
  ids, dropped = vocab.encode(TOKENIZERS[level](builders.split_lines(text)),
                              return_num_dropped=True)
  if len(ids) == 0:
    raise DataError(f"text file {p} has no tokens known to the vocabulary ({dropped} dropped); "
                    "check the file and the level.")
  return ids


# ------------------------------------------------------------------------------------------
# Batching (Zaremba et al. 2014; pytorch/examples word_language_model)


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """Cuts a token stream into ``batch_size`` contiguous rows.

  Args:
    ids: int ``[num_tokens]``.
    batch_size: number of rows B.

  Returns:
    ``[B, n]`` with ``n = num_tokens // B`` and row ``b = ids[b*n:(b+1)*n]``; the remainder
    ``num_tokens - B*n`` tokens are dropped.

  Raises:
    DataError: ``batch_size < 1`` or fewer than ``2*B`` tokens (each row needs an input
      and a target).
  """
  ids = np.asarray(ids)
  if ids.ndim != 1:
    raise DataError(f"batchify expects a 1-D token stream, got shape {ids.shape}.")
  if int(batch_size) < 1:
    raise DataError(f"batch_size={batch_size} must be at least 1.")
  n = len(ids) // batch_size
  if n < 2:
    raise DataError(f"the split has {len(ids)} tokens, too few for batch_size={batch_size} "
                    f"(need at least {2 * batch_size}); lower the batch size or use more data.")
  return ids[:batch_size * n].reshape(batch_size, n)


def _check_bptt(batched: np.ndarray, bptt: int) -> int:
  if int(bptt) < 1:
    raise DataError(f"bptt={bptt} must be at least 1.")
  if batched.ndim != 2:
    raise DataError(f"expected batched data [batch, n], got shape {batched.shape}.")
  return batched.shape[1]


def num_train_windows(batched: np.ndarray, bptt: int) -> int:
  """Number of full training windows: ``(n - 1) // bptt`` for ``batched`` of shape ``[B, n]``.

  Raises:
    DataError: no full window fits (``n < bptt + 1``).
  """
  n = _check_bptt(batched, bptt)
  k = (n - 1) // bptt
  if k < 1:
    raise DataError(f"the split gives {n} tokens per row at batch size {batched.shape[0]}, too "
                    f"few for bptt={bptt} (need at least {bptt + 1} per row, i.e. "
                    f"{(bptt + 1) * batched.shape[0]} tokens); lower bptt or the batch size.")
  return k


def get_window(batched: np.ndarray, i: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
  """Window ``i`` of a ``[B, n]`` batched stream.

  Returns:
    ``(x, y)``, each ``[B, bptt]``: ``x = batched[:, i*bptt:(i+1)*bptt]`` and ``y`` the next
    tokens, ``batched[:, i*bptt+1:(i+1)*bptt+1]``.

  Raises:
    IndexError: ``i`` outside ``[0, num_train_windows)``.
  """
  n = _check_bptt(batched, bptt)
  k = (n - 1) // bptt
  if not 0 <= i < k:
    raise IndexError(f"window {i} out of range: {k} full windows of bptt={bptt} in {n} columns")
  s = i * bptt
  return batched[:, s:s + bptt], batched[:, s + 1:s + bptt + 1]


def eval_windows(batched: np.ndarray, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Windows covering every one of the ``n - 1`` targets of a ``[B, n]`` stream once.

  Yields:
    ``(x, y)`` of shape ``[B, bptt]`` for the full windows, then (if ``(n-1) % bptt``) one
    final ``[B, (n-1) % bptt]`` window; ``y`` is ``x`` shifted by one token.
  """
  n = _check_bptt(batched, bptt)
  for s in range(0, n - 1, bptt):
    e = min(s + bptt, n - 1)
    yield batched[:, s:e], batched[:, s + 1:e + 1]
