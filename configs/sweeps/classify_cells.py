"""Text classification, cell x gradient clipping: {tanh RNN, LSTM, GRU} x {no clipping, global
norm clipped at 5} on SMS spam (``configs/sms_spam.py``; minutes per point on a 2-core CPU).

    rnnlm-sweep --config configs/sweeps/classify_cells.py --workdir runs/classify_cells
    rnnlm-report runs/classify_cells --metric accuracy

Points run in ``<workdir>/cell=gru,clip_mode=none,seed=0`` etc.; each point's
``metrics.jsonl`` ends with its best-valid checkpoint's valid and test metrics (accuracy,
spam precision / recall / F1). For SST-2 instead, load ``sst2_bilstm.py`` in ``get_config``
(about 20 minutes per point here).
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep

BASE = "sms_spam.py"  # the config file (in configs/) every point starts from


def get_config():
  mod = import_file(pathlib.Path(__file__).resolve().parent.parent / BASE)
  c = mod.get_config()
  c.train.progress_bar = False  # one log line per event, not a bar, in sweep logs
  return c


def get_sweep():
  return product(
      sweep("model.cell", ["rnn_tanh", "lstm", "gru"]),  # vanilla tanh RNN vs gated cells
      sweep("optim.clip_mode", ["none", "global_norm"]),  # global_norm at clip_value 5
      sweep("seed", [0]),  # one seed; list more to repeat every point
  )
