"""Shell completion: the app installs and answers completions as typer does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _complete(words: str) -> list[str]:
    env = dict(os.environ, _SELFIMPROVE_COMPLETE="complete_bash", COMP_WORDS=words,
               COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "selfimprove"], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_commands_and_options_complete() -> None:
    assert _complete("selfimprove ana") == ["analyze"]
    assert _complete("selfimprove ") == ["init", "analyze", "propose", "eval", "rollback", "history",
                                          "report"]
    assert "--export-cases" in _complete("selfimprove analyze --ex")


def test_completion_script_is_offered(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--show-completion", "bash")
    assert result.exit_code == 0, result.stderr
    assert "_selfimprove_completion()" in result.stdout and "complete -o default" in result.stdout
