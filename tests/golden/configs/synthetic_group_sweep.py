"""Golden case synthetic_group: 3 synthetic points (seed x learning rate) that form one vmap
group, trained as one program by `rnnlm-sweep ... --cpu_devices 2` (member axis padded 3 -> 4,
split over 2 XLA CPU devices)."""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, sweep, zip_


def get_config():
  c = import_file(pathlib.Path(__file__).resolve().parent / "synthetic.py").get_config()
  c.synthetic.problem = "addition"
  c.synthetic.length = 20  # the minimum for addition
  c.model.cell = "lstm"
  c.model.init = "uniform"
  c.optim.omega_weight = 0.0
  c.optim.clip_mode = "agc"
  c.optim.clip_value = 0.5
  return c


def get_sweep():
  return zip_(sweep("seed", [0, 1, 2]), sweep("optim.learning_rate", [0.05, 0.1, 0.05]))
