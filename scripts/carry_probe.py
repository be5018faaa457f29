"""How much a trained language model's carried state helps: perplexity with the state carried
over each split (as evaluation scores it) against the state reset every ``--reset_every``
tokens, on valid, test and the head and tail of the training split.

    python scripts/carry_probe.py --workdir ~/rnnlm_runs/atlas/ptb_word/cell=rnn_tanh/POINT
    python scripts/carry_probe.py --workdir runs/ptb_small --checkpoint latest --reset_every 35

A healthy model gains a little from its state on every stretch of text. A model whose valid and
test numbers disagree can be told apart from an evaluation bug here: if the reset numbers agree
across splits and the carried ones do not, and stretches of the training split disagree the same
way, the gap is the model's state dynamics, not the data or the code (see the clipping atlas's
README). Word level prints perplexity, char level bits per character; batch and columns are
the run's training batch.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from rnnlm_jax.tasks import lm as lm_task  # pylint: disable=wrong-import-position


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", required=True, help="a trained language-model workdir")
  ap.add_argument("--checkpoint", default="best", choices=["best", "latest"])
  ap.add_argument("--reset_every", type=int, default=0,
                  help="tokens of context in the reset column (default: the run's bptt)")
  args = ap.parse_args(argv)
  if not (pathlib.Path(args.workdir) / "config.json").is_file():
    print(f"error: {args.workdir} is not a workdir (no config.json)", file=sys.stderr)
    return 2
  config, corpus, spec, params, step = lm_task.restore_workdir(args.workdir, args.checkpoint)
  bptt, batch = int(config.data.bptt), int(config.train.batch_size)
  reset = args.reset_every or bptt
  size = min(corpus.valid.size, corpus.test.size)
  segments = {"valid": corpus.valid, "test": corpus.test,
              f"train[:{size}]": corpus.train[:size], f"train[-{size}:]": corpus.train[-size:]}
  eval_step = lm_task.make_eval_step(spec)
  unit = "bits/char" if corpus.level == "char" else "perplexity"
  print(f"{args.workdir} ({args.checkpoint} checkpoint, step {step}); {unit}, {batch} columns")
  print(f"| segment | carried | reset every {reset} tokens |")
  print("|---|---|---|")
  for name, ids in segments.items():
    scores = [lm_task.metric_names(corpus.level, lm_task.evaluate(
        eval_step, params, spec, ids, batch, bptt, reset_every=r)[0]) for r in (0, reset)]
    key = "bpc" if corpus.level == "char" else "perplexity"
    print(f"| {name} | {scores[0][key]:.4g} | {scores[1][key]:.4g} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
