"""The optional oneDNN LSTM layer (rnnlm_jax.onednn) against the project's own LSTM: values and
gradients w.r.t. every input equal ``x W_ih + b`` then ``cells.lstm_recurrence`` to float32
tolerance; a tiny LM trained with ``model.lstm_backend="onednn"`` gives the losses of
``"scan"``. Those tests are skipped, with the reason, where oneDNN (``pip install -e
".[onednn]"``) or a C++ compiler is missing or the custom call does not build; the config
checks (one-line refusals, old workdirs without the key) run everywhere."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import make_corpus, tiny_config

from rnnlm_jax import cells, config_base, loop, onednn, rnn
from rnnlm_jax.models import lm
from rnnlm_jax.workdir import (ADDED_KEY_DEFAULTS, ROUNDING_KEYS, Workdir, config_conflicts)

_REASON = onednn.unavailable_reason() if jax.default_backend() == "cpu" else "not on CPU"
needs_onednn = pytest.mark.skipif(_REASON is not None,
                                  reason=f"oneDNN layer unavailable: {_REASON}")

# (T, B, I, H): one step, one example, I < H, I > H, H not a multiple of 8
SHAPES = [(1, 2, 3, 4), (1, 1, 5, 3), (5, 3, 4, 6), (7, 1, 8, 5), (6, 4, 9, 7), (3, 2, 16, 16)]
ARGNAMES = ("x", "w_ih", "w_hh", "b", "h0", "c0")


def _inputs(T, B, I, H, seed=0, zero_state=False):
  k = jax.random.split(jax.random.PRNGKey(seed), 9)
  x = jax.random.normal(k[0], (T, B, I))
  w_ih = 0.4 * jax.random.normal(k[1], (I, 4 * H))
  w_hh = 0.4 * jax.random.normal(k[2], (H, 4 * H))
  b = 0.4 * jax.random.normal(k[3], (4 * H,))
  h0 = jnp.zeros((B, H)) if zero_state else jax.random.normal(k[4], (B, H))
  c0 = jnp.zeros((B, H)) if zero_state else jax.random.normal(k[5], (B, H))
  cts = (jax.random.normal(k[6], (T, B, H)), jax.random.normal(k[7], (B, H)),
         jax.random.normal(k[8], (B, H)))
  return (x, w_ih, w_hh, b, h0, c0), cts


def _loss(layer, cts, which=("hs", "h", "c")):
  d_hs, d_h, d_c = cts

  def loss(x, w_ih, w_hh, b, h0, c0):
    (h, c), hs = layer(x, w_ih, w_hh, b, (h0, c0))
    total = 0.0
    if "hs" in which:
      total += jnp.sum(hs * d_hs)
    if "h" in which:
      total += jnp.sum(h * d_h)
    if "c" in which:
      total += jnp.sum(c * d_c)
    return total

  return loss


def _close(a, b, what):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5, err_msg=what)


@needs_onednn
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("zero_state", [False, True])
def test_values(shape, zero_state):
  args, _ = _inputs(*shape, zero_state=zero_state)
  (h, c), hs = onednn.lstm_layer(*args[:4], args[4:])
  (h_r, c_r), hs_r = onednn.lstm_layer_reference(*args[:4], args[4:])
  assert hs.shape == hs_r.shape and h.shape == h_r.shape and c.shape == c_r.shape
  _close(hs, hs_r, "hs")
  _close(h, h_r, "h_T")
  _close(c, c_r, "c_T")
  _close(hs[-1], h, "hs[-1] == h_T")


@needs_onednn
@pytest.mark.parametrize("shape", SHAPES)
def test_gradients(shape):
  args, cts = _inputs(*shape, seed=1)
  argnums = tuple(range(6))
  ours = jax.jit(jax.value_and_grad(_loss(onednn.lstm_layer, cts), argnums))(*args)
  ref = jax.value_and_grad(_loss(onednn.lstm_layer_reference, cts), argnums)(*args)
  _close(ours[0], ref[0], "loss (forward_training)")
  for name, g, g_r in zip(ARGNAMES, ours[1], ref[1]):
    assert g.shape == g_r.shape, name
    _close(g, g_r, f"d{name}")


@needs_onednn
@pytest.mark.parametrize("which", [("hs",), ("h",), ("c",), ("h", "c")])
def test_gradients_partial_cotangents(which):
  """Only some outputs used: the others' cotangents are (symbolic) zeros."""
  args, cts = _inputs(4, 3, 5, 6, seed=2)
  argnums = tuple(range(6))
  ours = jax.grad(_loss(onednn.lstm_layer, cts, which), argnums)(*args)
  ref = jax.grad(_loss(onednn.lstm_layer_reference, cts, which), argnums)(*args)
  for name, g, g_r in zip(ARGNAMES, ours, ref):
    _close(g, g_r, f"d{name} ({which})")


