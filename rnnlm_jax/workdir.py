"""The run directory contract.

A workdir holds everything about one run::

    config.json       the resolved config (written once; later runs must agree on it)
    provenance.json   {"runs": [...]} one entry per invocation: command, git SHA, library
                      versions, hardware, start/end time, the process's CPU seconds in between
    status.json       {"state": running|finished|interrupted|diverged|failed, "step", "epoch",
                       "reason", "time" (last update: the heartbeat), "pid", "host"}
    .lock             held (fcntl.flock) by the process training in it: pid, host, since
    data.json         the prepared data's fingerprint (hashes, builder, version, vocabulary):
                      a resume on different data is refused
    vocab.txt         the vocabulary (written by the data layer)
    metrics.jsonl     one JSON object per event: step, epoch, split, loss, perplexity|bpc, ...
    checkpoints/      orbax checkpoints: latest/ (last N) and best/ (best validation loss)
    tb/               TensorBoard event files (tensorboardX)

Re-running the same command on a workdir resumes it. Fields that change what is computed
(model, data, optimizer, seed, batch size, ...) may not change; ``RESUMABLE_KEYS`` may.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import math
import os
import pathlib
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")

# The config keys that do not change the computation, in one place (the workdir contract, the
# sweep and the report read these):
# - they change no number a run writes: logging, checkpointing, progress output, samples, where
#   the raw data is read from. A report never treats them as swept.
NON_COMPUTATION_KEYS = (
    "train.log_every", "train.checkpoint_every_steps", "train.checkpoint_keep",
    "train.progress_bar", "train.sample_length", "data.dir", "data.tfds_dir",
)
# - where a run stops: a re-run with a larger value trains a finished run on.
RUN_LENGTH_KEYS = ("train.num_epochs", "train.max_steps")
# - evaluation columns and memory/speed trade-offs that change float rounding at most.
ROUNDING_KEYS = (
    "train.eval_batch_size", "train.num_devices",
    "model.remat", "model.remat_segment", "model.remat_policy", "model.vocab_chunk",
    "model.lstm_backend",
)
# Config keys that may differ between invocations on one workdir (they do not change the
# parameters computed so far).
RESUMABLE_KEYS = NON_COMPUTATION_KEYS + RUN_LENGTH_KEYS + ROUNDING_KEYS
# Keys added after workdirs existed: a config without one had the value given here.
ADDED_KEY_DEFAULTS = {
    "model.compute_dtype": "float32",
    # remedies (issue 8), all off:
    "model.norm": "none", "model.residual": False, "model.locked_dropout": False,
    "model.embed_dropout": 0.0, "model.weight_drop": 0.0, "model.attention_window": 0,
    "model.aux_weight": 0.0, "optim.nonmono": 5, "optim.ar": 0.0, "optim.tar": 0.0,
    # issue 19: runs that do not learn are stopped (it changes no number of a run that learns)
    "train.not_learning_steps": 1000,
    # issue 22: k-fold cross-validation of the classifiers (off)
    "data.cv_folds": 0, "data.cv_fold": 0,
    # issue 22: recurrent batch normalisation (read only with model.norm="batch")
    "model.bn_population_windows": 100,
    # issue 23: each LSTM layer by oneDNN's RNN primitive (opt-in; float rounding only)
    "model.lstm_backend": "scan",
    # issue 20: a validation set for the synthetic tasks (off)
    "synthetic.valid_size": 0,
}


# What status.json's "state" can be: a run in progress (or a process that died: see
# Workdir.is_stale), ended normally, stopped by SIGINT/SIGTERM after a checkpoint (re-run to
# resume), stopped by a NaN/inf loss, gradient or evaluation or by not learning, or ended by an
# error (its reason says which).
STATES = ("running", "finished", "interrupted", "diverged", "failed")
# The states that answer a run's question for good: a re-run would end the same way (diverging
# again is deterministic), so sweeps skip them, searches can read their choice, and a success
# count's n is their number. A failed run (a crash: a bug, memory, a killed machine) says
# nothing about the method and is re-run.
DONE_STATES = ("finished", "diverged")


class WorkdirError(ValueError):
  """A workdir that cannot be used as asked (conflicting config, missing files, in use)."""


class WorkdirBusy(WorkdirError):
  """Another process holds the workdir's lock (it is training there)."""


