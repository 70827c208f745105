"""`selfimprove init`: scaffold a prompt repo from the bundled `prompts.example/` template.

Owns: copying the template into a directory, making it a git repository when it is not one, and
committing exactly the files it created. Never overwrites an existing file (existing ones are
reported and left alone) and never commits anything the user had staged: the commit holds only the
scaffolded paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from selfimprove.errors import SelfImproveError

TEMPLATE = "prompts.example"
MESSAGE = "selfimprove: init prompt repo\n\nScaffolded from the prompts.example template.\n"


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: tuple[str, ...]
    skipped: tuple[str, ...]  # already present, left untouched
    git_initialised: bool
    commit: str | None


def template_files() -> dict[str, bytes]:
    """The template's files, repo-relative POSIX path → bytes."""
    base = resources.files("selfimprove").joinpath("templates").joinpath(TEMPLATE)
    files: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name == "__pycache__":
                continue
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            else:
                files[rel] = child.read_bytes()

    walk(base, "")
    if not files:
        raise SelfImproveError(
            "the bundled prompts.example template is missing", hint="reinstall selfimprove"
        )
    return files


def scaffold(directory: Path) -> InitResult:
    from selfimprove.gitrepo import Repo

    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise SelfImproveError(f"{directory} exists and is not a directory")
    git_initialised = not _inside_git(directory)
    if not git_initialised:
        # checked before writing anything: the commit would be refused after the files exist
        existing = next(d for d in (directory, *directory.parents) if d.is_dir())
        with Repo.open(existing) as outer:
            if outer.current_branch() is None:
                raise SelfImproveError("HEAD is detached; init commits the scaffold on a branch",
                                       where=str(outer.root),
                                       hint="check out a branch first (git switch BRANCH)")
    directory.mkdir(parents=True, exist_ok=True)
    repo = Repo.init(directory) if git_initialised else Repo.open(directory)
    with repo:
        prefix = directory.relative_to(repo.root).as_posix() if directory != repo.root else ""
        created: list[str] = []
        skipped: list[str] = []
        to_commit: dict[str, bytes | None] = {}
        for rel, data in template_files().items():
            target = directory / rel
            if target.exists() or target.is_symlink():
                skipped.append(rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as handle:  # "x": never overwrite, even in a race
                handle.write(data)
            created.append(rel)
            to_commit[f"{prefix}/{rel}" if prefix else rel] = data
        commit = None
        if to_commit:
            try:
                commit = repo.commit_to_current_branch(to_commit, MESSAGE)
            except BaseException:
                _remove(directory, created)  # nothing half-way: the files go with the failed commit
                raise
    return InitResult(directory, tuple(created), tuple(skipped), git_initialised, commit)


def _remove(directory: Path, created: list[str]) -> None:
    """Delete the files this run created, and the directories that are left empty by that."""
    for rel in created:
        (directory / rel).unlink(missing_ok=True)
    parents = {parent for rel in created for parent in Path(rel).parents if parent != Path(".")}
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        try:
            (directory / parent).rmdir()
        except OSError:
            pass  # not empty: something else lives there


def _inside_git(directory: Path) -> bool:
    return any((d / ".git").exists() for d in (directory, *directory.parents))
