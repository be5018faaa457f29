"""Fault-injection harness for ``rnnlm-train`` (issue 19, "Runs you can trust").

Drives the real command line (``rnnlm-train --config configs/tiny.py --workdir DIR
--config.KEY=VALUE ...``) as subprocesses on a tiny word-level LSTM (a generated corpus, a few
epochs, a checkpoint every few steps and a validation every epoch) and injects faults:

* ``kill``: one uninterrupted reference run, then ``--trials`` runs killed with SIGKILL at a
  random moment (a delay drawn uniformly over the reference's wall time, or right after an
  event: a ``best`` checkpoint committed before its ``latest`` twin, a save in progress, a
  validation, the final test), each re-run with the same command until it exits 0; its
  ``metrics.jsonl`` must equal the reference's (every field but the timing ones) and its
  ``status.json`` say ``finished``. One more trial stops a run with SIGTERM (exit 130, state
  ``interrupted``) and resumes it.
* ``corrupt``: the newest ``checkpoints/latest/<step>`` of an interrupted run truncated, its
  metadata files deleted, or 100 of its bytes flipped: the re-run warns that it skipped that
  step, falls back to an older checkpoint and ends identical to the reference; with every
  checkpoint corrupted, one line of error.
* ``concurrent``: a second run on a workdir in use is refused with one line naming the holder
  (its pid); the first ends identical to the reference.
* ``badinput``: ``model.hidden_size=0``, a corpus too small for ``data.bptt`` x
  ``train.batch_size``, ``train.eval_batch_size`` larger than the valid split: one line on
  stderr, exit 2, no workdir created.
* ``oserror``: a workdir path that is a file, a read-only workdir, a disk that fills up
  mid-run: one line, a documented exit code, the workdir unchanged (read-only) or its status
  not left ``running`` (full disk); after the cause is removed, a re-run ends identical to the
  reference.

The expectations are the constants below (exit codes from :mod:`rnnlm_jax.cli`). Every trial
prints a progress line; a table and ``WORKDIR_ROOT/<session>/results.json`` follow. The exit
status is 0 only if no trial failed (a skipped trial, e.g. a full disk that cannot be
simulated without root, is listed with its reason and does not fail the session).

    nice -n 10 python scripts/fault_harness.py                     # everything, 50 kills
    python scripts/fault_harness.py --only kill --trials 5 --seed 1
    python scripts/fault_harness.py --only corrupt,concurrent

The tests import this file (``tests/test_faults.py``) for a fast subset.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import pathlib
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Callable

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without `pip install -e .` too

from rnnlm_jax import cli  # noqa: E402  (light: absl flags only)


def _load_test_helpers():
  """tests/helpers.py (make_corpus, TIMING_FIELDS), loaded by path: tests/ is no package."""
  spec = importlib.util.spec_from_file_location("_fault_helpers", REPO / "tests" / "helpers.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


helpers = _load_test_helpers()

# ------------------------------------------------------------------------------ expectations

GROUPS = ("kill", "corrupt", "concurrent", "badinput", "oserror")
DEFAULT_ROOT = pathlib.Path(tempfile.gettempdir()) / "rnnlm_faults"
CONFIG_FILE = REPO / "configs" / "tiny.py"

EXIT_OK = 0
# Every documented exit code of the commands (rnnlm_jax/cli.py: EXIT_FAILED 1, EXIT_BAD_INPUT
# 2, EXIT_DIVERGED 3, EXIT_INTERRUPTED 130, and any added later).
DOCUMENTED_EXITS = {v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)}
EXIT_BAD_INPUT = cli.EXIT_BAD_INPUT          # bad config / data: exactly this
EXIT_INTERRUPTED = cli.EXIT_INTERRUPTED      # SIGTERM: exactly this
# A refused second run, an OS error, no usable checkpoint: any documented failure code (an
# uncaught exception exits 1 as well, which the no-traceback check catches).
FAILURE_EXITS = DOCUMENTED_EXITS - {EXIT_OK, cli.EXIT_DIVERGED, cli.EXIT_INTERRUPTED}
# A read-only workdir, a full disk: the OS-error code where the commands have one (issue 19
# item 7), else any failure code. A --workdir that is a file may be either (bad input).
EXIT_OS_ERROR = getattr(cli, "EXIT_OS_ERROR", None)
OS_ERROR_EXITS = {EXIT_OS_ERROR} if EXIT_OS_ERROR is not None else FAILURE_EXITS

ERROR_PREFIX = "error: "          # the one stderr line of a failed command (cli.fail)
TRACEBACK = "Traceback"           # never in stdout or stderr
STATE_FINISHED = "finished"
STATE_INTERRUPTED = "interrupted"  # issue 19 item 8 (a SIGTERM'd run; "failed" before)
STATE_NOT_AFTER_OS_ERROR = "running"  # item 7: a full disk must not leave status `running`
# The re-run after a corrupted checkpoint must log a line with the skipped step's number and
# one of these words.
FALLBACK_WARNING = re.compile(r"(?i)\b(skip\w*|corrupt\w*|fall\w* back|unusable|not verif\w*)")
MAX_RERUNS = 3                    # re-runs allowed after a kill before the trial fails
FLIPPED_BYTES = 100
POLL_S = 0.002                    # watch interval for event triggers


@dataclasses.dataclass
class Setup:
  """The tiny run every trial trains (configs/tiny.py plus these overrides)."""
  corpus_lines: int = 150       # make_corpus lines: ~850 train tokens, vocab 22
  hidden_size: int = 8
  num_layers: int = 1
  num_epochs: int = 3           # one validation per epoch
  checkpoint_every_steps: int = 4
  log_every: int = 2

  def overrides(self) -> dict:
    return {"model.hidden_size": self.hidden_size, "model.embed_size": self.hidden_size,
            "model.num_layers": self.num_layers, "train.num_epochs": self.num_epochs,
            "train.max_steps": 0, "train.checkpoint_every_steps": self.checkpoint_every_steps,
            "train.log_every": self.log_every, "train.progress_bar": False}


# ----------------------------------------------------------------------------------- records


@dataclasses.dataclass
class Result:
  """One finished subprocess."""
  rc: int
  out: str
  err: str
  wall: float


@dataclasses.dataclass
class Trial:
  """One trial's outcome (``status``: pass, fail or skip)."""
  group: str
  name: str
  status: str = "pass"
  reason: str = ""
  trigger: str = ""       # when the fault was injected
  happening: str = ""     # what the run was doing then
  reruns: int = 0
  wall: float = 0.0

  def check(self, ok: bool, reason: str) -> bool:
    """Record ``reason`` as a failure unless ``ok`` (the first failure is kept first)."""
    if not ok:
      self.status = "fail"
      self.reason = f"{self.reason}; {reason}" if self.reason else reason
    return ok


