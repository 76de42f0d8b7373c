#!/usr/bin/env bash
# Valgrind memcheck over the GoogleTest binaries of the libtoken, tools,
# provision, module and hygiene suites of the main build (gcc,
# RelWithDebInfo: the build that ships, no sanitizer runtime in the way),
# each run once (TOKENKIT_VALGRIND_SUITES picks suites), and
# over the tokenkit command against a fresh SoftHSM2 token. Catches: reads
# of uninitialised memory (which ASan does not see), invalid reads/writes
# and frees in uninstrumented code paths, definite and possible leaks,
# mismatched new/delete[] and malloc/delete.
# Usage: bash scripts/checks/50-valgrind.sh   (TOKENKIT_BUILD=build)
source "$(dirname "$0")/lib/common.bash"
build=${TOKENKIT_BUILD:-build}
# The module (loaded into other people's processes), libtoken and the hygiene
# tests; the CLI-driving suites spend their time in child processes that
# memcheck does not follow, and the tokenkit command itself is run below.
suites=${TOKENKIT_VALGRIND_SUITES:-libtoken module hygiene}
command -v valgrind >/dev/null || die "valgrind is not installed (scripts/deps.txt: valgrind)"
command -v jq >/dev/null || die "jq is not installed (scripts/deps.txt: jq)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$JOBS" >/dev/null

logs=$ROOT/$build/valgrind-logs
rm -rf "$logs"
mkdir -p "$logs"
# --child-silent-after-fork: a forked child (GeneralTest.ChildOfForkCanInitialize)
# deliberately abandons the parent's module state, which it may neither use
# nor tear down (its SQLite connections belong to the parent); the child's
# exit would otherwise count it as lost. The parent is checked in full.
vg=(valgrind --error-exitcode=99 --child-silent-after-fork=yes --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --num-callers=30
    --suppressions="$SUPP/valgrind.supp" --gen-suppressions=all)
# Tests whose forked children exit holding the parent's module state, which
# a child may neither use nor tear down (docs/pkcs11-module.md, fork): the
# children's exit counts it as lost. They run in the main and ASan builds.
fork_tests="GeneralTest.ChildOfForkCanInitialize:StoreTest.ProcessesShareTheToken:StoreTest.TokenMadeElsewhereAppears:CrashTest.TwoWritersAtOnceLoseNothing"
fork_tests="$fork_tests:StoreTest.KeyDestroyedByAnotherProcessIsNotUsed:StoreTest.VendorDeleteTokenRemovesTheStore"
fork_tests="$fork_tests:AuditTest.AProcessThatExitsWithoutFinalizeHasEveryUseRecorded:AuditTest.ForkWithRowsQueuedWritesEachRowOnce"
# Every ChangesTest runs a second process made by fork() (tests/module/test_changes.cpp).
fork_tests="$fork_tests:ChangesTest.*"
# Stress races (thousands of module loads and releases on several threads):
# memcheck runs one thread at a time, so they race nothing here and take
# many minutes; ThreadSanitizer (20-tsan) and the main build run them.
fork_tests="$fork_tests:ThreadsTest.LoadRacingTheLastReleaseOfAModule"
failed=()
ran=0

# One row per test binary: its path, then the ENVIRONMENT its ctest tests set.
mapfile -t rows < <(ctest --test-dir "$build" --show-only=json-v1 | jq -r '
  [.tests[] | select(.command != null) |
    {exe: .command[0],
     env: ([.properties[]? | select(.name == "ENVIRONMENT") | .value[]] | join("\u001f"))}]
  | unique_by(.exe) | .[] | "\(.exe)\u001e\(.env)"')
for row in "${rows[@]}"; do
  exe=${row%%$'\x1e'*}
  envs=${row#*$'\x1e'}
  in_suite=0
  for s in $suites; do
    case "$exe" in "$ROOT/$build/tests/$s/"*) in_suite=1 ;; esac
  done
  [ "$in_suite" = 1 ] || continue
  [ -x "$exe" ] && "$exe" --gtest_list_tests >/dev/null 2>&1 || continue  # GoogleTest binaries only
  env_args=()
  if [ -n "$envs" ]; then IFS=$'\x1f' read -r -a env_args <<<"$envs"; fi
  name=$(basename "$exe")
  say "valgrind $name"
  t0=$SECONDS
  rc=0
  (cd "$(dirname "$exe")" && env "${env_args[@]}" timeout 900 "${vg[@]}" --log-file="$logs/$name.%p.log" \
    "$exe" --gtest_brief=1 "--gtest_filter=-$fork_tests") >"$logs/$name.out" 2>&1 || rc=$?
  ran=$((ran + 1))
  say "  exit $rc, $((SECONDS - t0)) s"
  [ "$rc" = 0 ] || failed+=("$name (exit $rc)")
done
[ "$ran" -gt 0 ] || die "no GoogleTest binaries found under $build/tests/{${suites// /,}}"

# The command itself, as a user runs it: list a token's objects after login.
if [ -x "$build/tools/tokenkit" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir "$tmp/tokens"
  export SOFTHSM2_CONF=$tmp/softhsm2.conf
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp" >"$SOFTHSM2_CONF"
  softhsm2-util --init-token --free --label valgrind --pin 4321 --so-pin 8765 >/dev/null
  mod=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
  export TOKENKIT_MODULE=$mod  # not the default module: the token is SoftHSM2's
  pkcs11-tool --module $mod --token-label valgrind --login --pin 4321 --keypairgen \
    --key-type EC:prime256v1 --id 01 --label vg >/dev/null 2>&1
  printf '4321\n' >"$tmp/pin"
  for args in "objects --token-label valgrind --pin-file $tmp/pin --json" "tokens --module $mod" "--help"; do
    say "valgrind tokenkit $args"
    rc=0
    # shellcheck disable=SC2086
    "${vg[@]}" --log-file="$logs/tokenkit.%p.log" "$build/tools/tokenkit" $args >/dev/null 2>&1 || rc=$?
    ran=$((ran + 1))
    [ "$rc" = 0 ] || failed+=("tokenkit $args (exit $rc)")
  done
fi

if [ ${#failed[@]} -gt 0 ]; then
  for f in "$logs"/*.log; do
    grep -q 'ERROR SUMMARY: [1-9]' "$f" && { say "== $f"; cat "$f"; }
  done
  for f in "$logs"/*.out; do say "== $f"; tail -20 "$f"; done
  die "valgrind found errors or a test failed: ${failed[*]}"
fi
elapsed
say "PASS ($ran runs)"
