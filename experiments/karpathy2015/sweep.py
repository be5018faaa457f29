"""Karpathy, Johnson & Fei-Fei 2015, Table 1 design: {RNN, LSTM, GRU} x {1, 2, 3} layers, char level,
hidden sizes chosen so that every model has about the same number of parameters.

    rnnlm-sweep --config experiments/karpathy2015/sweep.py --workdir runs/karpathy2015
    rnnlm-report runs/karpathy2015 --rows model.cell --cols model.num_layers --metric loss

On another text file (contiguous 80/10/10 split by characters, the ``text_file`` builder):

    rnnlm-sweep --config experiments/karpathy2015/sweep.py --workdir runs/karpathy2015_mine \\
        --config.data.path=/path/to/war_and_peace.txt

The metric is the test cross-entropy in nats per character (``loss`` of the final ``test``
event, scored with the best-validation checkpoint). The parameter budget is
``PARAM_BUDGET`` (one budget, where the paper had four; a hidden size per cell and depth is
found by :func:`matched_hidden_size`, counting the real parameter pytree for a 65-symbol
vocabulary). The default file is tiny-shakespeare (``../shared/data``, ``$RNNLM_DATA_DIR`` or
a download).
"""

from __future__ import annotations

import functools

import jax

from rnnlm_jax.config_base import base_config
from rnnlm_jax.models import lm
from rnnlm_jax.sweeps.spec import sweep

PARAM_BUDGET = 120_000  # parameters per model, embedding and softmax included
VOCAB_FOR_SIZING = 65  # tiny-shakespeare's alphabet; sizes are chosen once, for every file
EMBED = 32  # character embedding width (the paper fed one-hot vectors)
CELLS = ("rnn_tanh", "lstm", "gru")
LAYERS = (1, 2, 3)


def _default_text() -> str:
  from rnnlm_jax.data import sources
  return str(sources.resolve_raw_file("tiny_shakespeare", "input.txt", None))


def get_config():
  c = base_config()
  c.data.name = "text_file"  # any UTF-8 file given by path
  c.data.path = _default_text()  # default: tiny-shakespeare; override with --config.data.path
  c.data.level = "char"  # character-level model
  c.data.split = (0.8, 0.1, 0.1)  # contiguous train/valid/test, as in the paper
  c.data.bptt = 100  # unroll 100 characters (the paper's sequence length)
  c.model.embed_size = EMBED  # character embedding width
  c.model.dropout = 0.0  # no dropout (the grid compares architectures, not regularisers)
  c.model.init_scale = 0.08  # char-rnn's U[-0.08, 0.08]
  c.optim.name = "adam"  # Adam (the paper: RMSProp); same for every point
  c.optim.learning_rate = 2e-3  # char-rnn's default rate
  c.optim.loss_reduction = "mean"  # per-character mean cross-entropy
  c.optim.clip_mode = "global_norm"  # clip the global norm
  c.optim.clip_value = 5.0  # at 5 (char-rnn)
  c.train.batch_size = 32  # sequences per batch
  c.train.eval_batch_size = 32  # evaluation columns
  c.train.num_epochs = 4  # passes over the training split; the best-valid epoch is tested
  c.train.log_every = 100  # a train event every 100 updates
  c.train.checkpoint_every_steps = 200  # resume points
  c.train.progress_bar = False  # log lines only (sweeps run in the background)
  return c


@functools.lru_cache(maxsize=None)
def num_params(cell: str, num_layers: int, hidden: int, vocab: int = VOCAB_FOR_SIZING) -> int:
  """Parameters of the LM (embedding, layers, softmax) for these sizes, counted from its pytree."""
  model = base_config().model
  model.cell, model.num_layers, model.hidden_size, model.embed_size = (
      cell, num_layers, hidden, EMBED)
  spec = lm.LMSpec.from_config(model, vocab)
  shapes = jax.eval_shape(lambda k: lm.init_params(k, spec), jax.random.PRNGKey(0))
  return sum(x.size for x in jax.tree.leaves(shapes))


def matched_hidden_size(cell: str, num_layers: int, budget: int = PARAM_BUDGET) -> int:
  """The hidden size whose parameter count is closest to ``budget`` (counts grow with it)."""
  lo, hi = 1, 4096  # bisect for the smallest size at or over the budget
  while lo < hi:
    mid = (lo + hi) // 2
    lo, hi = (mid + 1, hi) if num_params(cell, num_layers, mid) < budget else (lo, mid)
  return min((lo - 1, lo), key=lambda h: abs(num_params(cell, num_layers, h) - budget))


def get_sweep():
  points = []
  for cell in CELLS:
    for layers in LAYERS:
      points.append({"model.cell": cell, "model.num_layers": layers,
                     "model.hidden_size": matched_hidden_size(cell, layers)})
  return points
