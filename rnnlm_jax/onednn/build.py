"""Build the oneDNN LSTM custom call (``lstm_ffi.cc``) into a shared library, once.

The library is compiled with a C++ compiler (``$CXX``, else ``g++`` or ``c++`` on the PATH, else
Zig's ``zig c++`` from the ``ziglang`` PyPI package, which the ``onednn`` extra installs, so a
machine with Python and pip only can build it) against

* oneDNN's headers and ``libdnnl.so`` from the ``onednn-devel-cpu-iomp`` PyPI package (oneDNN
  3.2 with Intel's OpenMP CPU runtime, installed into the environment's prefix:
  ``<prefix>/include/oneapi/dnnl``, ``<prefix>/lib/libdnnl.so``; the newer ``onednn-devel`` is a
  SYCL build that cannot run on a plain CPU, see :func:`find_onednn`), or from ``$DNNLROOT`` /
  ``$ONEDNN_ROOT`` when set;
* XLA's FFI headers shipped with jaxlib (``jax.ffi.include_dir()``),

into a cache directory (``$RNNLM_JAX_CACHE`` or ``~/.cache/rnnlm_jax``)``/onednn/``, named by a
hash of the source, the flags, the compiler, jaxlib's version and oneDNN's paths, version
and configuration headers, so a changed
source or environment builds a new file and an unchanged one is reused. The library's RPATH
(old style, inherited by ``libdnnl``'s own dependencies: ``libiomp5`` and Intel's compiler
runtime libraries from the ``intel-openmp`` and ``intel-cmplr-lib-rt`` packages) points at
oneDNN's lib directory, so nothing needs ``LD_LIBRARY_PATH``.

``python -m rnnlm_jax.onednn.build`` builds (or finds) the library and prints its path;
``--force`` rebuilds.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("lstm_ffi.cc")
CXXFLAGS = ("-O2", "-std=c++17", "-fPIC", "-shared")


class BuildUnavailable(RuntimeError):
  """oneDNN's headers or library, jaxlib's FFI headers, or a C++ compiler are missing."""


# oneDNN 3.2, CPU engine on OpenMP (the project's `onednn` extra: pip install -e ".[onednn]")
INSTALL_HINT = 'pip install -e ".[onednn]"'


def find_onednn() -> tuple[Path, Path]:
  """``(include_dir, lib_dir)`` of an installed oneDNN with a plain CPU runtime (OpenMP, TBB or
  sequential); raises :class:`BuildUnavailable`.

  The ``onednn`` / ``onednn-devel`` packages of 2024 and later (oneDNN 3.5+) are built for the
  SYCL runtime: their CPU engine needs a SYCL CPU device (an OpenCL CPU driver and Unified
  Runtime's OpenCL adapter, which those wheels do not ship), and without one every primitive
  fails with "could not create an engine". The ``onednn-devel-cpu-{gomp,iomp,tbb}`` packages
  (oneDNN 3.2, 2023) are CPU-only builds and work.
  """
  roots = [os.environ.get(k) for k in ("DNNLROOT", "ONEDNN_ROOT")] + [sys.prefix, sys.base_prefix]
  for root in filter(None, roots):
    inc, lib = Path(root) / "include", Path(root) / "lib"
    if (inc / "oneapi" / "dnnl" / "dnnl.hpp").exists() and glob.glob(str(lib / "libdnnl.so*")):
      config = (inc / "oneapi" / "dnnl" / "dnnl_config.h").read_text()
      if "#define DNNL_CPU_RUNTIME DNNL_RUNTIME_SYCL" in config:
        raise BuildUnavailable(f"the oneDNN under {root} is a SYCL build (CPU engine needs a SYCL "
                               f"CPU device): `pip uninstall onednn-devel onednn; {INSTALL_HINT}`")
      return inc, lib
  raise BuildUnavailable(f"oneDNN not found: `{INSTALL_HINT}` (headers and libdnnl.so under "
                         f"{sys.prefix}/include and /lib) or set DNNLROOT")


def find_compiler() -> list[str]:
  """The C++ compiler's command: ``$CXX``, else ``g++`` / ``c++`` on the PATH, else
  ``python -m ziglang c++`` (Zig's clang with its own libc++, from PyPI); raises
  :class:`BuildUnavailable`."""
  cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if cxx:
    if not shutil.which(cxx):
      raise BuildUnavailable(f"the C++ compiler CXX={cxx} is not found")
    return [cxx]
  if importlib.util.find_spec("ziglang") is not None:
    return [sys.executable, "-m", "ziglang", "c++"]
  raise BuildUnavailable(f"no C++ compiler: `{INSTALL_HINT}` (installs Zig's) or set CXX")


def cache_dir() -> Path:
  base = os.environ.get("RNNLM_JAX_CACHE") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rnnlm_jax")
  return Path(base) / "onednn"


def command(output: Path) -> list[str]:
  """The compiler command line that builds the library into ``output``."""
  import jax.ffi  # pylint: disable=import-outside-toplevel

  inc, lib = find_onednn()
  return [*find_compiler(), *CXXFLAGS, "-isystem", str(jax.ffi.include_dir()),
          "-isystem", str(inc), str(SOURCE), "-o", str(output), f"-L{lib}", "-ldnnl",
          "-Wl,--disable-new-dtags", f"-Wl,-rpath,{lib}"]


def library_path(force: bool = False, verbose: bool = False) -> Path:
  """Build the library if needed; its path. Raises :class:`BuildUnavailable` or
  ``subprocess.CalledProcessError`` (with the compiler's output) on failure."""
  import jaxlib  # pylint: disable=import-outside-toplevel

  probe = command(Path("OUT"))
  inc, _ = find_onednn()
  headers = [(inc / "oneapi" / "dnnl" / h).read_text() for h in ("dnnl_version.h", "dnnl_config.h")]
  key = hashlib.sha256("\0".join(probe + headers + [SOURCE.read_text(), jaxlib.__version__]).encode())
  out = cache_dir() / f"rnnlm_onednn_lstm_{key.hexdigest()[:16]}.so"
  if out.exists() and not force:
    return out
  out.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
  os.close(fd)
  cmd = command(Path(tmp))
  if verbose:
    print(" ".join(cmd), file=sys.stderr)
  try:
    subprocess.run(cmd, check=True, capture_output=not verbose, text=True)
    os.replace(tmp, out)  # atomic: concurrent builders each write their own temporary file
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--force", action="store_true", help="rebuild even if cached")
  args = parser.parse_args(argv)
  try:
    print(library_path(force=args.force, verbose=True))
  except BuildUnavailable as e:
    sys.exit(f"cannot build: {e}")
  except subprocess.CalledProcessError as e:
    sys.exit(f"build failed ({e.returncode}):\n{e.stderr or ''}")


if __name__ == "__main__":
  main()