@dataclasses.dataclass
class Reference:
  """The uninterrupted run."""
  events: list
  wall: float
  valid_steps: list
  total_steps: int
  steps_per_epoch: int


# ----------------------------------------------------------------------------------- helpers


def first_line(text: str, limit: int = 240) -> str:
  lines = [l for l in text.splitlines() if l.strip()]
  return lines[0][:limit] if lines else ""


def last_line(text: str, limit: int = 160) -> str:
  lines = [l for l in text.splitlines() if l.strip()]
  return lines[-1][:limit] if lines else ""


def one_line_error(res: Result) -> str:
  """'' if ``res`` failed the way a command should (one stderr line 'error: ...', no
  traceback); else what is wrong."""
  lines = [l for l in res.err.splitlines() if l.strip()]
  if TRACEBACK in res.err or TRACEBACK in res.out:
    tb = [l for l in lines if l.strip()]
    return f"traceback ({len(tb)} stderr lines; last: {last_line(res.err)!r})"
  if len(lines) != 1:
    return f"{len(lines)} stderr lines, expected 1 (last: {last_line(res.err)!r})"
  if not lines[0].startswith(ERROR_PREFIX):
    return f"stderr line does not start with {ERROR_PREFIX!r}: {lines[0][:160]!r}"
  return ""


