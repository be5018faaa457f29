"""Validation NLL per epoch of a music sweep: one panel per data set, one line per setting.

    python experiments/chung2014/plot_music.py runs/chung2014 experiments/chung2014/valid_nll.png \\
        --line model.cell
    python experiments/chung2014/plot_music.py runs/pascanu2013_music \\
        experiments/pascanu2013/music_valid_nll.png --line optim.clip_mode \\
        --rename none=MSGD,global_norm=MSGD+C

Reads every point directory of the sweep (``config.json`` and ``metrics.jsonl``); a dot marks
each run's best validation epoch (the checkpoint scored on test), and the legend gives that
run's test NLL.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

ORDER = ["jsb_chorales", "nottingham", "musedata", "piano_midi"]
TITLES = {"jsb_chorales": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData",
          "piano_midi": "Piano-midi.de"}


def _get(config: dict, key: str):
  for part in key.split("."):
    config = config[part]
  return config


def read_runs(sweep_dir: pathlib.Path, line_key: str) -> list[dict]:
  """``[{"data", "line", "epochs", "valid", "test"}]`` for every run with validation events."""
  runs = []
  for d in sorted(p for p in sweep_dir.iterdir() if (p / "metrics.jsonl").is_file()):
    config = json.loads((d / "config.json").read_text())
    events = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if l.strip()]
    valid = [e for e in events if e.get("split") == "valid" and "checkpoint" not in e]
    test = [e for e in events if e.get("split") == "test" and e.get("checkpoint") == "best_valid"]
    if valid:
      line = ",".join(str(_get(config, k)) for k in line_key.split(","))
      runs.append({"data": config["data"]["name"], "line": line,
                   "epochs": [e["epoch"] for e in valid], "valid": [e["loss"] for e in valid],
                   "test": test[-1]["loss"] if test else None})
  return runs


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("sweep_dir", type=pathlib.Path)
  ap.add_argument("out", type=pathlib.Path)
  ap.add_argument("--line", default="model.cell",
                  help="config key(s), comma-separated: one line per value")
  ap.add_argument("--rename", default="", help="legend names, e.g. none=MSGD,global_norm=MSGD+C")
  args = ap.parse_args()
  runs = read_runs(args.sweep_dir, args.line)
  names = dict(kv.split("=", 1) for kv in args.rename.split(",") if kv)
  for r in runs:
    r["line"] = names.get(r["line"], r["line"])
  if not runs:
    raise SystemExit(f"error: no runs with validation events under {args.sweep_dir}")
  datasets = [d for d in ORDER if any(r["data"] == d for r in runs)]
  fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
  for ax, data in zip(axes[0], datasets):
    for r in sorted((r for r in runs if r["data"] == data), key=lambda r: r["line"]):
      best = min(range(len(r["valid"])), key=r["valid"].__getitem__)
      label = r["line"] + (f" (test {r['test']:.2f})" if r["test"] is not None else "")
      (ln,) = ax.plot(r["epochs"], r["valid"], label=label, lw=1.2)
      ax.plot(r["epochs"][best], r["valid"][best], "o", color=ln.get_color(), ms=4)
    lo = min(min(r["valid"]) for r in runs if r["data"] == data)
    ax.set_ylim(lo - 0.3, lo + 3.0)
    ax.set_title(TITLES.get(data, data))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  axes[0][0].set_ylabel("validation NLL per time step (nats)")
  fig.tight_layout()
  args.out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(args.out, dpi=110)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
