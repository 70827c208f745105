"""Undo, auditable: restore managed files to a known-good version as one new commit.

Owns: choosing what to undo (the latest merged selfimprove change, one merged proposal, or everything
since a ref), computing the restored bytes of the managed files (prompts, configs and their schemas in
selfimprove.yaml), checking them with the policy, and committing them on the checked-out branch with
trailers that name what was undone (`Selfimprove-Rollback-Of`) and where the bytes came from
(`Selfimprove-Restored-From`).

Never: rewrites history (no reset, no revert of a merge's topology), touches files that are not
managed, or leaves anything half-done: every refusal (detached HEAD, uncommitted managed files, unknown
ref, nothing to undo, a policy violation without --force) happens before the one write, which is an
atomic ref update followed by the checkout of exactly the restored paths.

Undoing a change restores each file it touched to its bytes before the change when nobody edited the
file since; when someone did, their later edits are kept by a three-way merge, and a conflict is a
refusal (use --to to restore a whole version instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfimprove.errors import GateFailed, SelfImproveError
from selfimprove.history import T_RESTORED_FROM, T_ROLLBACK_OF, Change, Ledger, build_ledger

if TYPE_CHECKING:
    from selfimprove.config import Settings
    from selfimprove.gitrepo import Repo

SCHEMA = "selfimprove.rollback/v1"
# the violation named in the one-line refusal: guardrails first
_PRIORITY = {"protected_phrase_removed": 0, "marker_error": 1, "schema_violation": 2, "immutable_changed": 3,
             "pointer_changed": 4}


@dataclass(frozen=True)
class RollbackResult:
    branch: str
    head: str  # the commit the rollback sits on
    mode: str  # "latest" | "proposal" | "to"
    subject: str
    undoes: tuple[str, ...]  # the change commits undone (or HEAD for --to when no selfimprove change is)
    restored_from: str
    files: Mapping[str, bytes | None]  # the managed files that change, with their new bytes
    diff: str
    dry_run: bool
    commit: str | None = None
    forced: tuple[str, ...] = field(default=())  # policy violations overridden with --force

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "dry_run": self.dry_run, "commit": self.commit, "branch": self.branch,
            "head": self.head, "mode": self.mode, "subject": self.subject, "rollback_of": list(self.undoes),
            "restored_from": self.restored_from,
            "files": [{"path": p, "deleted": data is None} for p, data in sorted(self.files.items())],
            "forced_violations": list(self.forced), "diff": self.diff,
        }


def _short(sha: str) -> str:
    return sha[:7]


def _find_change(repo: Repo, ledger: Ledger, target: str) -> Change:
    """The merged change that brought proposal `target` (a branch name or commit) onto this branch."""
    sha = repo.try_resolve(target) or repo.try_resolve(f"refs/heads/{target}")
    if sha is None:
        raise SelfImproveError(f"unknown proposal {target!r}",
                               hint="name a merged selfimprove/* branch or commit (see selfimprove history)")
    for change in ledger.changes:
        if sha in (change.commit, change.merged_commit) or sha in change.proposals:
            if change.rolled_back_by is not None:
                raise SelfImproveError(
                    f"{target} was already rolled back by {_short(change.rolled_back_by)}; nothing to undo",
                    hint="see selfimprove history")
            return change
    raise SelfImproveError(f"{target} is not merged into {ledger.branch}; nothing to undo",
                           hint="rollback undoes merged proposals; an unmerged branch can simply be deleted")


def _undo_files(repo: Repo, change: Change, managed: tuple[str, ...], head: str) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = {}
    for path in managed:
        before = repo.read_at(change.before, path)
        after = repo.read_at(change.commit, path)
        if before == after:
            continue
        current = repo.read_at(head, path)
        if current == after or current == before:
            if current != before:
                files[path] = before
            continue
        if before is None or after is None or current is None:
            raise SelfImproveError(
                f"{path} was added or deleted around {_short(change.commit)} and changed since",
                hint="restore a whole version with --to REF")
        merged, conflicts = repo.merge_file(after, current, before)
        if conflicts:
            raise SelfImproveError(
                f"{path} changed since {_short(change.commit)} in a way that conflicts with undoing it",
                hint="restore a whole version with --to REF")
        if merged != current:
            files[path] = merged
    return files


def _policy(settings: Settings, repo: Repo, head: str, files: Mapping[str, bytes | None]) -> list[str]:
    """Policy violations of the restored version, as one-line descriptions."""
    from selfimprove.prompts.policy import check

    before = {p: repo.read_at(head, p) for p in settings.managed_paths()}
    after = {**before, **files}
    found = []
    for v in sorted(check(settings.policy, settings, before, after), key=lambda v: _PRIORITY.get(v.kind, 9)):
        where = f"{v.path}:{v.line}" if v.line else v.path
        found.append(f"{where}: {v.message} [{v.kind}]")
    return found


def rollback(settings: Settings, repo: Repo, *, to: str | None = None, proposal: str | None = None,
             dry_run: bool = False, force: bool = False) -> RollbackResult:
    """Plan, check and (unless `dry_run`) commit one rollback on the checked-out branch."""
    if to is not None and proposal is not None:
        raise SelfImproveError("--to and --proposal cannot be combined", hint="choose one thing to undo")
    branch = repo.current_branch()
    if branch is None:
        raise SelfImproveError("HEAD is detached; rollback commits on a branch",
                               hint="check out the branch to roll back (git switch BRANCH)")
    head = repo.head_sha()
    if head is None:
        raise SelfImproveError(f"branch {branch!r} has no commits; nothing to undo")
    with repo.lock():
        target = repo.resolve(to) if to is not None else None
        managed = settings.managed_paths()
        if not managed:
            raise SelfImproveError("selfimprove.yaml lists no prompts or configs; nothing to restore",
                                   where=str(settings.path.name))
        dirty = repo.dirty_paths(managed)
        if dirty:
            raise SelfImproveError(f"uncommitted changes in managed files: {', '.join(dirty)}",
                                   hint="commit or stash them first; rollback only adds a new commit")
        ledger = build_ledger(repo)

        if target is not None:
            mode = "to"
            files: dict[str, bytes | None] = {}
            for path in managed:
                old, now = repo.read_at(target, path), repo.read_at(head, path)
                if old != now:
                    if old is None and not force:
                        raise SelfImproveError(f"{path} does not exist at {to}; restoring would delete it",
                                               hint="choose a later ref, or pass --force to delete it")
                    files[path] = old
            if not files:
                raise SelfImproveError(f"managed files at {to} are identical to HEAD; nothing to undo")
            undone = [c.commit for c in ledger.changes
                      if c.rolled_back_by is None and not repo.is_ancestor(c.commit, target)]
            undoes = tuple(undone) or (head,)
            restored_from = target
            subject = f"selfimprove: rollback to {to} ({_short(target)})"
            what = f"the managed files to their versions at {to} ({_short(target)})"
        else:
            if proposal is not None:
                mode, change = "proposal", _find_change(repo, ledger, proposal)
            else:
                mode = "latest"
                latest = ledger.latest_change()
                if latest is None:
                    raise SelfImproveError(f"no merged selfimprove change on {branch} to undo",
                                           hint="see selfimprove history; --to REF restores any version")
                change = latest
            files = _undo_files(repo, change, managed, head)
            if not files:
                raise SelfImproveError(
                    f"the managed files already match their versions before {_short(change.commit)}; "
                    "nothing to undo")
            undoes = (change.commit,)
            restored_from = change.before
            subject = f"selfimprove: rollback {change.title} ({_short(change.commit)})"
            what = (f"the managed files changed by {_short(change.commit)} ({change.title}) to their "
                    f"versions before it ({_short(change.before)})")

        violations = _policy(settings, repo, head, files)
        if violations and not force:
            more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            raise GateFailed(f"the restored version fails the policy check: {violations[0]}{more}",
                             hint="nothing was changed; pass --force to restore it anyway")
        diff = repo.diff_files(head, files)
        lines = [subject, "", f"Restore {what}.", "", "Files:"]
        lines += [f"  {p}{' (deleted)' if files[p] is None else ''}" for p in sorted(files)]
        if violations:
            lines += ["", "Restored with --force despite policy violations:"] + [f"  {v}" for v in violations]
        lines += ["", *(f"{T_ROLLBACK_OF}: {sha}" for sha in undoes), f"{T_RESTORED_FROM}: {restored_from}"]
        commit = None if dry_run else repo.commit_to_current_branch(files, "\n".join(lines) + "\n")
        return RollbackResult(branch=branch, head=head, mode=mode, subject=subject, undoes=undoes,
                              restored_from=restored_from, files=files, diff=diff, dry_run=dry_run,
                              commit=commit, forced=tuple(violations))
