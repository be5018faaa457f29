"""Content fingerprints of prepared data (a run's ``data_fingerprint()``, stored in the workdir).

A resumed run must train on the data it started with: each task's run describes its prepared
arrays by sha256 digests computed here, over bytes in a fixed dtype and byte order (so the
digest does not depend on the platform or on how the arrays happen to be stored), and the
vocabulary by the digest of its ``vocab.txt`` bytes (``sha256sum WORKDIR/vocab.txt`` gives
the same value).

:data:`FINGERPRINT_VERSION` names this hashing scheme; it changes whenever a digest would.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np

FINGERPRINT_VERSION = 1


def _update(h, array: np.ndarray, dtype: str) -> None:
  """Feed ``array`` to ``h`` as contiguous bytes of ``dtype`` (e.g. ``"<i4"``)."""
  h.update(np.ascontiguousarray(array, dtype=np.dtype(dtype)).tobytes())


def array_sha256(array: np.ndarray, dtype: str) -> str:
  """sha256 of ``array`` (any shape, C order) as bytes of ``dtype`` (e.g. ``"<i4"``: int32,
  little-endian); the shape is hashed first, so reshaping the same bytes changes the digest."""
  array = np.asarray(array)
  h = hashlib.sha256(json.dumps(list(array.shape)).encode())
  _update(h, array, dtype)
  return h.hexdigest()


def sequences_sha256(seqs: Sequence[np.ndarray], dtype: str,
                     labels: np.ndarray | None = None) -> str:
  """sha256 of a split of variable-length sequences ``[T_i, ...]``: their lengths (``<i8``),
  their concatenation (as ``dtype``) and, if given, the per-sequence ``labels [N]`` (``<i8``).
  The same sequences in another order, or cut at other boundaries, give another digest."""
  h = hashlib.sha256()
  _update(h, np.fromiter((len(s) for s in seqs), np.int64, len(seqs)), "<i8")
  if len(seqs):
    h.update(json.dumps(list(np.shape(seqs[0])[1:])).encode())
    _update(h, np.concatenate([np.asarray(s) for s in seqs]), dtype)
  if labels is not None:
    _update(h, labels, "<i8")
  return h.hexdigest()


def tokens_sha256(tokens: Sequence[str]) -> str:
  """sha256 of a vocabulary's ``vocab.txt`` bytes (one JSON string per line,
  :meth:`rnnlm_jax.data.vocab.Vocab.save`)."""
  text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tokens)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def batches_sha256(batches) -> str:
  """sha256 of an iterable of batches (dicts of numpy arrays): each array's key, dtype, shape
  and bytes, keys sorted (the fallback of padded tasks without their own fingerprint)."""
  h = hashlib.sha256()
  for batch in batches:
    for key in sorted(batch):
      a = np.ascontiguousarray(batch[key])
      h.update(json.dumps([key, a.dtype.str, list(a.shape)]).encode())
      h.update(a.tobytes())
  return h.hexdigest()
