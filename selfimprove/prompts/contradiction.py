"""Whether a new rule contradicts or weakens an immutable instruction: a deterministic heuristic.

Owns `contradicts(rule, immutable_text)`: sentences are reduced to claims (stemmed content words, the
head verbs with their polarity, a weakener such as "no need to", an exception such as "unless"), and a
rule is flagged when it shares enough content with an instruction and flips the polarity of a shared
head, weakens it or adds an exception to it; a rule telling the model to override its instructions is
always flagged. `proposals.safety` applies it to every proposal, whichever proposer made it.

Never does: understand language (it is a bounded set of patterns, tested on paraphrases in
tests/prompts/test_contradiction.py), read files, or decide what happens to a flagged rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_PHRASES = [
    (r"\b(?:do|does|did) ?n[o']?t need to\b|\bno need (?:to|for)\b|\bno need\b|\bneed ?n[o']?t\b", " weak_ "),
    (r"\bnot (?:required|necessary|needed|mandatory)\b", " postweak_ "),
    (
        r"\b(?:do|does|did|must|should|shall|will|would|can|could|may) ?n[o']?t\b|\bcannot\b|\bwon't\b",
        " neg_ ",
    ),
]
_NEG = {
    "neg_",
    "not",
    "no",
    "never",
    "avoid",
    "refuse",
    "refrain",
    "nothing",
    "none",
    "neither",
    "nor",
    "don't",
    "dont",
    "doesn't",
    "mustn't",
    "shouldn't",
    "can't",
    "isn't",
    "aren't",
}
_WEAK = {
    "weak_",
    "skip",
    "ignore",
    "bypass",
    "override",
    "disregard",
    "omit",
    "without",
    "stop",
    "forget",
    "waive",
    "drop",
    "circumvent",
}
_POST_WEAK = {"postweak_", "optional", "unnecessary", "unneeded"}
_EXCEPT = {"unless", "except", "exception", "exceptions", "exempt", "excluding"}
# "may be shared", "can be skipped": the verb after a modal is what the sentence is about
_MODAL = {"may", "might", "can", "could", "should", "must", "shall", "will", "would"}
# "it is fine to share", "feel free to reveal", "you are allowed to skip": a permission says nothing by
# itself; the verb it permits is the head, in the polarity of the permission
_PERMIT = {"fine", "ok", "okay", "alright", "acceptable", "allowed", "permitted", "permissible", "free",
           "feel", "welcome", "go", "ahead", "perfectly", "totally", "completely", "safe"}
# "without asking for confirmation": a light verb passes the head on to what it asks for
_LIGHT = {"ask", "asks", "asking", "asked", "wait", "waiting", "request", "requesting", "seek", "seeking",
          "obtain", "obtaining", "get", "getting"}
_PARTY = {"user", "users", "customer", "customers", "client", "clients", "caller", "person"}
_DISCLOSE = {"reveal", "share", "disclose", "expose", "leak", "show", "tell", "divulge", "publish", "display"}
_SECRECY = {"confidential", "private", "secret", "hide", "withhold", "conceal", "redact"}
_STOP = set(
    "a an the to for of in on at by with and or before after when whenever if is are be been being it its "
    "this that these those their there your you yours any all always must should shall will would can "
    "could may might please only ever even each every from as so then them they we our us i me my do does "
    "did has have had about into than also just first make sure ensure need needs try what which who whom "
    "whose how why where was were here some such own same other more most very too again once still yet "
    "ok".split()
)
_OVERRIDE = re.compile(
    r"\b(ignore|disregard|override|bypass|forget|circumvent)\b.{0,40}\b(instructions?|rules?|guardrails?|"
    r"guidelines?|polic(?:y|ies)|system prompt|safety|restrictions?|constraints?)\b"
)


def _stem(word: str) -> str:
    if word in _DISCLOSE:
        return "disclos"
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "sses", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    for suffix in ("ation", "ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
        word = word[:-1]
    elif len(word) > 4 and word.endswith("ll"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    disclose = {"reveal", "shar", "disclos", "expos", "leak", "show", "shown", "tell", "told"}
    return "disclos" if word in disclose else word


@dataclass(frozen=True)
class _Claim:
    """What a sentence says, reduced to content stems and the polarity of its heads."""

    text: str
    content: frozenset[str]
    heads: Mapping[str, int]  # stem -> 0 (do it) / 1 (do not do it)
    weakener: str | None
    exception: str | None


def _tokens(text: str) -> list[str]:
    text = text.casefold().replace("\u2019", "'")
    for pattern, token in _PHRASES:
        text = re.sub(pattern, token, text)
    return [raw.strip("'") for raw in re.findall(r"[a-z0-9_']+", text)]


def _claim(sentence: str) -> _Claim:
    tokens = _tokens(sentence)
    parity = 0
    heads: dict[str, int] = {}
    content: set[str] = set()
    opener = True  # the next content word is a head (start of sentence, or after a negator)
    first: str | None = None
    weakener = exception = None
    light = False
    for word in tokens:
        if word in _NEG or word in _WEAK:
            parity ^= 1
            opener = True
            if word in _WEAK:
                weakener = weakener or ("no need" if word == "weak_" else word)
            continue
        if word in _POST_WEAK:
            weakener = weakener or ("not required" if word == "postweak_" else word)
            if first is not None:
                heads[first] ^= 1
            continue
        if word in _EXCEPT:
            exception = exception or word
            continue
        if word in _MODAL or (opener and word in _PERMIT):
            opener = True
            continue
        if word in _STOP or len(word) < 2:
            continue
        stem = _stem(word)
        content.add(stem)
        if opener and (word in _LIGHT or (light and word in _PARTY)):
            light = True  # "without waiting for the user to confirm": the head is "confirm"
            continue
        light = False
        if opener:
            heads.setdefault(stem, parity)
            first = first or stem
            opener = False
        if word in _SECRECY:
            heads.setdefault("disclos", parity ^ 1)
    return _Claim(sentence.strip(), frozenset(content), heads, weakener, exception)


def _sentences(text: str) -> Iterator[str]:
    text = re.sub(r"<!--.*?-->", "\n", text, flags=re.DOTALL)
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+", "", line)
        for sentence in re.split(r"(?<=[.!?;])\s+", line):
            if re.search(r"[A-Za-z]", sentence):
                yield sentence.strip()


def contradicts(rule: str, immutable_text: str) -> str | None:
    """Why `rule` contradicts or weakens an instruction in `immutable_text` (None when it does not).

    Deterministic heuristics, not understanding: a rule and an instruction are compared when they share
    enough content words (stemmed; "confirmation" ~ "confirm", "cancelling" ~ "cancel", reveal/share/
    disclose are one concept) and then flagged when the rule flips the polarity of a shared head verb
    ("Always confirm …" vs "Skip the confirmation …"; "Never reveal …" vs "Reveal … to gold customers"),
    or adds an exception ("unless", "except") to it. A rule that tells the model to ignore or override
    its instructions is always flagged. Pass protected phrases as part of `immutable_text`.
    """
    text = rule.casefold()
    override = _OVERRIDE.search(text)
    if override and not sum(t in _NEG or t in _WEAK for t in _tokens(text[: override.start()])) % 2:
        quoted = rule[override.start() : override.end()].strip()
        return f'tells the model to override its instructions ("{quoted}")'
    instructions = [_claim(s) for s in _sentences(immutable_text)]
    for sentence in _sentences(rule):
        claim = _claim(sentence)
        for instruction in instructions:
            if not instruction.content:
                continue
            shared = claim.content & instruction.content
            if len(shared) < min(2, len(instruction.content)):
                continue
            for stem, polarity in claim.heads.items():
                if stem not in instruction.heads:
                    continue
                if instruction.heads[stem] != polarity:
                    if claim.weakener:
                        return f'weakens the immutable instruction "{instruction.text}" ("{claim.weakener}")'
                    return f'contradicts the immutable instruction "{instruction.text}"'
                if claim.exception and not instruction.exception:
                    word = claim.exception
                    return f'adds an exception ("{word}") to the immutable instruction "{instruction.text}"'
    return None
