"""The command line: one error boundary around a typer app of thin commands.

`main` is the only entry point (console script, `python -m selfimprove`, tests). It maps
`SelfImproveError` to one line on stderr and its exit code (2, or 1 for a failed gate), Ctrl-C to 130,
and anything unexpected to a short report, with the traceback only under `--debug`. Command modules
import their services lazily so that `--help` never pays for litellm or gitpython.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # a process of its own: a Ctrl-C landing in a destructor must not print a traceback
        sys.unraisablehook = _unraisable
    try:
        return _main(args)
    except KeyboardInterrupt:  # Ctrl-C while importing, or while reporting another error
        print("interrupted", file=sys.stderr)
        return 130


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Python prints "Exception ignored in … Traceback" when Ctrl-C arrives inside a `__del__` (gitpython
    has several); that interrupt is dropped by Python anyway, so say nothing about it."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def _main(args: list[str]) -> int:
    import typer

    from selfimprove.cli.app import app
    from selfimprove.errors import SelfImproveError

    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="selfimprove", standalone_mode=False)
        # typer turns Ctrl-C into Exit(130) and, outside standalone mode, returns an Exit's code
        if isinstance(code, int) and not isinstance(code, bool) and code:
            if code == 130:
                print("interrupted", file=sys.stderr)
            return code
    except SelfImproveError as exc:
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(f"error: {exc.one_line()}" if exc.exit_code == 2 else exc.one_line(), file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:  # --show-completion / --install-completion exit from their callback
        return exc.code if isinstance(exc.code, int) else 0
    except typer.TyperException as exc:  # click's usage errors, as vendored by typer
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the boundary: anything unexpected becomes a short report
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        where = ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        print(
            f"internal error: {type(exc).__name__}: {exc}{where} "
            "(this is a bug in selfimprove; re-run with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 3
    return 0
