#!/usr/bin/env bash
# The whole selfimprove loop on the bundled example, offline, with no API key:
#   analyze the logs -> propose fixes as branches -> eval each one -> merge one that passes
#   -> history -> rollback -> search -> report (three HTML pages that open offline)
# It works on a copy in a temporary directory and leaves your files alone.
#
#   bash examples/quickstart.sh          # then removes the copy
#   bash examples/quickstart.sh --keep   # keeps it and prints where it is
set -euo pipefail

keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if command -v selfimprove >/dev/null 2>&1; then
    si() { selfimprove "$@"; }
else
    si() { python -m selfimprove "$@"; }
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/selfimprove-quickstart.XXXXXX")"
if [[ $keep == 1 ]]; then
    trap 'echo; echo "The example repo is kept at $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi

if [[ -t 1 ]]; then
    step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    step() { printf '\n==> %s\n' "$*"; }
fi
# Commits made by this script (the example's first commit, the merge) need an identity;
# selfimprove itself works without one.
git_() { git -c user.name="Quickstart" -c user.email="quickstart@example.invalid" -c commit.gpgsign=false "$@"; }

step "Copy examples/support-agent to $work and commit it"
cp -R "$here/support-agent/." "$work/"
cd "$work"
git init -q
git symbolic-ref HEAD refs/heads/main
git_ add -A
git_ commit -q -m "Acme support agent: prompt, config, evals, two weeks of logs"
git log --oneline

step "selfimprove analyze logs/   (300 conversations in three formats: what fails, and how often)"
si analyze logs/

step "selfimprove propose --offline   (one branch per fix; only mutable sections change)"
si propose --offline --max 3
branches=$(git for-each-ref --format='%(refname:short)' refs/heads/selfimprove/)
echo
echo "$branches"

step "selfimprove eval BRANCH   (base vs candidate on the eval suite; the gate refuses regressions)"
passing=""
for branch in $branches; do
    echo
    echo "--- $branch"
    if si eval "$branch"; then
        [[ -z "$passing" ]] && passing="$branch"
    else
        echo "(refused by the gate)"
    fi
done
if [[ -z "$passing" ]]; then
    echo "no proposal passed the gate" >&2
    exit 1
fi

step "A hand-made change that deletes a rule the agent needs is caught by the same gate"
git_ checkout -q -b hand/drop-ask-rule
python - <<'EOF'
from pathlib import Path

path = Path("prompts/support_agent.md")
path.write_text(path.read_text().replace("- Ask for the order number before looking up an order.\n", ""))
EOF
git_ commit -q -am "Drop the order-number rule"
git_ checkout -q main
if si eval hand/drop-ask-rule --base main; then
    echo "unexpected: the gate passed a change that removes a needed rule" >&2
    exit 1
fi
echo "(refused by the gate, as it should be)"

step "git merge --no-ff $passing"
git_ merge -q --no-ff --no-edit "$passing"
git log --oneline --graph -n 4
echo
git --no-pager diff HEAD^1 HEAD   # exactly the change that was merged (a prompt rule, examples or a config value)

step "selfimprove history   (proposals, verdicts, merges)"
si history

step "selfimprove rollback   (undo the merged change as a new commit)"
si rollback
git log --oneline -n 3
echo
git --no-pager diff HEAD^ HEAD    # the rollback undoes exactly that change

step "selfimprove history   (the rollback is on the record)"
si history

step "selfimprove propose --search --from-suite   (hold half the cases out; search on the rest; gate on the held-out)"
python - <<'EOF'
from pathlib import Path

path = Path("selfimprove.yaml")
path.write_text(path.read_text().replace("  repeats: 1\n", "  repeats: 1\n  holdout: 0.5\n", 1))
EOF
git_ commit -q -am "Hold half of the eval cases out of the search"
analysis="$(mktemp "${TMPDIR:-/tmp}/selfimprove-analysis.XXXXXX")"
si analyze logs/ --json > "$analysis"
searched=$(si propose --offline --search --from-suite --from "$analysis" --max 3 --json |
    python -c 'import json, sys; print(json.load(sys.stdin)["proposals"][0]["branch"])')
rm -f "$analysis"
echo "created $searched"
si eval "$searched" || echo "(refused by the gate)"

step "selfimprove report DIR   (analyze, the newest eval and history as three linked HTML pages)"
pages="$(mktemp -d "${TMPDIR:-/tmp}/selfimprove-report.XXXXXX")"   # kept: open them in a browser
si report "$pages"

echo
echo "Done: analyze -> propose -> eval -> merge -> history -> rollback -> search -> report, offline."
echo "Open $pages/analyze.html in a browser (no server needed)."
