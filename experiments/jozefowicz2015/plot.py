"""Valid perplexity per epoch of the Jozefowicz 2015 runs, and the README table.

    python experiments/jozefowicz2015/plot.py experiments/jozefowicz2015/valid_ppl.png \\
        "LSTM, forget bias 0=runs/zaremba_small_seed0" \\
        "LSTM, forget bias 1=runs/jozefowicz2015/cell=lstm,forget_bias=1.0" \\
        "GRU=runs/jozefowicz2015/cell=gru,forget_bias=0.0"

Prints a Markdown table: per run, the valid perplexity after each epoch it has reached and the
test perplexity of its best-valid checkpoint (— while the run is unfinished).
"""

from __future__ import annotations

import json
import pathlib
import sys


def read(workdir: pathlib.Path) -> dict:
  """``{"valid": [(epoch, perplexity)], "test": perplexity | None}`` of one LM workdir."""
  events = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines() if l]
  valid = [(e["epoch"], e["perplexity"]) for e in events
           if e["split"] == "valid" and "checkpoint" not in e]
  test = [e["perplexity"] for e in events if e["split"] == "test"]
  return {"valid": valid, "test": test[-1] if test else None}


def main(out: str, runs: list[str]) -> None:
  named = [r.split("=", 1) for r in runs]
  data = {name: read(pathlib.Path(path)) for name, path in named}
  epochs = max(len(d["valid"]) for d in data.values())
  print("| run | " + " | ".join(f"ep {i + 1}" for i in range(epochs)) + " | test (best valid) |")
  print("|---|" + "---|" * (epochs + 1))
  for name, d in data.items():
    cells = [f"{p:.1f}" for _, p in d["valid"]] + ["—"] * (epochs - len(d["valid"]))
    test = "—" if d["test"] is None else f"{d['test']:.2f}"
    print(f"| {name} | " + " | ".join(cells) + f" | {test} |")
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, d in data.items():
    xs, ys = zip(*d["valid"])
    ax.plot(xs, ys, marker="o", label=name)
  ax.set_xlabel("epoch")
  ax.set_ylabel("valid perplexity")
  ax.set_yscale("log")
  ax.set_title("PTB small (2x200, Zaremba schedule)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  print(f"wrote {out}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
