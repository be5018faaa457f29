"""Hidden sizes that give the min cells the parameter count of their GRU / LSTM baselines.

    python experiments/min_cells/param_counts.py

Counts every parameter of the language model (embedding, recurrent layer, softmax) with
``lm.init_params`` under ``jax.eval_shape`` (shapes only), for the two settings of
``run.sh``: 1 layer, tiny-shakespeare characters (V = 65, E = 64, GRU/LSTM H = 128) and PTB
words (V = 10000, E = 128, H = 128). min_gru is matched to gru, min_lstm to lstm: the H whose
total is nearest.
"""

from __future__ import annotations

import math

import jax

from rnnlm_jax import config_base
from rnnlm_jax.models import lm

SETTINGS = {"shakespeare_char": (65, 64, 128), "ptb_word": (10000, 128, 128)}  # V, E, H
PAIRS = {"min_gru": "gru", "min_lstm": "lstm"}


def count(cell: str, vocab: int, embed: int, hidden: int) -> int:
  """Total parameters of a 1-layer LM (untied softmax)."""
  c = config_base.base_config()
  c.model.cell, c.model.num_layers = cell, 1
  c.model.embed_size, c.model.hidden_size = embed, hidden
  spec = lm.LMSpec.from_config(c.model, vocab)
  shapes = jax.eval_shape(lambda k: lm.init_params(k, spec), jax.random.key(0))
  return sum(math.prod(a.shape) for a in jax.tree.leaves(shapes))


def matched_hidden(cell: str, target: int, vocab: int, embed: int) -> int:
  """The H of ``cell`` whose parameter count is nearest ``target`` (counts grow with H)."""
  lo, hi = 1, 1
  while count(cell, vocab, embed, hi) < target:
    lo, hi = hi, hi * 2
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if count(cell, vocab, embed, mid) < target else (lo, mid)
  return min((lo, hi), key=lambda h: abs(count(cell, vocab, embed, h) - target))


def main() -> None:
  print("| setting | cell | H | parameters | vs baseline |")
  print("|---|---|---|---|---|")
  for name, (vocab, embed, hidden) in SETTINGS.items():
    for cell, base in PAIRS.items():
      target = count(base, vocab, embed, hidden)
      print(f"| {name} | {base} | {hidden} | {target:,} | |")
      h = matched_hidden(cell, target, vocab, embed)
      n = count(cell, vocab, embed, h)
      print(f"| {name} | {cell} | {h} | {n:,} | {100 * (n - target) / target:+.2f} % |")


if __name__ == "__main__":
  main()
