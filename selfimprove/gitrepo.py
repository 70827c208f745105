"""All of git behind one module of named verbs.

Owns: every git process selfimprove starts (through gitpython), commits built with plumbing, refs,
notes and the repo lock. Nothing else in the package imports `git`.

Must never: touch HEAD, the user's index or working tree when writing a proposal (`commit_files` builds
the commit in a *temporary* index and moves only the branch ref, with a compare-and-swap so that a
concurrent writer cannot be clobbered); rewrite history; leave a git process running (`Repo` is a
context manager and `close()` ends gitpython's persistent cat-file processes); fail because the user has
no git identity configured (a fallback identity is passed to the one git process that needs it, through
its environment only).

Why plumbing: a tool that edits prompts in the background of someone's checkout must not disturb a
half-staged change, and `git commit` cannot be told "this tree, that parent, that ref" without doing so.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import git

from selfimprove.errors import SelfImproveError

NOTES_REF = "refs/notes/selfimprove"
ZERO_SHA = "0" * 40
FALLBACK_NAME = "selfimprove"
FALLBACK_EMAIL = "selfimprove@localhost"
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s?(.*)$")


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    subject: str
    body: str
    author: str  # "Name <email>"
    authored_at: datetime
    committed_at: datetime
    trailers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.sha[:7]


def _canonical_key(key: str) -> str:
    # git compares trailer keys case-insensitively; one spelling keeps lookups simple
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def parse_trailers(message: str) -> dict[str, tuple[str, ...]]:
    """The trailers of a commit message: its last paragraph (never the subject), when every line of it
    is a `Key: value` trailer or an indented continuation. Keys are canonicalised (`Selfimprove-Base`)."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", message.strip("\n")) if p.strip()]
    if len(paragraphs) < 2:
        return {}
    found: list[tuple[str, str]] = []
    for line in paragraphs[-1].splitlines():
        if line[:1] in (" ", "\t") and found:
            key, value = found[-1]
            found[-1] = (key, f"{value} {line.strip()}")
            continue
        match = _TRAILER.match(line)
        if match is None:
            return {}
        found.append((_canonical_key(match.group(1)), match.group(2).strip()))
    result: dict[str, tuple[str, ...]] = {}
    for key, value in found:
        result[key] = (*result.get(key, ()), value)
    return result


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts) \
            or parts[0] == ".git" or any(ord(c) < 32 for c in path):
        raise SelfImproveError(f"invalid repository path {path!r}",
                               hint="use a repo-relative POSIX path such as prompts/agent.md")
    return path


