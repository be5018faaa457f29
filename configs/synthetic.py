"""One synthetic-task run: Pascanu et al. 2013's tanh RNN on temporal order, length 50.

    rnnlm-train --config configs/synthetic.py --workdir runs/temporal_order_50
    rnnlm-train --config configs/synthetic.py --workdir runs/add_100 \\
        --config.synthetic.problem=addition --config.synthetic.length=100 --config.optim.omega_weight=4

Every key, with its comment, is in ``synthetic_config()`` of rnnlm_jax/config_base.py.
"""

from rnnlm_jax.config_base import synthetic_config


def get_config():
  c = synthetic_config()
  c.synthetic.problem = "temporal_order"  # Pascanu's 2-bit temporal order task
  c.synthetic.length = 50  # sequence length L
  c.model.cell = "rnn_tanh"  # the paper's model
  c.model.init = "smart_tanh"  # sparse W_hh, spectral radius 0.95
  c.optim.clip_mode = "global_norm"  # SGD-C: rescale the gradient when its norm exceeds 1
  c.optim.clip_value = 1.0  # Pascanu's threshold
  c.train.max_steps = 20000  # update cap (stops earlier at success)
  return c
