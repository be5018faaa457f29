"""Command line: ``rnnlm-report`` (also ``python -m rnnlm_jax.report_main``).

    rnnlm-report DIR [--tables K1[,K2]] [--rows K1[,K2..]] [--cols K1[,K2..]] [--metric NAME]
                     [--select valid [--group K1[,K2..]]] [--noplots] [--out OUT]
    rnnlm-report DIR [DIR2 ..] --atlas [--out OUT]

Reads the sweep directory DIR (sweep.json and one workdir per point, or just run
subdirectories) and writes DIR/results.csv, results_cells.csv, results.md, results.tex and
DIR/plots/*.png, or the same under ``--out OUT`` (see :mod:`rnnlm_jax.report.render`); prints
the tables of the first metric.
``--select valid --group model.cell`` adds a table that picks, per group, the setting with the
best validation metric (seeds aggregated) and reports the test metric of that setting only
(:mod:`rnnlm_jax.report.select`). ``--atlas`` draws only the clipping atlas's figures
(:mod:`rnnlm_jax.report.atlas`) of DIR (a sweep, or a directory holding a sweep per cell) into
DIR/plots/ or ``--out``. Bad
input ends with one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

from absl import app, flags

from rnnlm_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("tables", None, "Config key(s), comma-separated: one table per value "
                    "combination. Default synthetic.problem if it varies and is not a row/column key; "
                    "--tables= for one table.")
flags.DEFINE_string("rows", None, "Config key(s), comma-separated, for the table rows (a row "
                    "per value combination); default model.cell if it varies, else the first "
                    "varying key.")
flags.DEFINE_string("cols", None, "Config key(s), comma-separated, for the table columns; "
                    "default synthetic.length if it varies. Any other varying key joins the labels "
                    "only if it varies within a cell; keys fixed within each cell are listed "
                    "under the table.")
flags.DEFINE_string("metric", None, "Metric to tabulate (a results.csv column, e.g. "
                    "test_perplexity, best_valid_bpc, error_rate, success_step; or success: "
                    "k/n successful of ended runs and the median success step); default LM: "
                    "test perplexity|bpc and best valid, synthetic: error_rate.")
flags.DEFINE_string("select", None, "valid: per --group, choose the setting (the other "
                    "varying keys, seeds aggregated) with the best validation metric and report "
                    "the test metric of that setting only (LM: best_valid_perplexity|bpc -> "
                    "test_...; classify: valid_<train.select_metric>; music: valid_loss); or a "
                    "validation field to select by, e.g. valid_accuracy.")
flags.DEFINE_string("group", None, "With --select: config key(s), comma-separated, one choice "
                    "per value combination (default model.cell if it varies, else one group; "
                    "--group= for one group).")
flags.DEFINE_boolean("plots", True, "Write the PNGs under DIR/plots/ (--noplots to skip).")
flags.DEFINE_boolean("atlas", False, "Draw only the clipping atlas's figures (no tables): "
                     "per cell, validation perplexity|bpc over clipping setting x learning "
                     "rate at a halving search's first-rung budget; clip rate vs global-norm "
                     "threshold; pre-clip gradient norms over training; the best point's "
                     "learning curves per (cell, clip mode). DIR: a sweep, or a directory "
                     "holding one sweep per cell (several DIRs allowed with --out).")
flags.DEFINE_string("out", None, "The directory for the report's files (default DIR: "
                    "results.* and plots/; with --atlas: DIR/plots/). Use it to report on "
                    "committed records without writing into them.")

USAGE = cli.PROGRAMS["rnnlm-report"].usage


def _atlas(dirs: list[str]) -> None:
  from rnnlm_jax.report import atlas, records
  try:
    written, notes = atlas.write_atlas(dirs, FLAGS.out)
  except (records.ReportError, OSError) as e:
    cli.fail(cli.one_line(e))
  for path in written:
    print(f"wrote {path}")
  for note in notes:
    print(note)


def _main(argv) -> None:
  if FLAGS.atlas and len(argv) >= 2:
    _atlas(argv[1:])
    return
  if len(argv) != 2:
    cli.fail(f"expected one sweep directory, got {len(argv) - 1} arguments; usage: {USAGE}")
  from rnnlm_jax.report import records, render
  try:
    paths = render.write_report(argv[1], rows=FLAGS.rows, cols=FLAGS.cols, metric=FLAGS.metric,
                                plots=FLAGS.plots, tables=FLAGS.tables, select=FLAGS.select,
                                group=FLAGS.group, out=FLAGS.out)
  except (records.ReportError, OSError) as e:
    cli.fail(cli.one_line(e))
  print(paths["summary"])
  print()
  if paths["selected"]:
    print(paths["selected"])
  for key in ("md", "tex", "csv", "cells_csv"):
    print(f"wrote {paths[key]}")
  if paths["plots"]:
    print(f"wrote {len(paths['plots'])} plots in {paths['plots'][0].parent}")


def main() -> None:
  """Entry point of ``rnnlm-report``."""
  app.run(_main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
