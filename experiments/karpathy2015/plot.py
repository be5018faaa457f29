"""Valid cross-entropy per epoch of every point of the Karpathy 2015 grid, and its test table.

    python experiments/karpathy2015/plot.py runs/karpathy2015 experiments/karpathy2015/valid_loss.png

Prints the Markdown table of README.md (test nats/char of the best-validation checkpoint, by
cell and depth, with hidden size and parameter count).
"""

from __future__ import annotations

import json
import pathlib
import sys

CELLS = ("rnn_tanh", "lstm", "gru")


def read(root: pathlib.Path) -> dict:
  runs = {}
  for wd in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
    config = json.loads((wd / "config.json").read_text())
    events = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines() if l]
    valid = [e for e in events if e["split"] == "valid" and "checkpoint" not in e]
    test = [e for e in events if e["split"] == "test"]
    m = config["model"]
    runs[(m["cell"], m["num_layers"])] = {
        "hidden": m["hidden_size"], "valid": [(e["epoch"], e["loss"]) for e in valid],
        "test": test[-1]["loss"] if test else None}
  return runs


def main(root: str, out: str) -> None:
  runs = read(pathlib.Path(root))
  layers = sorted({k[1] for k in runs})
  print("| cell \\ layers | " + " | ".join(str(l) for l in layers) + " |")
  print("|---|" + "---|" * len(layers))
  for cell in CELLS:
    row = []
    for l in layers:
      r = runs.get((cell, l))
      row.append("—" if r is None or r["test"] is None else f"{r['test']:.3f} (H={r['hidden']})")
    print(f"| {cell} | " + " | ".join(row) + " |")
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  styles = {1: "-", 2: "--", 3: ":"}
  colors = {"rnn_tanh": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}
  for (cell, l), r in sorted(runs.items()):
    xs, ys = zip(*r["valid"])
    ax.plot(xs, ys, styles.get(l, "-"), color=colors.get(cell), label=f"{cell} {l}x{r['hidden']}")
  ax.set_xlabel("epoch")
  ax.set_ylabel("valid cross-entropy (nats/char)")
  ax.set_title("Karpathy 2015 grid at 120k parameters")
  ax.legend(fontsize=7, ncol=3)
  fig.tight_layout()
  fig.savefig(out, dpi=120)


if __name__ == "__main__":
  main(*sys.argv[1:3])
