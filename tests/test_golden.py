"""Golden outputs: every training path, run through the command line, reproduces recorded losses
bit for bit.

The goldens in ``tests/golden/<case>.json`` were recorded from commit 3a2ae4b (before the
train.py / train_seq.py / train_synthetic.py merge) by ``tests/golden/record.py``; the language
model cases (lm_word, lm_char, lm_remedies) again from 7c24c31, after the float32 head moved to
2-D logits and the library's cross-entropy (e227c14: same math, different float rounding),
lm_word and lm_char again from 003b82b, after the float32 dW_hh became one 2-D GEMM (same
math, different rounding),
and the music case from dfdac93 (its evaluation also computes ``nll_per_sequence``, which
changes the evaluation program's fusion: valid/test losses move by < 1e-7 relative); each
golden's ``recorded_from`` says which. Each case is
a tiny config in ``tests/golden/configs/`` (the case table: ``tests/golden/cases.py``) run as
a subprocess of the public CLI (``rnnlm-train`` / ``rnnlm-sweep``) on tiny data that the test
writes into ``tmp_path`` from ``tests/golden/data/``. The test re-runs the case with whatever
``rnnlm_jax`` is importable and asserts that every loss in metrics.jsonl -- train losses per
logged step, valid/test losses per evaluation -- equals the recorded value exactly (float32 on
CPU; JSON floats round-trip).

The numbers depend on the pinned jax/jaxlib versions and the CPU (XLA compiles for the host's
instruction set): each golden holds the losses of the CPU it was recorded on and of the other
CPUs recorded since (``cpu``, ``other_cpus``; rnnlm_jax.workdir.cpu_signature), bit for bit on
those; on any other CPU the losses are compared within ``golden.cases.OTHER_CPU_RTOL`` with a
warning (chaotic cases skipped). Re-record (``python tests/golden/record.py``) only on
purpose, never to make a failure go away.
"""

from __future__ import annotations

import json

import pytest

from golden.cases import (CASES, GOLDEN, assert_losses, command, first_difference,
                          recording_for, run_case)
from rnnlm_jax.workdir import cpu_signature


# The slowest cases (about 20-25 s each on 2 cores) run with -m slow (.ci/run's slow step), to
# keep the default run under 8 minutes (synthetic since 2026-12-07: 10 min on an AVX2 host;
# synthetic_group keeps the synthetic path in the default run; lm_char since the clean clone's
# 9:20 there: lm_word keeps the LM path).
SLOW_CASES = ("lm_remedies", "classify", "music", "synthetic", "lm_char")


@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.slow) if case in SLOW_CASES
                                  else case for case in CASES])
def test_golden(case, tmp_path):
  golden = json.loads((GOLDEN / f"{case}.json").read_text())
  assert golden["command"] == command(case), "the case's command changed: re-record on purpose"
  recording, rtol = recording_for(golden, cpu_signature())
  got = run_case(case, tmp_path)
  assert_losses(case, got["losses"], recording["losses"], rtol)


def test_recording_for_picks_this_cpus_losses_else_a_tolerance():
  """Bit for bit against the recording of the CPU that runs the test; elsewhere the reference's
  losses within OTHER_CPU_RTOL; a chaotic case is skipped on an unrecorded CPU."""
  from golden.cases import OTHER_CPU_RTOL
  ref = {"losses": {".": {"train": [[5, 2.0]]}}}
  avx2 = {"losses": {".": {"train": [[5, 2.0000001]]}}}
  golden = {"case": "lm_word", "cpu": "A avx512f", **ref, "other_cpus": {"A avx2": avx2}}
  assert recording_for(golden, "A avx512f") == (golden, 0.0)
  assert recording_for(golden, "A avx2") == (avx2, 0.0)
  assert recording_for(golden, "B avx2") == (golden, OTHER_CPU_RTOL)
  assert first_difference(avx2["losses"], ref["losses"], 0.0) is not None
  assert first_difference(avx2["losses"], ref["losses"], OTHER_CPU_RTOL) is None
  assert first_difference({".": {"train": [[5, 2.1]]}}, ref["losses"], OTHER_CPU_RTOL)
  with pytest.raises(pytest.skip.Exception):
    recording_for({**golden, "case": "lm_remedies"}, "B avx2")
  with pytest.raises(pytest.fail.Exception, match="differ from tests/golden/lm_word.json"):
    assert_losses("lm_word", avx2["losses"], ref["losses"], 0.0)
  with pytest.warns(UserWarning, match="no golden recorded on this CPU"):
    assert_losses("lm_word", avx2["losses"], ref["losses"], OTHER_CPU_RTOL)
