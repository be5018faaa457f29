"""Tabulate Zaremba small runs: per-epoch valid perplexity beside the references, final numbers.

    python scripts/zaremba_table.py runs/zaremba_small_seed0 runs/zaremba_small_seed1 \
        [--plot experiments/zaremba2014/valid_curve.png]   # the plot needs matplotlib

References (../shared/notes/papers.md): the paper's Table 1 (valid 120.7 / test 114.5) and a
PyTorch run of the same config (on a 2-vCPU Xeon, not necessarily the machine of our runs) (valid after epochs 1-4: 187.0, 147.1, 135.3,
131.6; after 13 epochs valid 117.69 / test 113.03, 21.5 minutes).
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

from rnnlm_jax.workdir import wall_seconds

PAPER = {"valid": 120.7, "test": 114.5}
TOLERANCE = 1.02  # +2 %: valid <= 123.1, test <= 116.8
TORCH_VALID = {1: 187.0, 2: 147.1, 3: 135.3, 4: 131.6, 13: 117.69}
TORCH_TEST = 113.03


def read(workdir: pathlib.Path):
  events = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines() if l]
  status = json.loads((workdir / "status.json").read_text())
  return events, status


def plot(runs, out: str) -> None:
  """Per-epoch validation perplexity of each run beside the PyTorch reference."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, (ev, _) in runs.items():
    v = [(e["epoch"], e["perplexity"]) for e in ev if e["split"] == "valid"]
    ax.plot(*zip(*v), marker="o", ms=3, label=f"rnnlm_jax {name}")
  known = [ep for ep in TORCH_VALID if ep <= 4]  # epochs 5-12 were not recorded
  ax.plot(known, [TORCH_VALID[ep] for ep in known], "ks--", ms=4,
          label="PyTorch reference (epochs 1-4)")
  ax.plot([13], [TORCH_VALID[13]], "k*", ms=9, label="PyTorch reference, epoch 13")
  ax.axhline(PAPER["valid"], color="gray", lw=0.8, label="paper final valid 120.7")
  ax.set(xlabel="epoch", ylabel="valid perplexity", ylim=(110, 200),
         title="Zaremba et al. 2014 small LSTM on PTB")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out, dpi=110)


def main(argv):
  out = None
  if "--plot" in argv:
    i = argv.index("--plot")
    out, argv = argv[i + 1], argv[:i] + argv[i + 2:]
  paths = argv
  dirs = {p.name: p for p in map(pathlib.Path, paths)}
  runs = {n: read(p) for n, p in dirs.items()}
  if out:
    plot(runs, out)
  # Per run, epoch -> valid perplexity (the last evaluation of that epoch).
  curves = {n: {round(e["epoch"]): e["perplexity"] for e in ev if e["split"] == "valid"}
            for n, (ev, _) in runs.items()}
  epochs = sorted(set().union(*curves.values()))
  names = list(runs)
  print("| epoch | " + " | ".join(f"{n} valid ppl" for n in names) + " | PyTorch reference |")
  print("|---|" + "---|" * (len(names) + 1))
  for ep in epochs:
    cells = [f"{curves[n][ep]:.2f}" if ep in curves[n] else "" for n in names]
    ref = TORCH_VALID.get(ep)
    print(f"| {ep} | " + " | ".join(cells) + f" | {ref if ref else ''} |")
  print()
  print("| run | best valid ppl | test ppl (best-valid ckpt) | state | wall min | median train tok/s |")
  print("|---|---|---|---|---|---|")
  finals = []
  for n in names:
    ev, status = runs[n]
    valid = [e["perplexity"] for e in ev if e["split"] == "valid"]
    test = [e for e in ev if e["split"] == "test"]
    rates = [e["tokens_per_sec"] for e in ev if e["split"] == "train" and e.get("tokens_per_sec")]
    tp = test[-1]["perplexity"] if test else float("nan")
    finals.append((min(valid) if valid else float("nan"), tp))
    print(f"| {n} | {min(valid):.2f} | {tp:.2f} | {status['state']} | "
          f"{wall_seconds(dirs[n]) / 60:.1f} | {statistics.median(rates):,.0f} |")
  print(f"| paper (Zaremba 2014, Table 1) | {PAPER['valid']} | {PAPER['test']} | | | |")
  print(f"| PyTorch reference (papers.md, a Xeon 2-vCPU machine) | {TORCH_VALID[13]} | {TORCH_TEST} | | 21.5 | ~9.5k |")
  print()
  for n, (v, t) in zip(names, finals):
    ok = v <= PAPER["valid"] * TOLERANCE and t <= PAPER["test"] * TOLERANCE
    print(f"{n}: valid {v:.2f} (target <= {PAPER['valid'] * TOLERANCE:.1f}), test {t:.2f} "
          f"(target <= {PAPER['test'] * TOLERANCE:.1f}): {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
  if len(sys.argv) < 2:
    sys.exit(__doc__)
  main(sys.argv[1:])
