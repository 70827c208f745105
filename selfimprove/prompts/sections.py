"""Section markers in text prompts (DESIGN §3).

Owns: parsing `<!-- selfimprove:mutable id=X -->` … `<!-- /selfimprove -->` (and `immutable`) into a
`PromptDoc` that reproduces the original text byte for byte, renders it for a model (marker lines
removed), and replaces the body of a mutable section without touching a byte outside it.

Must never: normalise the text it was given (line endings, trailing whitespace, a missing final
newline are all kept), guess at a malformed marker, or let a new body smuggle in a marker.

Why: everything outside mutable bodies is a guardrail that the policy checks byte for byte, so the
model of the file has to be exact; a silently ignored typo in a marker would turn a guardrail into
ordinary text, so anything that looks like a marker but is not a valid one is an error.

A marker is a line of its own. The body of a section is the text between the end of its opening
marker line (after the newline) and the start of its closing marker line, so a non-empty body always
ends with a newline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from selfimprove.errors import SelfImproveError

KINDS = ("mutable", "immutable")
CLOSE_MARKER = "<!-- /selfimprove -->"
OPEN_HINT = "write it as <!-- selfimprove:mutable id=NAME --> or <!-- selfimprove:immutable id=NAME -->"

# Anything that looks like the start of a marker; a line containing one must be a valid marker.
_MARKER_LIKE = re.compile(r"<!--\s*/?\s*selfimprove\b", re.IGNORECASE)
_OPEN = re.compile(r"^[\s\ufeff]*<!--\s*selfimprove:(?P<kind>\S*?)(?P<attrs>(?:\s.*?)?)\s*-->\s*$", re.DOTALL)
_CLOSE = re.compile(r"^[\s\ufeff]*<!--\s*/selfimprove\s*-->\s*$", re.DOTALL)
_ATTR = re.compile(r"""(?P<name>[A-Za-z_][\w-]*)=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"']+))""")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?:[-*+]|\d{1,9}[.)])[ \t]+(?P<text>\S.*?)\s*$")


@dataclass(frozen=True)
class Section:
    """One marked section. `line` is the 1-based line of its opening marker."""

    id: str
    mutable: bool
    body: str
    line: int

    @property
    def kind(self) -> str:
        return "mutable" if self.mutable else "immutable"


@dataclass(frozen=True)
class _Marked:
    """A section together with the exact text of its marker lines (newline included)."""

    section: Section
    opening: str
    closing: str


