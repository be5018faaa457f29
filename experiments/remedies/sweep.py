"""Issue 8 ablation: each remedy alone on the Zaremba et al. 2014 small LSTM, and a combination.

PTB word level, configs/ptb_small.py (2x200 LSTM, bptt 20, batch 20, SGD lr 1 held 4 epochs
then x0.5 per epoch, global-norm clip 5, no dropout) as the baseline; every point changes only
the keys it names and trains the same fixed budget, 13 epochs = 13 x 2,323 = 30,199 updates
(valid every epoch, test with the best-valid checkpoint):

    rnnlm-sweep --config experiments/remedies/sweep.py --workdir runs/remedies
    rnnlm-report runs/remedies --metric perplexity

Rates are moderate on purpose (a 2x200 model trained 13 epochs underfits with AWD-LSTM's
0.4-0.65 dropouts). NT-ASGD needs a constant learning rate (Merity et al. 2017), so it is
compared with plain SGD at the same constant rate; ``optim.nonmono`` is 2 here because
AWD-LSTM's 5 would leave little of a 13-epoch budget to average over. The combination is the
AWD-LSTM recipe at this size: locked + embedding + weight dropout, AR/TAR and NT-ASGD.
See experiments/remedies/README.md for what is measured so far.
"""

from __future__ import annotations

import pathlib

from rnnlm_jax.sweep import import_file, product, sweep

DROP = 0.25  # dropout / weight-drop rate of the dropout points and the combination
AWD = {  # the combination: Merity et al. 2017's regularisers and optimiser, at this size
    "model.dropout": DROP, "model.locked_dropout": True, "model.embed_dropout": 0.1,
    "model.weight_drop": DROP, "optim.ar": 2.0, "optim.tar": 1.0,
    "optim.name": "ntasgd", "optim.schedule": "constant",
}


def _ptb_small():
  return import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "ptb_small.py")


def get_config():
  c = _ptb_small().get_config()  # the baseline; every remedy key off (rnnlm_jax/config_base.py)
  c.optim.nonmono = 2  # ntasgd points: average once valid is worse than 2+ validations ago
  c.train.progress_bar = False  # log lines only (background runs)
  return c


VARIANTS = [
    {},  # baseline: configs/ptb_small.py as is
    {"model.norm": "layer"},  # layer-normalised LSTM (Ba et al. 2016)
    {"model.residual": True},  # h_l = h_{l-1} + layer(h_{l-1}) (E == H: no projection)
    {"model.dropout": DROP},  # Zaremba dropout (fresh mask per step): the control for locked
    {"model.dropout": DROP, "model.locked_dropout": True},  # variational (Gal & Ghahramani)
    {"model.embed_dropout": 0.1},  # whole-word embedding dropout
    {"model.weight_drop": DROP},  # DropConnect on W_hh (Merity et al. 2017)
    {"optim.ar": 2.0, "optim.tar": 1.0},  # AR / TAR at AWD-LSTM's weights
    {"optim.schedule": "constant"},  # plain SGD at constant lr 1: the control for NT-ASGD
    {"optim.name": "ntasgd", "optim.schedule": "constant"},  # NT-ASGD (Merity et al. 2017)
    {"model.attention_window": 10},  # attention over the last 10 states (Daniluk et al. 2017)
    {"model.aux_weight": 0.1},  # auxiliary head predicting the token 2 ahead, weight 0.1
    AWD,  # the combination
]


def get_sweep():
  # 13 points x 1 seed; list more seeds to repeat every point.
  return product(VARIANTS, sweep("seed", [0]))
