"""The one exception type of the data layer."""

from __future__ import annotations


class DataError(ValueError):
  """Bad or missing input data.

  The message is one line that says what is wrong and how to fix it, e.g.::

    ptb file ptb.train.txt not found (looked in: /x/ptb, /x). Set data.dir, RNNLM_DATA_DIR, ...
  """
