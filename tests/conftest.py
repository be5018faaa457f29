"""Shared test setup.

Tests compare against float32/float64 references at tight tolerances. On GPU, XLA's default
float32 matmul precision uses TF32 tensor cores (about 3 decimal digits), which would fail those
comparisons for reasons unrelated to the code; the tests therefore run with "highest" matmul
precision everywhere (a no-op on CPU, where float32 dots are exact float32 already).
"""

import jax
import pytest

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
