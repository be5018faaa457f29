"""The PTB atlas's tanh RNN below its learning-rate ladder (issue 21): lr 0.003 and 0.01 x the
same 8 clipping settings x 2 seeds, 258 updates each (the first rung's budget).

    rnnlm-sweep --config experiments/clipping/ptb_word_low_lr.py --config.model.cell=rnn_tanh \
        --workdir ~/rnnlm_runs/atlas/ptb_word/cell=rnn_tanh_low_lr

Why: in ptb_word.py's ladder (0.03 to 3) the unclipped tanh RNN blows up at every rate (at
0.03 its two seeds end at 13,334 and ~1e18 perplexity after 258 updates), so "what does
clipping gain" has no unclipped reference for that cell. These two lower rates look for the
rate where it trains without clipping. A plain sweep, no halving: every point stops at 258
updates, the budget at which the atlas's heatmaps and tables compare all points, so
``rnnlm-report ~/rnnlm_runs/atlas/ptb_word --atlas`` and ``scripts/tables.py clipping`` take
its points in beside the tanh RNN's search (same cell, same budget; extra columns).
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file

_PTB_WORD = import_file(pathlib.Path(__file__).with_name("ptb_word.py"))


def get_config():
  c = _PTB_WORD.get_config()  # the atlas's base, unchanged but the budget
  c.train.max_steps = 258  # the first rung's budget: every point compared there
  return c


def get_sweep():
  return _PTB_WORD.atlas_sweep([0.003, 0.01], _PTB_WORD.CLIP_SETTINGS)