@needs_onednn
def test_gate_order_against_a_step():
  """One step by hand from cells.lstm (gate blocks (i, f, o, g), b_hh = 0)."""
  args, _ = _inputs(1, 3, 4, 5, seed=3)
  x, w_ih, w_hh, b, h0, c0 = args
  params = {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b, "b_hh": jnp.zeros_like(b)}
  (h_r, c_r), _ = cells.lstm.apply(params, (h0, c0), x[0])
  (h, c), _ = onednn.lstm_layer(*args[:4], args[4:])
  _close(h, h_r, "h")
  _close(c, c_r, "c")


@needs_onednn
def test_second_call_and_shapes_cached():
  """Two shapes interleaved under one jit each (the primitive cache is keyed by shape)."""
  for shape in [(3, 2, 4, 5), (2, 3, 4, 5), (3, 2, 4, 5)]:
    args, cts = _inputs(*shape)
    g = jax.jit(jax.grad(_loss(onednn.lstm_layer, cts), 1))(*args)
    g_r = jax.grad(_loss(onednn.lstm_layer_reference, cts), 1)(*args)
    _close(g, g_r, f"dw_ih {shape}")


@needs_onednn
def test_vmap_is_sequential_and_correct():
  args, _ = _inputs(3, 2, 4, 5)
  xs = jnp.stack([args[0], 2.0 * args[0]])
  f = lambda x: onednn.lstm_layer(x, *args[1:4], args[4:])[1]
  g = lambda x: onednn.lstm_layer_reference(x, *args[1:4], args[4:])[1]
  _close(jax.vmap(f)(xs), jax.vmap(g)(xs), "vmapped hs")


# ----------------------------------------------------------------------------- model.lstm_backend


def _spec(**model):
  c = config_base.base_config()
  c.model.hidden_size = c.model.embed_size = 8
  for k, v in model.items():
    c.model[k] = v
  return lm.LMSpec.from_config(c.model, vocab_size=11)


@pytest.mark.parametrize("model, fix", [
    ({"cell": "gru"}, "model.cell='lstm'"), ({"norm": "layer"}, "model.norm='none'"),
    ({"compute_dtype": "bfloat16"}, "model.compute_dtype='float32'"),
    ({"remat": "step"}, "model.remat='none'"), ({"scan_unroll": 2}, "model.scan_unroll=1")])
def test_onednn_refuses_what_it_cannot_run_in_one_line(model, fix):
  """Checked before oneDNN is looked for: these run without it."""
  with pytest.raises(ValueError, match="model.lstm_backend='onednn'") as e:
    _spec(lstm_backend="onednn", **model)
  assert fix in str(e.value) and "\n" not in str(e.value)
  with pytest.raises(ValueError, match="lstm_backend='onednn' runs the plain float32 LSTM"):
    cell = cells.get_cell(model.get("cell", "lstm"), model.get("norm", "none"))
    p = cell.init(jax.random.PRNGKey(0), 3, 4)
    rnn.scan_layer_time_major(cell, p, cell.init_carry(2, 4), jnp.ones((5, 2, 3)),
                              lstm_backend="onednn", remat=model.get("remat", "none"),
                              unroll=model.get("scan_unroll", 1),
                              compute_dtype=model.get("compute_dtype", "float32"))


def test_unknown_backend_and_missing_onednn_are_one_line_errors(monkeypatch):
  with pytest.raises(ValueError, match=r"model.lstm_backend must be one of scan \| onednn"):
    _spec(lstm_backend="cudnn")
  monkeypatch.setattr(onednn, "available", lambda: False)
  with pytest.raises(ValueError) as e:
    _spec(lstm_backend="onednn")
  msg = str(e.value)
  assert 'pip install -e ".[onednn]"' in msg and "C++ compiler" in msg and "\n" not in msg
  assert _spec().lstm_backend == "scan"  # the default never looks for oneDNN


def test_old_workdir_config_without_the_key_loads():
  """A config.json written before model.lstm_backend existed: the spec reads "scan", it is no
  conflict, and a run may switch the backend on resume (it changes float rounding only)."""
  new = config_base.base_config()
  assert new.model.lstm_backend == ADDED_KEY_DEFAULTS["model.lstm_backend"] == "scan"
  assert "model.lstm_backend" in ROUNDING_KEYS
  old = json.loads(json.dumps(new.to_dict()))
  del old["model"]["lstm_backend"]
  assert config_conflicts(old, new.to_dict()) == []
  switched = new.to_dict()
  switched["model"]["lstm_backend"] = "onednn"
  assert config_conflicts(old, switched) == []
  import ml_collections  # pylint: disable=import-outside-toplevel
  assert lm.LMSpec.from_config(ml_collections.ConfigDict(old["model"]), 11).lstm_backend == "scan"


def _losses(workdir):
  return [(e["split"], e["step"], e["loss"]) for e in Workdir(workdir).read_metrics()
          if "loss" in e]