class Repo:
    """One git repository with a working tree. Use as a context manager (or call `close()`)."""

    def __init__(self, repo: git.Repo) -> None:
        self._repo = repo
        if repo.working_tree_dir is None:
            raise SelfImproveError(f"{repo.git_dir} is a bare repository",
                                   hint="run selfimprove in a clone with a working tree")
        self.root = Path(repo.working_tree_dir).resolve()
        self._identity: dict[str, str] | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Repo:
        """The repository around `path` (any directory inside it)."""
        start = Path(path)
        if not start.exists():
            raise SelfImproveError(f"{start}: no such directory", hint="pass an existing directory to --repo")
        try:
            inner = git.Repo(start, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SelfImproveError(f"{start} is not inside a git repository",
                                   hint="run `git init` there, or pass --repo DIR") from None
        try:
            return cls(inner)
        except BaseException:
            inner.close()
            raise

    @classmethod
    def init(cls, path: Path) -> Repo:
        """`git init` with `main` as the initial branch (whatever git's own default is)."""
        Path(path).mkdir(parents=True, exist_ok=True)
        inner = git.Repo.init(path, initial_branch="main")
        return cls(inner)

    def close(self) -> None:
        self._repo.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- running git --------------------------------------------------------------------------------

    def _run(self, *args: str, env: Mapping[str, str] | None = None, ok: Iterable[int] = (0,),
             stdin: Any = None) -> tuple[int, bytes, str]:
        status, out, err = self._repo.git.execute(
            ["git", *args], istream=stdin, with_extended_output=True, with_exceptions=False,
            stdout_as_string=False, strip_newline_in_stdout=False, env=dict(env) if env else None)
        err_text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err or "")
        out_bytes = out if isinstance(out, bytes) else str(out or "").encode()
        if status not in tuple(ok):
            first = next((line for line in err_text.splitlines() if line.strip()), "no message")
            raise SelfImproveError(f"git {args[0]} failed: {first.strip()}", where=str(self.root))
        return status, out_bytes, err_text

    def _out(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return self._run(*args, env=env)[1].decode("utf-8", "replace").strip()

    def _git_dir(self) -> Path:
        return Path(self._repo.common_dir).resolve()

    def _identity_env(self) -> dict[str, str]:
        """Fallback author/committer for this process only, for the fields the user has not set."""
        if self._identity is None:
            status, out, _ = self._run("config", "--get-regexp", r"^(user|author|committer)\.(name|email)$",
                                       ok=(0, 1))
            keys = {line.split(" ", 1)[0].lower() for line in out.decode("utf-8", "replace").splitlines()
                    if " " in line and line.split(" ", 1)[1].strip()}
            env: dict[str, str] = {}
            for role in ("author", "committer"):
                for part, fallback in (("name", FALLBACK_NAME), ("email", FALLBACK_EMAIL)):
                    var = f"GIT_{role.upper()}_{part.upper()}"
                    if os.environ.get(var) or f"{role}.{part}" in keys or f"user.{part}" in keys:
                        continue
                    if part == "email" and os.environ.get("EMAIL"):
                        continue
                    env[var] = fallback
            self._identity = env
        return dict(self._identity)

    # -- reading ------------------------------------------------------------------------------------

    def try_resolve(self, ref: str) -> str | None:
        if not ref or ref.startswith("-"):
            return None
        if _FULL_SHA.fullmatch(ref):  # no ref lookup involved: ask the persistent cat-file process
            try:
                sha, kind, _ = self._repo.git.get_object_header(f"{ref}^{{commit}}")
            except ValueError:
                return None
            return _text(sha) if _text(kind) == "commit" else None
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", "--end-of-options",
                                   f"{ref}^{{commit}}", ok=(0, 1, 128))
        return out.decode().strip() if status == 0 else None

    def resolve(self, ref: str) -> str:
        sha = self.try_resolve(ref)
        if sha is None:
            raise SelfImproveError(f"unknown revision {ref!r} in {self.root}",
                                   hint="check the name with `git log --oneline` or `git branch -a`")
        return sha

    def head_sha(self) -> str | None:
        return self.try_resolve("HEAD")

    def current_branch(self) -> str | None:
        status, out, _ = self._run("symbolic-ref", "--quiet", "HEAD", ok=(0, 1, 128))
        ref = out.decode().strip()
        return ref.removeprefix("refs/heads/") if status == 0 and ref.startswith("refs/heads/") else None

    def default_branch(self) -> str:
        candidates: list[str] = []
        status, out, _ = self._run("config", "--get", "init.defaultBranch", ok=(0, 1))
        configured = out.decode().strip() if status == 0 else ""
        if configured:
            candidates.append(configured)
        status, out, _ = self._run("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", ok=(0, 1, 128))
        if status == 0:
            candidates.append(out.decode().strip().removeprefix("refs/remotes/origin/"))
        candidates += ["main", "master"]
        for name in candidates:
            if self.try_resolve(f"refs/heads/{name}"):
                return name
        return self.current_branch() or configured or "main"

    def read_at(self, ref: str, path: str) -> bytes | None:
        """The bytes of `path` at `ref` as stored in git (no filters), None if it is not a file there."""
        spec = f"{self.resolve(ref)}:{_check_path(path)}"
        try:  # through gitpython's persistent `cat-file --batch`: no process per read
            _, kind, _, data = self._repo.git.get_object_data(spec)
        except ValueError:
            return None
        return bytes(data) if _text(kind) == "blob" else None

    def list_at(self, ref: str, prefix: str = "") -> list[str]:
        """Files (repo-relative POSIX paths) under directory `prefix` at `ref`, sorted."""
        sha = self.resolve(ref)
        args = ["ls-tree", "-r", "-z", "--full-tree", "--name-only", sha]
        prefix = prefix.strip("/")
        if prefix:
            args += ["--", _check_path(prefix)]
        out = self._run(*args)[1]
        names = [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]
        return sorted(n for n in names if not prefix or n == prefix or n.startswith(prefix + "/"))

    def dirty_paths(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` with staged or unstaged changes, or present but untracked."""
        wanted = sorted({_check_path(p) for p in paths})
        if not wanted:
            return []
        # --no-optional-locks: a read must not refresh (rewrite) the user's index
        out = self._run("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
                        "--no-renames", "--", *wanted)[1]
        dirty = {p.decode("utf-8", "surrogateescape")[3:] for p in out.split(b"\0") if len(p) > 3}
        return [p for p in wanted if p in dirty]

    def diff(self, a: str, b: str, paths: Iterable[str] | None = None) -> str:
        args = ["diff", "--no-color", "--no-ext-diff", "--no-renames", self.resolve(a), self.resolve(b)]
        if paths is not None:
            selected = [_check_path(p) for p in paths]
            if not selected:
                return ""
            args += ["--", *selected]
        return self._run(*args)[1].decode("utf-8", "replace")

    def merge_base(self, a: str, b: str) -> str | None:
        status, out, _ = self._run("merge-base", self.resolve(a), self.resolve(b), ok=(0, 1))
        sha = out.decode().strip()
        return sha if status == 0 and sha else None

    def is_ancestor(self, a: str, b: str) -> bool:
        status, _, _ = self._run("merge-base", "--is-ancestor", self.resolve(a), self.resolve(b), ok=(0, 1))
        return status == 0

    def log(self, ref: str = "HEAD", *, paths: Iterable[str] | None = None, max_count: int | None = None,
            first_parent: bool = False) -> list[Commit]:
        """Commits reachable from `ref`, newest first ([] for the HEAD of an empty repo)."""
        if ref == "HEAD" and self.head_sha() is None:
            return []
        args = ["log", "-z", "--format=%H%x00%P%x00%an <%ae>%x00%aI%x00%cI%x00%B"]
        if first_parent:
            args.append("--first-parent")
        if max_count is not None:
            args.append(f"--max-count={int(max_count)}")
        args.append(self.resolve(ref))
        if paths is not None:
            args += ["--", *(_check_path(p) for p in paths)]
        fields = self._run(*args)[1].decode("utf-8", "replace").split("\0")
        commits: list[Commit] = []
        for i in range(0, len(fields) - 5, 6):
            sha, parents, author, authored, committed, message = fields[i:i + 6]
            sha = sha.strip()
            if not sha:
                continue
            message = message.strip("\n")
            subject_par, _, body = message.partition("\n\n")
            commits.append(Commit(
                sha=sha, parents=tuple(parents.split()), subject=" ".join(subject_par.split()),
                body=body.strip("\n"), author=author, authored_at=datetime.fromisoformat(authored),
                committed_at=datetime.fromisoformat(committed), trailers=parse_trailers(message)))
        return commits

    def branches(self, prefix: str = "") -> dict[str, str]:
        out = self._run("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/heads/")[1]
        result: dict[str, str] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            name, _, sha = line.partition("\0")
            short = name.removeprefix("refs/heads/")
            if short.startswith(prefix):
                result[short] = sha
        return result

    # -- writing ------------------------------------------------------------------------------------

    def _check_branch_name(self, branch: str) -> str:
        status, _, _ = self._run("check-ref-format", f"refs/heads/{branch}", ok=(0, 1))
        if status != 0 or branch.startswith("-"):
            raise SelfImproveError(f"invalid branch name {branch!r}",
                                   hint="see `git help check-ref-format` for the rules")
        return f"refs/heads/{branch}"

    def _build_tree(self, base_sha: str | None, files: Mapping[str, bytes | None], tmp: str) -> str:
        """The tree of `base_sha` (None: empty) with `files` replaced, built in a temporary index in `tmp`."""
        paths = [_check_path(p) for p in files]
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        self._run("read-tree", *([base_sha] if base_sha else ["--empty"]), env=env)
        modes: dict[str, str] = {}
        if paths and base_sha:
            listing = self._run("ls-tree", "-z", "--full-tree", base_sha, "--", *paths)[1]
            for entry in listing.split(b"\0"):
                if entry:
                    meta, _, name = entry.partition(b"\t")
                    modes[name.decode("utf-8", "surrogateescape")] = meta.split()[0].decode()
        written = [p for p in paths if files[p] is not None]
        removed = [p for p in paths if files[p] is None]
        cacheinfo: list[str] = []
        if written:
            blobs = []
            for n, p in enumerate(written):
                blob = Path(tmp, f"blob{n}")
                blob.write_bytes(files[p] or b"")
                blobs.append(str(blob))
            shas = self._out("hash-object", "-w", "--no-filters", "--", *blobs).split()
            for p, sha in zip(written, shas, strict=True):
                mode = modes.get(p, "100644")  # keep an executable bit; anything else becomes a file
                mode = mode if mode in ("100644", "100755") else "100644"
                cacheinfo += ["--cacheinfo", f"{mode},{sha},{p}"]
        if cacheinfo:
            self._run("update-index", "--add", "--replace", *cacheinfo, env=env)
        if removed:
            self._run("update-index", "--force-remove", "--", *removed, env=env)
        return self._out("write-tree", env=env)

    def _build_commit(self, base: str | None, files: Mapping[str, bytes | None], message: str) -> str:
        """A commit on `base` (None: a root commit) with `files` replaced; no ref is moved."""
        base_sha = self.resolve(base) if base is not None else None
        with tempfile.TemporaryDirectory(prefix="selfimprove-") as tmp:
            tree = self._build_tree(base_sha, files, tmp)
            msg = Path(tmp, "message")
            msg.write_text(message.rstrip("\n") + "\n", encoding="utf-8")
            parent = ["-p", base_sha] if base_sha else []
            return self._out("commit-tree", tree, *parent, "-F", str(msg), env=self._identity_env())

    def commit_object(self, base: str, files: Mapping[str, bytes | None], message: str) -> str:
        """A commit on `base` with `files` replaced that no ref points at (what a search scores before
        one candidate becomes a branch); git's gc removes it in time."""
        return self._build_commit(base, files, message)

    def diff_files(self, ref: str, files: Mapping[str, bytes | None]) -> str:
        """The unified diff from `ref` to `ref` with `files` replaced (None deletes); moves no ref."""
        base_sha = self.resolve(ref)
        if not files:
            return ""
        with tempfile.TemporaryDirectory(prefix="selfimprove-") as tmp:
            tree = self._build_tree(base_sha, files, tmp)
        return self._run("diff", "--no-color", "--no-ext-diff", "--no-renames", base_sha, tree, "--",
                         *files)[1].decode("utf-8", "replace")

    def merge_file(self, base: bytes, ours: bytes, theirs: bytes) -> tuple[bytes, int]:
        """A three-way merge of file contents (`git merge-file`): (merged bytes, number of conflicts)."""
        with tempfile.TemporaryDirectory(prefix="selfimprove-") as tmp:
            names = []
            for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
                Path(tmp, name).write_bytes(data)
                names.append(str(Path(tmp, name)))
            status, out, _ = self._run("merge-file", "-p", "--quiet", *names, ok=range(0, 128))
        return out, status

    def _move_ref(self, ref: str, new: str, old: str) -> None:
        """Compare-and-swap: `ref` goes to `new` only if it still holds `old` (ZERO_SHA: must not exist)."""
        status, _, err = self._run("update-ref", "-m", "selfimprove", ref, new, old, ok=(0, 1, 128))
        if status == 0:
            return
        name = ref.removeprefix("refs/heads/")
        stale = re.search(r"'([^']+\.lock)': File exists", err)
        if stale:  # git's own lock on the ref, e.g. left by a git process that was killed
            raise SelfImproveError(f"cannot write branch {name!r}: git's lock file {stale.group(1)} exists",
                                   hint="another git command may be running; if none is, delete that file")
        if old == ZERO_SHA:
            raise SelfImproveError(f"branch {name!r} already exists",
                                   hint="delete it with `git branch -D` or choose another name")
        raise SelfImproveError(f"branch {name!r} moved while selfimprove was writing to it",
                               hint="nothing was changed; re-run the command")

    def commit_files(self, *, branch: str, base: str, files: Mapping[str, bytes | None], message: str,
                     expect_new: bool = True) -> str:
        """One commit on `base` with `files` replaced (None deletes), on `branch`; returns its sha.

        The branch ref is written with compare-and-swap: when `expect_new`, it must not exist (even if
        someone creates it meanwhile); otherwise it must still hold the value read before committing.
        HEAD, the index and the working tree are never touched."""
        ref = self._check_branch_name(branch)
        old = self.try_resolve(ref)
        if old is not None and expect_new:
            raise SelfImproveError(f"branch {branch!r} already exists",
                                   hint="delete it with `git branch -D` or choose another name")
        if old is not None and self.current_branch() == branch:
            raise SelfImproveError(f"branch {branch!r} is checked out",
                                   hint="switch to another branch first")
        new = self._build_commit(base, files, message)
        self._move_ref(ref, new, old or ZERO_SHA)
        return new

    def commit_to_current_branch(self, files: Mapping[str, bytes | None], message: str) -> str:
        """A new commit on the checked-out branch changing exactly `files` (the first commit of an
        unborn branch too); the index entries and working-tree files of those paths follow.

        Refuses on a detached HEAD, or when one of those paths has uncommitted changes that the commit
        would lose (a working-tree file that already holds exactly the new bytes loses nothing)."""
        branch = self.current_branch()
        head = self.head_sha()
        if branch is None:
            raise SelfImproveError("HEAD is detached", where=str(self.root),
                                   hint="check out a branch first (git switch BRANCH)")
        lost = [p for p in self.dirty_paths(files) if not self._holds(p, files[p], head)]
        if lost:
            raise SelfImproveError(f"uncommitted changes in {', '.join(lost)}", where=str(self.root),
                                   hint="commit or stash them first")
        new = self._build_commit(head, files, message)
        self._move_ref(f"refs/heads/{branch}", new, head or ZERO_SHA)
        written = [p for p, data in files.items() if data is not None]
        removed = [p for p, data in files.items() if data is None]
        if written:
            self._run("checkout", new, "--", *written)
        if removed:
            self._run("update-index", "--force-remove", "--", *removed)
            for p in removed:
                target = self.root / p
                if target.is_file() or target.is_symlink():
                    target.unlink()
        return new

    def _holds(self, path: str, data: bytes | None, head: str | None) -> bool:
        """Whether the working tree already has `data` at `path`, with nothing else staged for it."""
        target = self.root / path
        if data is None or not target.is_file() or target.read_bytes() != data:
            return False
        staged = self._run("ls-files", "-s", "-z", "--", path)[1].split(b"\0")[0]
        if not staged:
            return True
        blob = staged.split()[1].decode()
        committed = self._run("ls-tree", "-z", "--full-tree", head, "--", path)[1].split() if head else []
        new_blob = self._out("hash-object", "--no-filters", "--", str(target))
        return blob == new_blob or (len(committed) > 2 and committed[2].decode() == blob)

    def delete_branch(self, name: str) -> None:
        ref = self._check_branch_name(name)
        if self.current_branch() == name:
            raise SelfImproveError(f"branch {name!r} is checked out", hint="switch to another branch first")
        old = self.try_resolve(ref)
        if old is None:
            raise SelfImproveError(f"no branch named {name!r}", hint="list them with `git branch`")
        self._run("update-ref", "-d", ref, old)

    # -- notes --------------------------------------------------------------------------------------

    def note_add(self, sha: str, text: str, *, ref: str = NOTES_REF) -> None:
        """Attach `text` to commit `sha` (replacing any note there)."""
        target = self.resolve(sha)
        lock = self.lock("selfimprove-notes", wait=10.0)
        with lock, tempfile.TemporaryDirectory(prefix="selfimprove-") as tmp:
            msg = Path(tmp, "note")
            msg.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
            self._run("notes", f"--ref={ref}", "add", "--force", "-F", str(msg), target,
                      env=self._identity_env())

    def note_read(self, sha: str, *, ref: str = NOTES_REF) -> str | None:
        target = self.try_resolve(sha)
        if target is None:
            return None
        status, out, _ = self._run("notes", f"--ref={ref}", "show", target, ok=(0, 1))
        return out.decode("utf-8", "replace").rstrip("\n") if status == 0 else None

    def notes(self, *, ref: str = NOTES_REF) -> dict[str, str]:
        """Every note under `ref`: annotated sha -> text."""
        if self.try_resolve(ref) is None:
            return {}
        out = self._run("notes", f"--ref={ref}", "list")[1].decode()
        result: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                data = self._repo.odb.stream(bytes.fromhex(parts[0])).read()
                result[parts[1]] = bytes(data).decode("utf-8", "replace").rstrip("\n")
        return result

    # -- lock ---------------------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str = "selfimprove", *, wait: float = 0.0) -> Iterator[None]:
        """An exclusive lock file `.git/<name>.lock`; SelfImproveError if another process holds it
        (after waiting up to `wait` seconds).

        The file holds the owner's pid, for the message. Where the OS has `flock`, the lock is the
        kernel's lock on that file, not its existence: a process killed mid-run (SIGKILL, power loss)
        releases it with its death, so a leftover file never blocks the next run. Elsewhere a leftover
        file whose pid is no longer running is taken over."""
        path = self._git_dir() / f"{name}.lock"
        deadline = time.monotonic() + wait
        while True:
            fd = _try_lock(path)
            if fd is not None:
                break
            if time.monotonic() >= deadline:
                holder = _lock_holder(path)
                who = f" (pid {holder})" if holder else ""
                raise SelfImproveError(f"another selfimprove command is running in this repository{who}",
                                       hint=f"wait for it to finish; its lock {path} goes when it exits")
            time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            try:  # removed while still held, so no one can lock the file being deleted
                path.unlink()
            except FileNotFoundError:
                pass
            os.close(fd)


def _lock_holder(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the lock on `path`, or None when another live process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the file's existence is the lock
        return _try_lock_exclusive(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise SelfImproveError(f"cannot create the lock file {path}: {exc.strerror or exc}",
                               hint="selfimprove needs write access to the .git folder") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held by a live process
        os.close(fd)
        return None
    except OSError as exc:  # e.g. a network mount without file locks: say so rather than "running"
        os.close(fd)
        raise SelfImproveError(f"cannot lock {path}: {exc.strerror or exc}",
                               hint="the repository's filesystem does not support file locks") from None
    try:  # the holder before us may have unlinked the file: lock the file that is at `path` now
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return _try_lock(path)
    return fd


def _try_lock_exclusive(path: Path) -> int | None:
    try:
        return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        holder = _lock_holder(path)
        if holder is None or _pid_alive(holder):
            return None
        try:  # the owner died without cleaning up: take the file over
            os.rename(path, f"{path}.stale-{os.getpid()}")
            os.unlink(f"{path}.stale-{os.getpid()}")
        except OSError:
            return None
        return _try_lock_exclusive(path)
