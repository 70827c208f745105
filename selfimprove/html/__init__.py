"""Self-contained HTML reports of analyze, eval and history, to share with people who use no terminal.

Each page is one file that opens offline from disk: styles inline, charts as SVG drawn at write time
by Vega-Lite (`vl-convert-python`, the `html` extra), no script and no request to any server. The
pages take the same documents the commands print with `--json` (`pages.py`); `samples.py` reads the
few whole conversations and the start times the analyze page adds; `build.py` runs the three for
`selfimprove report DIR`.

Never does: change a result or hold a whole trace file: evidence is sampled, so a page stays small
whatever the number of traces.
"""

from __future__ import annotations

from pathlib import Path


def write_page(path: Path, html: str) -> None:
    """Write a page whole or not at all."""
    from selfimprove.files import write_atomic

    write_atomic(Path(path), [html])
