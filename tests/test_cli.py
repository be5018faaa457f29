"""What the command lines share (rnnlm_jax/cli.py): ``--help`` of every entry point, the
one-line error of a misspelt ``--config.KEY`` override, and a library that imports no command
line module and changes no logging on import."""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

from rnnlm_jax import cli, config_base

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
ENV = dict(os.environ, JAX_PLATFORMS="cpu")

# Each command's own flags, as --help must list them (heads: "--name ..." or "--[no]name").
HELP_FLAGS = {
    "rnnlm-train": ["--config", "--workdir", "--config.KEY=VALUE"],
    "rnnlm-eval": ["--workdir", "--split", "--text", "--checkpoint"],
    "rnnlm-sweep": ["--config", "--workdir", "--config.KEY=VALUE", "--task_index", "--num_tasks",
                    "--point", "--[no]no_vmap", "--[no]dry_run", "--cpu_devices"],
    "rnnlm-report": ["--tables", "--rows", "--cols", "--metric", "--[no]plots"],
    "rnnlm-sample": ["--workdir", "--prompt", "--length", "--temperature", "--top_k", "--top_p",
                     "--seed", "--num_samples", "--checkpoint"],
}
NOT_IN_HELP = {"rnnlm-train": ["--split", "--text", "--checkpoint", "--mode"],
               "rnnlm-eval": ["--config", "--mode", "--config.KEY=VALUE"]}


def _command(name: str) -> str:
  path = BIN / name
  assert path.exists(), f"{name} is not installed in {BIN} (pip install -e .)"
  return str(path)


def _run_all(cmds):
  """Run the commands concurrently in the repository; their CompletedProcesses."""
  procs = [subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for cmd in cmds]
  out = []
  for cmd, proc in zip(cmds, procs):
    stdout, stderr = proc.communicate(timeout=300)
    out.append(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr))
  return out


def _flag_heads(text: str) -> dict[str, str]:
  """``{flag head: its help text}`` of the ``flags:`` section of a --help text."""
  section = text.split("\nflags:\n", 1)[1]
  heads, current = {}, None
  for line in section.splitlines():
    if line.startswith("  --"):
      current = line.split()[0]
      heads[current] = ""
    elif line.startswith("      ") and current is not None:
      heads[current] += line.strip() + " "
  return heads


def test_help_of_every_absl_command_lists_its_flags_and_exits_0():
  names = list(HELP_FLAGS)
  results = _run_all([[_command(n), "--help"] for n in names])
  for name, r in zip(names, results):
    assert r.returncode == 0, (name, r.stdout, r.stderr)
    assert r.stderr == "", (name, r.stderr)
    text = r.stdout
    assert text.startswith(f"usage: {name} "), text
    paragraphs = text.split("\n\n")
    assert len(paragraphs[1].split()) >= 20  # a description paragraph after the usage
    assert re.search(rf"^examples?:\n  {name} \S", text, re.M), text
    heads = _flag_heads(text)
    for flag in HELP_FLAGS[name]:
      assert flag in heads, (name, flag, text)
      assert len(heads[flag].split()) >= 3, (name, flag, heads[flag])  # its help string
    for flag in NOT_IN_HELP.get(name, []):
      assert flag not in heads, (name, flag)
    assert "--help" in heads and "--helpfull" in heads


def test_help_also_answers_h_and_python_m_and_ignores_flags_after_double_dash():
  short, module, after = _run_all([
      [_command("rnnlm-sample"), "-h"],
      [sys.executable, "-m", "rnnlm_jax.sample_main", "--workdir", "/nonexistent", "--help"],
      [_command("rnnlm-report"), "--", "--help"]])
  assert short.returncode == 0 and short.stdout.startswith("usage: rnnlm-sample ")
  assert module.returncode == 0 and module.stdout == short.stdout
  # After "--" a "--help" is a positional argument: the report reads it as DIR and fails.
  assert after.returncode == 2 and after.stderr.startswith("error: ")


def test_helpfull_is_still_absl_s():
  full, = _run_all([[_command("rnnlm-train"), "--helpfull"]])
  assert "--workdir" in full.stdout and "--config" in full.stdout
  assert "absl.logging:" in full.stdout and "--verbosity" in full.stdout  # every flag


def test_export_embeddings_help():
  r, = _run_all([[_command("rnnlm-export-embeddings"), "--help"]])
  assert r.returncode == 0 and r.stderr == ""
  for flag, help_ in (("--workdir", "a language-model run directory"),
                      ("--out", "the GloVe text file to write"),
                      ("--checkpoint", "which checkpoint's parameters")):
    assert re.search(rf"^  {flag} \S+\s+{help_}", r.stdout, re.M), (flag, r.stdout)
  assert "GloVe text file" in r.stdout
  assert "example:\n  rnnlm-export-embeddings --workdir " in r.stdout


