"""The clipping atlas on tiny-shakespeare characters (issue 21): clipping setting x learning
rate x seed, per cell.

One successive-halving search per cell, each in its own directory (as for PTB words):

    for cell in rnn_tanh lstm gru; do
      rnnlm-sweep --config experiments/clipping/shakespeare_char.py --config.model.cell=$cell \
          --workdir ~/rnnlm_runs/atlas/shakespeare_char/cell=$cell --search=halving --eta 3 \
          --min_budget 104
    done

Base: configs/shakespeare_char.py (char-rnn style: 2x256, embedding 64, bptt 100, batch 32,
dropout 0.1, U[-0.08, 0.08], Adam, loss averaged per character) at a constant learning rate,
for at most one epoch (312 of its 313 updates). Every point trains 104 updates (1/3 epoch,
rung 0: the heatmaps' budget); the best third of the (lr, clip) groups of a cell, by the mean
validation loss of their 2 seeds, go on to 312.

Learning rates: Adam 1e-3 to 3e-2, ~3x apart (2e-3 is char-rnn's default); the largest is
beyond where the unclipped cells train well (the probe in README.md).

Thresholds, from the probe's pre-clip global norms (Adam 3e-3, no clipping, the first 104
updates; README.md "Probe: tiny-shakespeare"): the per-character mean loss makes them small
(interval medians 0.16-0.9, the largest single norm 5.6). Global norm at 0.1 (below every
cell's median: fires on every update), 0.3 (near the LSTM's and GRU's medians, below the tanh
RNN's), 1 (above every 90th percentile after the first dozen updates: spikes only) and 5
(char-rnn's default: hardly ever fires).
value: elements clamped to [-1e-3, 1e-3] (a norm-0.3 gradient over ~0.9M parameters has
elements ~3e-4); per_layer_norm at 0.3; agc at ratio 0.05, as on PTB.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file

UPDATES_PER_EPOCH = 312  # 3 x 104: one update short of tiny-shakespeare's 313 batches of 32 x 100
CLIP_SETTINGS = [  # (optim.clip_mode, optim.clip_value)
    ("none", 0.0),
    ("global_norm", 0.1), ("global_norm", 0.3), ("global_norm", 1.0), ("global_norm", 5.0),
    ("value", 1e-3),
    ("per_layer_norm", 0.3),
    ("agc", 0.05),
]


def get_config():
  c = import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" /
                  "shakespeare_char.py").get_config()
  c.optim.schedule = "constant"  # constant rate (as the base)
  c.optim.clip_value = 5.0  # per point below (none ignores it)
  c.train.num_epochs = 1  # one pass at most
  c.train.max_steps = UPDATES_PER_EPOCH  # the full budget (halving's last rung)
  c.train.log_every = 26  # 4 train events (grad-norm percentiles) per 104-update rung
  c.train.checkpoint_every_steps = 104  # a resume point per first-rung budget
  c.train.checkpoint_keep = 1  # latest checkpoint (plus the best-valid one)
  c.train.progress_bar = False  # logs, not bars (background runs)
  return c


def get_sweep():
  atlas = import_file(pathlib.Path(__file__).with_name("ptb_word.py"))
  return atlas.atlas_sweep([1e-3, 3e-3, 1e-2, 3e-2], CLIP_SETTINGS)  # ~3x apart; 2e-3 = char-rnn's