def now() -> str:
  """UTC timestamp, ISO 8601."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def atomic_write_text(path: pathlib.Path, text: str) -> None:
  """Replace ``path`` by ``text`` atomically and durably: write a temporary file, fsync it,
  rename it over ``path``, fsync the directory (so the rename survives a power cut). The
  temporary file's name is unique to the call, so processes on several hosts may write the
  same file at once (the last rename wins; a reader sees one whole version)."""
  path = pathlib.Path(path)
  tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  fd = os.open(path.parent, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _atomic_write_json(path: pathlib.Path, obj: Any) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def flatten(d: dict, prefix: str = "") -> dict:
  """Nested dict -> ``{dotted key: leaf value}``."""
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(flatten(v, key + "."))
    else:
      out[key] = v
  return out


def config_conflicts(old: dict, new: dict) -> list[str]:
  """Keys (dotted) whose values differ between two config dicts, ignoring RESUMABLE_KEYS."""
  from rnnlm_jax.tasks import migrate_flat_config  # older spellings of the same config
  a, b = migrate_flat_config(flatten(old)), migrate_flat_config(flatten(new))
  for flat in (a, b):
    for k, v in ADDED_KEY_DEFAULTS.items():
      flat.setdefault(k, v)
  keys = sorted(set(a) | set(b))
  norm = lambda v: list(v) if isinstance(v, tuple) else v
  return [k for k in keys if k not in RESUMABLE_KEYS and norm(a.get(k)) != norm(b.get(k))]


def _git_sha() -> str | None:
  repo = pathlib.Path(__file__).resolve().parent.parent
  try:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                         timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return (sha + ("-dirty" if dirty else "")) if sha else None
  except (OSError, subprocess.SubprocessError):
    return None


def library_versions() -> dict[str, str]:
  """Versions of the libraries that affect numbers."""
  import importlib.metadata as md
  out = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections", "numpy",
               "tensorflow-datasets", "array-record"):
    try:
      out[name] = md.version(name)
    except md.PackageNotFoundError:
      out[name] = "not installed"
  return out


# The CPU extensions that decide which kernels XLA:CPU (and oneDNN) compile for: float32 results
# are bit-identical only between hosts with the same ones (and the same jax/jaxlib).
CPU_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo_field(name: str) -> str | None:
  """The first ``name`` line's value in /proc/cpuinfo (None where there is none)."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.split(":", 1)[0].strip() == name:
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def cpu_signature() -> str:
  """The CPU's vendor and the extensions of :data:`CPU_EXTENSIONS` it has, e.g.
  ``"AuthenticAMD avx2 fma"``: hosts that share it compute the same float32 numbers."""
  flags = set((_cpuinfo_field("flags") or "").split())
  vendor = _cpuinfo_field("vendor_id") or platform.machine() or "unknown"
  return " ".join([vendor] + [f for f in CPU_EXTENSIONS if f in flags])


def cpu_model() -> str:
  """The CPU's ``model name`` in /proc/cpuinfo, e.g. ``"AMD EPYC"`` (else platform.processor())."""
  return _cpuinfo_field("model name") or platform.processor() or "unknown"


def hardware() -> dict[str, Any]:
  """CPU model and signature (:func:`cpu_signature`), core count, memory and JAX devices."""
  import jax
  cpu = cpu_model()
  mem_gib = None
  try:
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError, AttributeError):
    pass
  return {"platform": platform.platform(), "cpu": cpu, "cpu_signature": cpu_signature(),
          "cpu_count": os.cpu_count(), "memory_gib": mem_gib,
          "jax_backend": jax.default_backend(),
          "jax_devices": [str(d) for d in jax.devices()]}


