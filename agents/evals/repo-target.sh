#!/bin/sh
# The target of the codegen, review and deployment suites: a fresh copy of the demo repository
# per case (calc.sh subtracts; its test fails), the preset run on it with the case's input on
# stdin, then what happened to the repository, as one JSON object on stdout:
#   codegen:    {"answer": ..., "test_passed": bool}          (did the change fix the test?)
#   review:     {"answer": ..., "below_threshold": bool}      (did it score the bug below 80?)
#   deployment: {"answer": ..., "rolled_back_on_failure": bool} (the health check fails on this
#               repository, so a good deployment is rolled back: calc.sh is not left deployed)
set -eu
preset=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh "$here/../demo/make-repo.sh" "$tmp/repo" "$tmp/deployed" >/dev/null
answer=$(miyabi-run agent "$preset" --root "$tmp/repo")
case "$preset" in
codegen)
    if (cd "$tmp/repo" && sh test.sh >/dev/null 2>&1); then ok=true; else ok=false; fi
    printf '{"answer": %s, "test_passed": %s}\n' "$answer" "$ok" ;;
review)
    score=$(printf '%s' "$answer" | sed -n 's/.*"score":\([0-9]*\).*/\1/p')
    if [ -n "$score" ] && [ "$score" -lt 80 ]; then below=true; else below=false; fi
    printf '{"answer": %s, "below_threshold": %s}\n' "$answer" "$below" ;;
deployment)
    if [ -f "$tmp/deployed/calc.sh" ]; then d=false; else d=true; fi
    printf '{"answer": %s, "rolled_back_on_failure": %s}\n' "$answer" "$d" ;;
*) echo "repo-target.sh: no repository check for $preset" >&2; exit 2 ;;
esac
