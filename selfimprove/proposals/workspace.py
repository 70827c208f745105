"""The managed files of the prompt repo as they are in the base commit, and edits applied to them.

Owns: reading every managed path at the base commit (never the working tree: a proposal is a commit
on top of a commit, so the user's uncommitted work can neither leak into it nor be disturbed), parsing
the prompts and configs once, finding where a rule or an example belongs, and turning a list of
`Edit`s into the full new bytes of each changed file.

Must never: write anything, or edit a section that is not mutable or a pointer that is not listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfimprove.errors import SelfImproveError
from selfimprove.proposals.model import Edit

if TYPE_CHECKING:
    from selfimprove.config import ConfigSpec, Settings
    from selfimprove.gitrepo import Repo
    from selfimprove.prompts.sections import PromptDoc

_RULES_ID = re.compile(r"rule|lesson|guideline|learn", re.IGNORECASE)
_EXAMPLES_ID = re.compile(r"example|few[-_]?shot|shots?\b|demo", re.IGNORECASE)


@dataclass(frozen=True)
class ConfigFile:
    spec: ConfigSpec
    text: str
    data: Any
    schema: Mapping[str, Any] | None


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    base: str
    before: Mapping[str, bytes | None]  # every managed path at the base commit
    prompts: Mapping[str, PromptDoc]
    configs: Mapping[str, ConfigFile]

    # -- where things go -------------------------------------------------------------------------

    def mutable_sections(self) -> list[tuple[str, str]]:
        """(path, section id) of every mutable section, in settings then file order."""
        out: list[tuple[str, str]] = []
        for path, doc in self.prompts.items():
            ordered = sorted(doc.sections.values(), key=lambda s: s.line)
            out += [(path, s.id) for s in ordered if s.mutable]
        return out

    def rules_target(self) -> tuple[str, str] | None:
        """The mutable section whose id says "rules" (learned-rules, rules, …), else the first one."""
        sections = self.mutable_sections()
        preferred = [t for t in sections if _RULES_ID.search(t[1]) and not _EXAMPLES_ID.search(t[1])]
        if preferred:
            return preferred[0]
        others = [t for t in sections if not _EXAMPLES_ID.search(t[1])] or sections
        return others[0] if others else None

    def examples_target(self) -> tuple[str, str] | None:
        """The mutable section the prompt declares for examples (id like examples / few-shot), if any."""
        return next((t for t in self.mutable_sections() if _EXAMPLES_ID.search(t[1])), None)

    def body(self, path: str, section: str) -> str:
        return self.prompts[path].sections[section].body

    def immutable_text(self, path: str) -> str:
        """What a new rule in `path` must not contradict: its immutable text and the protected phrases."""
        phrases = "\n".join(self.settings.policy.protected_phrases)
        return self.prompts[path].immutable_text() + ("\n" + phrases if phrases else "")

    def mutable_pointers(self) -> list[tuple[str, str]]:
        return [(path, pointer) for path, cfg in self.configs.items() for pointer in cfg.spec.mutable]

    # -- applying edits --------------------------------------------------------------------------

    def apply(self, edits: Sequence[Edit]) -> dict[str, bytes]:
        """The full new bytes of every file the edits change (files whose bytes stay equal are left out)."""
        from selfimprove.prompts.structured import set_pointer

        docs: dict[str, PromptDoc] = {}
        texts: dict[str, str] = {}
        for edit in edits:
            if edit.section is not None:
                if edit.path not in self.prompts:
                    raise SelfImproveError(f"{edit.path} is not a managed prompt")
                doc = docs.get(edit.path, self.prompts[edit.path])
                docs[edit.path] = doc.with_body(edit.section, edit.after)
            elif edit.pointer is not None:
                cfg = self.configs.get(edit.path)
                if cfg is None or edit.pointer not in cfg.spec.mutable:
                    raise SelfImproveError(f"{edit.pointer} of {edit.path} is not a mutable pointer")
                text = texts.get(edit.path, cfg.text)
                texts[edit.path] = set_pointer(text, edit.path, edit.pointer, json.loads(edit.after))
        out = {path: doc.source().encode("utf-8") for path, doc in docs.items()}
        out.update({path: text.encode("utf-8") for path, text in texts.items()})
        return {path: data for path, data in out.items() if data != self.before.get(path)}


def load_workspace(settings: Settings, repo: Repo, base: str) -> Workspace:
    """Read and parse every managed file at commit `base`."""
    from selfimprove.prompts.sections import parse_prompt
    from selfimprove.prompts.structured import load_structured

    before: dict[str, bytes | None] = {path: repo.read_at(base, path) for path in settings.managed_paths()}
    prompts: dict[str, PromptDoc] = {}
    for path in settings.prompts:
        prompts[path] = parse_prompt(_text(before, path, base, repo, settings), path)
    configs: dict[str, ConfigFile] = {}
    for spec in settings.configs:
        text = _text(before, spec.path, base, repo, settings)
        schema: Mapping[str, Any] | None = None
        if spec.schema:
            try:
                schema = json.loads(_text(before, spec.schema, base, repo, settings))
            except ValueError as exc:
                raise SelfImproveError(f"{spec.schema} is not valid JSON: {exc}", where=spec.schema) from None
        configs[spec.path] = ConfigFile(spec, text, load_structured(text, spec.path), schema)
    return Workspace(settings, base, before, prompts, configs)


def _text(before: Mapping[str, bytes | None], path: str, base: str, repo: Repo, settings: Settings) -> str:
    data = before.get(path)
    if data is None:
        from selfimprove.config import missing_at_commit

        raise missing_at_commit(path, root=settings.root, ref=base[:12], known=repo.list_at(base))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SelfImproveError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                               where=path) from None
