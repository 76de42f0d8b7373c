#!/usr/bin/env bash
# A short libFuzzer run of every fuzz target (label fuzz-smoke, 20 s each by
# default), in build-asan (shared with 10-sanitizers.sh: clang, ASan+UBSan,
# TOKENKIT_FUZZ=ON). Catches: crashes, sanitizer reports, leaks, hangs
# (-timeout) and broken invariants (round trips) on inputs no test wrote.
# A crash leaves its input in build-asan/tests/fuzz/artifacts/<target>/:
# copy it to tests/fuzz/regressions/<target>/ with the fix.
# Usage: bash scripts/checks/30-fuzz-smoke.sh   (TOKENKIT_ASAN_BUILD=dir,
#        TOKENKIT_FUZZ_SECONDS=n per target)
source "$(dirname "$0")/lib/common.bash"
dir=${TOKENKIT_ASAN_BUILD:-build-asan}
clang_build "$dir" address,undefined ON
cmake -S . -B "$dir" -DTOKENKIT_FUZZ_SMOKE_SECONDS="${TOKENKIT_FUZZ_SECONDS:-20}" >/dev/null

count=$(ctest --test-dir "$dir" -N -L '^fuzz-smoke$' | sed -n 's/^Total Tests: //p')
[ "${count:-0}" -gt 0 ] || die "no fuzz-smoke tests in $dir: is TOKENKIT_FUZZ on and tests/fuzz built?"

logs=$(sanitizer_logs "$ROOT/$dir/sanitizer-logs-fuzz")
export ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=1:abort_on_error=1:log_path=$logs/report:log_exe_name=1"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/report:log_exe_name=1"
say "fuzzing $count targets (one at a time per core, -j$JOBS)"
rc=0
ctest --test-dir "$dir" -L '^fuzz-smoke$' --output-on-failure -j"$JOBS" || rc=$?
fail_on_logs "$logs"
if [ "$rc" != 0 ]; then
  ls -l "$dir"/tests/fuzz/artifacts/*/ 2>/dev/null || true
  die "a fuzz target failed; its input is in $dir/tests/fuzz/artifacts/ (see tests/fuzz/regressions/README.md)"
fi
elapsed
say "PASS"