def read_events(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl read strictly (a bad line raises), without the timing fields."""
  text = (workdir / "metrics.jsonl").read_text()
  return [{k: v for k, v in json.loads(l).items() if k not in helpers.TIMING_FIELDS}
          for l in text.splitlines()]


def events_diff(got: list[dict], want: list[dict]) -> str:
  """'' if equal; else the first difference, in one line."""
  for i, (g, w) in enumerate(zip(got, want)):
    if g != w:
      keys = sorted(k for k in set(g) | set(w) if g.get(k) != w.get(k))
      k = keys[0]
      return (f"event {i + 1} (step {w.get('step')} {w.get('split')}) differs in {keys}: "
              f"{k} {g.get(k)!r} != reference {w.get(k)!r}")
  if len(got) != len(want):
    return f"{len(got)} events, reference {len(want)}"
  return ""


def check_no_traceback(trial: Trial, res: Result | None, who: str) -> None:
  """Even a run that succeeds must print no traceback (e.g. from a background thread)."""
  if res is not None and (TRACEBACK in res.err or TRACEBACK in res.out):
    err = [l for l in res.err.splitlines() if l.strip() and not l.startswith(" ")]
    trial.check(False, f"{who} (exit {res.rc}) printed a traceback: {err[-1][:160]!r}"
                if err else f"{who} printed a traceback")


def check_identical(trial: Trial, workdir: pathlib.Path, ref: Reference) -> None:
  """The workdir ended like the reference: status finished, the same events."""
  try:
    status = json.loads((workdir / "status.json").read_text())
    got = read_events(workdir)
  except (OSError, ValueError) as e:
    trial.check(False, f"cannot read the workdir's records ({cli.one_line(e)})")
    return
  trial.check(status.get("state") == STATE_FINISHED,
              f"status {status.get('state')!r}, expected {STATE_FINISHED!r}")
  diff = events_diff(got, ref.events)
  trial.check(not diff, f"metrics.jsonl: {diff}")


def tree_digest(path: pathlib.Path) -> str | None:
  """SHA-256 over the names, kinds and bytes of everything under ``path`` (a file: its bytes);
  ``None`` if it does not exist."""
  if not path.exists() and not path.is_symlink():
    return None
  h = hashlib.sha256()
  items = [path] if not path.is_dir() else sorted(path.rglob("*"))
  for p in items:
    rel = str(p.relative_to(path)) if p != path else "."
    if p.is_symlink():
      h.update(f"L {rel} {os.readlink(p)}\n".encode())
    elif p.is_dir():
      h.update(f"D {rel}\n".encode())
    else:
      h.update(f"F {rel} ".encode() + p.read_bytes() + b"\n")
  return h.hexdigest()


def checkpoint_steps(workdir: pathlib.Path, which: str) -> list[int]:
  """The committed step directories of ``checkpoints/<which>``, ascending."""
  d = workdir / "checkpoints" / which
  try:
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())
  except OSError:
    return []


def saving_now(workdir: pathlib.Path) -> list[str]:
  """Temporary (uncommitted) checkpoint directories: a save in progress."""
  names = []
  for which in ("latest", "best"):
    try:
      names += [f"{which}/{p.name}" for p in (workdir / "checkpoints" / which).iterdir()
                if "tmp" in p.name]
    except OSError:
      pass
  return names


def describe_moment(workdir: pathlib.Path, log_text: str, ref: Reference | None) -> str:
  """What a run was doing when it was stopped, from its log and its checkpoints (every phase
  that applies: a save may be in flight during a validation)."""
  latest, best = checkpoint_steps(workdir, "latest"), checkpoint_steps(workdir, "best")
  steps = re.findall(r"step (\d+) epoch [\d.]+ (train|valid):", log_text)
  line = last_line(log_text)
  phases = []
  if saving := saving_now(workdir):
    phases.append(f"saving ({', '.join(saving)})")
  if best and (not latest or best[-1] > latest[-1]):
    phases.append(f"between the best and the latest save of step {best[-1]}")
  if line.startswith("{"):
    phases.append("exiting (result printed)")
  elif re.search(r"\d \w+ \(best-valid checkpoint", line):
    phases.append("final test done, finishing")
  elif not steps:
    phases.append("starting (imports, data, compilation" + (", resuming)" if latest else ")"))
  else:
    step, split = int(steps[-1][0]), steps[-1][1]
    total, valid = (ref.total_steps, ref.valid_steps) if ref else (-1, [])
    if split == "valid" and step == total:
      phases.append("final test (after the last validation)")
    elif split == "train" and step in valid:
      phases.append(f"validation at step {step}")
    elif split == "valid":
      phases.append(f"after the validation at step {step} (its checkpoints)")
    else:
      phases.append(f"training after step {step}")
  return f"{'; '.join(phases)}; latest {latest}, best {best}"


# ---------------------------------------------------------------------------------- triggers


@dataclasses.dataclass
class Trigger:
  """When to inject a fault into a running process.

  kind: ``time`` (``value`` seconds after the start), ``best`` (once ``checkpoints/best/<value>``
  is committed: between the best and the latest save), ``save`` (at the ``value``-th save seen
  in progress), ``log`` (once the log matches the regex ``value``); then ``jitter`` seconds more.
  """
  kind: str
  value: float | int | str
  jitter: float = 0.0
  label: str = ""

  def describe(self) -> str:
    if self.label:
      return self.label
    if self.kind == "time":
      return f"after {float(self.value):.2f} s"
    return f"{self.kind} {self.value}" + (f" +{self.jitter * 1000:.0f} ms" if self.jitter else "")


def random_kill_triggers(n: int, ref: Reference, rng: random.Random) -> list[Trigger]:
  """``n`` kill moments: half uniform over the reference's wall time, half right after an
  event (a committed best checkpoint, a save in progress, a validation, the final test)."""
  saves = max(1, ref.total_steps // 4)
  out = []
  for i in range(n):
    jitter = rng.uniform(0.0, 0.03)
    kind = ("time", "time", "time", "best", "save", "eval")[i % 6]
    if kind == "time":
      out.append(Trigger("time", rng.uniform(0.0, ref.wall)))
    elif kind == "best":
      step = rng.choice(ref.valid_steps)
      out.append(Trigger("best", step, 0.0, f"best/{step} committed (before latest/{step})"))
    elif kind == "save":
      out.append(Trigger("save", rng.randint(1, saves), jitter))
    else:
      out.append(eval_trigger(rng.choice(ref.valid_steps), ref, jitter))
  return out


def eval_trigger(step: int, ref: Reference, jitter: float = 0.0) -> Trigger:
  """During the validation at ``step`` (its train event logged), or, at the last step, during
  the final test (the last validation logged)."""
  if step == ref.total_steps:
    return Trigger("log", rf"step {step} epoch [\d.]+ valid:", jitter,
                   f"final test (+{jitter * 1000:.0f} ms)")
  return Trigger("log", rf"step {step} epoch [\d.]+ train:", jitter,
                 f"validation at step {step} (+{jitter * 1000:.0f} ms)")


# ----------------------------------------------------------------------------------- harness


class Harness:
  """The trials, on runs under ``root`` (a corpus, TFDS files, XLA cache, workdirs, logs)."""

  def __init__(self, root: pathlib.Path, setup: Setup | None = None, seed: int = 0,
               say: Callable[[str], None] = print, timeout: float = 600.0, warm: bool = True):
    self.root = pathlib.Path(root).absolute()
    self.setup = setup or Setup()
    self.rng = random.Random(seed)
    self.say = say
    self.timeout = timeout
    self.warm = warm
    self.counter = 0
    self._ref: Reference | None = None
    self._snapshot: tuple[pathlib.Path, Result, int] | None = None
    for d in ("data", "tfds", "trials", "logs"):
      (self.root / d).mkdir(parents=True, exist_ok=True)
    self.corpus = self.root / "data" / "corpus.txt"
    self.once("corpus", lambda: {
        "path": str(helpers.make_corpus(self.corpus, num_lines=self.setup.corpus_lines))})
    self.env = dict(os.environ)
    self.env.setdefault("JAX_COMPILATION_CACHE_DIR", str(self.root / "xla_cache"))
    self.env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    self.env["RNNLM_NO_DOWNLOAD"] = "1"

  # -------------------------------------------------------------------- processes

  def command(self, workdir: pathlib.Path, extra: dict | None = None) -> list[str]:
    exe = pathlib.Path(sys.executable).parent / "rnnlm-train"
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "rnnlm_jax.main"]
    over = {"data.name": "text_file", "data.path": str(self.corpus), "data.level": "word",
            "data.tfds_dir": str(self.root / "tfds"), **self.setup.overrides(), **(extra or {})}
    return head + ["--config", str(CONFIG_FILE), "--workdir", str(workdir)] + [
        f"--config.{k}={v}" for k, v in over.items()]

  def once(self, name: str, make: Callable[[], dict]) -> dict:
    """``make()``'s JSON result, computed once per root: processes sharing the root (pytest
    workers) wait for the first one and read ``<name>.json``."""
    done = self.root / f"{name}.json"
    with open(self.root / f"{name}.lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not done.exists():
        done.write_text(json.dumps(make()))
      return json.loads(done.read_text())

  def _logs(self, tag: str) -> tuple[pathlib.Path, pathlib.Path]:
    self.counter += 1
    base = self.root / "logs" / f"{os.getpid()}-{self.counter:03d}-{tag}"
    return base.with_suffix(".out"), base.with_suffix(".err")

  def start(self, workdir, extra=None, tag="run") -> tuple[subprocess.Popen, pathlib.Path,
                                                          pathlib.Path, float]:
    """Start a run; ``(process, stdout file, stderr file, start time)``."""
    out, err = self._logs(tag)
    with open(out, "w") as fo, open(err, "w") as fe:
      p = subprocess.Popen(self.command(workdir, extra), stdout=fo, stderr=fe, cwd=REPO,
                           env=self.env, start_new_session=True)
    return p, out, err, time.monotonic()

  def finish(self, started, timeout: float | None = None) -> Result:
    """Wait for a started run (killed with SIGKILL after ``timeout``: rc -9, noted)."""
    p, out, err, t0 = started
    try:
      rc = p.wait(timeout=timeout or self.timeout)
    except subprocess.TimeoutExpired:
      p.kill()
      rc = p.wait()
      with open(err, "a") as f:
        f.write(f"\n[harness] timed out after {timeout or self.timeout:.0f} s, killed\n")
    return Result(rc, out.read_text(errors="replace"), err.read_text(errors="replace"),
                  time.monotonic() - t0)

  def run(self, workdir, extra=None, tag="run") -> Result:
    return self.finish(self.start(workdir, extra, tag))

  def inject(self, started, workdir: pathlib.Path, trigger: Trigger, sig: int,
             action: Callable[[], None] | None = None) -> tuple[bool, float, str]:
    """Wait for ``trigger``, then send ``sig`` (or call ``action``); ``(fired, seconds after
    start, what the run was doing)``. ``fired`` is False if the run ended first."""
    p, out, _, t0 = started
    seen_saves: set[str] = set()
    deadline = t0 + self.timeout
    while p.poll() is None and time.monotonic() < deadline:
      if self._fired(trigger, workdir, out, t0, seen_saves):
        if trigger.jitter:
          time.sleep(trigger.jitter)
        moment = describe_moment(workdir, out.read_text(errors="replace"), self._ref)
        if action is not None:
          action()
        elif p.poll() is None:
          p.send_signal(sig)
        return True, time.monotonic() - t0, moment
      time.sleep(POLL_S)
    return False, time.monotonic() - t0, "the run ended before the trigger"

  @staticmethod
  def _fired(trigger: Trigger, workdir, out: pathlib.Path, t0: float, seen: set) -> bool:
    if trigger.kind == "time":
      return time.monotonic() - t0 >= float(trigger.value)
    if trigger.kind == "best":
      return int(trigger.value) in checkpoint_steps(workdir, "best")
    if trigger.kind == "save":
      seen.update(saving_now(workdir))
      return len(seen) >= int(trigger.value)
    if trigger.kind == "log":
      return re.search(str(trigger.value), out.read_text(errors="replace")) is not None
    raise ValueError(f"unknown trigger kind {trigger.kind!r}")

  def fresh(self, name: str) -> pathlib.Path:
    """An empty trial directory ``trials/<name>`` (removed first if it exists)."""
    d = self.root / "trials" / name
    if d.exists():
      shutil.rmtree(d)
    d.mkdir(parents=True)
    return d

  # ----------------------------------------------------------------- reference

  def reference(self) -> Reference:
    """The uninterrupted run (trained once per root; shared across processes by a lock).

    With ``warm`` (the constructor's), a second uninterrupted run is the reference: its wall
    time (compiled programs cached, as for the trials) spreads the kill moments, and its events
    must equal the first's (else nothing can be compared and this raises)."""
    if self._ref is None:
      self._ref = Reference(**self.once("reference", self._make_reference))
    return self._ref

  def _make_reference(self) -> dict:
    wd = self.root / "reference"
    shutil.rmtree(wd, ignore_errors=True)
    res = self.run(wd, tag="reference")
    if res.rc != 0:
      raise RuntimeError(f"the reference run failed (exit {res.rc}): {last_line(res.err)}")
    events = read_events(wd)
    if self.warm:
      again = self.root / "reference-warm"
      shutil.rmtree(again, ignore_errors=True)
      res = self.run(again, tag="reference-warm")
      diff = f"exit {res.rc}" if res.rc != 0 else events_diff(read_events(again), events)
      if diff:
        raise RuntimeError(f"two uninterrupted runs differ: {diff}")
    valid = [e["step"] for e in events if e["split"] == "valid"]
    total = events[-1]["step"]
    return {"events": events, "wall": res.wall, "valid_steps": valid, "total_steps": total,
            "steps_per_epoch": valid[0] if valid else total}

  def resume_until_done(self, trial: Trial, workdir: pathlib.Path, first: Result | None = None
                        ) -> Result | None:
    """Re-run the same command until it exits 0 (at most :data:`MAX_RERUNS` times)."""
    res = first
    errors = []
    for _ in range(MAX_RERUNS):
      res = self.run(workdir, tag=f"{trial.group}-{trial.name}-rerun")
      trial.reruns += 1
      if res.rc == EXIT_OK:
        check_no_traceback(trial, res, "the re-run")
        return res
      errors.append(f"exit {res.rc}: {last_line(res.err) or last_line(res.out)}")
    trial.check(False, f"no re-run of {MAX_RERUNS} exited 0 ({' | '.join(errors[-2:])})")
    return res

  # ----------------------------------------------------------------- kill -9

  def kill_trial(self, name: str, trigger: Trigger) -> Trial:
    """SIGKILL a run at ``trigger``, re-run until it exits 0, compare with the reference."""
    ref = self.reference()
    trial, t0 = Trial("kill", name, trigger=trigger.describe()), time.monotonic()
    wd = self.fresh(f"kill-{name}") / "wd"
    started = self.start(wd, tag=f"kill-{name}")
    fired, at, trial.happening = self.inject(started, wd, trigger, signal.SIGKILL)
    first = self.finish(started)
    if not fired:
      trial.trigger += " (not reached: the run ended first)"
      trial.check(first.rc == EXIT_OK, f"the un-killed run exited {first.rc}: "
                  f"{last_line(first.err)}")
    else:
      trial.trigger += f" -> killed at {at:.2f} s"
      self.resume_until_done(trial, wd)
    check_identical(trial, wd, ref)
    trial.wall = time.monotonic() - t0
    return trial

  # ----------------------------------------------------------------- SIGTERM snapshot

  def interrupted(self) -> tuple[pathlib.Path, Result, int]:
    """A workdir stopped by SIGTERM in the second epoch, with at least two ``latest``
    checkpoints (made once; trials copy it): ``(workdir, its run's result, the step of its
    newest checkpoint)``."""
    if self._snapshot is None:
      got = self.once("interrupted", self._make_interrupted)
      self._snapshot = (pathlib.Path(got["workdir"]), Result(**got["result"]), got["newest"])
    return self._snapshot

  def _make_interrupted(self) -> dict:
    ref = self.reference()
    wd = self.fresh("interrupted") / "wd"
    step = next(e["step"] for e in ref.events
                if e["split"] == "train" and e["step"] >= 1.5 * ref.steps_per_epoch)
    started = self.start(wd, tag="sigterm")
    self.inject(started, wd, Trigger("log", rf"step {step} epoch"), signal.SIGTERM)
    res = self.finish(started)
    latest = checkpoint_steps(wd, "latest")
    return {"workdir": str(wd), "result": dataclasses.asdict(res),
            "newest": latest[-1] if latest else -1}

  def copy_interrupted(self, name: str) -> tuple[pathlib.Path, int]:
    src, _, newest = self.interrupted()
    wd = self.fresh(name) / "wd"
    shutil.copytree(src, wd, symlinks=True)
    return wd, newest

  def sigterm_trial(self) -> Trial:
    """SIGTERM: exit 130 and state interrupted; the re-run ends identical."""
    ref = self.reference()
    trial, t0 = Trial("kill", "sigterm"), time.monotonic()
    src, res, newest = self.interrupted()
    trial.trigger = f"SIGTERM in epoch 2 (newest checkpoint: step {newest})"
    trial.check(res.rc == EXIT_INTERRUPTED, f"exit {res.rc}, expected {EXIT_INTERRUPTED} "
                f"({last_line(res.err)})")
    if res.rc != EXIT_OK:
      trial.check(TRACEBACK not in res.err, f"traceback: {last_line(res.err)!r}")
    try:
      state = json.loads((src / "status.json").read_text()).get("state")
    except (OSError, ValueError):
      state = None
    trial.check(state == STATE_INTERRUPTED, f"status {state!r} after SIGTERM, expected "
                f"{STATE_INTERRUPTED!r} (item 8)")
    wd, _ = self.copy_interrupted("sigterm-resume")
    self.resume_until_done(trial, wd)
    check_identical(trial, wd, ref)
    trial.wall = time.monotonic() - t0
    return trial

  # ----------------------------------------------------------------- corruption

  def corrupt_trial(self, how: str) -> Trial:
    """Corrupt the newest ``latest`` checkpoint of an interrupted run (``truncate``,
    ``metadata``, ``flip``), or every checkpoint (``all``), and re-run."""
    ref = self.reference()
    trial, t0 = Trial("corrupt", how), time.monotonic()
    wd, newest = self.copy_interrupted(f"corrupt-{how}")
    if newest < 0:
      trial.check(False, "the interrupted run left no checkpoint to corrupt")
      return trial
    targets = ([wd / "checkpoints" / w / str(s) for w in ("latest", "best")
                for s in checkpoint_steps(wd, w)] if how == "all"
               else [wd / "checkpoints" / "latest" / str(newest)])
    trial.trigger = "; ".join(corrupt_checkpoint(t, how if how != "all" else "flip", self.rng)
                              for t in targets)
    res = self.run(wd, tag=f"corrupt-{how}")
    if how == "all":
      self._check_refused(trial, res, FAILURE_EXITS)
    else:
      log = res.out + res.err
      warned = [l for l in log.splitlines() if FALLBACK_WARNING.search(l) and str(newest) in l]
      trial.happening = warned[0][:200] if warned else last_line(res.err)
      trial.check(bool(warned), f"no warning naming the skipped step {newest} (exit {res.rc}: "
                  f"{last_line(res.err) or last_line(res.out)!r})")
      trial.check(res.rc == EXIT_OK, f"re-run exit {res.rc}: {last_line(res.err)!r}")
      check_no_traceback(trial, res, "the re-run")
      if res.rc == EXIT_OK:
        check_identical(trial, wd, ref)
    trial.wall = time.monotonic() - t0
    return trial

  # ----------------------------------------------------------------- two runs

  def concurrent_trial(self) -> Trial:
    """A second run on a workdir in use must be refused; the first ends identical."""
    ref = self.reference()
    trial, t0 = Trial("concurrent", "second-run"), time.monotonic()
    wd = self.fresh("concurrent") / "wd"
    first = self.start(wd, tag="concurrent-first")
    # The first run is paused (SIGSTOP) once it trains, so that it still holds the workdir
    # however long the second takes to start; it goes on (SIGCONT) after the second ends.
    fired, at, trial.happening = self.inject(
        first, wd, Trigger("log", r"step \d+ epoch [\d.]+ train:"), 0,
        action=lambda: os.kill(first[0].pid, signal.SIGSTOP))
    trial.trigger = f"second run started at {at:.2f} s (first pid {first[0].pid}, paused)"
    try:
      second = self.run(wd, tag="concurrent-second") if fired else None
    finally:
      os.kill(first[0].pid, signal.SIGCONT)
    res = self.finish(first)
    if second is None:
      trial.check(False, "the first run ended before it logged a train step")
    else:
      trial.check(second.rc in FAILURE_EXITS, f"second run exit {second.rc}, expected one of "
                  f"{sorted(FAILURE_EXITS)} ({last_line(second.err) or last_line(second.out)})")
      trial.check(not (problem := one_line_error(second)), f"second run: {problem}")
      trial.check(str(first[0].pid) in second.err,
                  f"the refusal does not name the holder's pid {first[0].pid}")
      trial.happening = f"second run exit {second.rc}: {first_line(second.err)}"
    trial.check(res.rc == EXIT_OK, f"first run exit {res.rc}: {last_line(res.err)!r}")
    check_no_traceback(trial, res, "the first run")
    check_identical(trial, wd, ref)
    trial.wall = time.monotonic() - t0
    return trial

  # ----------------------------------------------------------------- bad input

  def bad_inputs(self) -> dict[str, dict]:
    """name -> config overrides (run on a fresh workdir path)."""
    tiny = self.root / "data" / "tiny_corpus.txt"  # ~110 train tokens: 6 per column of 16
    if not tiny.exists():
      helpers.make_corpus(tiny, num_lines=20)
    return {"hidden_size_0": {"model.hidden_size": 0},
            "corpus_too_small": {"data.path": str(tiny), "train.batch_size": 16},
            "eval_batch_gt_valid": {"train.eval_batch_size": 1000}}

  def badinput_trial(self, name: str) -> Trial:
    """Bad config/data: one line, exit 2, the workdir not created."""
    trial, t0 = Trial("badinput", name), time.monotonic()
    extra = self.bad_inputs()[name]
    trial.trigger = " ".join(f"{k}={pathlib.Path(str(v)).name if k == 'data.path' else v}"
                             for k, v in extra.items())
    wd = self.fresh(f"badinput-{name}") / "wd"
    res = self.run(wd, extra, tag=f"badinput-{name}")
    self._check_refused(trial, res, {EXIT_BAD_INPUT})
    if wd.exists():
      trial.check(False, f"the workdir was created ({sorted(p.name for p in wd.iterdir())})")
    trial.wall = time.monotonic() - t0
    return trial

  # ----------------------------------------------------------------- OS errors

  def workdir_file_trial(self) -> Trial:
    """--workdir names a file: one line, a documented code, the file unchanged."""
    trial, t0 = Trial("oserror", "workdir_is_file"), time.monotonic()
    path = self.fresh("oserror-file") / "wd"
    path.write_text("not a directory\n")
    before = tree_digest(path)
    res = self.run(path, tag="oserror-file")
    trial.trigger = "--workdir is a regular file"
    self._check_refused(trial, res, FAILURE_EXITS)
    trial.check(tree_digest(path) == before, "the file was changed")
    trial.wall = time.monotonic() - t0
    return trial

  def readonly_trial(self) -> Trial:
    """An interrupted workdir made read-only: one line, a documented code, unchanged; writable
    again, the re-run ends identical."""
    ref = self.reference()
    trial, t0 = Trial("oserror", "readonly_workdir"), time.monotonic()
    wd, _ = self.copy_interrupted("oserror-readonly")
    before = tree_digest(wd)
    undo, how = make_read_only(wd)
    if undo is None:
      trial.status, trial.reason = "skip", how
      return trial
    trial.trigger = f"interrupted workdir, read-only ({how})"
    try:
      res = self.run(wd, tag="oserror-readonly")
      after = tree_digest(wd)
    finally:
      undo()
    self._check_refused(trial, res, OS_ERROR_EXITS)
    trial.check(after == before, "the read-only workdir changed")
    self.resume_until_done(trial, wd)
    check_identical(trial, wd, ref)
    trial.wall = time.monotonic() - t0
    return trial

  def disk_full_trial(self) -> Trial:
    """The disk fills up after the first validation: one line, a documented code, status not
    left running; with space again, the re-run ends identical."""
    ref = self.reference()
    trial, t0 = Trial("oserror", "disk_full"), time.monotonic()
    mnt = self.fresh("oserror-disk") / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
      trial.status, trial.reason = "skip", "needs root to mount a small tmpfs"
      return trial
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
      trial.status, trial.reason = "skip", f"cannot mount a tmpfs: {first_line(mounted.stderr)}"
      return trial
    try:
      wd = mnt / "wd"
      started = self.start(wd, tag="oserror-disk")
      step = ref.valid_steps[0]
      fired, at, trial.happening = self.inject(
          started, wd, Trigger("log", rf"step {step} epoch [\d.]+ valid:"), 0,
          action=lambda: fill_disk(mnt / "filler"))
      trial.trigger = f"tmpfs filled at {at:.2f} s (after the validation at step {step})"
      res = self.finish(started)
      trial.check(fired, "the run ended before the disk was filled")
      self._check_refused(trial, res, OS_ERROR_EXITS)
      state = read_state(wd)
      trial.check(state != STATE_NOT_AFTER_OS_ERROR,
                  f"status left {state!r} after the disk filled (item 7)")
      (mnt / "filler").unlink(missing_ok=True)
      self.resume_until_done(trial, wd)
      check_identical(trial, wd, ref)
    finally:
      subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    trial.wall = time.monotonic() - t0
    return trial

  @staticmethod
  def _check_refused(trial: Trial, res: Result, codes: set) -> None:
    """A failure the way a command should fail: one of ``codes``, one line, no traceback."""
    trial.happening = f"exit {res.rc}: {first_line(res.err) or last_line(res.out)}"
    trial.check(res.rc in codes, f"exit {res.rc}, expected "
                + (f"{min(codes)}" if len(codes) == 1 else f"one of {sorted(codes)}"))
    trial.check(not (problem := one_line_error(res)), problem)


# ------------------------------------------------------------------------------ fault makers


def corrupt_checkpoint(step_dir: pathlib.Path, how: str, rng: random.Random) -> str:
  """Damage one checkpoint directory; returns what was done (one line)."""
  files = sorted(p for p in step_dir.rglob("*") if p.is_file())
  rel = lambda p: str(p.relative_to(step_dir.parent.parent.parent))
  if how == "metadata":
    gone = [p for p in files if "metadata" in p.name.lower()]
    for p in gone:
      p.unlink()
    return f"deleted {len(gone)} metadata files of {rel(step_dir)}"
  # The array bytes (orbax/tensorstore data files live in folders named d), else the largest
  # file: a tiny model's metadata can outweigh its arrays.
  data_files = [p for p in files if p.parent.name == "d"] or [
      max(files, key=lambda p: p.stat().st_size)]
  done = []
  for path in data_files:
    data = bytearray(path.read_bytes())
    if how == "truncate":
      path.write_bytes(bytes(data[:len(data) // 2]))
      done.append(f"truncated {rel(path)} from {len(data)} to {len(data) // 2} bytes")
    elif how == "flip":
      offsets = rng.sample(range(len(data)), min(FLIPPED_BYTES, len(data)))
      for i in offsets:
        data[i] ^= 0xFF
      path.write_bytes(bytes(data))
      done.append(f"flipped {len(offsets)} bytes of {rel(path)} ({len(data)} bytes)")
    else:
      raise ValueError(f"unknown corruption {how!r}")
  return "; ".join(done)


def make_read_only(path: pathlib.Path) -> tuple[Callable[[], None] | None, str]:
  """Make ``path`` read-only; ``(undo, how)``, or ``(None, why not)``. Not root: chmod 555/444
  (root ignores permissions); root: a read-only bind mount, else ``chattr +i``."""
  if os.geteuid() != 0:
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p in sorted(modes, reverse=True):
      p.chmod(0o555 if p.is_dir() else 0o444)
    return (lambda: [p.chmod(m) for p, m in modes.items()]), "chmod 555 dirs / 444 files"
  bind = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
  if bind.returncode == 0:
    ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True)
    if ro.returncode == 0:
      return (lambda: subprocess.run(["umount", str(path)], check=True)), "read-only bind mount"
    subprocess.run(["umount", str(path)], capture_output=True)
  if shutil.which("chattr"):
    r = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True, text=True)
    if r.returncode == 0:
      return (lambda: subprocess.run(["chattr", "-R", "-i", str(path)], check=True)), "chattr +i"
  return None, "skipped (root, and neither a read-only bind mount nor chattr +i works here)"


def fill_disk(filler: pathlib.Path) -> None:
  """Write ``filler`` until the file system is full."""
  chunk = b"\0" * 65536
  with open(filler, "wb", buffering=0) as f:
    while True:
      try:
        f.write(chunk)
      except OSError as e:
        if e.errno != errno.ENOSPC:
          raise
        if len(chunk) == 1:
          return
        chunk = chunk[:len(chunk) // 2]


def read_state(workdir: pathlib.Path) -> str | None:
  try:
    return json.loads((workdir / "status.json").read_text()).get("state")
  except (OSError, ValueError):
    return None


# ---------------------------------------------------------------------------------- session


def plan(h: Harness, groups: list[str], trials: int) -> list[tuple[str, Callable[[], Trial]]]:
  """The trials to run, ``(label, thunk)``, in order."""
  out = []
  if "kill" in groups:
    for i, t in enumerate(random_kill_triggers(trials, h.reference(), h.rng)):
      out.append((f"kill {i + 1}/{trials}", lambda i=i, t=t: h.kill_trial(f"{i + 1:02d}", t)))
    out.append(("kill sigterm", h.sigterm_trial))
  if "corrupt" in groups:
    for how in ("truncate", "metadata", "flip", "all"):
      out.append((f"corrupt {how}", lambda how=how: h.corrupt_trial(how)))
  if "concurrent" in groups:
    out.append(("concurrent", h.concurrent_trial))
  if "badinput" in groups:
    for name in h.bad_inputs():
      out.append((f"badinput {name}", lambda name=name: h.badinput_trial(name)))
  if "oserror" in groups:
    out += [("oserror workdir_is_file", h.workdir_file_trial),
            ("oserror readonly", h.readonly_trial), ("oserror disk_full", h.disk_full_trial)]
  return out


def summary_table(results: list[Trial]) -> str:
  """The results as a Markdown table plus a count line."""
  rows = ["| group | trial | result | re-runs | fault injected | what was happening | reason |",
          "|---|---|---|---|---|---|---|"]
  for t in results:
    cells = [t.group, t.name, t.status.upper(), str(t.reruns), t.trigger, t.happening, t.reason]
    rows.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
  counts = {s: sum(t.status == s for t in results) for s in ("pass", "fail", "skip")}
  rows.append(f"\n{len(results)} trials: {counts['pass']} passed, {counts['fail']} failed, "
              f"{counts['skip']} skipped")
  return "\n".join(rows)


def environment() -> dict:
  """Where the session ran: date, CPU, Python, the checkout's commit and local changes."""
  git = lambda *a: subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout
  from rnnlm_jax import workdir  # light: no jax at import
  return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
          "cpu": workdir.cpu_model(), "cpu_signature": workdir.cpu_signature(),
          "cpus": os.cpu_count(), "python": platform.python_version(),
          "commit": git("rev-parse", "--short", "HEAD").strip(),
          "modified": git("status", "--short", "--", "rnnlm_jax").split()[1::2]}


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      prog="fault_harness.py", formatter_class=argparse.RawDescriptionHelpFormatter,
      description=textwrap.fill(
          "Fault injection for rnnlm-train (issue 19) on a tiny word LSTM: kill -9 at random "
          "moments, corrupted checkpoints, two runs on one workdir, bad input and OS errors, "
          "each checked against an uninterrupted reference run (metrics.jsonl identical but "
          "for timing fields, one-line errors without a traceback, documented exit codes, the "
          "workdir unchanged). Prints a line per trial and a table; writes "
          "WORKDIR_ROOT/<session>/results.json. Exit status 0 only if no trial failed "
          "(skipped trials, e.g. a full disk without root, do not fail it).", width=90),
      epilog="groups:\n" + "\n".join(
          f"  {g:11s}{d}" for g, d in (
              ("kill", "--trials SIGKILLs at random moments (+1 SIGTERM), re-run to the end"),
              ("corrupt", "truncate / delete metadata / flip bytes of the newest checkpoint; "
                          "all corrupted"),
              ("concurrent", "a second run on a workdir in use"),
              ("badinput", "hidden_size 0, corpus too small, eval batch > valid split"),
              ("oserror", "workdir is a file, read-only workdir, disk full"))) +
      "\n\nexample:\n  nice -n 10 python scripts/fault_harness.py --trials 50 --seed 0")
  p.add_argument("--trials", type=int, default=50, help="kill -9 trials (default 50)")
  p.add_argument("--seed", type=int, default=0, help="seed of the kill moments and flipped bytes")
  p.add_argument("--workdir_root", type=pathlib.Path, default=DEFAULT_ROOT,
                 help=f"where sessions go, one folder each (default {DEFAULT_ROOT})")
  p.add_argument("--only", default=",".join(GROUPS),
                 help=f"comma-separated groups to run (default all: {','.join(GROUPS)})")
  p.add_argument("--timeout", type=float, default=600.0,
                 help="seconds before a hung run is killed and its trial failed (default 600)")
  args = p.parse_args(argv)
  args.only = [g.strip() for g in args.only.split(",") if g.strip()]
  bad = [g for g in args.only if g not in GROUPS]
  if bad:
    p.error(f"--only: unknown group(s) {bad}; choose from {','.join(GROUPS)}")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  session = args.workdir_root / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  say = lambda msg: print(f"{datetime.datetime.now():%H:%M:%S} {msg}", flush=True)
  h = Harness(session, seed=args.seed, say=say, timeout=args.timeout)
  say(f"session {session}; groups {','.join(args.only)}; seed {args.seed}")
  t0 = time.monotonic()
  ref = h.reference()
  say(f"reference run: {ref.wall:.1f} s, {ref.total_steps} steps, validations at "
      f"{ref.valid_steps}, {len(ref.events)} events")
  results = []
  for label, thunk in plan(h, args.only, args.trials):
    try:
      t = thunk()
    except Exception as e:  # noqa: BLE001  a harness bug must not hide the other trials
      t = Trial(label.split()[0], label, "fail", f"harness error: {type(e).__name__}: {e}")
    results.append(t)
    say(f"[{label}] {t.status.upper()} {t.trigger} | {t.happening[:100]} | re-runs "
        f"{t.reruns} | {t.wall:.1f} s" + (f" | {t.reason}" if t.reason else ""))
  env = environment()
  table = summary_table(results)
  print("\n" + table + f"\n\n{time.monotonic() - t0:.0f} s; {env['date']}; {env['cpu']} "
        f"({env['cpus']} CPUs); commit {env['commit']}"
        + (f" + local changes in {', '.join(env['modified'])}" if env["modified"] else ""))
  (session / "results.json").write_text(json.dumps(
      {"args": {k: str(v) for k, v in vars(args).items()}, "environment": env,
       "reference": {"wall": ref.wall, "steps": ref.total_steps},
       "trials": [dataclasses.asdict(t) for t in results]}, indent=1))
  print(f"results: {session / 'results.json'}")
  return 1 if any(t.status == "fail" for t in results) else 0


if __name__ == "__main__":
  sys.exit(main())
