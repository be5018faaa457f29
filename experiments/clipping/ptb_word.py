"""The clipping atlas on PTB words (issue 21): clipping setting x learning rate x seed, per cell.

One successive-halving search per cell, each in its own directory (so each cell's best points
are promoted among that cell's points, not against the other cells'):

    for cell in rnn_tanh lstm gru; do
      rnnlm-sweep --config experiments/clipping/ptb_word.py --config.model.cell=$cell \
          --workdir ~/rnnlm_runs/atlas/ptb_word/cell=$cell --search=halving --eta 3 \
          --min_budget 258
    done

Base: Zaremba et al.'s small shapes (configs/ptb_small.py: 2x200, unroll 20, batch 20,
U[-0.1, 0.1], SGD, loss summed over time), at a constant learning rate, for at most one epoch
(2,322 = 9 x 258 of its 2,323 updates). Every point trains 258 updates (1/9 epoch, rung 0:
the heatmaps' budget); the best third of the (lr, clip) groups of a cell, judged on validation
by the mean of their 2 seeds, go on to 774 updates, the best third of those to 2,322.

Thresholds: global-norm clipping at 1, 5, 25 and 125. Measured pre-clip norms at lr 1 with
clip 5 on this model (experiments/remedies/records) are ~7-9 (LSTM, GRU; 10th-90th
percentile) and ~70-100 (tanh RNN); unclipped at lr 1 they reach 30-15,000
(experiments/clipping/README.md), so the ladder runs from "fires on every update" to "fires
only on spikes". value: every gradient element clamped to [-0.01, 0.01] (the typical element of
a norm-10 gradient over ~4.6M parameters is ~0.005); per_layer_norm at 5 (Zaremba's threshold,
per parameter array); agc at ratio 0.05 (Brock et al. 2021 use 0.01-0.16).

Learning rates: one ladder for every cell (the heatmaps share their axes), 0.03 to 3. With the
summed-over-time loss, the tanh RNN unclipped already blows up at 0.1 (a first try of this file,
loss 63 nats after 258 updates), the gated cells at 1 (the probe): the ladder reaches below
the first and above the second.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep, zip_

UPDATES_PER_EPOCH = 2322  # 9 x 258: one update short of PTB's 2,323 windows of 20 x 20
CLIP_SETTINGS = [  # (optim.clip_mode, optim.clip_value)
    ("none", 0.0),
    ("global_norm", 1.0), ("global_norm", 5.0), ("global_norm", 25.0), ("global_norm", 125.0),
    ("value", 0.01),
    ("per_layer_norm", 5.0),
    ("agc", 0.05),
]


def get_config():
  c = import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "ptb_small.py"
                  ).get_config()
  c.optim.schedule = "constant"  # no decay: the question is the rate x clipping interaction
  c.optim.clip_value = 5.0  # per point below (none ignores it)
  c.train.num_epochs = 1  # one pass at most
  c.train.max_steps = UPDATES_PER_EPOCH  # the full budget (halving's last rung)
  c.train.eval_batch_size = 20  # 20 columns at evaluation (ptb_small uses 1: 20x slower)
  c.train.log_every = 43  # 6 train events (grad-norm percentiles) per 258-update rung
  c.train.checkpoint_every_steps = 258  # a resume point per first-rung budget
  c.train.checkpoint_keep = 1  # latest checkpoint (plus the best-valid one)
  c.train.progress_bar = False  # logs, not bars (background runs)
  return c


def atlas_sweep(learning_rates, clip_settings, seeds=(0, 1)):
  """The atlas's grid (shared with shakespeare_char.py): learning rate x clipping setting
  ``(optim.clip_mode, optim.clip_value)`` x seed, the seed varying fastest (a group's seeds
  side by side)."""
  return product(
      sweep("optim.learning_rate", learning_rates),
      zip_(sweep("optim.clip_mode", [m for m, _ in clip_settings]),
           sweep("optim.clip_value", [v for _, v in clip_settings])),
      sweep("seed", list(seeds)),  # 2 seeds per (lr, clip) group
  )


def get_sweep():
  return atlas_sweep([0.03, 0.1, 0.3, 1.0, 3.0], CLIP_SETTINGS)  # ~3x apart; 1 = Zaremba's
