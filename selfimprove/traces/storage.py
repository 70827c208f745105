"""Trace files in object storage: `s3://`, `gs://`, `az://`, `https://` (and `memory://`, `file://`) URLs.

Owns: recognising a URL among trace paths, the `UrlPath` that stands for one object (or one folder,
a key prefix) wherever the readers expect a `Path`, listing a folder's objects in sorted order, and
opening an object as a seekable, buffered byte stream through fsspec, so that a reader streams it and
a shard reads its byte range of a big JSONL object exactly as it would a local file.

Never does: hold credentials or read them from selfimprove.yaml (each fsspec backend finds its own:
AWS_* variables and ~/.aws for s3fs, application default credentials for gcsfs, AZURE_* for adlfs),
download a whole object to disk, or import fsspec before a URL is given (it is an optional extra:
`pip install "selfimprove[s3]"`, `[gcs]`, `[azure]`, `[http]`; `memory://` and `file://` need only
fsspec itself).

Why a `Path` subclass: the readers ask a path for its name and suffix, `stat()` it and `open()` it;
`UrlPath` answers the first two from the URL's path and the last two from the object store, so no
reader needs to know where its bytes come from.
"""

from __future__ import annotations

import io
import os
import re
import stat as stat_module
import sys
from pathlib import Path, PosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from selfimprove.errors import SelfImproveError

SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https", "memory", "file")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# which extra brings a scheme's backend (fsspec names the package; the extra is what users install)
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure",
          "abfss": "azure", "http": "http", "https": "http"}
BLOCK_BYTES = 4 << 20  # read-ahead of one request to the store: few round trips, bounded memory


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether a trace path names an object-store URL rather than a local file."""
    if isinstance(text, UrlPath):
        return True
    m = _URL.match(str(text)) if isinstance(text, str) else None
    return m is not None and m.group(1).lower() in SCHEMES


def as_path(given: str | os.PathLike[str]) -> Path:
    """A trace path as the readers take it: a `UrlPath` for a URL, a `Path` otherwise."""
    if isinstance(given, Path):
        return given
    text = os.fspath(given)
    return UrlPath(text) if is_url(text) else Path(text)


def _local_form(url: str) -> str:
    """The URL's path as a POSIX path, for the name, stem and suffix the readers look at."""
    parts = urlsplit(url)
    return "/" + (parts.netloc + "/" + parts.path.lstrip("/")).strip("/")


