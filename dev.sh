#!/usr/bin/env bash
# The two commands of the README:
#   bash dev.sh demo   install what is missing, build, and show tokenkit at work
#                      on the embedded default token (no hardware needed)
#   bash dev.sh test   install, build, and run every test and check
# Other verbs: build, deps.
set -euo pipefail
cd "$(dirname "$0")"
verb=${1:-demo}
shift || true
BUILD=${TOKENKIT_BUILD:-build}

build() {
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)"
}

case "$verb" in
  deps) scripts/install-deps.sh ;;
  build) scripts/install-deps.sh && build ;;
  demo) scripts/install-deps.sh && build && scripts/demo.sh "$BUILD" "$@" ;;
  test) scripts/install-deps.sh && build && scripts/test-all.sh "$BUILD" "$@" ;;
  *) echo "usage: bash dev.sh demo|test|build|deps" >&2; exit 2 ;;
esac
