"""Each gated cell's learning rate with Adam on Pascanu et al.'s synthetic tasks (issue 20, item
3): stage 1b of the re-done synthetic study, for "the optimiser the cell needs".

    rnnlm-sweep --config experiments/pascanu2013/gated_adam_search.py \\
        --workdir ~/rnnlm_runs/pascanu2013/gated_adam_search
    rnnlm-report ~/rnnlm_runs/pascanu2013/gated_adam_search --select valid \\
        --group model.cell,synthetic.problem,optim.clip_mode --out /tmp/gated_adam

Why: in gated_lr_search.py plain SGD at rates 0.03-1 left the LSTM at chance on temporal order
after 10,000 updates (the same tiny gradients as in the first study). Adam rescales each
parameter's step by its own gradient scale, the usual remedy for that. Everything else is
gated_lr_search.py's (LSTM forget bias 1 and GRU, 50 units, batch 20, L = 50, 2,000 fresh
validation sequences, 10,000 updates at most, success stops a run): Adam (beta 0.9 / 0.999)
at 1e-3, 3e-3 and 1e-2, without clipping and with the gradient rescaled to global norm 1,
2 seeds = 48 runs, the rate chosen by the lowest mean validation error rate of the 2 seeds.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file

_SGD_SEARCH = import_file(pathlib.Path(__file__).with_name("gated_lr_search.py"))
LEARNING_RATES = [1e-3, 3e-3, 1e-2]


def get_config():
  c = _SGD_SEARCH.get_config()
  c.optim.name = "adam"  # Adam instead of plain SGD
  return c


def get_sweep():
  return _SGD_SEARCH.grid(LEARNING_RATES)
