#!/bin/sh
# Creates the demo repository of the issue-resolution pipeline: calc.sh subtracts where it should
# add, so `sh test.sh` fails; ISSUE.md says so. Used by ./scripts/demo and by the end-to-end test
# (agents/tests/pipeline.rs), with the replayed model answers in replay.json.
#   sh agents/demo/make-repo.sh <repo dir> <deploy dir>
set -eu
repo=$1
deploy=$2
mkdir -p "$repo/.miyabi" "$deploy"
cd "$repo"
cat > calc.sh <<'SH'
#!/bin/sh
# Usage: calc.sh A B -- prints the sum of A and B.
echo $(($1 - $2))
SH
cat > test.sh <<'SH'
#!/bin/sh
got=$(sh calc.sh 2 3)
[ "$got" = 5 ] || { echo "FAIL: calc.sh 2 3 printed $got, expected 5"; exit 1; }
echo "ok: calc.sh 2 3 = 5"
SH
cat > lint.sh <<'SH'
#!/bin/sh
# Syntax check and no trailing whitespace.
sh -n calc.sh && sh -n test.sh || exit 1
if grep -n ' $' *.sh; then echo "trailing whitespace"; exit 1; fi
echo "lint clean"
SH
printf '# calc\n\nA calculator in shell.\n' > README.md
cat > ISSUE.md <<'MD'
# calc.sh subtracts instead of adding

`sh calc.sh 2 3` prints -1; it should print 5, as its usage line says. `sh test.sh` fails.
MD
cat > .miyabi/pipeline.toml <<TOML
[commands]
test = ["sh", "test.sh"]
lint = ["sh", "lint.sh"]
security = ["sh", "-c", "! grep -rnI --include=*.sh -e 'eval ' -e 'curl ' ."]
deploy = ["cp", "calc.sh", "$deploy/calc.sh"]
health = ["sh", "-c", "[ \"\$(sh $deploy/calc.sh 2 2)\" = 4 ]"]
rollback = ["rm", "-f", "$deploy/calc.sh"]
TOML
git init -q -b main
git config user.email dev@example.com
git config user.name Dev
git add -A
git commit -q -m "chore: calc and its test"
