"""rnnlm_jax.sweeps.spec: sweep/product/zip_, point names, overrides, expansion, import_file."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from rnnlm_jax import config_base
from rnnlm_jax.sweeps.spec import (MAX_NAME_LEN, SweepError, apply_overrides, expand, import_file,
                                   point_name, product, sweep, zip_)

REPO = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- expansion


def test_sweep_product_zip_counts_and_order():
  assert sweep("model.cell", ["lstm", "gru"]) == [{"model.cell": "lstm"}, {"model.cell": "gru"}]
  pts = product(sweep("a.x", [1, 2]), sweep("b", ["p", "q", "r"]))
  assert len(pts) == 6
  assert pts == [{"a.x": 1, "b": "p"}, {"a.x": 1, "b": "q"}, {"a.x": 1, "b": "r"},
                 {"a.x": 2, "b": "p"}, {"a.x": 2, "b": "q"}, {"a.x": 2, "b": "r"}]
  assert [list(p) for p in pts] == [["a.x", "b"]] * 6  # key order = argument order
  z = zip_(sweep("m", ["none", "global_norm"]), sweep("v", [0.0, 0.25]))
  assert z == [{"m": "none", "v": 0.0}, {"m": "global_norm", "v": 0.25}]
  nested = product(sweep("c", ["lstm", "gru"]), z, sweep("seed", [0, 1, 2]))
  assert len(nested) == 2 * 2 * 3
  assert nested[0] == {"c": "lstm", "m": "none", "v": 0.0, "seed": 0}
  assert nested[1] == {"c": "lstm", "m": "none", "v": 0.0, "seed": 1}  # seeds vary fastest
  assert nested[-1] == {"c": "gru", "m": "global_norm", "v": 0.25, "seed": 2}
  assert product() == [{}]


def test_spec_errors():
  with pytest.raises(ValueError, match=r"equal length.*\[2, 3\]"):
    zip_(sweep("a", [1, 2]), sweep("b", [1, 2, 3]))
  with pytest.raises(SweepError, match="key 'a' is set by two"):
    product(sweep("a", [1]), sweep("a", [2]))
  with pytest.raises(SweepError, match="key 'a' is set by two"):
    zip_(sweep("a", [1]), sweep("a", [2]))
  with pytest.raises(SweepError, match="not a string"):
    sweep("model.cell", "gru")
  with pytest.raises(SweepError, match="no values"):
    sweep("seed", [])
  with pytest.raises(SweepError, match="dotted config key"):
    sweep("model..cell", [1])


# ----------------------------------------------------------------------------- names


def test_point_name_readable_stable_safe():
  ov = {"model.cell": "gru", "optim.clip_mode": "none", "seed": 1}
  assert point_name(ov) == "cell=gru,clip_mode=none,seed=1"
  assert point_name({"seed": 1, "model.cell": "gru"}) == "seed=1,cell=gru"  # given order
  assert point_name({"optim.clip_value": 0.25, "optim.learning_rate": 1e-05}) == \
      "clip_value=0.25,learning_rate=1e-05"
  assert point_name({"lr": 1.0, "x": 3e-4, "y": 0.1}) == "lr=1.0,x=0.0003,y=0.1"
  assert point_name({"model.tie_embeddings": True, "data.dir": None}) == \
      "tie_embeddings=true,dir=none"
  assert point_name({"data.split": (0.8, 0.1, 0.1)}) == "split=0.8_0.1_0.1"
  assert point_name({"data.path": "/tmp/a b/c.txt"}) == "path=_tmp_a_b_c.txt"
  assert point_name({"a.init": "x", "b.init": "y"}) == "a.init=x,b.init=y"  # ambiguous: full
  assert point_name({}) == "base"
  long = {"data.path": "x" * 500}
  name = point_name(long)
  assert len(name) <= MAX_NAME_LEN and name == point_name(dict(long))
  assert name != point_name({"data.path": "x" * 499})
  for name in (point_name(ov), point_name({"p": "../../etc", "q": "a,b=c"})):
    assert "/" not in name and not name.startswith(".")
  assert point_name({"p": "a,b=c"}) == "p=a_b_c"
  # Stable across processes (no hash randomisation).
  code = ("from rnnlm_jax.sweeps.spec import point_name; "
          "print(point_name({'data.path': 'x' * 500, 'optim.learning_rate': 1e-05}))")
  outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONHASHSEED=str(seed))).stdout
          for seed in (1, 2)}
  assert outs == {point_name({"data.path": "x" * 500, "optim.learning_rate": 1e-05}) + "\n"}


def test_names_unique_and_collision_errors():
  base = config_base.base_config()
  pts = expand(base, product(sweep("model.cell", ["lstm", "gru"]), sweep("seed", [0, 1])))
  names = [p.name for p in pts]
  assert len(set(names)) == 4 and names[0] == "cell=lstm,seed=0"
  with pytest.raises(SweepError, match=r"points 0 .* and 1 .*same name 'path=a_b'"):
    expand(base, sweep("data.path", ["a/b", "a_b"]))
  with pytest.raises(SweepError, match="points 0 and 2 are equal"):
    expand(base, [{"seed": 1}, {"seed": 2}, {"seed": 1}])
  with pytest.raises(SweepError, match="no points"):
    expand(base, [])


# ----------------------------------------------------------------------------- overrides


def test_apply_overrides_copies_and_reports_unknown_keys():
  base = config_base.base_config()
  base.lock()
  c = apply_overrides(base, {"model.cell": "gru", "optim.clip_value": 1, "seed": 3})
  assert (c.model.cell, c.optim.clip_value, c.seed) == ("gru", 1.0, 3)
  assert (base.model.cell, base.seed) == ("lstm", 0)  # untouched
  with pytest.raises(SweepError, match=r"unknown config key 'model\.cel'.*'model' has no "
                                       r"field 'cel'.*cell"):
    apply_overrides(base, {"model.cel": "gru"})
  with pytest.raises(SweepError, match=r"unknown config key 'modle\.cell'"):
    apply_overrides(base, {"modle.cell": "gru"})
  with pytest.raises(SweepError, match=r"'model\.cell\.x'.*'model\.cell' is a value"):
    apply_overrides(base, {"model.cell.x": 1})
  with pytest.raises(SweepError, match=r"'model' is a group"):
    apply_overrides(base, {"model": {"cell": "gru"}})
  with pytest.raises(SweepError, match=r"cannot set 'model\.hidden_size' to 1\.5"):
    apply_overrides(base, {"model.hidden_size": 1.5})
  # expand() names the point, and fails before anything is built.
  with pytest.raises(SweepError, match=r"point 1 \(cel=gru\).*'model\.cel'"):
    expand(base, [{"model.cell": "gru"}, {"model.cel": "gru"}])


def test_import_file_loads_by_path_and_same_stems_do_not_collide(tmp_path):
  """import_file: how sweep files build on config files (not a package)."""
  for sub, value in (("a", 1), ("b", 2)):
    (tmp_path / sub).mkdir()
    (tmp_path / sub / "base.py").write_text(f"VALUE = {value}\n")
  a = import_file(tmp_path / "a" / "base.py")
  b = import_file(str(tmp_path / "b" / "base.py"))
  assert (a.VALUE, b.VALUE) == (1, 2)


def test_spec_is_pure():
  """The spec imports neither JAX nor the workdir (sweep files and reports load it cheaply)."""
  code = ("import sys; import rnnlm_jax.sweeps.spec; "
          "print(sorted(m for m in ('jax', 'rnnlm_jax.workdir', 'rnnlm_jax.tasks') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0 and out.stdout == "[]\n", out.stderr
