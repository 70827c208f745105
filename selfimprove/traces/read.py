"""Read traces from files and directories, in any supported format, as one stream.

Owns: walking the given paths (directories recursively, in sorted order; hidden directories and
files skipped; symlink loops cut), choosing a reader per file (`formats.choose`, or the one forced
with `format=`), keeping one `SourceReport` per file, reading one trace once, making trace ids unique
across the stream, and turning every problem with a file into a counted, reported skip.

One trace once: the same run is often logged twice (a "failed runs" export beside the full one, an
overlapping re-export). A trace whose content (`identity`: its messages as analysis reads them, its
explicit labels and its start time; not its id, file or metadata) was already read is not yielded
again: it is counted in `duplicates` and its source is kept in `repeats`, beside the first one's.
Only a 16-byte digest per trace is kept, never the trace.

Ids: a record's own id is kept as given; only a later trace whose id an earlier one already has gets
a new one (`unique_id`: the file stem in front, then a counter), so the names are the same on every
run over the same input.

Must never: let a traceback out for anything a file contains (binary data, bad encodings, truncated
gzip, absurd nesting, huge lines, unreadable files: each becomes a skip with file:line and reason),
hold more than one record's worth of a JSONL file in memory, or judge outcomes. A path that does not
exist is the only input error raised up front (`SelfImproveError`, exit 2); with `strict=True` the
first bad record raises too.

Files that are plainly not traces (docs, source code, label files, empty files, example fragments)
are reported with status "ignored" and the reason, not as errors: a logs folder usually holds a
README, and the run should say so without calling it a failure.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from selfimprove.errors import SelfImproveError
from selfimprove.traces import storage
from selfimprove.traces.formats import _fields, _io
from selfimprove.traces.formats._io import ReadContext, SourceReport
from selfimprove.traces.messages.conversations import find_message_list, is_message_like
from selfimprove.traces.model import Trace, view_of

if TYPE_CHECKING:
    from selfimprove.traces.formats import Reader

__all__ = ["SourceReport", "TraceStream", "read_traces", "list_files"]

# Extensions of files that are never traces on their own: ignored unless a reader is sure otherwise.
NOISE_SUFFIXES = frozenset({
    ".md", ".markdown", ".rst", ".txt", ".text", ".py", ".pyc", ".ipynb", ".js", ".ts", ".mjs", ".cjs",
    ".html", ".htm", ".css", ".sh", ".bash", ".toml", ".ini", ".cfg", ".conf", ".lock", ".yaml", ".yml",
    ".csv", ".tsv", ".xml", ".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".pdf", ".zip",
    ".tar", ".tgz", ".bz2", ".xz", ".whl", ".so", ".dll", ".exe", ".bin", ".parquet", ".arrow", ".db",
    ".sqlite", ".pkl", ".pickle", ".npy", ".npz", ".pt", ".safetensors", ".c", ".h", ".go", ".rs",
    ".java", ".rb", ".php", ".swift", ".kt", ".sql", ".env", ".gitignore", ".dockerfile", ".log.md",
})
NOISE_NAMES = frozenset({"license", "licence", "copying", "notice", "makefile", "dockerfile",
                         "readme", "changelog", "authors", "owners", "codeowners"})
# Extensions that promise trace data: a file like this that cannot be read is a skip, not noise.
DATA_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson", ".jsonlines", ".traj", ".eval"})


def _display(path: Path) -> str:
    return path.as_posix() if os.sep == "/" else str(path)


def list_files(paths: Sequence[Path]) -> list[tuple[Path, str, bool]]:
    """(path, display path, given explicitly) for every file under the given paths, in order.

    Raises SelfImproveError for a path that does not exist.
    """
    out: list[tuple[Path, str, bool]] = []
    for given in paths:
        given = storage.as_path(given)
        if isinstance(given, storage.UrlPath):  # an object, or a folder of them, in a store
            out.extend(storage.list_url(given))
            continue
        if not os.path.lexists(given):
            raise SelfImproveError(f"no such file or directory: {given}", where=str(given),
                                   hint="check the path (traces can be files, directories or .gz files)")
        if given.is_dir():
            seen: set[tuple[int, int]] = set()
            out.extend((p, _display(p), False) for p in _walk(given, seen))
        else:
            out.append((given, _display(given), True))
    return out


def _walk(directory: Path, seen: set[tuple[int, int]]) -> Iterator[Path]:
    try:
        st = directory.stat()
    except OSError:
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:  # a symlink loop or a directory linked twice: read it once
        return
    seen.add(key)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        yield directory  # reported as unreadable by the reader loop
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, seen)
        else:
            yield path


class TraceStream:
    """An iterable of Trace over all the given files. After (or during) iteration, `sources` holds one
    SourceReport per file seen so far and `skipped` the number of skipped records/files.

    `total_bytes` is the on-disk size of all files, for a progress bar fed by `progress(n)` calls
    (n = bytes newly consumed). Iterating again re-reads the files.

    `duplicates` counts the traces not yielded because an identical one was (see the module
    docstring); `repeats` maps the position of a yielded trace (0, 1, … in yield order) to the
    sources of its repeats, and `also` the same by trace id. A source report's `traces` counts every
    trace its file held, repeats included."""

    def __init__(self, paths: Sequence[Path], *, format: str = "auto", strict: bool = False,
                 progress: Callable[[int], None] | None = None, shard: tuple[int, int] | None = None,
                 views: bool = False, parts: Sequence[tuple[str, int, int]] | None = None) -> None:
        from selfimprove.traces.formats import REGISTRY

        if format != "auto" and format not in REGISTRY:
            raise SelfImproveError(f"unknown trace format '{format}'",
                                   hint=f"use auto or one of: {', '.join(sorted(REGISTRY))}")
        if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (index, count) with 0 <= index < count, not {shard}")
        self.format = format
        self.strict = strict
        self.progress = progress
        self.shard = shard
        self.views = views
        self.files = list_files(paths)
        self.sources: list[SourceReport] = []
        self.duplicates = 0
        self.repeats: dict[int, list[str]] = {}
        self._first: dict[bytes, int] = {}  # identity → position of the trace yielded with it
        self._ids: list[str] = []  # id of each yielded trace, by position
        self._plan = [self._span(i, p) for i, (p, _, _) in enumerate(self.files)] if parts is None \
            else _given_plan(self.files, parts)
        self.total_bytes = sum(end - start for span in self._plan if span for start, end in [span])

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sources)

    @property
    def traces(self) -> int:
        return sum(s.traces for s in self.sources)

    @property
    def also(self) -> dict[str, tuple[str, ...]]:
        """The sources of each repeated trace's repeats, by the id it was yielded with."""
        return {self._ids[n]: tuple(sources) for n, sources in self.repeats.items()}

    def identities(self) -> list[bytes]:
        """The identity of each yielded trace, in yield order (for merging shards)."""
        return list(self._first)

    def spans(self) -> list[tuple[str, int, int]]:
        """(display path, first byte, end byte) of each file, or part of one, this stream reads."""
        return [(display, span[0], span[1])
                for (_, display, _), span in zip(self.files, self._plan, strict=True) if span is not None]

    def __iter__(self) -> Iterator[Trace]:
        self.sources = []
        self.duplicates = 0
        self.repeats = {}
        first = self._first = {}
        ids = self._ids = []
        seen_ids: set[str] = set()
        for (path, display, explicit), span in zip(self.files, self._plan, strict=True):
            if span is None:
                continue  # another shard's file
            report = SourceReport(path=display, strict=self.strict)
            self.sources.append(report)
            whole = span == (0, _io.file_size(path))
            stem = _fields.file_stem(path)
            for trace in self._read_file(path, report, explicit, None if whole else span):
                report.traces += 1
                key = identity(trace)
                earlier = first.get(key)
                if earlier is not None:
                    self.duplicates += 1
                    self.repeats.setdefault(earlier, []).append(trace.source)
                    continue
                first[key] = len(ids)
                if self.shard is None:  # a shard's ids are made unique where the shards are merged
                    given = trace.id
                    new_id = unique_id(given, seen_ids, stem)
                    if new_id != given:
                        trace = replace(trace, id=new_id)
                ids.append(trace.id)
                yield trace

    def _span(self, index: int, path: Path) -> tuple[int, int] | None:
        """The byte range of a file this stream reads: all of it, a shard's slice of a big JSONL file
        of one record per line, or None when the file belongs to another shard."""
        size = _io.file_size(path)
        if self.shard is None:
            return (0, size)
        k, n = self.shard
        if n == 1:
            return (0, size)
        if size >= SHARD_SPLIT_MIN_BYTES and not _io.is_gzip(path) and _splittable(path):
            return (size * k // n, size * (k + 1) // n)
        return (0, size) if index % n == k else None

    # -- one file ------------------------------------------------------------------------------

    def _read_file(self, path: Path, report: SourceReport, explicit: bool,
                   span: tuple[int, int] | None) -> Iterator[Trace]:
        from selfimprove.traces.formats import REGISTRY, choose

        consumed = [0]
        size = span[1] - span[0] if span else _io.file_size(path)

        def on_progress(n: int) -> None:
            n = min(n, size - consumed[0])  # read-ahead past a shard's end is not its progress
            if n > 0:
                consumed[0] += n
                if self.progress is not None:
                    self.progress(n)

        try:
            reader = self._pick(path, report, explicit, REGISTRY, choose)
            if reader is None:
                return
            report.format = reader.name
            context = ReadContext(progress=on_progress, span=span, views=self.views)
            yield from _closing(reader.read(path, report, context))
            fallback = REGISTRY.get("generic")
            if report.traces == 0 and self.format == "auto" and fallback not in (None, reader):
                # the reader that claimed the file found nothing: perhaps a look-alike of its format
                # with ordinary messages inside; the generic reader gets a go before giving up
                assert fallback is not None
                yield from self._fallback(path, report, fallback, context)
        except SelfImproveError:
            raise
        except RecursionError:
            report.skip(None, "nesting too deep; the rest of the file was not read")
        except MemoryError:
            report.skip(None, "out of memory reading this file; the rest of it was not read")
        except (OSError, EOFError, UnicodeError) as exc:
            report.skip(None, f"read error: {_io.describe_read_error(exc)}")
        except Exception as exc:  # noqa: BLE001 - a reader bug must not end the whole run
            report.skip(None, f"{report.format or 'reader'} could not read this file "
                              f"({type(exc).__name__}: {exc})")
        finally:
            remaining = size - consumed[0]
            if self.progress is not None and remaining > 0:
                self.progress(remaining)
        report.settle()
        if report.status == "read" and report.traces == 0 and report.skipped == 0:
            report.ignore("no traces found")

    def _fallback(self, path: Path, report: SourceReport, fallback: Reader,
                  context: ReadContext) -> Iterator[Trace]:
        """Read with the fallback reader into a separate report; adopt it only if it finds traces,
        otherwise the first reader's report (its reasons) stands."""
        trial = SourceReport(path=report.path, format=fallback.name, strict=self.strict)
        found = False
        for trace in _closing(fallback.read(path, trial, context)):
            if not found:
                found = True
                _copy_into(report, trial)
            yield trace
        if found:
            _copy_into(report, trial)

    def _pick(self, path: Path, report: SourceReport, explicit: bool, registry: Mapping[str, Reader],
              choose: Callable[[Path, bytes], tuple[Reader | None, int]]) -> Reader | None:
        name = _io.inner_name(path)
        suffix = Path(name).suffix
        stem_lower = Path(name).stem.lower()
        try:
            st = path.stat()
        except FileNotFoundError:
            report.status = "skipped"
            report.skip(None, "broken symbolic link")
            return None
        except OSError as exc:
            report.status = "skipped"
            report.skip(None, f"cannot open: {_io.describe_read_error(exc)}")
            return None
        if stat.S_ISDIR(st.st_mode):
            report.status = "skipped"
            report.skip(None, "cannot list this directory")
            return None
        if not stat.S_ISREG(st.st_mode):
            report.ignore("not a regular file")
            return None
        noise = suffix in NOISE_SUFFIXES or (not suffix and stem_lower in NOISE_NAMES) or \
            stem_lower in NOISE_NAMES and suffix not in DATA_SUFFIXES
        if st.st_size == 0:
            report.ignore("empty file")
            return None
        try:
            head = _io.read_head(path)
        except (OSError, EOFError, zlib.error) as exc:
            report.status = "skipped"
            report.skip(None, _io.describe_read_error(exc))
            return None
        if not head:
            report.ignore("empty file" + (" (after decompression)" if _io.is_gzip(path) else ""))
            return None
        if self.format != "auto":
            if noise and not explicit:
                report.ignore(f"not a trace file ({suffix or name})")
                return None
            return registry[self.format]
        reader, score = choose(path, head)
        # a noise name (.txt, .zip, …) is overridden only by a reader sure of data that looks like data
        sure = score >= 30 and (_io.first_char(head) in ("{", "[") or head.startswith(b"PK\x03\x04"))
        if reader is not None and (not noise or sure):
            return reader
        if noise:
            report.ignore(f"not a trace file ({suffix or name})")
            return None
        if not head.strip():
            report.ignore("blank file")
            return None
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            report.status = "skipped"
            report.skip(None, "UTF-16 encoded text (re-encode the file as UTF-8)")
            return None
        if _io.looks_binary(head) and suffix not in DATA_SUFFIXES and not _io.is_gzip(path):
            report.ignore("binary file, not a trace format")
            return None
        if suffix not in DATA_SUFFIXES and _io.first_char(head) not in ("{", "["):
            report.ignore("plain text, not JSON (a log file?)")  # app logs often sit beside traces
            return None
        report.status = "skipped"
        if _io.looks_binary(head):
            why = "binary data, not a trace format"
        elif _io.first_char(head) not in ("{", "["):
            why = "not a JSON object or array, and no reader recognised it"
        else:
            why = "no reader recognised it"
        report.skip(None, why + " (use --format to force a reader)")
        return None


SHARD_SPLIT_MIN_BYTES = 1 << 20


def _given_plan(files: Sequence[tuple[Path, str, bool]],
                parts: Sequence[tuple[str, int, int]]) -> list[tuple[int, int] | None]:
    """The byte range of each file that a plan made elsewhere (a cluster's client, from `spans()`)
    gives this stream; None for the files it does not read."""
    chosen = {display: (start, end) for display, start, end in parts}
    return [chosen.get(display) for _, display, _ in files]


def _copy_into(target: SourceReport, source: SourceReport) -> None:
    for f in fields(SourceReport):
        if f.name != "traces":  # counted by the stream as traces are yielded
            value = getattr(source, f.name)
            setattr(target, f.name, list(value) if isinstance(value, list) else value)


def _closing(traces: Iterator[Trace]) -> Iterator[Trace]:
    """A reader's traces, its generator closed (its file handles released) however the caller stops."""
    try:
        yield from traces
    finally:
        close = getattr(traces, "close", None)
        if close is not None:
            close()


def _splittable(path: Path) -> bool:
    """JSONL with one whole trace per line (not one message per line, which must be grouped)."""
    try:
        head = _io.read_head(path, 1 << 20)
    except (OSError, EOFError, zlib.error):
        return False
    if not _io.looks_jsonl(path, head):
        return False
    first = _io.text_head(head).split(b"\n", 1)[0]
    try:
        record = _io.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and not is_message_like(record) and \
        "sessionId" not in record and find_message_list(record) is not None


def unique_id(given: str, seen: set[str], stem: str) -> str:
    """`given` when no earlier trace has that id, else `stem:given`, else `given~2`, `given~3`, …
    (stem: the file's name without its extensions). `seen` gets the id chosen."""
    if given not in seen:
        seen.add(given)
        return given
    candidate = f"{stem}:{given}"
    n = 2
    while candidate in seen:
        candidate = f"{given}~{n}"
        n += 1
    seen.add(candidate)
    return candidate


def identity(trace: Trace) -> bytes:
    """What makes two traces the same run, whatever file, reader or id they came with: the messages
    as analysis reads them (roles, texts, tool calls and results), the explicit labels and the start
    time, as a 16-byte digest."""
    view = view_of(trace)
    # the texts joined (a unit separator between them: no chat text holds one) and the rest as JSON;
    # tool results' texts are among the texts, their error flags are added
    digest = hashlib.sha1("\x1f".join(view.texts).encode("utf-8", "surrogatepass"), usedforsecurity=False)
    rest = (view.roles, view.calls, [r[2] for r in view.results], trace.feedback, trace.started_at)
    try:
        digest.update(orjson.dumps(rest, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:  # what JSON cannot hold (integers beyond 64 bits)
        digest.update(repr(rest).encode("utf-8", "surrogatepass"))
    return digest.digest()[:16]  # SHA-1 for speed: telling runs apart needs no collision resistance


def read_traces(paths: Sequence[Path], *, format: str = "auto", strict: bool = False,
                progress: Callable[[int], None] | None = None,
                shard: tuple[int, int] | None = None, views: bool = False,
                parts: Sequence[tuple[str, int, int]] | None = None) -> TraceStream:
    """Stream the traces of files and directories (`.gz` transparently). Raises SelfImproveError for
    a path that does not exist or an unknown format; everything else is reported per source.

    `shard=(k, n)` reads only the k-th of n disjoint parts of the input, so that n processes can read
    one input together: big plain JSONL files of one trace per line are split into byte ranges at
    line boundaries, other files are dealt out whole (file i to shard i mod n). Together the shards
    yield the traces of the unsharded stream with the same sources, and also the repeats of a trace
    read by another shard; their ids are left as read. `analysis.parallel` merges the shards: it
    drops those repeats and makes the ids unique, as the unsharded stream does.

    `views=True` (for analysis) lets readers hand out traces that carry their `TraceView` and build
    their messages only when asked: equal to the others in every field, cheaper to read. `parts`
    (with `shard`) reads exactly these byte ranges, as planned by `TraceStream(...).spans()`."""
    return TraceStream([storage.as_path(p) for p in paths], format=format, strict=strict, progress=progress,
                       shard=shard, views=views, parts=parts)
