"""Successive halving against the full grid on a real sweep (issue 22, item 1's "must show").

A model-selection grid on tiny-shakespeare characters: a 1-layer LSTM, hidden size x Adam
learning rate, 2 seeds per point, up to 900 updates (about 2.9 epochs of 313 windows of
32 x 100 characters). Run it twice, into two directories, and compare:

    rnnlm-sweep --config experiments/search/char_grid.py --workdir ~/rnnlm_runs/search/full
    rnnlm-sweep --config experiments/search/char_grid.py --workdir ~/rnnlm_runs/search/halving \
        --search=halving --eta 3 --min_budget 100
    rnnlm-report ~/rnnlm_runs/search/full --select valid
    rnnlm-report ~/rnnlm_runs/search/halving --select valid

The full grid trains all 9 x 2 runs for 900 updates; halving trains all of them 100 updates,
the best third of the (hidden, lr) groups (judged on validation by the mean of their 2 seeds)
300, the best third of those 900. The question: does halving pick the full grid's winner, and
how much wall time does it save? Everything else is configs/shakespeare_char.py's (bptt 100,
batch 32, U[-0.08, 0.08], clip 5, per-character mean loss), with no dropout (1 layer).
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep


def get_config():
  c = import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "shakespeare_char.py"
                  ).get_config()
  c.model.num_layers = 1  # one layer: the grid varies its width
  c.model.dropout = 0.0  # no between-layer dropout with one layer
  c.train.num_epochs = 3  # enough epochs for the budget below
  c.train.max_steps = 900  # the full budget (halving's last rung: 100, 300, 900)
  c.train.log_every = 50  # train events every 50 updates
  c.train.checkpoint_every_steps = 100  # a resume point per first-rung budget
  c.train.checkpoint_keep = 1  # latest checkpoint (plus the best-valid one)
  c.train.progress_bar = False  # logs, not bars (background runs)
  return c


def get_sweep():
  return product(
      sweep("model.hidden_size", [64, 128, 256]),  # widths 2x apart
      sweep("optim.learning_rate", [5e-4, 2e-3, 8e-3]),  # 4x apart around char-rnn's 2e-3
      sweep("seed", [0, 1]),  # 2 seeds per (hidden, lr) group
  )
