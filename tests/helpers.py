"""Helpers shared by the tests: a tiny word corpus, the tiny LM config on it, a workdir's events
and last checkpointed state.

Test modules import it as ``helpers``: tests/ is not a package, so pytest (its default
"prepend" import mode) puts tests/ on ``sys.path``, as for the test modules themselves. A
subprocess loads it by path (``runpy.run_path(str(HELPERS))``).
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from rnnlm_jax.sweeps.spec import apply_overrides

REPO = pathlib.Path(__file__).resolve().parent.parent
HELPERS = pathlib.Path(__file__).resolve()
TIMING_FIELDS = ("steps_per_sec", "tokens_per_sec", "train_seconds")  # differ between runs


def make_corpus(path: pathlib.Path, num_lines: int = 600, seed: int = 0) -> pathlib.Path:
  """A word corpus with learnable structure: 'the <noun> <verb> the <noun>' sentences."""
  rng = np.random.default_rng(seed)
  nouns = [f"n{i}" for i in range(12)]
  verbs = [f"v{i}" for i in range(6)]
  lines = []
  for _ in range(num_lines):
    n1, v, n2 = rng.choice(nouns), rng.choice(verbs), rng.choice(nouns)
    lines.append(f"the {n1} {v} the {n2} .")
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


def _tiny_module():
  """configs/tiny.py, loaded by path (configs/ is no package)."""
  spec = importlib.util.spec_from_file_location("_configs_tiny", REPO / "configs" / "tiny.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def tiny_config(corpus: pathlib.Path, tfds_dir: pathlib.Path, **overrides):
  """configs/tiny.py on the text file ``corpus`` (word level), with dotted-key ``overrides``."""
  c = _tiny_module().get_config()
  c.data.name = "text_file"
  c.data.path = str(corpus)
  c.data.level = "word"
  c.data.tfds_dir = str(tfds_dir)
  return apply_overrides(c, overrides)


def events(workdir) -> list[dict]:
  """The events of a workdir's metrics.jsonl without the timing fields."""
  from rnnlm_jax.workdir import Workdir
  return [{k: v for k, v in e.items() if k not in TIMING_FIELDS}
          for e in Workdir(workdir).read_metrics()]


def final_state(workdir, config):
  """(state, meta) of the latest checkpoint of an LM workdir trained with ``config``."""
  from rnnlm_jax import checkpoint as ckpt_lib
  from rnnlm_jax import data as data_lib
  from rnnlm_jax.models import lm
  from rnnlm_jax.tasks import lm as lm_task
  corpus = data_lib.load_lm_corpus(config.data, None)
  spec = lm.LMSpec.from_config(config.model, len(corpus.vocab))
  spe = data_lib.num_train_windows(
      data_lib.batchify(corpus.train, config.train.batch_size), config.data.bptt)
  target = lm_task.create_train_state(config, spec, spe)
  ck = ckpt_lib.Checkpointer(pathlib.Path(workdir) / "checkpoints")
  state, meta = ck.restore_latest(target)
  ck.close()
  return state, meta


def check_short_run(config, workdir, final: dict, steps: int) -> None:
  """What a few-step run of ``config`` in ``workdir`` (returning ``final``) must show, so that a
  stub loop fails: ``steps`` updates done and finished; train events with a finite, positive
  pre-clip gradient norm; a final event on the best-valid checkpoint whose loss equals an
  independent re-evaluation of that checkpoint through the task's ``rnnlm-eval`` path."""
  import json
  import math
  from rnnlm_jax import tasks
  from rnnlm_jax.workdir import Workdir
  wd = Workdir(workdir)
  status = json.loads(wd.status_file.read_text())
  assert (status["state"], status["step"]) == ("finished", steps), status
  train = [e for e in wd.read_metrics() if e["split"] == "train"]
  assert train and train[-1]["step"] == steps
  assert all(math.isfinite(e["loss"]) and 0 < e["grad_norm"] < math.inf for e in train)
  assert final["checkpoint"] == "best_valid" and math.isfinite(final["loss"])
  again = tasks.get_task(config).evaluate_workdir(str(workdir), final["split"], "best")
  assert again["loss"] == final["loss"] and again["checkpoint_step"] == final["checkpoint_step"]


def check_finite_differences(loss, point: tuple, dirs: list, eps: float = 1e-6):
  """Inside ``jax.enable_x64``: the gradient of ``loss(*point)`` along each direction of
  ``dirs`` (pytrees shaped like ``point``, float64) equals the central difference with step
  ``eps`` (rtol 1e-6) and is not trivially zero. Returns the gradients (a tuple, one per
  argument)."""
  import jax
  grads = jax.jit(jax.grad(loss, argnums=tuple(range(len(point)))))(*point)
  for d in dirs:
    plus = jax.tree.map(lambda a, b: a + eps * b, point, d)
    minus = jax.tree.map(lambda a, b: a - eps * b, point, d)
    fd = (float(loss(*plus)) - float(loss(*minus))) / (2 * eps)
    an = sum(float(np.vdot(np.asarray(g), v))
             for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(d)))
    assert abs(an) > 1e-3
    np.testing.assert_allclose(an, fd, rtol=1e-6, atol=1e-8)
  return grads


def register_fake_synthetic(monkeypatch, mod, group_key, train_group) -> None:
  """Make the module ``mod`` the ``synthetic`` task for one test: its ``TASK`` groups points by
  ``group_key(config)`` and trains a group with ``train_group(configs, workdirs, vmap)``."""
  import sys
  from rnnlm_jax import tasks
  mod.TASK = tasks.Task(name="synthetic", validate_config=lambda c: None, make_run=None,
                        evaluate_workdir=None, group_key=group_key, train_group=train_group,
                        train_and_evaluate=lambda c, w: train_group([c], [w])[0])
  monkeypatch.setitem(sys.modules, mod.__name__, mod)
  monkeypatch.setitem(tasks.REGISTRY, "synthetic", mod.__name__)


def crash_at(monkeypatch, crash_step: int) -> None:
  """Make the LM's train step raise ``RuntimeError("simulated crash")`` when called at step
  ``crash_step`` (``tasks.lm.make_train_step`` swapped through ``monkeypatch``; like a kill:
  no clean-up of ours)."""
  from rnnlm_jax.tasks import lm as lm_task
  real = lm_task.make_train_step

  def crashing(*args, **kw):
    step_fn = real(*args, **kw)

    def wrapped(state, x, y):
      if int(state.step) == crash_step:
        raise RuntimeError("simulated crash")
      return step_fn(state, x, y)

    return wrapped

  monkeypatch.setattr(lm_task, "make_train_step", crashing)


def crash_then_resume(monkeypatch, config, workdir, at_step: int) -> None:
  """Train ``config`` (a language model) in ``workdir``, crash it at step ``at_step``
  (:func:`crash_at`), then run the same command again, which resumes from the last
  checkpoint."""
  import pytest
  from rnnlm_jax import loop
  with monkeypatch.context() as m:
    crash_at(m, at_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
      loop.train_and_evaluate(config, str(workdir))
  loop.train_and_evaluate(config, str(workdir))
