"""Chung et al. 2014's Table 2 music rows re-done under the learning-rate protocol of
``lr_protocol.py`` (issue 20, item 3): each cell at the RMSProp rate its JSB Chorales
validation NLL chose there, with the same weight noise and clipping, 3 seeds, on the four data
sets of sweep.py.

    rnnlm-sweep --config experiments/chung2014/protocol_sweep.py \\
        --workdir ~/rnnlm_runs/chung2014/protocol_sweep
    python scripts/tables.py chung2014

The rates are read from the committed records of the protocol's search
(``records/lr_protocol``) by :func:`rnnlm_jax.report.select.chosen` (the best validation NLL
per cell; no number copied by hand), so this file refuses to load until that search has ended
and its records are archived. Everything else is sweep.py's: {tanh 100, GRU 46, LSTM 36} units,
one layer, batch 8 (Piano-midi.de 4), patience 15, the per-data-set epoch caps; plus
``model.weight_noise`` of lr_protocol.py. 3 cells x 4 data sets x 3 seeds = 36 runs.

Cost, estimated from sweep.py's 12 runs (1.45 wall hours on a shared core of the 2-vCPU EPYC,
most of them at the epoch caps): about 4-5 hours on one core.
"""

import pathlib

from rnnlm_jax.report import select
from rnnlm_jax.sweeps.spec import import_file, sweep

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = [0, 1, 2]

_STUDY = import_file(HERE / "sweep.py")
_PROTOCOL = import_file(HERE / "lr_protocol.py")


def get_config():
  c = _STUDY.get_config()  # RMSProp, clip 1, patience 15 (sweep.py)
  c.model.weight_noise = _PROTOCOL.WEIGHT_NOISE  # as in the search that chose the rates
  return c


def chosen_rates(records=HERE / "records" / "lr_protocol") -> dict[str, float]:
  """{cell: the RMSProp rate with the best JSB validation NLL in lr_protocol.py's records}."""
  return {cell: float(s["optim.learning_rate"])
          for (cell,), s in select.chosen(records, ["model.cell"]).items()}


def get_sweep():
  return _STUDY.study_sweep(chosen_rates(), sweep("seed", SEEDS))
