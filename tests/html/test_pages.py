"""The pages as text: escaping, redaction, no script, bounded size, every section from its JSON."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.html.hostile import SCRIPT, SECRET, TEXTAREA, write_traces


def _analyze(run: Any, tmp_path: Path) -> str:
    logs = write_traces(tmp_path / "hostile.jsonl")
    page = tmp_path / "analyze.html"
    result = run("analyze", str(logs), "--html", str(page), cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"wrote HTML report to {page.name}" in result.stderr.replace(str(tmp_path) + "/", "")
    return page.read_text()


def test_trace_text_is_escaped_and_secrets_redacted(run: Any, tmp_path: Path) -> None:
    html = _analyze(run, tmp_path)
    assert "<script" not in html.lower()
    assert TEXTAREA not in html
    assert "&lt;script&gt;" in html and "&lt;/textarea&gt;" in html
    assert SECRET not in html and "[REDACTED:" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing loaded from anywhere


def test_analyze_page_has_the_blamed_step_and_the_charts(run: Any, tmp_path: Path) -> None:
    html = _analyze(run, tmp_path)
    assert 'data-chart="failure-rate"' in html and 'data-chart="over-time"' in html
    assert 'data-chart="fit"' not in html or "AUROC" in html
    assert re.search(r'class="msg [a-z]+ ?[a-z ]*blamed" data-step="1"', html), "the failed call is blamed"
    assert "blamed: assistant: tool call failed" in html


def test_sections_are_bounded_whatever_the_number_of_traces() -> None:
    from selfimprove.html import pages

    ids = [f"t{i}" for i in range(100_000)]
    doc = {"traces": {"total": 100_000, "failure": 100_000, "success": 0, "unknown": 0, "skipped": 0},
           "sources": [], "fit": {}, "patterns": [
               {"id": f"p{k}", "title": f"pattern {k}", "kind": "tool_error", "count": 100_000 // 80,
                "share": 1 / 80, "trace_ids": ids[:1250], "examples": [], "evidence": {}} for k in range(80)]}
    html = pages.analyze_page(doc, [])
    assert html.count('class="pattern"') == pages.MAX_PATTERNS_SHOWN
    assert "and 1,230 more" in html and "30 smaller patterns" in html
    assert len(html) < 400_000


def test_eval_page_without_a_result_says_why() -> None:
    from selfimprove.html import pages

    html = pages.eval_page(None, note="No proposal has been evaluated yet")
    assert "No proposal has been evaluated yet" in html and "data-chart" not in html


def test_diff_lines_are_classified() -> None:
    from selfimprove.html.pages import diff_lines

    diff = "diff --git a/p b/p\n--- a/p\n+++ b/p\n@@ -1 +1 @@\n-old <b>\n+new\n same"
    assert [k for k, _ in diff_lines(diff)] == ["meta", "meta", "meta", "hunk", "del", "add", "ctx"]


def test_eval_page_shows_outputs_side_by_side_and_the_failed_assertion() -> None:
    from selfimprove.html import pages

    side = {"ref": "main", "sha": "a" * 40, "pass_rate": 0.5}
    doc = {"verdict": "fail", "reasons": ["1 regressed"], "base": side, "candidate": {**side, "ref": "x"},
           "regressed": ["c1"], "fixed": [], "p_value": 1.0, "ci": [-0.5, 0.1], "alpha": 0.05,
           "slices": {"orders": {"cases": 2, "base": 1.0, "candidate": 0.5, "delta": -0.5}},
           "calls": {"made": 2, "cached": 0}, "cost_usd": 0.0, "model": "m", "repeats": 1, "cases": 2,
           "violations": [], "skipped": [],
           "flipped": [{"id": "c1", "status": "regressed", "description": "d", "where": "evals/a.yaml:3",
                        "base": {"pass_rate": 1.0, "output": "good", "failures": []},
                        "candidate": {"pass_rate": 0.0, "output": SCRIPT,
                                      "failures": ["contains: output does not contain 'order'"]}}]}
    html = pages.eval_page(doc, "--- a/p\n+++ b/p\n@@ -1 +1 @@\n-a\n+b\n")
    assert '<div class="del">-a</div>' in html and '<div class="add">+b</div>' in html
    assert "contains: output does not contain &#39;order&#39;" in html
    assert "&lt;script&gt;" in html and "<script" not in html
    assert 'data-chart="slices" data-marks="4"' in html


def test_html_needs_the_extra(run: Any, tmp_path: Path, monkeypatch: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vl_convert", None)
    logs = write_traces(tmp_path / "t.jsonl")
    result = run("analyze", str(logs), "--html", str(tmp_path / "a.html"), cwd=tmp_path)
    assert result.exit_code == 2
    assert "pip install 'selfimprove[html]'" in result.stderr


def test_report_before_any_eval_says_so(run: Any, tmp_path: Path) -> None:
    import shutil

    from tests.html.conftest import EXAMPLE
    from tests.test_end_to_end import git

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    result = run("report", "out", cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["out/analyze.html", "out/eval.html", "out/history.html"]
    assert "no proposal has been evaluated yet" in result.stderr
    assert "No proposal has been evaluated yet" in (repo / "out" / "eval.html").read_text()
    history = (repo / "out" / "history.html").read_text()
    assert 'href="analyze.html"' in history and 'href="eval.html"' in history
    analyze = (repo / "out" / "analyze.html").read_text()
    assert "logs/chat/2026-11-02.jsonl" in analyze and str(tmp_path) not in analyze


def test_report_refuses_a_folder_it_cannot_create(run: Any, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    logs = write_traces(tmp_path / "t.jsonl")
    git_dir = tmp_path
    from tests.test_end_to_end import git

    git(git_dir, "init", "-q", "-b", "main")
    result = run("report", "file/pages", "--traces", str(logs), cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot create file/pages") and "Traceback" not in result.stderr


def test_analyze_page_with_nothing_decided() -> None:
    from selfimprove.html import pages

    doc = {"traces": {"total": 3, "failure": 0, "success": 0, "unknown": 3, "skipped": 0},
           "sources": [], "patterns": [], "fit": {"method": "prior", "note": "no labels"}}
    html = pages.analyze_page(doc, [{"source": "a:1", "outcome": "unknown", "pattern": None}])
    assert "No failure patterns." in html and "data-chart" not in html
