"""Find a data set's files, check their hashes, download, say how to get.

A :class:`DataFiles` describes one data set: the files it needs (each
under one or more accepted names), their hashes, the ordered places to
look in, the environment variable that names a folder of its own, how to
download it and how to get it by hand. :meth:`DataFiles.find` returns the
files of the first place that holds all of them:

1. ``root=`` or the environment variable: that folder only. It must
   exist; a download (if allowed) goes into it;
2. otherwise the default places in order; a download goes into the first.

Errors say what was wrong, what is accepted and how to get the data.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataFiles", "MissingDataError", "CorruptFileError",
           "file_hash"]

CHUNK = 1 << 20


class MissingDataError(FileNotFoundError):
    """A data set's files are nowhere to be found."""


class CorruptFileError(ValueError):
    """A file is there but is not the original (wrong hash, damaged)."""


def file_hash(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: (path, size, mtime, expected digest) of files already verified.
_verified: set[tuple[str, int, int, str]] = set()


def _stat_key(path: Path, expected: str) -> tuple[str, int, int, str]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, expected)


@dataclass(frozen=True)
class DataFiles:
    """One data set: its files, their hashes and where they may be.

    ``names`` maps each file's key to the accepted paths relative to a
    place (first match wins); ``hashes`` maps the key to the digest of the
    original (uncompressed) file under ``algorithm``. ``places()`` gives
    the default places in order (called each time, so it sees changes).
    ``fetch(folder)`` downloads into ``folder``; ``how_to_get`` ends every
    error message. The errors raised are ``missing`` and ``corrupt``.
    """

    title: str
    names: Mapping[str, Sequence[str]]
    hashes: Mapping[str, str]
    algorithm: str
    env_var: str
    places: Callable[[], Sequence[Path]]
    how_to_get: str
    fetch: Callable[[Path], object] | None = None
    missing: type[MissingDataError] = MissingDataError
    corrupt: type[CorruptFileError] = CorruptFileError

    def explicit_root(self, root=None) -> Path | None:
        """``root``, else ``$env_var``, else None; an error if it is
        given but is not an existing folder."""
        source = "root="
        if root is None and os.environ.get(self.env_var):
            root, source = os.environ[self.env_var], f"${self.env_var}"
        if root is None:
            return None
        folder = Path(root)
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else \
                "does not exist"
            raise self.missing(
                f"The {self.title} folder {folder} (from {source}) {what}. "
                f"Only that folder is searched and nothing is downloaded "
                f"into a missing one: create it or fix the path. "
                + self.how_to_get)
        return folder

    def locate(self, place: Path) -> dict[str, Path] | None:
        """Each key's first accepted file in ``place``; None unless all
        are there."""
        found = {}
        for key, names in self.names.items():
            for name in names:
                if (place / name).is_file():
                    found[key] = place / name
                    break
            else:
                return None
        return found

    def find(self, root=None, download: bool = True) -> dict[str, Path]:
        """The located (not yet verified) files of the data set."""
        explicit = self.explicit_root(root)
        places = [explicit] if explicit is not None else \
            list(self.places())
        for place in places:
            found = self.locate(place)
            if found:
                return found
        where = ", ".join(map(str, places))
        if not download or self.fetch is None or not places:
            why = "download=False" if not download else "no download"
            raise self.missing(
                f"{self.title} not found in {where or 'no place'} and "
                f"{why}. " + self.how_to_get)
        target = places[0]
        try:
            self.fetch(target)
        except self.corrupt:
            raise
        except Exception as e:   # no network, proxy, disk full, ...
            raise self.missing(
                f"{self.title} not found in {where}, and downloading it "
                f"into {target} failed ({type(e).__name__}: {e}). "
                + self.how_to_get) from e
        found = self.locate(target)
        if not found:
            raise self.missing(
                f"The download into {target} left no usable {self.title} "
                f"files. " + self.how_to_get)
        return found

    def _check(self, key: str, got: str, shown: object) -> None:
        expected = self.hashes[key]
        if got != expected:
            raise self.corrupt(
                f"{shown} is corrupt or not the original {self.title} "
                f"{key} file: {self.algorithm} {got}, expected "
                f"{expected}. Delete or replace it and get the data "
                f"again. " + self.how_to_get)

    def verify(self, key: str, path: Path) -> Path:
        """``path`` if its hash is the original's (remembered per size
        and mtime); else the ``corrupt`` error with both hashes."""
        mark = _stat_key(path, self.hashes[key])
        if mark not in _verified:
            self._check(key, file_hash(path, self.algorithm), path)
            _verified.add(mark)
        return path

    def _install(self, key: str, source, shown: object,
                 dst: Path) -> Path:
        """Stream ``source()`` (a context manager giving a binary file)
        into ``dst`` via a ``.part`` file of this call's own (processes
        may share a cache), hashing on the way; ``dst`` appears only if
        the hash is the original's."""
        tmp = dst.with_name(
            f"{dst.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        digest = hashlib.new(self.algorithm)
        try:
            with open(tmp, "xb") as fout, source() as fin:
                for chunk in iter(lambda: fin.read(CHUNK), b""):
                    digest.update(chunk)
                    fout.write(chunk)
            self._check(key, digest.hexdigest(), shown)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dst)
        _verified.add(_stat_key(dst, self.hashes[key]))
        return dst

    def copy(self, key: str, src: Path, dst: Path) -> Path:
        """Copy ``src`` (decompressed if ``.gz``) to ``dst``, verified; a
        ``dst`` that is already the original is kept."""
        if dst.is_file():
            try:
                return self.verify(key, dst)
            except self.corrupt:
                dst.unlink(missing_ok=True)
        opener = gzip.open if src.suffix == ".gz" else open
        try:
            return self._install(key, lambda: opener(src, "rb"), src, dst)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise self.corrupt(
                f"cannot read {src} ({e}); the file is damaged. "
                + self.how_to_get) from e

    def download(self, key: str, url: str, dst: Path,
                 timeout: float = 30) -> Path:
        """Download ``url`` to ``dst``, verified (nothing is left behind
        if the download fails or the hash is wrong)."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        return self._install(
            key, lambda: urllib.request.urlopen(url, timeout=timeout),
            url, dst)

