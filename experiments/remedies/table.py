"""The remedies ablation table: per point, valid perplexity per epoch, test, change vs baseline.

    python experiments/remedies/table.py runs/remedies runs/remedies_best \
        [--plot experiments/remedies/valid_ppl.png]
    python experiments/remedies/table.py runs/remedies_cells --plot experiments/remedies/cells.png

Reads sweep directories made by ``rnnlm-sweep`` (``rnnlm_jax.report.records.collect``) and
prints one Markdown table per corpus and ``model.cell`` over all of them (rows in the order of the
arguments, then of each sweep): every point's valid perplexity after each epoch, the test
perplexity of its best-valid checkpoint, the change of that test number against the mean of
the same table's baseline seeds (points whose overrides name no remedy), the median logged
training throughput (tokens/s; it depends on what else runs on the machine) and the wall
time of the invocations that ended cleanly (``rnnlm_jax.workdir.wall_seconds``). Unfinished
points show what they have reached.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics

from rnnlm_jax.report.records import collect
from rnnlm_jax.sweeps.spec import import_file
from rnnlm_jax.workdir import wall_seconds

# Readable names of the points, by the set of remedy keys they override.
_AWD = tuple(import_file(pathlib.Path(__file__).resolve().parent / "sweep.py").AWD)
LABELS = {
    frozenset(): "baseline",
    frozenset(_AWD): "combination (locked + embed + weight drop, AR/TAR)",
    frozenset(_AWD + ("model.residual",)): "residual + combination",
    frozenset({"model.norm"}): "layer norm",
    frozenset({"model.residual"}): "residual stack",
    frozenset({"model.dropout"}): "dropout 0.25 (Zaremba, fresh mask per step)",
    frozenset({"model.dropout", "model.locked_dropout"}): "variational (locked) dropout 0.25",
    frozenset({"model.embed_dropout"}): "embedding dropout 0.1",
    frozenset({"model.weight_drop"}): "weight drop 0.25",
    frozenset({"optim.ar", "optim.tar"}): "AR 2 / TAR 1",
    frozenset({"model.attention_window"}): "attention over 10 past states",
    frozenset({"model.aux_weight"}): "aux head (token t+2), weight 0.1",
}
# Override keys that set the run, not a remedy (a table per corpus and cell).
_NOT_REMEDY = ("seed", "model.cell", "data.name", "train.num_epochs", "optim.lr_hold_epochs")


_OFF = (False, 0, "none")  # a remedy key's "off" values (every remedy is off by default)


def remedy_keys(rec: dict) -> tuple[str, ...]:
  """The override keys of a point that turn a remedy on (not its seed, cell, corpus, budget).

  A key set to its "off" value names no remedy: a directory of workdirs without sweep.json
  (``collect`` by discovery) gives every point all the varying keys, the baseline's
  ``model.residual`` False among them.
  """
  return tuple(k for k, v in rec["overrides"].items()
               if k not in _NOT_REMEDY and v not in _OFF)


def label(rec: dict) -> str:
  keys = remedy_keys(rec)
  return LABELS.get(frozenset(keys), ", ".join(f"{k}={rec['overrides'][k]}" for k in keys))


def valid_curve(events: list[dict]) -> list[float]:
  """Valid perplexity after each epoch (the periodic validations, not the final re-evaluation)."""
  return [e["perplexity"] for e in events if e.get("split") == "valid" and "checkpoint" not in e]


def median_tokens_per_sec(events: list[dict]) -> float | None:
  """Median of the logged training throughput (one value per log interval)."""
  rates = [e["tokens_per_sec"] for e in events
           if e.get("split") == "train" and e.get("tokens_per_sec")]
  return statistics.median(rates) if rates else None


def rows(records: list[dict]) -> dict[str, list[dict]]:
  """{"corpus, cell": [row]} with a row per point; rows in the sweeps' order."""
  out: dict[str, list[dict]] = {}
  for r in records:
    flat = r["flat"]
    cell = f"{flat.get('data.name', '?')}, {flat.get('model.cell', '?')}"
    test = r.get("test_perplexity")
    out.setdefault(cell, []).append({
        "label": label(r), "seed": flat.get("seed"), "baseline": not remedy_keys(r),
        "valid": valid_curve(r["events"]), "test": test,
        "state": "interrupted" if r["reason"].startswith(("interrupted", "KeyboardInterrupt"))
                 else r["state"],  # killed by a signal: resumable, not a failure of the point
        "tok_s": median_tokens_per_sec(r["events"]),
        "wall_min": wall_seconds(r["path"]) / 60, "clip": r.get("clip_rate")})
  return out


def markdown(cell: str, table: list[dict], epochs: int) -> str:
  base = [t["test"] for t in table if t["baseline"] and t["test"] is not None]
  ref = statistics.mean(base) if base else None
  head = (["point", "seed"] + [f"valid ep {i + 1}" for i in range(epochs)]
          + ["test (best valid)", "vs baseline", "clipped", "tok/s", "wall min", "state"])
  lines = [f"**{cell}**" + (f" (baseline test: mean of {len(base)} seed(s) = {ref:.2f})"
                            if ref else ""), "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for t in table:
    v = [f"{p:.1f}" for p in t["valid"]] + ["—"] * (epochs - len(t["valid"]))
    test = "—" if t["test"] is None else f"{t['test']:.2f}"
    delta = ("—" if t["test"] is None or ref is None or t["baseline"]
             else f"{100 * (t['test'] / ref - 1):+.1f} %")
    clip = "—" if t["clip"] is None else f"{100 * t['clip']:.0f} %"
    tok_s = "—" if t["tok_s"] is None else f"{t['tok_s']:,.0f}"
    lines.append("| " + " | ".join([t["label"], str(t["seed"])] + v + [
        test, delta, clip, tok_s, f"{t['wall_min']:.0f}", t["state"]]) + " |")
  return "\n".join(lines)


def plot(tables: dict[str, list[dict]], out: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4.5), squeeze=False)
  for ax, (cell, table) in zip(axes[0], tables.items()):
    for t in table:
      if t["valid"]:
        style = "k-" if t["baseline"] else "-"
        ax.plot(range(1, len(t["valid"]) + 1), t["valid"], style, marker="o", ms=3,
                label=f"{t['label']} (seed {t['seed']})")
    ax.set(xlabel="epoch", ylabel="valid perplexity", yscale="log", title=f"2x200, {cell}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  print(f"wrote {out}")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("sweep_dirs", type=pathlib.Path, nargs="+")
  ap.add_argument("--plot", type=pathlib.Path)
  args = ap.parse_args()
  records = [r for d in args.sweep_dirs for r in collect(d)]
  tables = rows(records)
  epochs = max((len(t["valid"]) for table in tables.values() for t in table), default=0)
  epochs = max(epochs, max(int(r["flat"].get("train.num_epochs") or 0) for r in records))
  print("\n\n".join(markdown(cell, table, epochs) for cell, table in tables.items()))
  if args.plot:
    plot(tables, args.plot)


if __name__ == "__main__":
  main()
