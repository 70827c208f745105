"""Fixtures of the HTML report tests: the bundled example run through the loop with --html, a page
with hostile traces, and a headless Chromium to open them in (a missing browser fails, never skips)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke
from tests.test_end_to_end import git as _git

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support-agent"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """The system Chromium (.ci/run installs Debian's); SELFIMPROVE_CHROMIUM names another."""
    found = (os.environ.get("SELFIMPROVE_CHROMIUM") or shutil.which("chromium")
             or shutil.which("chromium-browser"))
    if not found:
        pytest.fail("no Chromium found: the browser tests need one (apt-get install chromium, or set "
                    "SELFIMPROVE_CHROMIUM to its path)", pytrace=False)
    return found


def _ok(*args: str, cwd: Path) -> str:
    result = invoke(*args, cwd=cwd)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def example_pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The example's logs analysed, one proposal evaluated and merged, then `report DIR`; and each
    page again through its command's --html. Names → paths."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("COLUMNS", "100")
        mp.setenv("NO_COLOR", "1")
        repo = tmp_path_factory.mktemp("example")
        shutil.copytree(EXAMPLE, repo, dirs_exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "example")
        out = repo / "pages"
        out.mkdir()
        _ok("analyze", "logs/", "--html", str(out / "analyze-cmd.html"), cwd=repo)
        _ok("propose", "--offline", "--max", "1", cwd=repo)
        branch = _git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/selfimprove/").split()[0]
        _ok("eval", branch, "--html", str(out / "eval-cmd.html"), cwd=repo)
        _git(repo, "merge", "-q", "--no-ff", "--no-edit", branch)
        _ok("history", "--traces", "logs/", "--html", str(out / "history-cmd.html"), cwd=repo)
        _ok("report", str(out / "report"), cwd=repo)
        yield {"analyze": out / "report" / "analyze.html", "eval": out / "report" / "eval.html",
               "history": out / "report" / "history.html", "analyze-cmd": out / "analyze-cmd.html",
               "eval-cmd": out / "eval-cmd.html", "history-cmd": out / "history-cmd.html", "repo": repo}


@pytest.fixture(scope="module")
def browser(example_pages: dict[str, Path]) -> Iterator[Any]:
    """Chromium through playwright. Its sync API runs an event loop in this thread, which `eval`'s
    asyncio.run cannot share: so the example pages are built before it starts."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
