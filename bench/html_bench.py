"""Benchmark: the analyze HTML page of 100,000 traces: its size, the time to write it, the time to open it.

Generates the same synthetic OpenAI chat JSONL file as bench/analyze_bench.py (100,000 traces, about
280 MB, timestamps over 28 days), then, in one run:

  analyze    selfimprove analyze FILE --json --outcomes OUT > JSON   (the reference)
  html       selfimprove analyze FILE --json --html PAGE > /dev/null
  parts      in this process, from JSON and OUT: the second read of FILE (start times and the
             example conversations) and the rendering of the page, each timed on its own (the
             difference of the two runs above drowns in the noise of a shared machine)
  open       PAGE loaded in a new tab of headless Chromium (playwright driving the system browser),
             --repeat times: wall time from navigation to the load event, the browser's own
             navigation timing (load event end), and wall time until a first screenshot of the
             page is taken (layout and paint done)

and prints the page size, the extra time --html costs, and the median and worst open times.
Targets: the page under 5 MB, opened in under 2 s; evidence is sampled (a few conversations per
pattern, the first trace ids), so the size does not grow with the number of traces.

Usage: python bench/html_bench.py [--traces N] [--repeat N] [--keep DIR] [--chromium PATH]

Recorded (2 vCPUs shared with other jobs):

  100000 traces, 282 MB of JSONL, three runs under load from other jobs
  analyze --json --outcomes          15.3-62.1 s (the machine's load, not this page)
  of which the page                  second read of the traces 6.2 s; rendering 2.3-3.3 s (vl-convert's
                                     JavaScript engine starting on the first chart: ~1.1 s of it)
  page size                          0.41 MB (19 patterns, 3 example conversations each, 3 charts)
  open to load event                 median 0.083-0.135 s, worst 0.158-0.275 s over 5 loads
  open to first screenshot           median 0.213-0.255 s, worst 0.367-0.425 s
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyze_bench import generate  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=ENV, check=True)
    return time.perf_counter() - start


def open_times(page: Path, repeat: int, chromium: str) -> list[tuple[float, float, float]]:
    """(wall seconds to the load event, the browser's load event end, wall seconds to a first
    screenshot) per new tab."""
    from playwright.sync_api import sync_playwright

    out = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                tab = browser.new_page(viewport={"width": 1100, "height": 900})
                tab.on("pageerror", lambda exc: errors.append(str(exc)))
                start = time.perf_counter()
                tab.goto(page.as_uri(), wait_until="load")
                wall = time.perf_counter() - start
                tab.screenshot()
                painted = time.perf_counter() - start
                load_end = tab.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
                charts = tab.evaluate("() => document.querySelectorAll('figure.chart svg').length")
                if errors or charts < 2:
                    raise SystemExit(f"the page did not render: {charts} charts, errors {errors}")
                out.append((wall, float(load_end) / 1000, painted))
                tab.close()
        finally:
            browser.close()
    return out


def parts(data: Path, doc_path: Path, outcomes_path: Path) -> tuple[float, float, float]:
    """(seconds to read the samples, seconds to render the page, seconds to load the outcome lines)."""
    import orjson

    from selfimprove.html import pages
    from selfimprove.html.samples import read_samples

    doc = orjson.loads(doc_path.read_bytes())
    start = time.perf_counter()
    outcomes = [orjson.loads(line) for line in outcomes_path.open("rb")]
    loaded = time.perf_counter() - start
    wanted = {ex["source"] for p in doc["patterns"] for ex in p["examples"]}
    start = time.perf_counter()
    samples = read_samples([data], format="auto", wanted=wanted)
    read = time.perf_counter() - start
    start = time.perf_counter()
    pages.analyze_page(doc, outcomes, samples)
    return read, time.perf_counter() - start, loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the trace file and the page here and keep them")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="html-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data, page = work / "traces.jsonl", work / "analyze.html"
        if not data.exists():
            print(f"generating {args.traces} traces …", file=sys.stderr)
            generate(data, args.traces)
        cli = [sys.executable, "-m", "selfimprove", "analyze", str(data), "--json"]
        doc, outcomes = work / "analysis.json", work / "outcomes.jsonl"
        with doc.open("wb") as fh:
            start = time.perf_counter()
            subprocess.run([*cli, "--outcomes", str(outcomes)], stdout=fh, env=ENV, check=True)
            plain = time.perf_counter() - start
        with_html = timed([*cli, "--html", str(page)])
        read, render, _ = parts(data, doc, outcomes)
        opened = open_times(page, args.repeat, args.chromium)
        walls, loads, paints = ([o[k] for o in opened] for k in range(3))
        print(f"{args.traces} traces, {data.stat().st_size / 1e6:.0f} MB of JSONL")
        print(f"analyze --json --outcomes {plain:6.1f} s")
        print(f"analyze --json --html     {with_html:6.1f} s")
        print(f"  of which the page:      {read:6.1f} s second read of the traces, {render:.2f} s rendering")
        print(f"page size                 {page.stat().st_size / 1e6:6.2f} MB  (target < 5 MB)")
        print(f"open to load event        median {statistics.median(walls):.3f} s, worst {max(walls):.3f} s "
              f"over {len(walls)} loads  (target < 2 s)")
        print(f"browser's load event end  median {statistics.median(loads):.3f} s")
        print(f"open to first screenshot  median {statistics.median(paints):.3f} s, "
              f"worst {max(paints):.3f} s")
        ok = page.stat().st_size < 5e6 and max(paints) < 2.0
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
