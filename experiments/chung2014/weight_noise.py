"""A variant of experiments/chung2014/sweep.py on JSB Chorales: the same three models with
weight noise (Graves 2011), which Chung et al. 2014 add during training; the standard
deviation 0.075 is not confirmed from the paper (see the README).

    rnnlm-sweep --config experiments/chung2014/weight_noise.py --workdir runs/chung2014_wn
    rnnlm-report runs/chung2014_wn --tables= --rows model.cell --metric test_loss

3 points: {tanh 100, GRU 46, LSTM 36} with each cell's learning rate from sweep.py and
N(0, 0.075^2) noise added to every weight matrix (not the biases) for each update; evaluation
uses the clean weights. Everything else as sweep.py's JSB points.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, sweep, zip_


def _chung_sweep():
  return import_file(pathlib.Path(__file__).resolve().parent / "sweep.py")


def get_config():
  mod = _chung_sweep()
  c = mod.get_config()
  c.data.name = "jsb_chorales"  # the data set of the paper's published numbers
  c.train.num_epochs, c.train.batch_size = mod.DATASETS["jsb_chorales"]  # as in sweep.py
  c.model.weight_noise = 0.075  # std of the Gaussian weight noise per update
  return c


def get_sweep():
  mod = _chung_sweep()
  return zip_(sweep("model.cell", [c for c, _ in mod.CELLS]),
              sweep("model.hidden_size", [h for _, h in mod.CELLS]),
              sweep("optim.learning_rate", [mod.LEARNING_RATES[c] for c, _ in mod.CELLS]))
