"""Data-parallel training over many devices with ``jax.sharding``.

One 1-D mesh over the devices, axis ``"data"``. The parameters and the optimizer state are
replicated on every device; the ``[batch, time]`` token windows and the recurrent carry (every
leaf ``[batch, H]``: truncated BPTT keeps one state per sequence column) are split along the
batch axis, ``batch / n`` columns per device. ``jax.jit`` follows those input shardings: each
device runs the forward and backward pass on its columns and XLA inserts the all-reduce of the
gradients (the loss is a sum over the whole batch), so the update is the single-device update
up to the order of float additions. The same config runs on one device or many
(``train.num_devices``: 0 = all, n = the first n).

Several hosts (multi-controller JAX: one process per host, or per GPU, all running the same
program): :func:`maybe_initialize_distributed` connects the processes before anything touches
the devices; ``jax.devices()`` is then the global device list and the mesh spans every host.
Every process holds the whole (small) token stream and builds the same global ``[batch, time]``
window; :func:`place_batch` lets each process copy only the columns that live on its own
devices. A pipeline where each process reads only its own rows would use
:func:`place_process_local_batch` instead. On CPUs the processes' devices talk through gloo
(set before ``jax.distributed.initialize``); :func:`max_over_processes` and
:func:`from_primary` are the small collectives the loop uses to agree (the stop flag, the lock,
process 0's metrics line count); process 0 (:func:`is_primary`) alone writes the workdir.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger("rnnlm_jax")

DATA_AXIS = "data"  # the mesh axis the batch is split over

# RNNLM_DISTRIBUTED values (case-insensitive) that force jax.distributed.initialize() on / off.
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


# ----------------------------------------------------------------------------- start-up


def distributed_requested(environ=None) -> bool:
  """Whether the environment asks for a multi-process (multi-host) run.

  * ``RNNLM_DISTRIBUTED=1`` (or true/yes/on): yes. ``jax.distributed.initialize()`` then finds
    the coordinator, process count and process id itself on SLURM (inside ``srun``), Open MPI
    and Cloud TPU pod slices, or from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``.
  * ``RNNLM_DISTRIBUTED=0`` (or false/no/off): no, whatever else is set.
  * unset: yes only when ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` are all set (an explicit manual launch). SLURM or TPU variables alone do
    not start it: a one-process job inside an allocation stays a plain single-process run.
  """
  env = os.environ if environ is None else environ
  flag = env.get("RNNLM_DISTRIBUTED", "").strip().lower()
  if flag in _OFF:
    return False
  if flag in _ON:
    return True
  if flag:
    raise ValueError(f"RNNLM_DISTRIBUTED={env['RNNLM_DISTRIBUTED']!r}: use 1 to start "
                     "jax.distributed (multi-host) or 0 to keep a single-process run")
  return all(env.get(k) for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
                                  "JAX_PROCESS_ID"))


def maybe_initialize_distributed(environ=None) -> bool:
  """Call ``jax.distributed.initialize()`` when :func:`distributed_requested`; else nothing.

  Must run before anything touches the devices (``rnnlm-train`` calls it first). Returns
  whether this process is part of a distributed run (also if it was already initialized).
  """
  env = os.environ if environ is None else environ
  if not distributed_requested(env):
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = initialize_kwargs(env)
  if cpu_platform(env) and not env.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
    # CPU devices of different processes talk through gloo (XLA's CPU client has no
    # cross-process collectives otherwise); it only concerns the CPU client.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # The coordinator address is read from JAX_COORDINATOR_ADDRESS by JAX itself.
  jax.distributed.initialize(**kwargs)
  log.info("jax.distributed: process %d of %d, %d local / %d global devices",
           jax.process_index(), jax.process_count(), jax.local_device_count(),
           jax.device_count())
  return True


# Seconds after which the coordination service declares a silent process dead and stops the
# others (JAX's default 100); RNNLM_HEARTBEAT_TIMEOUT overrides it.
HEARTBEAT_TIMEOUT_S = 100


def initialize_kwargs(environ=None) -> dict:
  """The arguments :func:`maybe_initialize_distributed` passes to ``jax.distributed.initialize``:
  ``num_processes`` and ``process_id`` from ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` when set
  (else JAX detects them: SLURM, Open MPI, TPU pods), and ``heartbeat_timeout_seconds`` from
  ``RNNLM_HEARTBEAT_TIMEOUT`` (default :data:`HEARTBEAT_TIMEOUT_S`): a process that dies
  (``kill -9``, a lost host) makes the others exit after at most about that long."""
  env = os.environ if environ is None else environ
  kwargs = {}
  if env.get("JAX_NUM_PROCESSES"):
    kwargs["num_processes"] = int(env["JAX_NUM_PROCESSES"])
  if env.get("JAX_PROCESS_ID"):
    kwargs["process_id"] = int(env["JAX_PROCESS_ID"])
  timeout = env.get("RNNLM_HEARTBEAT_TIMEOUT", "").strip()
  try:
    kwargs["heartbeat_timeout_seconds"] = int(timeout) if timeout else HEARTBEAT_TIMEOUT_S
  except ValueError:
    raise ValueError(f"RNNLM_HEARTBEAT_TIMEOUT={timeout!r}: give whole seconds, e.g. 30") from None
  if kwargs["heartbeat_timeout_seconds"] < 1:
    raise ValueError(f"RNNLM_HEARTBEAT_TIMEOUT={timeout!r}: give at least 1 second")
  return kwargs


# Modules whose presence means JAX may use an accelerator rather than the CPU.
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                        "jax_rocm7_plugin", "libtpu")


def cpu_platform(environ=None) -> bool:
  """Whether this process will compute on CPU devices, decided before JAX starts a backend:
  ``JAX_PLATFORMS`` names ``cpu`` first, or (unset) no GPU or TPU plugin is installed."""
  import importlib.util
  env = os.environ if environ is None else environ
  platforms = [p.strip().lower() for p in env.get("JAX_PLATFORMS", "").split(",") if p.strip()]
  if platforms:
    return platforms[0] == "cpu"
  return not any(importlib.util.find_spec(m) is not None for m in _ACCELERATOR_PLUGINS)


# ----------------------------------------------------------------------------- processes


def is_primary() -> bool:
  """Whether this process writes the workdir's files (process 0; the only one alone)."""
  return jax.process_index() == 0


