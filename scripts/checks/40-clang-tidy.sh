#!/usr/bin/env bash
# clang-tidy (.clang-tidy at the top: bugprone, cert, clang static analyzer,
# performance, chosen cppcoreguidelines/readability), warnings as errors,
# with the main build's compile_commands.json. Catches: use after move,
# dangling references, unchecked C results, suspicious memcmp/sizeof/
# string-to-number use, null dereferences and leaks along a path, copyable
# resource owners, narrowing, needless copies.
#
# Which files: in CI ($CI set), or with TOKENKIT_TIDY_ALL=1, every C++
# source under $TOKENKIT_TIDY_DIRS (default: libtoken tools); otherwise the
# C++ sources changed since the merge-base with main (or, without a main
# branch, since the first commit), tests included. Headers are checked
# through the sources that include them.
# Usage: bash scripts/checks/40-clang-tidy.sh   (TOKENKIT_BUILD=build)
source "$(dirname "$0")/lib/common.bash"
build=${TOKENKIT_BUILD:-build}
dirs=${TOKENKIT_TIDY_DIRS:-libtoken tools}
tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
[ -n "$tidy" ] || die "clang-tidy is not installed (scripts/deps.txt: clang-tidy)"
command -v jq >/dev/null || die "jq is not installed (scripts/deps.txt: jq)"
if [ ! -f "$build/compile_commands.json" ]; then
  say "no $build/compile_commands.json: configuring $build as dev.sh does"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# Sources generated at build time (names_generated.cpp) must exist for the
# files that include them to be analysed.
cmake --build "$build" -j"$JOBS" >/dev/null

mapfile -t known < <(jq -r '.[].file' "$build/compile_commands.json" | sort -u)
all_mode=0
if [ -n "${CI:-}" ] || [ "${TOKENKIT_TIDY_ALL:-0}" = 1 ] || ! git rev-parse --git-dir >/dev/null 2>&1; then
  all_mode=1
fi
files=()
if [ "$all_mode" = 1 ]; then
  say "analysing every C++ source under: $dirs"
  for f in "${known[@]}"; do
    for d in $dirs; do
      case "$f" in "$ROOT/$d/"*) files+=("$f") ;; esac
    done
  done
else
  base=$(git merge-base HEAD main 2>/dev/null || git rev-list --max-parents=0 HEAD | tail -1)
  say "analysing C++ sources changed since $(git log -1 --format='%h %s' "$base")"
  mapfile -t changed < <(git diff --name-only --diff-filter=d "$base" -- '*.cpp' '*.cc' '*.cxx')
  for c in "${changed[@]}"; do
    for f in "${known[@]}"; do
      [ "$f" = "$ROOT/$c" ] && files+=("$f")
    done
  done
fi
if [ ${#files[@]} -eq 0 ]; then
  [ "$all_mode" = 1 ] && die "no sources found under $dirs in $build/compile_commands.json"
  say "no changed C++ source to analyse (TOKENKIT_TIDY_ALL=1 analyses all)"
  exit 0
fi
say "${#files[@]} files, $JOBS at a time"
out=$ROOT/$build/clang-tidy.log
rc=0
printf '%s\n' "${files[@]}" |
  xargs -P "$JOBS" -n 1 "$tidy" -p "$build" --quiet --warnings-as-errors='*' >"$out" 2>/dev/null || rc=$?
if [ "$rc" != 0 ] || grep -qE '(warning|error):' "$out"; then
  grep -E -A4 '(warning|error):' "$out" | head -200
  die "clang-tidy findings above (full log: $out); fix them, or NOLINT(check) with a reason"
fi
elapsed
say "PASS"
