"""Sweep reports: tables (Markdown, LaTeX, CSV) and plots from a directory of runs.

    records.py  a sweep directory -> one record per point (settings, state, final metrics),
                reading the one event schema of every task
    layout.py   tables / rows / columns, splitting only what must be split, seed aggregates
    render.py   results.md, results.tex, results.csv, results_cells.csv; write_report
    plots.py    learning curves, gradient norms, success vs synthetic.length (matplotlib)
    atlas.py    the clipping atlas's figures (``--atlas``): heatmaps over clipping setting x
                learning rate per cell, clip rate, gradient norms, best curves

The command line is :mod:`rnnlm_jax.report_main` (``rnnlm-report``).
"""
