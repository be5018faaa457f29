"""Sweeps: many runs from one base config and a list of overrides, resumable and shardable.

Three modules, each with one job:

* :mod:`rnnlm_jax.sweeps.spec` -- what a sweep *is* (pure: no JAX, nothing read or written):
  the sweep-file vocabulary ``sweep``/``product``/``zip_``/``import_file`` (sweep files import
  them from here), point names, ``apply_overrides``, loading a sweep file and ``expand``-ing
  it into validated :class:`~rnnlm_jax.sweeps.spec.Point` s.
* :mod:`rnnlm_jax.sweeps.plan` -- how the points are split up: execution units (a task's
  group key: vmapped synthetic groups), shards of an array job, ``--point`` selection.
* :mod:`rnnlm_jax.sweeps.run` -- running a share of a sweep: the ``sweep.json`` record and
  the workdir check, skip/resume rules, each point's final ``status.json``.

The command line is :mod:`rnnlm_jax.sweep_main` (``rnnlm-sweep``).
"""
