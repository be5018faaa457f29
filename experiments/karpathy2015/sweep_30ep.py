"""The Karpathy 2015 grid trained as the README promised (issue 20, item 3): the 9 points of
sweep.py for 30 epochs (8,340 updates), 2 seeds each.

    rnnlm-sweep --config experiments/karpathy2015/sweep_30ep.py \\
        --workdir ~/rnnlm_runs/karpathy2015/30ep
    rnnlm-report ~/rnnlm_runs/karpathy2015/30ep --rows model.cell --cols model.num_layers \\
        --metric loss

Everything else is sweep.py's (120k parameters per model, Adam 2e-3 constant, clip 5, no
dropout, bptt 100, batch 32, tiny-shakespeare 80/10/10); the best-validation epoch is tested.
Cost measured in the first run (10 epochs, shared CPU): about 40-55 s per epoch and point on one
core of the 2-vCPU EPYC, i.e. 20-28 minutes per 30-epoch run and about 6-8 hours of one core
for the 18 runs (an earlier version of this note said 3.5, an arithmetic slip).
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep

_GRID = import_file(pathlib.Path(__file__).with_name("sweep.py"))


def get_config():
  c = _GRID.get_config()
  c.train.num_epochs = 30  # the README's promised length (sweep.py: 4, then 10)
  return c


def get_sweep():
  return product(_GRID.get_sweep(), sweep("seed", [0, 1]))  # 2 seeds per point
