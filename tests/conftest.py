"""Shared test setup.

Tests compare against float32/float64 references at tight tolerances. On GPU, XLA's default
float32 matmul precision uses TF32 tensor cores (about 3 decimal digits), which would fail those
comparisons for reasons unrelated to the code; the tests therefore run with "highest" matmul
precision everywhere (a no-op on CPU, where float32 dots are exact float32 already).

Many tests compile the same tiny programs (the goldens and the old-workdir resumes train the same
configs; the LM tests share configs/tiny.py): one persistent XLA compilation cache per test
session, shared by the xdist workers and the CLI subprocesses through the environment, compiles
each once. A cached executable is the compiled program itself, so numbers do not change.
"""

import os
import pathlib
import tempfile

import jax
import pytest


def _session_cache_dir() -> str:
  """One directory per test run: xdist gives its workers the same run id; the CLI subprocesses
  of the tests inherit the variables set here."""
  run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
  if not run:
    return tempfile.mkdtemp(prefix="rnnlm_jax_xla_")
  path = pathlib.Path(tempfile.gettempdir()) / f"rnnlm_jax_xla_{run}"
  path.mkdir(exist_ok=True)
  return str(path)


os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _session_cache_dir())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))

jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def iso(tmp_path, monkeypatch):
  """Isolated environment: no mirror, no downloads, tfds/cache dirs in tmp_path."""
  from rnnlm_jax.data import builders, sources
  monkeypatch.setattr(sources, "mirror_dirs", lambda: [])
  monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)
  monkeypatch.setenv(sources.ENV_NO_DOWNLOAD, "1")
  monkeypatch.setenv(sources.ENV_CACHE_DIR, str(tmp_path / "cache"))
  monkeypatch.setenv(builders.ENV_TFDS_DIR, str(tmp_path / "tfds"))
  return tmp_path


@pytest.fixture()
def corpus(tmp_path):
  """A tiny word corpus file (helpers.make_corpus)."""
  from helpers import make_corpus
  return make_corpus(tmp_path / "corpus.txt")