def test_program_name_and_wants_help():
  assert cli.program_name(["/venv/bin/rnnlm-train", "--config", "c.py"]) == "rnnlm-train"
  assert cli.program_name(["/venv/bin/rnnlm-train", "--mode=eval"]) == "rnnlm-eval"
  assert cli.program_name(["/repo/rnnlm_jax/sweep_main.py"]) == "rnnlm-sweep"
  assert cli.program_name(["/repo/rnnlm_jax/main.py"]) == "rnnlm-train"
  assert cli.program_name(["/somewhere/tool"]) == "tool"
  assert cli.wants_help(["p", "--workdir", "x", "--help"])
  assert cli.wants_help(["p", "-?"]) and cli.wants_help(["p", "--helpshort"])
  assert not cli.wants_help(["p", "--helpfull"])  # absl's
  assert not cli.wants_help(["p", "--", "--help"])
  assert not cli.wants_help(["p", "--prompt=--help"])


# ----------------------------------------------------------------------------- config keys


def test_misspelt_override_is_one_line_with_the_full_key_and_writes_nothing(tmp_path):
  train, sweep = _run_all([
      [_command("rnnlm-train"), "--config", "configs/tiny.py", "--workdir", str(tmp_path / "t"),
       "--config.model.hiden_size=3"],
      [_command("rnnlm-sweep"), "--config", "configs/sweeps/tiny_lm.py", "--workdir",
       str(tmp_path / "s"), "--config.optim.clip_valu=1"]])
  assert train.returncode == 2 and train.stdout == ""
  assert train.stderr == ("error: unknown config key 'model.hiden_size'; did you mean "
                          "'model.hidden_size'?\n")
  assert sweep.returncode == 2 and sweep.stdout == ""
  assert sweep.stderr == ("error: unknown config key 'optim.clip_valu'; did you mean "
                          "'optim.clip_value'?\n")
  assert list(tmp_path.iterdir()) == []


def _lookup_error(path: str) -> BaseException:
  """The exception ml_collections raises when an override names ``path`` (the same lookup)."""
  config = config_base.base_config()
  config.lock()
  node = config
  try:
    for part in path.split("."):
      node = getattr(node, part)
  except (AttributeError, KeyError) as e:
    return e
  raise AssertionError(f"{path} exists")


@pytest.mark.parametrize("argv, missing, message", [
    (["p", "--config", "c.py", "--config.model.hiden_size=3"], "model.hiden_size",
     "unknown config key 'model.hiden_size'; did you mean 'model.hidden_size'?"),
    (["p", "--config", "c.py", "--config.modl.hidden_size", "3"], "modl.hidden_size",
     "unknown config key 'modl'; did you mean 'model'?"),
    (["p", "--config=c.py", "--noconfig.train.zzzz_qqq"], "train.zzzz_qqq",
     f"unknown config key 'train.zzzz_qqq'; {cli.CONFIG_KEYS_HINT}"),
    # The first override holding the missing key is the one that failed.
    (["p", "--config", "c.py", "--config.seed=1", "--config.optim.hiden_size=2",
      "--config.model.hiden_size=3"], "optim.hiden_size",
     f"unknown config key 'optim.hiden_size'; {cli.CONFIG_KEYS_HINT}"),
])
def test_unknown_key_message(argv, missing, message):
  e = _lookup_error(missing)
  assert cli._unknown_key_message(e, argv) == message  # pylint: disable=protected-access


def test_a_key_error_not_from_an_override_is_not_called_an_unknown_key():
  e = _lookup_error("model.hiden_size")
  assert cli._unknown_key_message(e, ["p", "--config", "c.py"]) is None  # pylint: disable=protected-access


# ----------------------------------------------------------------------------- the library


def _cli_modules() -> set[str]:
  """The command-line modules: those of the entry points named ``main`` or ``*_main``."""
  scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
  modules = {target.split(":")[0] for target in scripts.values()}
  cli_modules = {m for m in modules if m.endswith((".main", "_main"))}
  assert {"rnnlm_jax.main", "rnnlm_jax.sample_main"} <= cli_modules
  return cli_modules


def test_library_modules_import_no_command_line_module():
  cli_modules = _cli_modules()
  offenders = []
  for path in sorted((REPO / "rnnlm_jax").rglob("*.py")):
    parts = path.relative_to(REPO).with_suffix("").parts
    module = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
    if module in cli_modules:
      continue
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                          + ([node.module] if node.module else []))
        names = [base] + [f"{base}.{a.name}" for a in node.names]
      offenders += [f"{module} imports {n}" for n in names if n in cli_modules]
  assert offenders == []


def test_importing_the_library_leaves_logging_alone():
  code = ("import logging\n"
          "import rnnlm_jax.checkpoint, rnnlm_jax.sample, rnnlm_jax.embeddings\n"
          "assert logging.getLogger('absl').level == logging.NOTSET, 'import changed logging'\n"
          "from rnnlm_jax import cli\n"
          "cli.setup_logging()\n"
          "assert logging.getLogger('absl').level == logging.WARNING\n"
          "print('ok')\n")
  r, = _run_all([[sys.executable, "-c", code]])
  assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
