"""Every page opened in a real headless Chromium: charts drawn with the expected number of marks, no
script error, hostile trace text shown as text. Screenshots land in $SELFIMPROVE_SCREENSHOTS when set
(the README's come from there)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.html.hostile import SCRIPT, TEXTAREA, write_traces

# the marks of the data, not of legends: Vega puts each in a group of class "mark-<type> role-mark"
MARKS = """() => Object.fromEntries([...document.querySelectorAll('figure.chart')].map(f => [
  f.dataset.chart, {
    expected: Number(f.dataset.marks),
    bars: f.querySelectorAll('g.mark-rect.role-mark > path').length,
    points: f.querySelectorAll('g.mark-symbol.role-mark > path').length,
    lines: f.querySelectorAll('g.mark-line.role-mark > path').length,
    rules: f.querySelectorAll('g.mark-rule.role-mark > line').length,
    width: f.querySelector('svg').getBoundingClientRect().width,
}]))"""


def _open(browser: Any, path: Path, shot: str | None = None) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1000, "height": 1150})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("request", lambda req: problems.append(f"request: {req.url}")
            if not req.url.startswith(("file:", "data:")) else None)
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    page.goto(path.as_uri(), wait_until="load")
    if shot:
        _shoot(page, shot)
    return page, problems


def _shoot(target: Any, name: str) -> None:
    """A screenshot of a page or an element into $SELFIMPROVE_SCREENSHOTS (for the README), if set."""
    folder = os.environ.get("SELFIMPROVE_SCREENSHOTS")
    if folder:
        target.screenshot(path=str(Path(folder) / f"{name}.png"))


def _charts(page: Any) -> dict[str, dict[str, Any]]:
    charts: dict[str, dict[str, Any]] = page.evaluate(MARKS)
    for name, c in charts.items():
        assert c["width"] > 100, f"chart {name} has no size"
    return charts


def test_analyze_page(browser: Any, example_pages: dict[str, Path]) -> None:
    page, problems = _open(browser, example_pages["analyze"], shot="analyze")
    charts = _charts(page)
    assert set(charts) == {"failure-rate", "over-time", "fit"}
    # the example: 6 patterns and the overall rate; 3 AUROCs; 14 days x (overall + 5 patterns)
    assert charts["failure-rate"]["bars"] == charts["failure-rate"]["expected"] == 7
    assert charts["fit"]["bars"] == 3
    assert charts["over-time"]["points"] == charts["over-time"]["expected"] == 14 * 6
    assert charts["over-time"]["lines"] == 6
    assert page.locator("details.pattern").count() == 6
    first = page.locator("details.trace").first
    assert not first.locator(".msg.blamed").is_visible()
    first.locator("xpath=ancestor::details[contains(@class,'pattern')]/summary").click()
    first.locator("summary").click()
    assert first.locator(".msg.blamed").is_visible()
    assert "tool call failed" in first.locator(".msg.blamed .why").inner_text()
    _shoot(first, "analyze-trace")
    assert page.locator("nav a[href='eval.html']").count() == 1
    assert problems == []


def test_eval_page(browser: Any, example_pages: dict[str, Path]) -> None:
    page, problems = _open(browser, example_pages["eval"], shot="eval")
    charts = _charts(page)
    slices = charts["slices"]
    assert slices["bars"] == slices["expected"] > 2 and slices["bars"] % 2 == 0  # pairs
    assert page.locator(".verdict").inner_text() in ("PASS", "FAIL", "NO-EFFECT")
    assert page.locator(".diff .add").count() >= 1
    assert page.locator("details.case").count() >= 1
    assert page.locator("details.case .side > div").count() == 2 * page.locator("details.case").count()
    assert problems == []


def test_history_page(browser: Any, example_pages: dict[str, Path]) -> None:
    page, problems = _open(browser, example_pages["history"], shot="history")
    charts = _charts(page)
    assert charts["events"]["points"] == charts["events"]["expected"] == 2  # a proposal and its merge
    versions = charts["versions"]
    assert versions["points"] == versions["expected"] >= 2
    assert versions["rules"] == 1  # the merge
    assert "merge" in page.locator("figure[data-chart=versions]").inner_text()
    assert problems == []


def test_each_command_writes_its_page(browser: Any, example_pages: dict[str, Path]) -> None:
    for name in ("analyze-cmd", "eval-cmd", "history-cmd"):
        page, problems = _open(browser, example_pages[name])
        assert _charts(page), name
        assert problems == [], name


def test_hostile_traces_render_as_text(browser: Any, run: Any, tmp_path: Path) -> None:
    logs = write_traces(tmp_path / "hostile.jsonl")
    out = tmp_path / "hostile.html"
    assert run("analyze", str(logs), "--html", str(out), cwd=tmp_path).exit_code == 0
    page, problems = _open(browser, out)
    assert page.title().startswith("selfimprove analyze")  # the script did not run
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0
    assert page.locator("textarea").count() == 0
    page.locator("details").evaluate_all("ds => ds.forEach(d => d.open = true)")
    text = page.locator("body").inner_text()
    assert SCRIPT in text and TEXTAREA in text  # shown to the reader as the trace had it
    assert "<script>" in page.locator("figure[data-chart=failure-rate]").text_content()  # a chart label
    assert problems == []


def test_a_missing_chromium_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.html.conftest import chromium_path

    monkeypatch.setenv("SELFIMPROVE_CHROMIUM", "")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="no Chromium found"):
        chromium_path()


def test_history_versions_mark_merges_and_rollbacks(browser: Any, tmp_path: Path) -> None:
    from selfimprove.html import pages

    """A history document (in the shape `history --json` prints) with traces on three prompt versions."""
    doc = json.loads((Path(__file__).parents[1] / "data" / "html" / "history.json").read_text())
    out = tmp_path / "history.html"
    out.write_text(pages.history_page(doc))
    page, problems = _open(browser, out)
    charts = _charts(page)
    assert charts["versions"]["points"] == charts["versions"]["expected"] == 3 * 3  # overall + 2 patterns
    assert charts["versions"]["rules"] == 2
    assert charts["events"]["points"] == 2
    text = page.locator("figure[data-chart=versions]").text_content()
    assert "v1 merge aaaaaaa" in text and "v2 rollback bbbbbbb" in text
    assert "yes, the fix held" in page.locator("body").inner_text()
    assert problems == []
