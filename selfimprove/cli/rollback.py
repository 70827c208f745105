"""`selfimprove rollback`: restore managed files to a known-good version as one new commit."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from selfimprove.cli import options as opt
from selfimprove.cli.render import emit_json, err_console, out_console


def command(
    to: Annotated[str | None, typer.Option("--to", metavar="REF",
                                           help="Restore the managed files to their bytes at REF.")] = None,
    proposal: Annotated[str | None, typer.Option("--proposal", metavar="BRANCH",
                                                 help="Undo one merged proposal (branch or commit).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff; change nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Restore even if the policy check fails.")] = False,
    repo: opt.Repo = None, config: opt.Config = None, json: opt.Json = False, verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Undo the latest merged selfimprove change (or --proposal BRANCH, or --to REF) as a new commit."""
    from selfimprove.config import load_settings
    from selfimprove.gitrepo import Repo
    from selfimprove.rollback import rollback

    settings = load_settings(repo, config)
    with Repo.open(settings.root) as git_repo:
        result = rollback(settings, git_repo, to=to, proposal=proposal, dry_run=dry_run, force=force)
    if json:
        emit_json(result.to_json())
        return
    console = out_console()
    for violation in result.forced:
        err_console().print(f"warning: restored despite policy violation: {violation}")
    paths = ", ".join(sorted(result.files))
    if result.dry_run:
        sys.stdout.write(result.diff)
        console.print(f"dry run: would commit '{result.subject}' on {result.branch} ({paths}); "
                      "nothing changed")
    else:
        if verbose:  # the change just committed, as --dry-run would have shown it
            sys.stdout.write(result.diff)
        console.print(f"{result.subject}\ncommitted {(result.commit or '')[:7]} on {result.branch}: "
                      f"restored {paths} from {result.restored_from[:7]}")