def wall_seconds(workdir: str | os.PathLike) -> float:
  """Summed wall time of the invocations in ``workdir/provenance.json`` that ended cleanly.

  A resumed run counts every part; a part cut off by a kill has no ``end_time`` and is left
  out, so this is a lower bound for runs that were interrupted (0.0 without provenance).
  """
  path = pathlib.Path(workdir) / "provenance.json"
  if not path.is_file():
    return 0.0
  total = 0.0
  for run in json.loads(path.read_text()).get("runs", []):
    if run.get("end_time") and run.get("start_time"):
      t0 = datetime.datetime.fromisoformat(run["start_time"])
      total += (datetime.datetime.fromisoformat(run["end_time"]) - t0).total_seconds()
  return total


# Workdir locks lent by this thread (Workdir.lend): resolved path -> [fd, borrowed].
_LOCAL = threading.local()


def _lent() -> dict[pathlib.Path, list]:
  if not hasattr(_LOCAL, "lent"):
    _LOCAL.lent = {}
  return _LOCAL.lent


class Workdir:
  """Reads and writes the files of one run directory.

  In a multi-process run (``jax.distributed``) every process has a ``Workdir`` but only process
  0's is ``primary``: the others read like it and write nothing (no lock, config, data,
  provenance, status, metrics or TensorBoard files), so each file has one writer.
  """

  def __init__(self, path: str | os.PathLike, primary: bool = True):
    self.path = pathlib.Path(path)
    self.primary = bool(primary)
    self._lock_fd: int | None = None
    self._borrowed = False
    self._cpu_start: float | None = None  # process CPU time when this invocation's entry began

  # -- the exclusive lock of a running process
  @property
  def lock_file(self): return self.path / ".lock"

  def acquire(self) -> None:
    """Take the workdir's exclusive lock (``fcntl.flock`` on ``.lock``, released when the
    process ends, however it ends) and record the holder (pid, host, start time) in it.

    A no-op on a non-primary workdir (process 0 of a multi-process run holds the lock).

    Takes a lock this thread lent (:meth:`lend`) if it is not borrowed already.

    Raises:
      WorkdirError: another process (or another run in this one) holds it.
    """
    if not self.primary:
      return
    if self.path.exists() and not self.path.is_dir():
      raise WorkdirError(f"workdir {self.path} is a file, not a directory; pass another "
                         "--workdir")
    self.path.mkdir(parents=True, exist_ok=True)
    lent = _lent().get(self.path.resolve())
    if lent is not None and not lent[1]:
      lent[1] = True
      self._lock_fd, self._borrowed = lent[0], True
      return
    fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise WorkdirBusy(f"workdir {self.path} is in use by {self.holder()}; wait for that run "
                        "to end or stop it, then re-run") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "since": now()}).encode() + b"\n", 0)
    self._lock_fd = fd

  def release(self) -> None:
    """Release the lock taken by :meth:`acquire` (a no-op if not held); a borrowed lock goes
    back to its lender, still held."""
    if self._lock_fd is None:
      return
    if self._borrowed:
      lent = _lent().get(self.path.resolve())
      if lent is not None:
        lent[1] = False
    else:
      _lent().pop(self.path.resolve(), None)
      fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
      os.close(self._lock_fd)
    self._lock_fd, self._borrowed = None, False

  def lend(self) -> None:
    """Let the next :meth:`acquire` of this directory in this thread (by another ``Workdir``,
    e.g. the trainer's) take the lock this object holds instead of being refused; its
    :meth:`release` gives the lock back, still held, until this object releases it. A sweep
    decides whether a point is still to do, trains it and records its final status under one
    hold of the lock, so no other process can take the point in between."""
    if self._lock_fd is None or self._borrowed:
      raise WorkdirError(f"workdir {self.path}: only a lock this object acquired can be lent")
    _lent()[self.path.resolve()] = [self._lock_fd, False]

  def holder(self) -> str | None:
    """Who holds the workdir's lock (``"pid P on HOST since T"``), or ``None`` if no process
    does (read only: a probe that takes and drops a shared lock)."""
    if self._lock_fd is not None:
      return f"this process (pid {os.getpid()})"
    try:
      fd = os.open(self.lock_file, os.O_RDONLY)
    except OSError:
      return None
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
      except BlockingIOError:
        pass
      try:
        h = json.loads(os.pread(fd, 4096, 0).decode(errors="replace"))
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
      except (ValueError, KeyError, TypeError):
        return "another process"
    finally:
      os.close(fd)  # closing drops the probe's lock

  def is_stale(self, status: dict | None = None) -> bool:
    """Whether status.json says ``running`` but no process holds the workdir's lock (the run
    was killed, e.g. by ``kill -9`` or a lost machine); re-running resumes it."""
    status = self.read_status() if status is None else status
    return (bool(status) and status.get("state") == "running" and self.lock_file.exists()
            and self.holder() is None)  # no .lock: older or archived records, unknown

  # -- files
  @property
  def config_file(self): return self.path / "config.json"
  @property
  def status_file(self): return self.path / "status.json"
  @property
  def provenance_file(self): return self.path / "provenance.json"
  @property
  def metrics_file(self): return self.path / "metrics.jsonl"
  @property
  def vocab_file(self): return self.path / "vocab.txt"
  @property
  def data_file(self): return self.path / "data.json"
  @property
  def checkpoint_dir(self): return self.path / "checkpoints"
  @property
  def tb_dir(self): return self.path / "tb"

  def exists(self) -> bool:
    return self.config_file.exists()

  def check_config(self, config_dict: dict) -> None:
    """Check ``config_dict`` agrees with the workdir's config.json, if there is one.

    Raises:
      WorkdirError: a non-resumable key differs (nothing is written).
    """
    if self.config_file.exists():
      old = self.read_config()
      conflicts = config_conflicts(old, config_dict)
      if conflicts:
        fo, fn = flatten(old), flatten(config_dict)
        diffs = "; ".join(f"{k}: {fo.get(k)!r} -> {fn.get(k)!r}" for k in conflicts[:5])
        more = f" (and {len(conflicts) - 5} more)" if len(conflicts) > 5 else ""
        raise WorkdirError(
            f"workdir {self.path} was created with a different config ({diffs}{more}); use a new "
            f"--workdir, or restore those values to resume it")

  def write_config(self, config_dict: dict) -> None:
    """Write config.json (after :meth:`check_config`)."""
    self.check_config(config_dict)
    if not self.primary:
      return
    self.path.mkdir(parents=True, exist_ok=True)
    _atomic_write_json(self.config_file, config_dict)

  def read_config(self) -> dict:
    """The workdir's config (nested dict), in today's key spelling (older workdirs are read
    through :func:`rnnlm_jax.tasks.migrate_config`)."""
    if not self.config_file.exists():
      raise WorkdirError(f"{self.path} has no config.json; is it a workdir made by rnnlm-train?")
    from rnnlm_jax.tasks import migrate_config
    return migrate_config(json.loads(self.config_file.read_text()))

  def check_data(self, fingerprint: dict, accept_change: bool = False) -> dict | None:
    """Compare the prepared data's ``fingerprint`` with the one recorded in ``data.json``
    (read only). Returns the first difference ``{"field", "was", "now"}`` when
    ``accept_change`` (``rnnlm-train --accept_data_change``; for provenance.json), else
    ``None``; :meth:`record_data` then records the new one.

    Raises:
      WorkdirError: the data changed (the line names the first field that differs).
    """
    if not self.data_file.exists():
      return None
    old = json.loads(self.data_file.read_text())
    a, b = flatten(old), flatten(json.loads(json.dumps(fingerprint)))
    diff = next((k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), None)
    if diff is None:
      return None
    if not accept_change:
      raise WorkdirError(
          f"the data changed since workdir {self.path} was created ({diff}: {a.get(diff)!r} -> "
          f"{b.get(diff)!r}); use the original data, a new --workdir, or "
          "--accept_data_change to go on with this data (recorded in provenance.json)")
    return {"field": diff, "was": a.get(diff), "now": b.get(diff)}

  def record_data(self, fingerprint: dict) -> None:
    """Write ``data.json`` (the fingerprint a resume is checked against)."""
    if not self.primary:
      return
    _atomic_write_json(self.data_file, fingerprint)

  def start_provenance(self) -> int:
    """Append this invocation to provenance.json; returns its index (-1 if not primary)."""
    if not self.primary:
      return -1
    prov = json.loads(self.provenance_file.read_text()) if self.provenance_file.exists() else {}
    runs = prov.setdefault("runs", [])
    runs.append({"command": sys.argv, "cwd": os.getcwd(), "git_sha": _git_sha(),
                 "versions": library_versions(), "hardware": hardware(), "start_time": now(),
                 "end_time": None})
    _atomic_write_json(self.provenance_file, prov)
    self._cpu_start = time.process_time()
    return len(runs) - 1

  def note_provenance(self, **extra) -> None:
    """Add fields to this invocation's (the last) provenance entry."""
    if not self.primary:
      return
    prov = json.loads(self.provenance_file.read_text())
    prov["runs"][-1].update(extra)
    _atomic_write_json(self.provenance_file, prov)

  def note_checkpoint(self) -> None:
    """Record in this invocation's entry how far it got: the time and the CPU seconds at its
    latest checkpoint, so an invocation killed without closing its entry (e.g. at a session's
    end) still counts up to there in what the run cost (:mod:`rnnlm_jax.report.cost`)."""
    if not self.primary or self._cpu_start is None:
      return
    self.note_provenance(checkpoint_time=now(),
                         checkpoint_cpu_seconds=round(time.process_time() - self._cpu_start, 2))

  def end_provenance(self, index: int, **extra) -> None:
    """Close this invocation's entry: its end time, ``extra`` (e.g. the outcome) and
    ``cpu_seconds``, the CPU time of the whole process (every thread) since the entry began:
    the run's CPU cost, the budget experiments report (runs trained together in one vmapped
    program each record the group's, and a shared ``vmap_group`` id so it is counted once:
    :mod:`rnnlm_jax.report.cost`)."""
    if not self.primary:
      return
    prov = json.loads(self.provenance_file.read_text())
    if self._cpu_start is not None:
      extra.setdefault("cpu_seconds", round(time.process_time() - self._cpu_start, 2))
    prov["runs"][index].update(end_time=now(), **extra)
    _atomic_write_json(self.provenance_file, prov)

  def write_status(self, state: str, step: int, epoch: float | None, reason: str = "",
                   **extra) -> None:
    """Write status.json; ``epoch`` is ``None`` (null) for runs without epochs (the synthetic
    tasks draw fresh data every update); ``extra`` adds task-specific fields (e.g.
    ``success`` for the synthetic tasks)."""
    if state not in STATES:
      raise ValueError(f"unknown run state {state!r}; one of {', '.join(STATES)}")
    if not self.primary:
      return
    status = {"state": state, "step": int(step), "epoch": None if epoch is None else float(epoch),
              "reason": reason, "time": now(), "pid": os.getpid(),
              "host": socket.gethostname(), **extra}
    try:
      _atomic_write_json(self.status_file, status)
    except OSError as e:
      if e.errno != errno.ENOSPC or not self.status_file.exists():
        raise
      # A full disk has no block for a new file: rewrite the existing one in place (it fits
      # the blocks it has), so a run stopped by the full disk still says so.
      with open(self.status_file, "r+") as f:
        f.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
        f.truncate()
        f.flush()
        os.fsync(f.fileno())

  def read_status(self) -> dict | None:
    return json.loads(self.status_file.read_text()) if self.status_file.exists() else None

  def run_recorded(self, fn: Callable[[], T],
                   outcomes: Mapping[type[BaseException], str]) -> T:
    """Run ``fn()`` as one recorded invocation: a provenance entry, status ``running`` (from
    the step/epoch of an earlier status, on a resume) and the entry's ``outcome``.

    ``outcomes`` maps exception types to the outcome they record (e.g. ``Diverged`` ->
    "diverged"; ``fn`` has written their status); any other exception records "failed" in
    both the provenance and the status (with the error's first line). Exceptions propagate.
    """
    prov_index = self.start_provenance()
    status = self.read_status()
    self.write_status("running", status["step"] if status else 0,
                      status.get("epoch") if status else 0.0)
    try:
      result = fn()
    except tuple(outcomes) as e:
      self.end_provenance(prov_index, outcome=next(
          o for t, o in outcomes.items() if isinstance(e, t)))
      raise
    except BaseException as e:
      try:  # where the file system still lets us (a full disk may not)
        status = self.read_status() or {}
        self.write_status("failed", status.get("step", 0), status.get("epoch", 0.0),
                          f"{type(e).__name__}: {e}".splitlines()[0])
        self.end_provenance(prov_index, outcome="failed")
      except OSError:
        pass
      raise
    self.end_provenance(prov_index, outcome="finished")
    return result

  # -- metrics
  def count_metrics(self) -> int:
    if not self.metrics_file.exists():
      return 0
    with self.metrics_file.open() as f:
      return sum(1 for _ in f)

  def truncate_metrics(self, num_lines: int) -> None:
    """Keep the first ``num_lines`` events (those written before the restored checkpoint)."""
    if not self.primary or not self.metrics_file.exists():
      return
    lines = self.metrics_file.read_text().splitlines(keepends=True)
    if len(lines) != num_lines:
      tmp = self.metrics_file.with_suffix(".jsonl.tmp")
      tmp.write_text("".join(lines[:num_lines]))
      os.replace(tmp, self.metrics_file)

  def read_metrics(self) -> list[dict]:
    if not self.metrics_file.exists():
      return []
    return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line]


