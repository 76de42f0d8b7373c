# Shared by scripts/checks/*.sh (sourced, not run: the .bash suffix keeps
# scripts/test-all.sh from running it as a check).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
CHECKS=$ROOT/scripts/checks
SUPP=$CHECKS/suppressions
# Two cores, shared: never more than two jobs unless told.
JOBS=${TOKENKIT_CHECK_JOBS:-2}
START=$SECONDS

say() { echo "[$(basename "$0" .sh)] $*"; }
die() { say "FAIL: $*"; exit 1; }
elapsed() { say "took $((SECONDS - START)) s"; }

# clang_build DIR SANITIZE FUZZ(ON|OFF): configures DIR with clang, the
# sanitizers and fuzzing asked for, -O1 with assertions on, and builds it
# (only the targets in $TOKENKIT_BUILD_TARGETS when set).
# The same arguments give the same cache, so a second check reusing a build
# directory only rebuilds what changed.
clang_build() {
  local dir=$1 sanitize=$2 fuzz=$3
  command -v clang++ >/dev/null || die "clang++ is not installed (scripts/deps.txt: clang)"
  say "configure $dir (clang, sanitize=${sanitize:-none}, fuzz=$fuzz)"
  CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS=-O1 -DCMAKE_CXX_FLAGS=-O1 \
    -DTOKENKIT_SANITIZE="$sanitize" -DTOKENKIT_FUZZ="$fuzz" >/dev/null
  local targets=()
  if [ -n "${TOKENKIT_BUILD_TARGETS:-}" ]; then
    read -r -a targets <<<"$TOKENKIT_BUILD_TARGETS"
    say "build $dir (-j$JOBS): ${targets[*]}"
    cmake --build "$dir" -j"$JOBS" --target "${targets[@]}"
  else
    say "build $dir (-j$JOBS)"
    cmake --build "$dir" -j"$JOBS"
  fi
}

# sanitizer_logs DIR: a fresh folder for sanitizer reports (log_path=), so
# that a report from a subprocess whose exit code a test ignores still fails
# the check.
sanitizer_logs() {
  local d=$1
  rm -rf "$d"
  mkdir -p "$d"
  chmod 1777 "$d"  # tests may run tokenkit as another user (secrets_hygiene.sh)
  echo "$d"
}

# fail_on_logs DIR: prints every report written under DIR; fails if any.
fail_on_logs() {
  local d=$1 found=0 f
  for f in "$d"/*; do
    [ -e "$f" ] || continue
    [ -s "$f" ] || continue
    # LeakSanitizer's note that a thread (a module's audit writer, a test's
    # signer) was still running when the exit-time leak check stopped the
    # process: a warning, not a report; a real leak in the same process
    # writes "ERROR: LeakSanitizer" to the same file and fails below.
    if ! grep -qv -E '^==[^=]+==[0-9]+==Running thread [0-9]+ was not suspended\. False leaks are possible\.$' "$f"; then
      say "LeakSanitizer warning only, no report: $(cat "$f")"
      continue
    fi
    found=1
    say "sanitizer report in $f:"
    cat "$f"
  done
  [ "$found" = 0 ] || die "sanitizer reports above (also from subprocesses)"
}
