"""Chung et al. 2014's learning-rate protocol, as far as it could be confirmed (issue 20, item
3): each model's RMSProp rate chosen on JSB Chorales validation NLL from 10 log-uniform
candidates, trained with weight noise and the gradient norm clipped at 1.

    rnnlm-sweep --config experiments/chung2014/lr_protocol.py \\
        --workdir ~/rnnlm_runs/chung2014/lr_protocol
    rnnlm-report ~/rnnlm_runs/chung2014/lr_protocol --select valid --group model.cell

What is confirmed and what is not (experiments/setups_confirmed.md, section 2): the paper's
experimental section was not found in any stored source. The protocol below follows the lead
recorded there, unverified: "the learning rate chosen per model, on validation, out of 10
randomly chosen log-uniform candidates sampled from U(-12, -6)", read as the natural log of
the rate (6.1e-6 ... 2.5e-3), with weight noise of standard deviation 0.075 and the gradient
norm rescaled to 1. Our first study chose from {3e-3, 1e-2}, both above that whole range.

Points: {tanh 100, GRU 46, LSTM 36 units} x the same 10 candidates for every cell (drawn once,
:data:`CANDIDATES`, numpy seed :data:`SAMPLE_SEED`; the paper drew per model: one shared set
makes the cells' curves comparable and is a difference we state) = 30 runs on JSB Chorales,
otherwise sweep.py's JSB points (batch 8, 200 epochs at most, patience 15 on validation NLL,
RMSProp decay 0.9) plus ``model.weight_noise = 0.075``. The 200-epoch cap is ours: at the
small end of the range (1e-5) a run is still improving when it stops, which favours the larger
candidates; the README says how many runs stopped at the cap.
"""

import math
import pathlib

import numpy as np

from rnnlm_jax.sweeps.spec import import_file

SAMPLE_SEED = 14123555  # arXiv 1412.3555
LOG_RANGE = (-12.0, -6.0)  # natural log of the learning rate (lead, unverified)
CANDIDATES = sorted(float(f"{math.exp(x):.3g}") for x in
                    np.random.default_rng(SAMPLE_SEED).uniform(*LOG_RANGE, size=10))
WEIGHT_NOISE = 0.075  # std of the Gaussian noise on every weight matrix per update (lead)


_LR_SEARCH = import_file(pathlib.Path(__file__).with_name("lr_search.py"))


def get_config():
  c = _LR_SEARCH.get_config()  # sweep.py's JSB points (batch 8, 200 epochs, patience 15)
  c.model.weight_noise = WEIGHT_NOISE  # training only; evaluation uses the clean weights
  return c


def get_sweep():
  return _LR_SEARCH.cells_x_rates(CANDIDATES)
