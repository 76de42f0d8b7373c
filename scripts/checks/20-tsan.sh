#!/usr/bin/env bash
# ThreadSanitizer over the tests labelled "threads" (several threads using
# libtoken, the module's sessions under CKF_OS_LOCKING_OK, ...), in
# build-tsan (clang, -O1). Catches: data races, lock-order inversions
# (potential deadlocks), use of destroyed mutexes, signal-unsafe calls in
# handlers. Fails, rather than passing, when no test carries the label.
# Usage: bash scripts/checks/20-tsan.sh   (TOKENKIT_TSAN_BUILD=dir)
source "$(dirname "$0")/lib/common.bash"
dir=${TOKENKIT_TSAN_BUILD:-build-tsan}
main=${TOKENKIT_BUILD:-build}
# Build only the test executables that hold tests labelled threads, found in
# the main build's test list (dev.sh builds it first; a GoogleTest binary's
# tests are only known once it is built). Without a main build, build all.
targets=()
if [ -f "$main/CTestTestfile.cmake" ]; then
  mapfile -t targets < <(ctest --test-dir "$main" --show-only=json-v1 -L '^threads$' |
    jq -r '.tests[].command[0] // empty' | xargs -r -n1 basename | sort -u)
fi
if [ -f "$main/CTestTestfile.cmake" ] && [ ${#targets[@]} -eq 0 ]; then
  die "no test in $main is labelled 'threads' (or $main is not built): label multi-threaded tests (gtest_discover_tests(... PROPERTIES LABELS threads)) so TSan has something to check"
elif [ ${#targets[@]} -gt 0 ]; then
  TOKENKIT_BUILD_TARGETS="${targets[*]}" clang_build "$dir" thread OFF
else
  clang_build "$dir" thread OFF
fi

count=$(ctest --test-dir "$dir" -N -L '^threads$' | sed -n 's/^Total Tests: //p')
if [ "${count:-0}" -eq 0 ]; then
  die "no test is labelled 'threads' (or its executable was not built): label multi-threaded tests (set_tests_properties(... LABELS threads) or gtest_discover_tests(... PROPERTIES LABELS threads)) so TSan has something to check"
fi

logs=$(sanitizer_logs "$ROOT/$dir/sanitizer-logs")
export TOKENKIT_KEEP_MODULES=1
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp:print_suppressions=0:log_path=$logs/tsan:log_exe_name=1"
run=()
# clang 14's TSan cannot map its shadow memory when the kernel randomises
# mmap with more than 28 bits (vm.mmap_rnd_bits=32 on some newer kernels):
# run without ASLR there.
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
  say "vm.mmap_rnd_bits > 28: running the tests with ASLR off (setarch -R) for TSan"
  run=(setarch "$(uname -m)" -R)
fi
say "running $count tests labelled threads under TSan"
rc=0
"${run[@]}" ctest --test-dir "$dir" -L '^threads$' --output-on-failure -j"$JOBS" || rc=$?
fail_on_logs "$logs"
[ "$rc" = 0 ] || die "ctest -L threads failed under TSan (exit $rc)"
elapsed
say "PASS"
