"""The layering rule of STYLE.md, enforced: only gitrepo.py imports git, only llm.py imports litellm.

ruff and mypy are test dependencies (the `dev` extra), run from this interpreter: a missing one fails
the test, it does not skip it. Probe files live in a temporary directory, never inside the package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PROBE = "import git\nimport litellm\n\nprint(git, litellm)\n"


def tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", name, *args], cwd=cwd, capture_output=True, text=True)
    assert f"No module named {name}" not in result.stderr, f"{name} is missing: pip install -e '.[dev]'"
    return result


def test_ruff_is_clean_on_the_package_tests_and_benchmarks() -> None:
    result = tool("ruff", "check", "--no-cache", "selfimprove", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layering_rule_is_enforced(tmp_path: Path) -> None:
    # the project's own configuration, with paths resolved against tmp_path as if it were the root
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "selfimprove").mkdir()
    (tmp_path / "selfimprove" / "gitrepo.py").write_text(PROBE)
    args = ("check", "--no-cache", "--config", str(PYPROJECT), "--select", "TID251")
    result = tool("ruff", *args, "probe.py", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "only selfimprove/gitrepo.py may import git" in result.stdout
    assert "only selfimprove/llm.py may import litellm" in result.stdout
    allowed = tool("ruff", *args, "selfimprove/gitrepo.py", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_mypy_strict_is_clean() -> None:
    result = tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