def process_line() -> str:
  """``"process i of N"`` for the log."""
  return f"process {jax.process_index()} of {jax.process_count()}"


def max_over_processes(value: int) -> int:
  """The largest of every process's ``value`` (an integer); with several processes a
  collective that every process must call at the same point."""
  if jax.process_count() == 1:
    return int(value)
  from jax.experimental import multihost_utils
  return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int32))))


def peer_lost_line(e: BaseException) -> str | None:
  """One line for an error of a collective in a multi-process run (a ``JaxRuntimeError``:
  another process died or stopped, e.g. gloo's "Connection reset by peer"); ``None`` for any
  other error or a single-process run."""
  if jax.process_count() == 1 or not isinstance(e, jax.errors.JaxRuntimeError):
    return None
  first = (str(e).splitlines() or [""])[0][:300]
  return (f"{process_line()}: a collective failed, another process of this run has probably "
          f"stopped or died (see its log): {first}; re-run the same launch to resume")


def from_primary(value: int) -> int:
  """Process 0's ``value`` (an integer) on every process (a collective with several)."""
  if jax.process_count() == 1:
    return int(value)
  from jax.experimental import multihost_utils
  return int(multihost_utils.broadcast_one_to_all(np.asarray(value, np.int32)))


# ----------------------------------------------------------------------------- mesh


def resolve_num_devices(requested: int, available: int | None = None) -> int:
  """The number of devices ``train.num_devices = requested`` means (0 = all ``available``).

  Raises:
    ValueError: (one line, with the fix) ``requested < 0``, more than ``available``, or, on a
      multi-process run, anything but 0 or all the global devices.
  """
  requested = int(requested)
  available = jax.device_count() if available is None else int(available)
  if requested < 0:
    raise ValueError(f"train.num_devices must be >= 0 (0 = all devices), got {requested}")
  if requested > available:
    raise ValueError(f"train.num_devices={requested} but only {available} "
                     f"{jax.default_backend()} device(s) are available; set "
                     "--config.train.num_devices=0 (all) or a smaller number")
  if jax.process_count() > 1 and requested not in (0, available):
    raise ValueError(f"train.num_devices={requested}: a multi-host run uses all "
                     f"{available} devices of its processes; set --config.train.num_devices=0")
  return requested or available


