"""A seconds-long synthetic-task sweep: tanh RNN on temporal order, 2 clip modes x 3 seeds.

    rnnlm-sweep --config configs/sweeps/tiny_synthetic.py --workdir /tmp/rnnlm_sweep_syn
    rnnlm-sweep --config configs/sweeps/tiny_synthetic.py --workdir /tmp/rnnlm_sweep_syn2 \\
        --cpu_devices 2     # each 3-seed group as one program split over 2 CPU devices
    rnnlm-report /tmp/rnnlm_sweep_syn --metric success

The full-size study is configs/sweeps/pascanu2013.py.
"""

from rnnlm_jax.config_base import synthetic_config
from rnnlm_jax.sweeps.spec import product, sweep


def get_config():
  c = synthetic_config()
  c.synthetic.problem = "temporal_order"  # Pascanu's 2-bit temporal order task
  c.synthetic.length = 20  # short sequences: a few seconds per point
  c.synthetic.test_size = 1000  # a smaller fixed test set
  c.model.hidden_size = 16  # a small tanh RNN
  c.train.max_steps = 300  # update cap
  c.train.eval_every = 100  # test-set checks
  c.train.log_every = 50  # train events
  c.train.checkpoint_every_steps = 100  # resume points
  c.train.progress_bar = False  # log lines only
  return c


def get_sweep():
  return product(
      sweep("optim.clip_mode", ["none", "global_norm"]),  # SGD vs SGD-C (threshold 1)
      sweep("seed", [0, 1, 2]),  # 3 seeds: one group of 3 per clip mode
  )
