"""A workdir written by the old code (3a2ae4b: train.py / train_seq.py / train_synthetic.py)
resumes under the current one and ends exactly where an uninterrupted old run ends.

``tests/golden/old_workdirs/<case>/`` holds, per golden case of ``OLD_WORKDIR_STOPS``, the
workdir that the old code wrote running the case's golden command with
``--config.train.max_steps=<stop>`` (an epoch / evaluation boundary) or, for a synthetic run
(never resumed once finished), interrupted by SIGTERM at <stop> (recorded by
``tests/golden/record_old_workdirs.py``): config.json, status.json ("finished" / "failed"),
metrics.jsonl (including the final evaluation of that short run, which a resume truncates
away), provenance.json, vocab.txt and the latest (and best) orbax checkpoints with the old
loops' meta (``best_valid_loss``, NT-ASGD's ``valid_history``, ...). The test copies it, points
the absolute data paths of its config.json at the test's own copy of the same data (data.path
is not a resumable key), runs the case's full golden command on it through the CLI and asserts
that it resumed from the stop (log line, the metrics before the checkpoint kept byte for byte,
a second run in provenance.json) and that every loss of the resulting metrics.jsonl equals the
golden of tests/golden/<case>.json exactly: the fresh run's losses, or, where the numerics
changed on purpose after the old code wrote the workdir (lm_word and lm_remedies since e227c14,
the float32 head on 2-D logits: float rounding that lm_remedies' chaotic run amplifies; music
since dfdac93, its evaluation's extra per-sequence NLL), the
``old_workdir_losses`` that tests/golden/record.py stored from resuming it at the recording
commit.

The five resumes are subprocesses that start together at the first test, as many at a time as
there are CPUs (each one mostly compiles, single-threaded); under pytest-xdist each test runs
its own.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re

import pytest

from golden.cases import (GOLDEN, OLD_WORKDIR_STOPS, assert_losses, command, extract_losses,
                          old_workdir_expected, recording_for, resume_old_workdir)
from rnnlm_jax.workdir import cpu_signature


@pytest.fixture(scope="module")
def resumed(request, tmp_path_factory):
  """``resumed(case)``: :func:`_resume`'s result and the case's scratch dir."""
  xdist = bool(os.environ.get("PYTEST_XDIST_WORKER"))
  workers = 1 if xdist else max(1, min(len(OLD_WORKDIR_STOPS), os.cpu_count() or 1))
  futures: dict = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:

    def start(case):
      if case not in futures:
        tmp = tmp_path_factory.mktemp(case)
        futures[case] = (pool.submit(resume_old_workdir, case, tmp), tmp)
      return futures[case]

    if not xdist:  # every selected case, in order
      for item in request.session.items:
        if getattr(item, "originalname", None) == "test_old_workdir_resumes":
          start(item.callspec.params["case"])
    yield lambda case: (start(case)[0].result(), start(case)[1])


# Every case runs with -m slow (.ci/run's slow step; 15-25 s each on 2 cores), to keep the
# default run under 8 minutes (lm_word since 2026-12-07: 10 min on an AVX2 host).
SLOW_CASES = ("classify", "lm_remedies", "lm_word", "music", "synthetic")


@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.slow)
                                  if case in SLOW_CASES else case for case in OLD_WORKDIR_STOPS])
def test_old_workdir_resumes(case, resumed):
  golden = json.loads((GOLDEN / f"{case}.json").read_text())
  assert golden["command"] == command(case), "the case's command changed: re-record on purpose"
  stop = OLD_WORKDIR_STOPS[case]
  (kept, proc), tmp = resumed(case)
  workdir = tmp / "run"
  log = proc.stdout + proc.stderr
  # the loop's "resumed from step N (epoch E)"; the synthetic runner's "..., N/M updates done"
  resumed_re = rf"resumed from step {stop} |: \d+ run\(s\), {stop}/\d+ updates done"
  assert re.search(resumed_re, log), f"{case}: did not resume from step {stop}:\n{log[-3000:]}"
  after = (workdir / "metrics.jsonl").read_text().splitlines(keepends=True)
  assert after[:len(kept)] == kept, f"{case}: the metrics before the checkpoint changed"
  runs = json.loads((workdir / "provenance.json").read_text())["runs"]
  assert len(runs) == 2 and runs[-1]["outcome"] == "finished", runs
  recording, rtol = recording_for(golden, cpu_signature())
  got, want = extract_losses(workdir / "metrics.jsonl"), old_workdir_expected(recording)
  assert_losses(case, {".": got}, {".": want}, rtol, "losses of the resumed old workdir")