def check_divisible(batch_size: int, num_devices: int, requested: int,
                    key: str = "train.batch_size") -> None:
  """Raise ``ValueError`` (one line) unless ``batch_size`` splits evenly over the devices."""
  if int(batch_size) % int(num_devices):
    which = "all devices" if int(requested) == 0 else f"train.num_devices={requested}"
    raise ValueError(
        f"{key}={batch_size} is not divisible by the {num_devices} devices in use ({which}); "
        f"set {key} to a multiple of {num_devices} or --config.train.num_devices to a divisor "
        f"of {batch_size} (1 = a single device)")


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh ``{"data": n}`` over the first ``n`` devices (``num_devices`` 0 = all).

  The axis type is ``Auto``: ``jit`` propagates the shardings of its inputs (no explicit-sharding
  typing of the model code is needed).
  """
  n = resolve_num_devices(num_devices)
  devices = jax.devices()[:n]
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, optimizer state, step, RNG, scalars)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Axis 0 split over ``"data"``: ``[batch, ...]`` -> ``[batch / n, ...]`` per device.

  For the ``[batch, time]`` token windows and the ``[batch, H]`` carry leaves.
  """
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def describe(mesh: Mesh) -> str:
  """One line for the log: device count, platform, mesh shape, processes."""
  d = mesh.devices.flat[0]
  return (f"{mesh.size} {d.platform} device(s), mesh {dict(mesh.shape)} (batch split over "
          f"{DATA_AXIS!r}; params replicated), {jax.process_count()} process(es), this is "
          f"{process_line()}")


# ----------------------------------------------------------------------------- placement


def _put(x, sharding: NamedSharding) -> jax.Array:
  """``x`` (the same global value on every process) as a global array with ``sharding``."""
  if jax.process_count() == 1 or (isinstance(x, jax.Array) and not x.is_fully_addressable):
    return jax.device_put(x, sharding)  # no copy if ``x`` is already placed so
  host = np.asarray(x)  # each process copies only the pieces its own devices hold
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place_tree(tree, sharding: NamedSharding):
  """Every array leaf of ``tree`` placed with ``sharding``."""
  return jax.tree.map(lambda x: _put(x, sharding), tree)


def state_shardings(state, mesh: Mesh):
  """A pytree like ``state`` (a train state with a ``carry`` field) of its shardings:
  everything replicated, the carry leaves (``[batch, H]``) split on the batch axis.

  Usable as ``jit(..., out_shardings=...)`` and by :func:`place_state`.
  """
  rep, bat = replicated(mesh), batch_sharded(mesh)
  shardings = jax.tree.map(lambda _: rep, state)
  return shardings.replace(carry=jax.tree.map(lambda _: bat, state.carry))


def place_state(state, mesh: Mesh):
  """``state`` with params, optimizer state, step and RNG replicated on the mesh and the
  recurrent carry split on its batch axis. Arrays already placed so are not copied."""
  return jax.tree.map(_put, state, state_shardings(state, mesh))


def place_batch(x: np.ndarray, mesh: Mesh, sharding: NamedSharding | None = None) -> jax.Array:
  """A host window ``x [batch, time]`` (the global batch, the same on every process) as a
  global array split on the batch axis (or with ``sharding``)."""
  return _put(x, batch_sharded(mesh) if sharding is None else sharding)


def process_local_rows(mesh: Mesh, global_batch: int) -> slice:
  """The rows of a ``[global_batch, ...]`` batch that this process's devices hold, for a
  pipeline that reads only its own rows (``slice(0, global_batch)`` with one process).

  Raises:
    ValueError: those rows are not one contiguous block (a mesh whose device order interleaves
      the processes); feed the global batch to :func:`place_batch` instead.
  """
  index_map = batch_sharded(mesh).addressable_devices_indices_map((int(global_batch),))
  starts = sorted({idx[0].start or 0 for idx in index_map.values()})
  stops = sorted({global_batch if idx[0].stop is None else idx[0].stop
                  for idx in index_map.values()})
  if any(b != a for a, b in zip(stops[:-1], starts[1:])):
    raise ValueError("this process's batch rows are not contiguous in the mesh; use place_batch")
  return slice(starts[0], stops[-1])


def place_process_local_batch(local: np.ndarray, mesh: Mesh, global_batch: int) -> jax.Array:
  """Each process passes only its rows, ``local = global_window[process_local_rows(...)]``
  (``[global_batch / num_processes, time]``); the result is the global ``[global_batch, time]``
  array split on the batch axis. With one process it equals :func:`place_batch` of ``local``."""
  local = np.asarray(local)
  return jax.make_array_from_process_local_data(batch_sharded(mesh), local,
                                                (int(global_batch),) + tuple(local.shape[1:]))


def sharding_summary(x: Any) -> dict:
  """``{"spec", "devices", "shard_shape"}`` of a ``jax.Array`` (for logs and tests)."""
  s = x.sharding
  return {"spec": str(getattr(s, "spec", None)), "devices": len(s.device_set),
          "shard_shape": list(s.shard_shape(x.shape)), "replicated": s.is_fully_replicated}
