"""Issue 8 ablation: each remedy alone on the Zaremba et al. 2014 small LSTM, and a combination.

PTB word level, configs/ptb_small.py (2x200 LSTM, bptt 20, batch 20, SGD lr 1, global-norm
clip 5, no dropout) as the baseline, shortened to a budget this 2-vCPU machine can afford for
13 runs (these 11 points and 2 second seeds in sweep_best.py): **4 epochs = 4 x 2,323 = 9,292
updates, lr 1 for 1 epoch then x0.5 per epoch** (1, 0.5, 0.25, 0.125; the paper's 13-epoch
schedule compressed). Every point changes only the keys it names (valid every epoch, test
with the best-valid checkpoint):

    rnnlm-sweep --config experiments/remedies/sweep.py --workdir runs/remedies
    python experiments/remedies/table.py runs/remedies runs/remedies_best

Rates are moderate on purpose (a 2x200 model trained 4 epochs underfits with AWD-LSTM's
0.4-0.65 dropouts). The combination is AWD-LSTM's regularisers at this size: locked +
embedding + weight dropout and AR/TAR, with the baseline's schedule.

Cut from this budget: NT-ASGD. It needs a constant rate and averages only after validation
stops improving for ``optim.nonmono`` epochs; at lr 1 that takes more than 4 epochs, so the
NT-ASGD point would equal its constant-rate control. ``LONG_VARIANTS`` keeps the two points
for a longer budget (``--config.train.num_epochs``; they are not in ``get_sweep``).
See experiments/remedies/README.md for what is measured so far.
"""

from __future__ import annotations

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep

EPOCHS = 4  # the fixed budget of every point, in epochs of 2,323 updates
HOLD = 1  # epochs at lr 1 before the x0.5-per-epoch decay (configs/ptb_small.py: 4 of 13)
DROP = 0.25  # dropout / weight-drop rate of the dropout points and the combination
AWD = {  # the combination: Merity et al. 2017's regularisers at this size
    "model.dropout": DROP, "model.locked_dropout": True, "model.embed_dropout": 0.1,
    "model.weight_drop": DROP, "optim.ar": 2.0, "optim.tar": 1.0,
}


def _ptb_small():
  return import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "ptb_small.py")


def get_config():
  c = _ptb_small().get_config()  # the baseline; every remedy key off (rnnlm_jax/config_base.py)
  c.train.num_epochs = EPOCHS  # the fixed budget
  c.optim.lr_hold_epochs = HOLD  # the compressed Zaremba schedule
  c.optim.nonmono = 2  # LONG_VARIANTS' ntasgd: average once valid is worse than 2+ ago
  c.train.progress_bar = False  # log lines only (background runs)
  return c


VARIANTS = [
    {},  # baseline: configs/ptb_small.py at this budget
    AWD,  # the combination
    {"model.norm": "layer"},  # layer-normalised LSTM (Ba et al. 2016)
    {"model.residual": True},  # h_l = h_{l-1} + layer(h_{l-1}) (E == H: no projection)
    {"model.dropout": DROP},  # Zaremba dropout (fresh mask per step): the control for locked
    {"model.dropout": DROP, "model.locked_dropout": True},  # variational (Gal & Ghahramani)
    {"model.embed_dropout": 0.1},  # whole-word embedding dropout
    {"model.weight_drop": DROP},  # DropConnect on W_hh (Merity et al. 2017)
    {"optim.ar": 2.0, "optim.tar": 1.0},  # AR / TAR at AWD-LSTM's weights
    {"model.attention_window": 10},  # attention over the last 10 states (Daniluk et al. 2017)
    {"model.aux_weight": 0.1},  # auxiliary head predicting the token 2 ahead, weight 0.1
]

LONG_VARIANTS = [  # cut at 4 epochs (see the docstring)
    {"optim.schedule": "constant"},  # plain SGD at constant lr 1: the control for NT-ASGD
    {"optim.name": "ntasgd", "optim.schedule": "constant"},  # NT-ASGD (Merity et al. 2017)
]


def get_sweep():
  # 11 points at seed 0. The second seeds (the baseline and the best point, chosen on
  # validation after these ran) are in sweep_best.py.
  return product(VARIANTS, sweep("seed", [0]))
