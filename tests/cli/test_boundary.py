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


def test_help_imports_neither_litellm_nor_gitpython():
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from selfimprove.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "    for name in ('init', 'analyze', 'propose', 'eval', 'rollback', 'history'):\n"
        "        main([name, '--help'])\n"
        "heavy = sorted(m for m in ('litellm', 'git', 'jsonschema', 'openai') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_user_error_is_one_line_exit_2(run, monkeypatch):
    import selfimprove.cli.app as app_module
    from selfimprove.errors import SelfImproveError

    def fails(**_: object) -> None:
        raise SelfImproveError("bad marker\n  here", where="p.md:3", hint="close it")

    monkeypatch.setattr(app_module, "app", fails)
    result = run("history")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "error: p.md:3: bad marker here (hint: close it)\n"


def test_gate_failure_exits_1(run, monkeypatch):
    import selfimprove.cli.app as app_module
    from selfimprove.errors import GateFailed

    def refuses(**_: object) -> None:
        raise GateFailed("gate failed: 2 regressed cases")

    monkeypatch.setattr(app_module, "app", refuses)
    result = run("eval")
    assert (result.exit_code, result.stderr) == (1, "gate failed: 2 regressed cases\n")


def test_unexpected_error_is_a_short_report_without_traceback(run, monkeypatch):
    import selfimprove.cli.app as app_module

    def boom() -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(app_module, "app", lambda **_: boom())
    result = run("history")
    assert result.exit_code == 3
    assert result.stderr.startswith("internal error: RuntimeError: kaput at test_boundary.py:")
    assert "--debug" in result.stderr


def test_debug_shows_the_traceback(monkeypatch, capsys):
    import selfimprove.cli.app as app_module
    from selfimprove.cli import main

    def boom(**_: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(app_module, "app", boom)
    assert main(["history", "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_exits_130(run, monkeypatch):
    import selfimprove.cli.app as app_module

    def interrupted(**_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app_module, "app", interrupted)
    result = run("history")
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")


def test_unknown_option_is_a_usage_error(run):
    result = run("analyze", "--no-such-flag")
    assert result.exit_code == 2
    assert "No such option: --no-such-flag" in result.stderr
