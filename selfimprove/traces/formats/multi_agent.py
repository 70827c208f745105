"""Multi-agent logs whose roles are agent names: a JSON list of `{role, content}` where `role` is a
participant ("Orchestrator (-> WebSurfer)", "WebSurfer", "human"), as in Magentic-One / AutoGen
transcripts (the AgentRx Magentic dataset). Records of the other shapes (`{"messages": [...]}` with
agent-name roles) are read too.

Roles are kept as written (DESIGN §4: a role may be an agent's name); `human`/`user` become `user`;
`Message.name` gets the agent's bare name ("Orchestrator" for "Orchestrator (thought)"). These logs
carry no outcome labels, and none are invented.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from selfimprove.traces.formats import _io, _records
from selfimprove.traces.messages.roles import STANDARD_ROLES, normalise_role
from selfimprove.traces.model import Trace

_ANNOTATION = re.compile(r"\s*\(.*\)\s*$")


def agent_name(role: str) -> str:
    return _ANNOTATION.sub("", role).strip() or role


class MultiAgentReader:
    name = "multi-agent"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith((b"[", b"{")):
            return 0
        roles = _io.head_roles(body)
        if not roles:
            return 0
        custom = [r for r in roles if normalise_role(r) not in STANDARD_ROLES]
        if not custom:
            return 0
        return 60 if body.startswith(b"[") else 45

    def read(self, path: Path, report: _io.SourceReport,
             context: _io.ReadContext = _io.PLAIN) -> Iterator[Trace]:
        for trace in _records.read_record_file(path, report, self.name, context):
            yield with_agent_names(trace)


def with_agent_names(trace: Trace) -> Trace:
    agents: list[str] = []
    messages = []
    for msg in trace.messages:
        if msg.role not in STANDARD_ROLES:
            name = agent_name(msg.role)
            if name not in agents:
                agents.append(name)
            msg = replace(msg, name=msg.name or name)
        messages.append(msg)
    meta = dict(trace.metadata)
    meta["agents"] = agents
    return replace(trace, messages=tuple(messages), metadata=meta)


READER = MultiAgentReader()
