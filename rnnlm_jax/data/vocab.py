"""Token vocabulary: build from training tokens, encode/decode, save/load.

File format of ``vocab.txt``: UTF-8, one token per line, line ``i`` holding token id ``i``
written as a JSON string literal (``json.dumps(token, ensure_ascii=False)``), e.g.::

    "<eos>"
    "the"
    " "
    "\\n"

so that any character, including space, newline and quotes, round-trips exactly.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pathlib
from typing import Iterable, Sequence

import numpy as np

from rnnlm_jax.data.errors import DataError

log = logging.getLogger(__name__)

UNK = "<unk>"
EOS = "<eos>"


class Vocab:
  """A fixed list of tokens; token ``tokens[i]`` has id ``i``.

  Unknown tokens encode to the ``<unk>`` id when ``<unk>`` is in the vocabulary. When it is
  not, they are dropped: ``encode`` logs a warning with the count (and returns it if asked
  with ``return_num_dropped=True``).
  """

  def __init__(self, tokens: Iterable[str]):
    self.tokens: list[str] = list(tokens)
    self.index: dict[str, int] = {}
    for i, t in enumerate(self.tokens):
      if not isinstance(t, str) or not t:
        raise DataError(f"vocabulary entry {i} is {t!r}; tokens must be non-empty strings.")
      if t in self.index:
        raise DataError(f"vocabulary has the token {t!r} twice (ids {self.index[t]} and {i}); "
                        "tokens must be unique.")
      self.index[t] = i

  @classmethod
  def build(cls, train_tokens: Iterable[str], specials: Sequence[str] = ()) -> "Vocab":
    """Builds a vocabulary from training tokens only.

    Order: ``specials`` first (in the given order, ids ``0..len(specials)-1``, whether or
    not they occur in the data), then every other training token by descending frequency,
    ties broken by the token string. Deterministic.

    Args:
      train_tokens: the training token stream (e.g. words with ``<eos>`` per line).
      specials: tokens that must be in the vocabulary, e.g. ``("<eos>", "<unk>")``.
    """
    counts = collections.Counter(train_tokens)
    specials = list(dict.fromkeys(specials))
    special_set = set(specials)
    rest = sorted((t for t in counts if t not in special_set), key=lambda t: (-counts[t], t))
    return cls(specials + rest)

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: str) -> bool:
    return token in self.index

  def __eq__(self, other) -> bool:
    return isinstance(other, Vocab) and self.tokens == other.tokens

  def __repr__(self) -> str:
    head = ", ".join(repr(t) for t in self.tokens[:5])
    return f"Vocab(size={len(self)}, tokens=[{head}{', ...' if len(self) > 5 else ''}])"

  @property
  def unk_id(self) -> int | None:
    """Id of ``<unk>``, or None if the vocabulary has none."""
    return self.index.get(UNK)

  def encode(self, tokens: Iterable[str], *, return_num_dropped: bool = False):
    """Token ids of ``tokens``.

    Args:
      tokens: a sequence of tokens (for a char vocabulary a ``str`` works too).
      return_num_dropped: also return how many unknown tokens were dropped.

    Returns:
      int32 array ``[num_tokens]`` (unknown tokens -> ``<unk>``, or dropped if the vocab has
      no ``<unk>``); with ``return_num_dropped``, the tuple ``(ids, num_dropped)``.
    """
    index = self.index
    if not isinstance(tokens, (list, tuple, str)):
      tokens = list(tokens)
    unk = self.unk_id
    if unk is not None:
      ids = np.fromiter((index.get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))
      dropped = 0
    else:
      ids = np.fromiter((index.get(t, -1) for t in tokens), dtype=np.int32, count=len(tokens))
      keep = ids >= 0
      dropped = int(len(ids) - keep.sum())
      if dropped:
        unknown = sorted({t for t in tokens if t not in index})
        log.warning("dropped %d tokens not in the vocabulary (which has no %s): %s%s", dropped,
                    UNK, ", ".join(repr(t) for t in unknown[:10]),
                    " ..." if len(unknown) > 10 else "")
        ids = ids[keep]
    return (ids, dropped) if return_num_dropped else ids

  def decode(self, ids: Iterable[int]) -> list[str]:
    """Tokens of the ids ``[num_tokens]`` (any int array or iterable)."""
    n = len(self.tokens)
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
      if not 0 <= i < n:
        raise IndexError(f"token id {i} out of range for a vocabulary of {n}")
      out.append(self.tokens[i])
    return out

  def save(self, path: str | os.PathLike) -> None:
    """Writes ``vocab.txt`` (one JSON string per line; see the module doc), atomically."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
      for t in self.tokens:
        f.write(json.dumps(t, ensure_ascii=False) + "\n")
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str | os.PathLike) -> "Vocab":
    """Reads a file written by ``save``. Raises DataError on a malformed file."""
    path = pathlib.Path(path)
    try:
      lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
      raise DataError(f"cannot read vocabulary {path} ({e}).") from None
    if lines and lines[-1] == "":
      lines.pop()
    tokens = []
    for i, line in enumerate(lines):
      try:
        t = json.loads(line)
      except json.JSONDecodeError:
        t = None
      if not isinstance(t, str):
        raise DataError(f"vocabulary {path} line {i + 1} is not a JSON string ({line[:40]!r}); "
                        "the file must come from Vocab.save.")
      tokens.append(t)
    if not tokens:
      raise DataError(f"vocabulary {path} is empty; delete it or use a new --workdir.")
    return cls(tokens)
