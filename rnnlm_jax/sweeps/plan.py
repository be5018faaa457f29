"""How a sweep's points are split up: execution units, shards, ``--point`` selection.

A point is trained alone by :func:`rnnlm_jax.loop.train_and_evaluate`, except points of a task
with a group key (synthetic: equal :func:`rnnlm_jax.tasks.synthetic.vmap_group_key`), which
are trained together by the task's ``train_group`` (one vmapped program), or one by one with
``--no_vmap``. Units are ordered by their first point and dealt round-robin to
``--num_tasks`` shards, so a cluster array job covers the sweep with no coordinator; every
task must be given the same flags (``--no_vmap`` changes the units)::

    #!/bin/bash
    #SBATCH --array=0-3
    rnnlm-sweep --config configs/sweeps/NAME.py --workdir runs/NAME \\
        --task_index=$SLURM_ARRAY_TASK_ID --num_tasks=4

Re-submitting the same array job resumes it (finished points are skipped).
"""

from __future__ import annotations

from typing import Sequence

from rnnlm_jax import tasks
from rnnlm_jax.sweeps.spec import Point, SweepError


def plan(points: Sequence[Point], num_tasks: int = 1, vmap: bool = True) -> list[list[Point]]:
  """Group points into execution units and deal the units to ``num_tasks`` shards.

  A point is a unit of its own, except that points of a task with a ``group_key``
  (synthetic: :func:`rnnlm_jax.tasks.synthetic.vmap_group_key`) and equal keys form one unit
  when ``vmap``. Units are ordered by their first point's index; unit ``u`` goes to shard
  ``u % num_tasks``. Sets ``unit``, ``shard`` and ``group_key`` on every point.

  Returns:
    The units, in order; every point is in exactly one.
  """
  if num_tasks < 1:
    raise SweepError(f"--num_tasks must be >= 1, got {num_tasks}")
  units: list[list[Point]] = []
  by_key: dict[str, int] = {}
  for p in sorted(points, key=lambda p: p.index):
    key = ""
    group_key = tasks.get_task(p.config).group_key
    if vmap and group_key is not None:
      key = str(group_key(p.config))
    p.group_key = key
    if key and key in by_key:
      units[by_key[key]].append(p)
    else:
      if key:
        by_key[key] = len(units)
      units.append([p])
  for u, unit in enumerate(units):
    for p in unit:
      p.unit, p.shard = u, u % num_tasks
  return units


def shard(units: Sequence[Sequence[Point]], task_index: int, num_tasks: int) -> list:
  """The units task ``task_index`` of ``num_tasks`` runs (round-robin: ``units[i::n]``).

  Raises:
    SweepError: unless ``0 <= task_index < num_tasks``.
  """
  if num_tasks < 1 or not 0 <= task_index < num_tasks:
    raise SweepError(f"need 0 <= --task_index < --num_tasks, got --task_index={task_index} "
                     f"--num_tasks={num_tasks}")
  return list(units[task_index::num_tasks])


def select(units: Sequence[Sequence[Point]], names: Sequence[str] | None) -> list:
  """Only the points named in ``names`` (``--point``); all of ``units`` when it is empty.

  Units left without a point are dropped; a vmapped group keeps its named points.

  Raises:
    SweepError: a name that is no point of the sweep.
  """
  if not names:
    return list(units)
  wanted, known = set(names), {p.name for u in units for p in u}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise SweepError(f"--point={unknown[0]} is not a point of this task's share of the sweep "
                     f"(--dry_run lists the names; e.g. {sorted(known)[0]})")
  chosen = [[p for p in u if p.name in wanted] for u in units]
  return [u for u in chosen if u]
