"""Table rows and validation curves (accuracy, loss) from classification workdirs (README).

    .venv/bin/python experiments/classification/summarize.py runs/classification/NAME ... \
        [--plot experiments/classification/valid_accuracy.png]

Per workdir: the best-valid checkpoint's test (SST-2: GLUE dev) and valid metrics from
``metrics.jsonl``, the epoch it comes from, the epochs run, the training seconds, the wall
time of the invocation (provenance.json) and the command.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from rnnlm_jax.workdir import wall_seconds


def _events(wd: pathlib.Path) -> list[dict]:
  return [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines() if l.strip()]


def summary(wd: pathlib.Path, ev: list[dict]) -> dict:
  """One table row from workdir ``wd`` and its ``metrics.jsonl`` events ``ev``."""
  final = {e["split"]: e for e in ev if e.get("checkpoint") == "best_valid"}
  valids = [e for e in ev if e["split"] == "valid" and "checkpoint" not in e]
  best_epoch = next(e["epoch"] for e in valids if e["step"] == final["test"]["checkpoint_step"])
  prov = json.loads((wd / "provenance.json").read_text())["runs"]
  cmd = " ".join(prov[-1]["command"]).replace(".venv/bin/", "")
  return {"name": wd.name, "test": final["test"], "valid": final["valid"],
          "best_epoch": best_epoch, "epochs": max(e["epoch"] for e in valids),
          "train_s": final["test"]["train_seconds"], "wall_s": wall_seconds(wd), "command": cmd,
          "curve": [(e["epoch"], e["accuracy"], e["loss"]) for e in valids]}


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("workdirs", nargs="+")
  ap.add_argument("--plot", default="")
  args = ap.parse_args()
  rows = []
  for w in map(pathlib.Path, args.workdirs):
    if not (w / "metrics.jsonl").is_file():
      continue  # a log file or another non-workdir matched by the shell glob
    ev = _events(w)
    if not any(e.get("checkpoint") == "best_valid" for e in ev):
      print(f"skipped {w}: no best-valid test event (unfinished or stopped run)", file=sys.stderr)
      continue
    rows.append(summary(w, ev))
  print("| run | test acc | test F1 (minority) | valid acc | best epoch / run | train min | "
        "wall min |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['name']} | {100 * r['test']['accuracy']:.2f} | {r['test']['f1']:.3f} | "
          f"{100 * r['valid']['accuracy']:.2f} | {r['best_epoch']:g} / {r['epochs']:g} | "
          f"{r['train_s'] / 60:.1f} | {r['wall_s'] / 60:.1f} |")
  for r in rows:
    print(f"{r['name']}: {r['command']}")
  if args.plot:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
      xs, acc, loss = zip(*r["curve"])
      axes[0].plot(xs, [100 * y for y in acc], marker="o", label=r["name"])
      axes[1].plot(xs, loss, marker="o", label=r["name"])
    for ax, what in zip(axes, ("accuracy (%)", "loss (nats)")):
      ax.set_xlabel("epoch")
      ax.set_ylabel(f"held-out valid {what}")
      ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
  main()