class UrlPath(PosixPath):
    """One object (or a folder of them) in a store, passed around where readers expect a `Path`."""

    # set by __new__; a path pathlib derives from this one (its parent, …) is a plain local view
    _url: str = ""
    _size: int | None = None

    def __new__(cls, url: str, size: int | None = None) -> UrlPath:
        self = super().__new__(cls, _local_form(url))
        self._url = url
        self._size = size
        return self

    if sys.version_info >= (3, 12):  # pathlib parses its arguments in __init__ from 3.12 on
        def __init__(self, url: str, size: int | None = None) -> None:
            super().__init__(_local_form(url))

        def with_segments(self, *segments: str | os.PathLike[str]) -> Path:
            return PosixPath(*segments)  # a path derived from a URL's (parent, …) is no object

    @property
    def url(self) -> str:
        return self._url

    def __str__(self) -> str:
        return self._url or super().__str__()

    def __fspath__(self) -> str:  # not a local file: an accidental open() fails with the URL in it
        return str(self)

    def __repr__(self) -> str:
        return f"UrlPath({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return UrlPath, (self._url, self._size)

    def __hash__(self) -> int:
        return hash(self._url)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UrlPath) and other._url == self._url

    def as_posix(self) -> str:
        return str(self)

    def _located(self) -> tuple[Any, str]:
        return filesystem(self._url)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """A regular file of the object's size, or a directory for a prefix (FileNotFoundError when
        neither exists)."""
        if self._size is not None:
            return os.stat_result((stat_module.S_IFREG | 0o444, 0, 0, 1, 0, 0, self._size, 0, 0, 0))
        fs, path = self._located()
        info = _guarded(self._url, fs.info, path)
        if info.get("type") == "directory":
            return os.stat_result((stat_module.S_IFDIR | 0o555, 0, 0, 1, 0, 0, 0, 0, 0, 0))
        self._size = int(info.get("size") or 0)
        return self.stat()

    def is_dir(self) -> bool:
        try:
            return stat_module.S_ISDIR(self.stat().st_mode)
        except OSError:
            return False

    def is_file(self) -> bool:
        try:
            return stat_module.S_ISREG(self.stat().st_mode)
        except OSError:
            return False

    def exists(self) -> bool:
        try:
            self.stat()
        except OSError:
            return False
        return True

    def open(self, mode: str = "r", buffering: int = -1, encoding: str | None = None,  # type: ignore[override]
             errors: str | None = None, newline: str | None = None) -> IO[Any]:
        """The object as a seekable byte stream (read-only), buffered like a local file."""
        if mode not in ("rb", "r"):
            raise OSError(f"{self._url}: object storage is read-only here")
        fs, path = self._located()
        raw = _guarded(self._url, fs.open, path, "rb", block_size=BLOCK_BYTES)
        if not hasattr(raw, "readinto"):  # every fsspec file has it; a buffer needs it
            raise OSError(f"{self._url}: this store's files cannot be streamed")
        buffered = io.BufferedReader(raw, buffer_size=1 << 20)
        if mode == "r":
            return io.TextIOWrapper(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline)
        return buffered


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a URL; a one-line error naming the extra to install
    when fsspec or the scheme's backend is missing."""
    scheme = url.split("://", 1)[0].lower()
    extra = EXTRAS.get(scheme)
    install = f'pip install "selfimprove[{extra}]"' if extra else 'pip install fsspec'
    try:
        import fsspec
    except ImportError:
        raise SelfImproveError(f"reading {scheme}:// traces needs fsspec, which is not installed",
                               where=url, hint=install) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)  # fsspec keeps one instance per backend and options
        return fs, path
    except ImportError as exc:
        raise SelfImproveError(f"reading {scheme}:// traces needs a package that is not installed ({exc})",
                               where=url, hint=install) from None
    except ValueError as exc:  # an unknown protocol
        raise SelfImproveError(f"cannot read {scheme}:// URLs: {exc}", where=url,
                               hint=f"use one of: {', '.join(s + '://' for s in SCHEMES)}") from None


def _guarded(url: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """A store call whose failure becomes an OSError (the readers report those per file), apart
    from a missing backend, which stops the run."""
    try:
        return call(*args, **kwargs)
    except (OSError, SelfImproveError):
        raise
    except ImportError as exc:
        raise SelfImproveError(f"cannot read {url}: {exc}", where=url) from None
    except Exception as exc:  # noqa: BLE001 - backends raise their own types (botocore, aiohttp, …)
        raise OSError(f"{type(exc).__name__}: {exc}") from exc


def list_url(given: UrlPath) -> list[tuple[Path, str, bool]]:
    """(path, display, given explicitly) for one object, or for every object under a prefix in
    sorted order (hidden names skipped, as in a local folder). Raises SelfImproveError when the URL
    names nothing."""
    fs, root = given._located()
    try:
        info = _guarded(given.url, fs.info, root)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise SelfImproveError(f"cannot read {given.url}: {exc}", where=given.url,
                               hint="check the URL and the store's credentials (the backend's usual "
                                    "environment variables or config files)") from None
    if info is None:
        raise SelfImproveError(f"no such object or prefix: {given.url}", where=given.url,
                               hint="check the URL (a bucket path to a file or to a folder of traces)")
    if info.get("type") != "directory":
        return [(UrlPath(given.url, int(info.get("size") or 0)), given.url, True)]
    base = given.url.rstrip("/")
    prefix = root.rstrip("/") + "/"
    found = _guarded(given.url, fs.find, root, detail=True)
    out: list[tuple[Path, str, bool]] = []
    for name in sorted(found):
        rel = name[len(prefix):] if name.startswith(prefix) else name.rsplit("/", 1)[-1]
        if not rel or any(part.startswith(".") for part in rel.split("/")):
            continue
        url = f"{base}/{rel}"
        out.append((UrlPath(url, int(found[name].get("size") or 0)), url, False))
    return out
