"""Selection by validation, reported honestly: ``rnnlm-report DIR --select valid --group KEYS``.

Per group of the ``--group`` keys (e.g. ``model.cell``), each *setting* (a value combination of
the other varying keys, ``seed`` excepted: its seeds are aggregated) is scored by the mean over
its finished seeds of a validation metric; the setting with the best mean is chosen, and only
then is its test metric read (mean ± std, n over the same seeds). The test values of the
settings not chosen are never looked at, so a table of "cell -> best hidden size" does not
peek at test.

Metrics (:func:`metric_pair`): language models select by ``best_valid_<unit>`` (perplexity or
bpc, the minimum over the run's validations, as the trainer's best checkpoint) and report
``test_<unit>`` (of that checkpoint); classification by ``valid_<train.select_metric>`` (max
for accuracy / F1, min for loss), music by ``valid_loss``, reporting the matching ``test_``
metric; synthetic tasks run with ``synthetic.valid_size`` by ``best_valid_error_rate``,
reporting the test ``error_rate``. ``--select`` may name the validation field itself
(``--select valid_accuracy``). Synthetic runs without a validation set are refused.

A setting one of whose seeds diverged is ranked after every setting whose seeds all finished
(as the halving search ranks it: a rate that blows up on some seeds is not a good choice),
its mean taken over the seeds that finished.
"""

from __future__ import annotations

import os
from typing import Sequence

from rnnlm_jax.report import stats as stats_lib
from rnnlm_jax.report.layout import REPLICATE_KEYS, parse_keys, setting
from rnnlm_jax.report.records import DONE_STATES, LOWER_IS_BETTER, UNPREFIXED, ReportError, \
    finite, fmt_value, num


def metric_pair(records: list[dict], kind: str, select: str) -> tuple[str, str, str]:
  """(validation field, test field, "min" | "max") for ``--select``: ``valid`` (the task's
  default) or a record field ``valid_<m>`` / ``best_valid_<m>``.

  Raises:
    ReportError: a synthetic sweep without a validation set, or a field no record has.
  """
  if kind == "synthetic" and not any("best_valid_error_rate" in r for r in records):
    raise ReportError("--select: these synthetic-task runs have no validation split to select "
                      "by (train them with synthetic.valid_size > 0)")
  if select == "valid":
    if kind == "synthetic":
      valid, test = "best_valid_error_rate", "error_rate"  # the test error rate: unprefixed
    elif kind == "lm":
      unit = next((r["metric_unit"] for r in records if r.get("metric_unit")), "perplexity")
      valid, test = f"best_valid_{unit}", f"test_{unit}"
    else:
      chosen = next((r["flat"].get("train.select_metric") for r in records
                     if r["flat"].get("train.select_metric")), None)
      m = chosen if chosen and any(f"valid_{chosen}" in r for r in records) else "loss"
      valid, test = f"valid_{m}", f"test_{m}"
  else:
    valid = select
    base = valid[len("best_valid_"):] if valid.startswith("best_valid_") else \
        valid[len("valid_"):] if valid.startswith("valid_") else None
    if base is None:
      raise ReportError(f"--select {select!r}: use valid or a validation field (valid_<metric> "
                        "or best_valid_<metric>)")
    test = base if kind == "synthetic" and base in UNPREFIXED else f"test_{base}"
  if not any(valid in r for r in records):
    have = sorted({k for r in records for k in r if str(k).startswith(("valid_", "best_valid_"))})
    raise ReportError(f"--select: no run has {valid!r} (fields: {', '.join(have) or 'none'})")
  metric = valid.rsplit("valid_", 1)[-1]
  return valid, test, "min" if metric in LOWER_IS_BETTER else "max"


def _finished(points: list[dict], field: str) -> list[float]:
  return [v for v in (num(p.get(field)) for p in points if p["state"] == "finished")
          if finite(v)]


def choose(records: list[dict], group_keys: Sequence[str], valid: str, test: str,
           mode: str) -> list[dict]:
  """Per group of ``group_keys`` (in order of first appearance): the setting with the best
  mean validation value over its finished seeds (ties: the first in the sweep; a setting with a
  diverged seed only if no other has a value), and that setting's validation and test
  summaries.

  Returns:
    [{"group": {key: value}, "setting": {key: value}, "valid": Summary, "test": Summary,
      "candidates": how many settings had a validation value, "points": [records]}]; values
    are shown as :func:`fmt_value` writes them (the chosen points' own values are in their
    records' ``settings``).
  """
  free = [k for k in records[0]["settings"] if k not in REPLICATE_KEYS and k not in group_keys]
  by_group: dict[tuple, dict[tuple, list[dict]]] = {}
  for r in records:
    g = tuple(fmt_value(setting(r, k)) for k in group_keys)
    s = tuple(fmt_value(setting(r, k)) for k in free)
    by_group.setdefault(g, {}).setdefault(s, []).append(r)
  sign = 1.0 if mode == "min" else -1.0
  out = []
  for g, settings in by_group.items():
    scored = [(s, stats_lib.summary(_finished(pts, valid))) for s, pts in settings.items()]
    scored = [(s, v) for s, v in scored if v.n]
    row = {"group": dict(zip(group_keys, g)), "candidates": len(scored), "setting": None,
           "valid": stats_lib.Summary(None, None, 0), "test": stats_lib.Summary(None, None, 0),
           "points": []}
    if scored:
      diverged = {s for s, pts in settings.items() if any(p["state"] == "diverged" for p in pts)}
      best, v = min(scored, key=lambda sv: (sv[0] in diverged, sign * sv[1].mean))  # ties: first
      pts = settings[best]
      row.update(setting=dict(zip(free, best)), valid=v, points=pts,
                 test=stats_lib.summary(_finished(pts, test)))
    out.append(row)
  return out