def _clean(v):
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/inf
  return v


class MetricWriter:
  """Appends events to metrics.jsonl (flushed and fsynced per event) and TensorBoard.

  TensorBoard's files are derived from metrics.jsonl: opening a writer rewrites ``tb/`` from
  the events already in metrics.jsonl (after a resume has truncated it), so TensorBoard shows
  exactly metrics.jsonl's events after any resume: none lost (events not yet flushed to
  TensorBoard when a run was killed) and none doubled (events after the restored step).

  On a non-primary workdir (a multi-process run's processes 1..N-1) it writes nothing and only
  counts the events, from ``lines`` (process 0's count, which it cannot read reliably while
  process 0 truncates the file).
  """

  def __init__(self, workdir: Workdir, tensorboard: bool = True, lines: int | None = None):
    self.workdir = workdir
    self.lines = workdir.count_metrics() if lines is None else int(lines)
    self._tb = None
    if tensorboard and workdir.primary:
      try:
        from tensorboardX import SummaryWriter
      except ImportError:  # optional
        SummaryWriter = None
      if SummaryWriter is not None:
        import shutil
        shutil.rmtree(workdir.tb_dir, ignore_errors=True)
        self._tb = SummaryWriter(str(workdir.tb_dir))
        for event in workdir.read_metrics():
          self._add_to_tensorboard(event)
        self._tb.flush()

  def write(self, event: dict) -> None:
    if not self.workdir.primary:
      self.lines += 1
      return
    event = {k: _clean(v) for k, v in event.items()}
    with self.workdir.metrics_file.open("a") as f:
      f.write(json.dumps(event, sort_keys=True) + "\n")
      f.flush()
      os.fsync(f.fileno())
    self.lines += 1
    self._add_to_tensorboard(event)

  def _add_to_tensorboard(self, event: dict) -> None:
    if self._tb is None:
      return
    split = event.get("split", "train")
    for k, v in event.items():
      if k not in ("step", "epoch", "split") and isinstance(v, (int, float)) and not isinstance(v, bool):
        self._tb.add_scalar(f"{split}/{k}", v, event.get("step", 0))

  def flush(self) -> None:
    """Flush TensorBoard's pending events (metrics.jsonl is always flushed)."""
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.flush()
      self._tb.close()
