"""Tabulate the pytorch/examples PTB reproduction: per-epoch valid perplexity, test, wall time.

    python experiments/pytorch_examples/table.py runs/ptb_torch_untied runs/ptb_torch_tied \
        --plot experiments/pytorch_examples/valid_curve.png

Prints Markdown (the tables of README.md). Published test perplexities (the example's README,
older versions): 6 epochs 117.61, 6 epochs tied 110.44. Tolerance: within 2 %.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from rnnlm_jax.workdir import wall_seconds

PUBLISHED = {False: 117.61, True: 110.44}  # test perplexity after 6 epochs, by --tied
TOLERANCE = 0.02


def read(workdir: pathlib.Path):
  events = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines() if l]
  config = json.loads((workdir / "config.json").read_text())
  return events, config


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("workdirs", nargs="+", type=pathlib.Path)
  ap.add_argument("--plot", type=pathlib.Path)
  args = ap.parse_args()
  runs = {w.name: read(w) for w in args.workdirs}
  paths = {w.name: w for w in args.workdirs}
  curves = {n: {int(e["epoch"]): e["perplexity"] for e in ev if e["split"] == "valid"}
            for n, (ev, _) in runs.items()}
  epochs = sorted({k for c in curves.values() for k in c})
  print("| epoch | " + " | ".join(f"{n} valid ppl" for n in runs) + " |")
  print("|---|" + "---|" * len(runs))
  for k in epochs:
    print(f"| {k} | " + " | ".join(f"{curves[n].get(k, float('nan')):.2f}" for n in runs) + " |")
  print()
  print("| run | tied | test ppl (ours) | published | difference | verdict (within 2 %) | "
        "best valid | wall min |")
  print("|---|---|---|---|---|---|---|---|")
  for n, (ev, config) in runs.items():
    tied = bool(config["model"]["tie_embeddings"])
    test = [e for e in ev if e["split"] == "test"][-1]["perplexity"]
    ref = PUBLISHED[tied]
    diff = test / ref - 1
    verdict = "within" if abs(diff) <= TOLERANCE else "outside"
    print(f"| {n} | {tied} | {test:.2f} | {ref:.2f} | {100 * diff:+.1f} % | {verdict} | "
          f"{min(curves[n].values()):.2f} | {wall_seconds(paths[n]) / 60:.0f} |")
  if args.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for n, c in curves.items():
      ax.plot(list(c), list(c.values()), marker="o", label=n)
    ax.set_xlabel("epoch")
    ax.set_ylabel("valid perplexity")
    ax.set_title("pytorch/examples PTB config, rnnlm_jax")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
  main()