@dataclass(frozen=True)
class PromptDoc:
    """A parsed prompt: plain text runs and marked sections, in file order."""

    path: str
    parts: tuple[str | _Marked, ...] = field(repr=False)

    def source(self) -> str:
        """The exact text the document was parsed from (or its edited equivalent)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out += (part.opening, part.section.body, part.closing)
        return "".join(out)

    def render(self) -> str:
        """The prompt as a model sees it: marker lines (with their newline) removed, nothing else."""
        return "".join(p if isinstance(p, str) else p.section.body for p in self.parts)

    @property
    def sections(self) -> Mapping[str, Section]:
        return MappingProxyType({p.section.id: p.section for p in self.parts if isinstance(p, _Marked)})

    def with_body(self, section_id: str, body: str) -> PromptDoc:
        """A copy with the body of mutable section `section_id` replaced.

        The new body's line endings follow the section's (those of its opening marker line), and a
        non-empty body gets a final newline so the closing marker stays on a line of its own. Nothing
        outside the body changes.
        """
        index = self._index(section_id)
        marked = self.parts[index]
        assert isinstance(marked, _Marked)
        if not marked.section.mutable:
            raise SelfImproveError(
                f"section '{section_id}' is immutable and cannot be edited",
                where=f"{self.path}:{marked.section.line}",
                hint="only sections marked <!-- selfimprove:mutable id=NAME --> may change",
            )
        found = _MARKER_LIKE.search(body)
        if found:
            raise SelfImproveError(
                f"the new body of section '{section_id}' contains a section marker ({found.group(0)!r})",
                where=f"{self.path}:{marked.section.line}",
                hint="a section body cannot open or close sections; remove the marker text",
            )
        newline = "\r\n" if marked.opening.endswith("\r\n") else "\n"
        body = body.replace("\r\n", "\n").replace("\n", newline)
        if body and not body.endswith("\n"):
            body += newline
        parts = list(self.parts)
        section = Section(section_id, True, body, marked.section.line)
        parts[index] = _Marked(section, marked.opening, marked.closing)
        # Re-parsing keeps the line numbers of later sections right (and proves the result is well formed).
        return parse_prompt(PromptDoc(self.path, tuple(parts)).source(), self.path)

    def lines(self) -> list[tuple[int, str, Section | None]]:
        """Every line as (1-based number, text with newline, the section whose body holds it or None).

        Marker lines and text outside sections carry None.
        """
        out: list[tuple[int, str, Section | None]] = []
        for part in self.parts:
            if isinstance(part, str):
                chunks: list[tuple[str, Section | None]] = [(part, None)]
            else:
                chunks = [(part.opening, None), (part.section.body, part.section), (part.closing, None)]
            for chunk, section in chunks:
                out += [(len(out) + i, line, section) for i, line in enumerate(_lines(chunk), start=1)]
        return out

    def immutable_text(self) -> str:
        """Everything outside mutable bodies, markers included: what must never change."""
        return "".join(line for _, line in self.immutable_lines())

    def immutable_lines(self) -> list[tuple[int, str]]:
        """(1-based line number, line text with its newline) of every line outside mutable bodies."""
        return [(n, line) for n, line, section in self.lines() if section is None or not section.mutable]

    def _index(self, section_id: str) -> int:
        for i, part in enumerate(self.parts):
            if isinstance(part, _Marked) and part.section.id == section_id:
                return i
        known = ", ".join(self.sections) or "none"
        raise SelfImproveError(
            f"no section '{section_id}' in {self.path} (sections: {known})",
            where=self.path,
            hint="use the id of a <!-- selfimprove:mutable id=NAME --> marker in that file",
        )


def _lines(text: str) -> list[str]:
    """Split on "\\n" only, keeping it: "\\r\\n" stays intact and a lone "\\r" is ordinary text."""
    if not text:
        return []
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def has_marker(text: str) -> bool:
    """True when `text` contains anything that looks like a section marker."""
    return _MARKER_LIKE.search(text) is not None


def parse_prompt(text: str, path: str) -> PromptDoc:
    """Parse a marked prompt; SelfImproveError(where="path:line") on any malformed marker."""
    parts: list[str | _Marked] = []
    plain: list[str] = []
    seen: dict[str, int] = {}
    current: tuple[str, bool, int, str] | None = None  # id, mutable, line, opening marker text
    body: list[str] = []
    for number, line in enumerate(_lines(text), start=1):
        if not _MARKER_LIKE.search(line):
            (body if current else plain).append(line)
            continue
        where = f"{path}:{number}"
        if _CLOSE.match(line):
            if current is None:
                raise SelfImproveError(
                    "closing marker <!-- /selfimprove --> without an open section",
                    where=where,
                    hint="remove it, or add an opening marker above the section it should close",
                )
            section_id, mutable, start, opening = current
            parts.append(_Marked(Section(section_id, mutable, "".join(body), start), opening, line))
            current, body = None, []
            continue
        section_id, mutable = _parse_opening(line, where)
        if current is not None:
            raise SelfImproveError(
                f"section '{section_id}' opens inside section '{current[0]}' (opened at line {current[2]})",
                where=where,
                hint=f"close '{current[0]}' with {CLOSE_MARKER} first; sections cannot nest",
            )
        if section_id in seen:
            raise SelfImproveError(
                f"duplicate section id '{section_id}' (first used at line {seen[section_id]})",
                where=where,
                hint="give every section in a file its own id",
            )
        seen[section_id] = number
        if plain:
            parts.append("".join(plain))
            plain = []
        current = (section_id, mutable, number, line)
    if current is not None:
        raise SelfImproveError(
            f"section '{current[0]}' is never closed",
            where=f"{path}:{current[2]}",
            hint=f"add {CLOSE_MARKER} on its own line after the section's last line",
        )
    if plain:
        parts.append("".join(plain))
    return PromptDoc(path, tuple(parts))


def _parse_opening(line: str, where: str) -> tuple[str, bool]:
    match = _OPEN.match(line)
    if match is None:
        stripped = line.strip(" \t\r\n\ufeff")
        if _MARKER_LIKE.match(stripped) and not ("-->" in stripped and not stripped.endswith("-->")):
            raise SelfImproveError("malformed section marker", where=where, hint=OPEN_HINT)
        raise SelfImproveError(
            "a section marker must be on a line of its own",
            where=where,
            hint="put the marker on its own line, with nothing before or after it",
        )
    kind = match.group("kind")
    if kind not in KINDS:
        raise SelfImproveError(f"unknown section kind '{kind}'", where=where, hint=OPEN_HINT)
    attrs = match.group("attrs")
    section_id: str | None = None
    for attr in _ATTR.finditer(attrs):
        name, value = attr.group("name"), attr.group("dq") or attr.group("sq") or attr.group("bare") or ""
        if name != "id":
            raise SelfImproveError(f"unknown marker attribute '{name}'", where=where, hint=OPEN_HINT)
        section_id = value
    leftover = _ATTR.sub("", attrs).strip()
    if leftover:
        raise SelfImproveError(
            f"malformed section marker (unexpected '{leftover}')", where=where, hint=OPEN_HINT
        )
    if section_id is None:
        raise SelfImproveError("section marker has no id", where=where, hint=OPEN_HINT)
    if not _ID.match(section_id):
        raise SelfImproveError(
            f"invalid section id '{section_id}'",
            where=where,
            hint="use letters, digits, '-', '_', '.' or ':' and start with a letter or digit",
        )
    return section_id, kind == "mutable"


def rules(body: str) -> list[str]:
    """The bullet rules of a section body: top-level "- …", "* …", "+ …" or "1. …" items.

    Indented lines under a bullet (continuations, sub-bullets) belong to that rule and are joined to it
    with single spaces; a blank line or an unindented non-bullet line ends it.
    """
    items: list[list[str]] = []
    top: int | None = None
    open_item = False
    for raw in body.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            open_item = False
            continue
        indent = len(raw) - len(raw.lstrip(" \t"))
        bullet = _BULLET.match(raw)
        if bullet and (top is None or indent <= top):
            top = indent if top is None else top
            items.append([bullet.group("text")])
            open_item = True
        elif open_item and top is not None and indent > top:
            items[-1].append(raw.strip())
        else:
            open_item = False
    return [" ".join(item) for item in items]
