"""A proposal as a reviewable git branch: name, commit message with its evidence, and the write.

Owns: `selfimprove/<slug>-<shorthash>` naming (the slug keeps what a title is about, without the words
every title shares; the short hash covers the base commit, the pattern and the new content, so the
same proposal for the same base always gets the same name), the commit
message of DESIGN §7 (subject, an evidence body, trailers Selfimprove-Pattern / -Base / -Proposer),
redaction of that message, and finding the branches earlier runs wrote.

Must never: touch HEAD, the index or the working tree (the commit is built by `gitrepo.commit_files`
on the base commit in a temporary index, and the branch ref is created with compare-and-swap), or put
an unredacted secret or personal detail from a trace into a commit message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.records import Evidence, Pattern
from selfimprove.proposals.model import Proposal

if TYPE_CHECKING:
    from selfimprove.gitrepo import Repo

PREFIX = "selfimprove/"
TRAILER_PATTERN = "Selfimprove-Pattern"
TRAILER_BASE = "Selfimprove-Base"
TRAILER_PROPOSER = "Selfimprove-Proposer"
MAX_TRACE_IDS = 10
WHY = "Why: "


# Words every title shares ("add a rule for … failing with …"): dropped from branch names so that
# sibling proposals differ by what they are about, not only by their hash.
_FILLER = frozenset("a an the and or of to in on for from with about add rule rules failing fails error "
                    "errors errno when is are".split())


def slugify(text: str, limit: int = 48) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    slug = "-".join(w for w in words if w not in _FILLER) or "-".join(words)
    if len(slug) > limit:
        cut = slug[:limit]
        slug = cut[: cut.rfind("-")] if cut.rfind("-") > limit // 2 else cut
    return slug.strip("-") or "change"


def shorthash(base: str, pattern: str, files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for part in (base.encode(), pattern.encode()):
        digest.update(part + b"\0")
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    return digest.hexdigest()[:8]


def branch_name(slug: str, base: str, pattern: str, files: Mapping[str, bytes]) -> str:
    return f"{PREFIX}{slug}-{shorthash(base, pattern, files)}"


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def commit_message(proposal: Proposal, pattern: Pattern) -> str:
    """Subject, evidence body and trailers; every line that can hold trace text is redacted."""
    from selfimprove.redact import redact

    evidence = proposal.evidence or Evidence()
    count = pattern.count
    ids = list(pattern.trace_ids)
    more = len(ids) - MAX_TRACE_IDS
    shown = ", ".join(ids[:MAX_TRACE_IDS]) + (f" (+{more} more)" if more > 0 else "")
    body = [
        f"Pattern {pattern.id} ({pattern.kind or '?'}): {_one_line(pattern.title)}",
        f"Seen in {count} failing trace{'s' if count != 1 else ''} ({pattern.share:.0%} of failures).",
    ]
    if shown:
        body.append(f"Trace ids: {shown}")
    if evidence.signals:
        body.append("Signals: " + ", ".join(f"{k}={v}" for k, v in sorted(evidence.signals.items())))
    for value, label in ((evidence.tool, "Tool"), (evidence.error_template, "Error"),
                         (evidence.config_hint, "Config hint")):
        if value:
            body.append(f"{label}: {_one_line(value)}")
    if pattern.notes.get("root_cause"):
        body.append(f"Root cause (a model's notes): {_one_line(pattern.notes['root_cause'])}")
    phrases = list(evidence.user_phrases[:3])
    if phrases:
        body.append("User corrections: " + "; ".join(f'"{_one_line(p)}"' for p in phrases))
    changes = [f"- {e.describe()}" for e in proposal.edits]
    changes += [f"- removes or rewrites: {_one_line(text)}" for text in proposal.removed]
    text = "\n".join([
        f"selfimprove: {_one_line(proposal.title)}",
        "",
        "\n".join(body),
        "",
        "Change:",
        "\n".join(changes),
        "",
        WHY + _one_line(proposal.rationale),
    ])
    text = redact(text)
    trailers = "\n".join([
        f"{TRAILER_PATTERN}: {_one_line(redact(proposal.pattern))}",
        f"{TRAILER_BASE}: {proposal.base}",
        f"{TRAILER_PROPOSER}: {_one_line(proposal.proposer)}",
    ])
    return f"{text}\n\n{trailers}\n"


@dataclass(frozen=True)
class Existing:
    branch: str
    sha: str
    pattern: str
    base: str
    proposer: str
    subject: str
    rationale: str


def existing_proposals(repo: Repo) -> list[Existing]:
    """Every `selfimprove/` branch whose tip carries our trailers."""
    out: list[Existing] = []
    for name, sha in sorted(repo.branches(PREFIX).items()):
        commits = repo.log(sha, max_count=1)
        if not commits:
            continue
        trailers = commits[0].trailers
        pattern, base = trailers.get(TRAILER_PATTERN), trailers.get(TRAILER_BASE)
        if not pattern or not base:
            continue
        proposer = (trailers.get(TRAILER_PROPOSER) or ("",))[0]
        why = next((line[len(WHY):] for line in commits[0].body.splitlines() if line.startswith(WHY)), "")
        out.append(Existing(name, sha, pattern[0], base[0], proposer, commits[0].subject, why))
    return out


def write(repo: Repo, proposal: Proposal, message: str) -> str:
    """Create the proposal's branch with one commit on its base; returns the commit sha."""
    return repo.commit_files(branch=proposal.branch, base=proposal.base, files=dict(proposal.files),
                             message=message, expect_new=True)
