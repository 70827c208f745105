from __future__ import annotations

from selfimprove import __version__


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"selfimprove {__version__}\n"


def test_help_lists_all_six_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    for name in ("init", "analyze", "propose", "eval", "rollback", "history"):
        assert f"  {name} " in result.stdout