@needs_onednn
def test_tiny_lm_trains_like_scan(tmp_path):
  """Four training steps (with dropout) and the final evaluations of a tiny 2-layer LSTM LM
  with each backend: the same losses to float32 rounding."""
  corpus = make_corpus(tmp_path / "corpus.txt", num_lines=60)
  over = {"model.hidden_size": 8, "model.embed_size": 8, "model.dropout": 0.1, "data.bptt": 5,
          "train.batch_size": 4, "train.num_epochs": 1, "train.max_steps": 4,
          "train.log_every": 1, "train.checkpoint_every_steps": 4, "train.eval_batch_size": 4}
  runs = {}
  for backend in ("scan", "onednn"):
    config = tiny_config(corpus, tmp_path / "tfds", **over, **{"model.lstm_backend": backend})
    loop.train_and_evaluate(config, str(tmp_path / backend))
    runs[backend] = _losses(tmp_path / backend)
  assert [k[:2] for k in runs["scan"]] == [k[:2] for k in runs["onednn"]]
  assert {k[0] for k in runs["scan"]} == {"train", "valid", "test"}, runs["scan"]
  np.testing.assert_allclose([k[2] for k in runs["onednn"]], [k[2] for k in runs["scan"]],
                             rtol=1e-5)


def test_compiler_is_cxx_then_gxx_then_zig(monkeypatch):
  """``$CXX`` wins, then g++/c++ on the PATH, then Zig's from PyPI; none of them: one line."""
  from rnnlm_jax.onednn import build  # pylint: disable=import-outside-toplevel
  gxx = "/usr/bin/g++"
  monkeypatch.setattr(build.shutil, "which", lambda name: gxx if name in ("g++", gxx) else None)
  monkeypatch.delenv("CXX", raising=False)
  assert build.find_compiler() == [gxx]
  monkeypatch.setenv("CXX", "/opt/none/clang++")
  with pytest.raises(build.BuildUnavailable, match="CXX=/opt/none/clang"):
    build.find_compiler()
  monkeypatch.delenv("CXX")
  monkeypatch.setattr(build.shutil, "which", lambda name: None)
  monkeypatch.setattr(build.importlib.util, "find_spec",
                      lambda name: object() if name == "ziglang" else None)
  assert build.find_compiler()[1:] == ["-m", "ziglang", "c++"]
  monkeypatch.setattr(build.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(build.BuildUnavailable, match=r"no C\+\+ compiler"):
    build.find_compiler()


@pytest.mark.slow
@needs_onednn
def test_zig_builds_a_working_layer(tmp_path):
  """Without g++ (a machine with Python and pip only), the ``onednn`` extra's Zig compiler builds
  the custom call, and that library computes the layer (a fresh process, a fresh cache)."""
  if importlib.util.find_spec("ziglang") is None:
    pytest.skip("ziglang not installed (pip install -e '.[onednn]')")
  script = """
import shutil
from rnnlm_jax.onednn import build
shutil.which = lambda name: None  # no g++ / c++ on this "machine"
cmd = build.command(build.cache_dir() / "probe.so")
assert cmd[1:4] == ["-m", "ziglang", "c++"], cmd
import jax, jax.numpy as jnp, numpy as np
from rnnlm_jax import onednn
assert onednn.unavailable_reason() is None, onednn.unavailable_reason()
k = jax.random.split(jax.random.PRNGKey(0), 4)
x, w_ih = jax.random.normal(k[0], (5, 3, 4)), 0.4 * jax.random.normal(k[1], (4, 24))
w_hh, b = 0.4 * jax.random.normal(k[2], (6, 24)), 0.4 * jax.random.normal(k[3], (24,))
state = (jnp.zeros((3, 6)), jnp.zeros((3, 6)))
_, hs = onednn.lstm_layer(x, w_ih, w_hh, b, state)
_, want = onednn.lstm_layer_reference(x, w_ih, w_hh, b, state)
np.testing.assert_allclose(hs, want, atol=1e-5)
print("built", sorted(p.name for p in build.cache_dir().glob("*.so")))
"""
  env = {k: v for k, v in os.environ.items() if k != "CXX"}
  env["RNNLM_JAX_CACHE"] = str(tmp_path)
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        timeout=600, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
  assert "built ['rnnlm_onednn_lstm_" in proc.stdout


@needs_onednn
def test_openmp_threads_do_not_spin_unless_asked():
  """Loading the layer sets KMP_BLOCKTIME=0 (Intel OpenMP's idle spinning slowed the whole step
  ~4x) and keeps a value the user set."""
  script = ("import os; from rnnlm_jax import onednn; assert onednn.available(); "
            "print(os.environ['KMP_BLOCKTIME'])")
  for preset, want in ((None, "0"), ("30", "30")):
    env = {k: v for k, v in os.environ.items() if k != "KMP_BLOCKTIME"}
    if preset is not None:
      env["KMP_BLOCKTIME"] = preset
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[-1] == want, out
