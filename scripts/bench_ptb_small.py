"""Training throughput of configs/ptb_small.py's shapes: rnnlm_jax beside flax nn.RNN.

Superseded by scripts/bench.py, which measures every workload and cell against flax and
PyTorch; this keeps the old command working as that script's ptb_small LSTM row:

    python scripts/bench_ptb_small.py [--repeats 5] [--json out.json]
    # = python scripts/bench.py --workloads ptb_small --cells lstm --impls rnnlm_jax,flax
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scripts/bench.py)

if __name__ == "__main__":
  bench.main(["--workloads", "ptb_small", "--cells", "lstm", "--impls", "rnnlm_jax,flax",
              "--gen_length", "0"] + sys.argv[1:])
