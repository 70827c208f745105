"""The layering rule of STYLE.md, enforced: only gitrepo.py imports git, only llm.py imports litellm."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean_on_the_package_tests_and_benchmarks():
    result = ruff("check", "--no-cache", "selfimprove", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layering_rule_is_enforced(tmp_path):
    bad = ROOT / "selfimprove" / "_layering_probe.py"
    bad.write_text("import git\nimport litellm\n\nprint(git, litellm)\n")
    try:
        result = ruff("check", "--no-cache", "--select", "TID251", str(bad.relative_to(ROOT)))
    finally:
        bad.unlink()
    assert result.returncode == 1
    assert "only selfimprove/gitrepo.py may import git" in result.stdout
    assert "only selfimprove/llm.py may import litellm" in result.stdout


def test_mypy_strict_is_clean():
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
