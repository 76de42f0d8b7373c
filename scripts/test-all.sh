#!/usr/bin/env bash
# Runs every test: the ctest suite of the main build, then each check in
# scripts/checks/ in name order (sanitizers, fuzzing, static analysis, ...).
# Prints one summary line per stage and fails if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
jobs=$(nproc)
declare -a results=()
failed=0

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== stage: $name"
  if "$@"; then
    results+=("PASS $name ($((SECONDS - start)) s)")
  else
    results+=("FAIL $name ($((SECONDS - start)) s)")
    failed=1
  fi
}

stage "ctest (main build)" ctest --test-dir "$BUILD" --output-on-failure -j"$jobs" -LE "^fuzz$"
for check in scripts/checks/*.sh; do
  [ -e "$check" ] || continue
  stage "$(basename "$check" .sh)" bash "$check"
done

echo "=== summary"
printf '%s\n' "${results[@]}"
exit $failed
