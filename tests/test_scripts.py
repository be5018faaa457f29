"""The scripts under scripts/ still import what they name from rnnlm_jax.

Scripts are not imported by the test suite (most run a benchmark or a study when executed), so
a renamed module breaks them silently: scripts/bench.py kept ``from rnnlm_jax import train``
for two weeks after ``train.py`` became ``tasks/lm.py``. This reads each script's imports from
its syntax tree and checks every ``rnnlm_jax`` module and name exists, without running it.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

SCRIPTS = sorted((pathlib.Path(__file__).resolve().parent.parent / "scripts").glob("*.py"))


def rnnlm_imports(path: pathlib.Path) -> list[tuple[str, str | None]]:
  """``(module, name)`` for every ``import rnnlm_jax...`` / ``from rnnlm_jax... import name``."""
  out = []
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnlm_jax"):
      out += [(node.module, a.name) for a in node.names]
    elif isinstance(node, ast.Import):
      out += [(a.name, None) for a in node.names if a.name.startswith("rnnlm_jax")]
  return out


def test_there_are_scripts():
  assert len(SCRIPTS) >= 5 and any(p.name == "bench.py" for p in SCRIPTS)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_imports_resolve(path):
  missing = []
  for module, name in rnnlm_imports(path):
    try:
      mod = importlib.import_module(module)
    except ImportError as e:
      missing.append(f"{module}: {e}")
      continue
    if name is not None and not hasattr(mod, name):
      try:
        importlib.import_module(f"{module}.{name}")
      except ImportError:
        missing.append(f"{module}.{name}")
  assert not missing, f"{path.name} imports what rnnlm_jax no longer has: {missing}"