def _fmt(s: stats_lib.Summary) -> str:
  if not s.n:
    return "n/a"
  if s.std is None:
    return f"{s.mean:.4g} (1)"
  return f"{s.mean:.4g} ± {s.std:.2g} ({s.n})"


def table(rows: list[dict], group_keys: Sequence[str], valid: str, test: str) -> str:
  """The table of :func:`choose`'s rows: group -> chosen setting, valid, test (mean ± std (n))."""
  head = [", ".join(group_keys) or "group", "chosen setting", "settings compared",
          f"{valid} (mean ± std, n)", f"{test} (mean ± std, n)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    label = ", ".join(str(v) for v in r["group"].values()) or "all"
    chosen = ("none finished" if r["setting"] is None else
              ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r["setting"].items()) or "(one)")
    cells = [label, chosen, str(r["candidates"]), _fmt(r["valid"]), _fmt(r["test"])]
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
  return "\n".join(lines)


def markdown(rows: list[dict], group_keys: Sequence[str], valid: str, test: str,
             mode: str) -> str:
  """The section of results.md: its heading, what was chosen how, :func:`table`."""
  return "\n".join(["## Selected by validation", "",
                    f"Per {', '.join(group_keys) or 'sweep'}, the setting of the other varying "
                    f"keys with the best mean `{valid}` ({mode}) over its finished seeds; the "
                    f"test column is `{test}` of that setting only (the other settings' test "
                    "values are not looked at).", "",
                    table(rows, group_keys, valid, test)]) + "\n"


def search_records(roots: Sequence[str | os.PathLike], config_keys: Sequence[str] = ()
                   ) -> list[dict]:
  """The records of one or several searches read as one (in the order of ``roots``), with
  ``config_keys`` (config keys fixed within each search but not across them, e.g. ``optim.name``
  of an SGD and an Adam search) made part of each record's settings."""
  from rnnlm_jax.report import records as records_lib  # pylint: disable=import-outside-toplevel
  records = [r for root in roots for r in records_lib.collect(root)]
  for r in records:
    r["settings"] = {**{k: r["flat"].get(k) for k in config_keys}, **r["settings"]}
  return records


def chosen(roots, group_keys: Sequence[str], select: str = "valid",
           config_keys: Sequence[str] = ()) -> dict[tuple, dict]:
  """The setting chosen per group by finished searches (sweeps or their archived records at
  ``roots``, one path or several searched as one): ``{(group values as in the records): {key:
  value}}``, for a later stage's config to read instead of copying numbers by hand.
  ``config_keys``: config keys fixed within each search but not across them (e.g.
  ``optim.name`` of an SGD and an Adam search), made part of each setting.

  Raises:
    ReportError: a point of the searches has not ended (finished or diverged), so the choice
      could still change; a group with no finished setting.
  """
  from rnnlm_jax.report import records as records_lib  # pylint: disable=import-outside-toplevel
  roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
  records = search_records(roots, config_keys)
  open_points = [r["name"] for r in records if r["state"] not in DONE_STATES]
  if open_points:
    raise ReportError(f"{', '.join(map(str, roots))}: {len(open_points)} point(s) of the search "
                      f"have not ended (e.g. {open_points[0]}); finish it before reading its "
                      "choice")
  valid, test, mode = metric_pair(records, records_lib.sweep_kind(records), select)
  out = {}
  for row in choose(records, list(group_keys), valid, test, mode):
    if row["setting"] is None:
      raise ReportError(f"{', '.join(map(str, roots))}: no finished setting for {row['group']}")
    pts = row["points"]
    out[tuple(setting(pts[0], k) for k in group_keys)] = {
        k: setting(pts[0], k) for k in row["setting"]}
  return out


def select_section(records: list[dict], kind: str, select: str,
                   group: str | Sequence[str] | None) -> tuple[str, list[dict]]:
  """(the Markdown section, the rows of :func:`choose`) for ``--select`` and ``--group``
  (default ``model.cell`` when it varies, else one group).

  Raises:
    ReportError: a bad metric (:func:`metric_pair`), the seed or an unknown key as a group key.
  """
  valid, test, mode = metric_pair(records, kind, select)
  keys = parse_keys(group)
  if keys is None:
    keys = ["model.cell"] if "model.cell" in records[0]["settings"] else []
  for k in keys:
    if k in REPLICATE_KEYS:
      what = "seeds" if k == "seed" else "cross-validation folds"
      raise ReportError(f"--group {k}: {what} are aggregated; group by another key")
    if k not in records[0]["settings"] and not any(k in r["flat"] for r in records):
      raise ReportError(f"--group {k!r} is not a config key of these runs")
  rows = choose(records, keys, valid, test, mode)
  return markdown(rows, keys, valid, test, mode), rows
