#!/bin/bash
# The emulated card pulled out of the reader in the middle of a command, and
# put back. Usage:
#   card-out.sh pull PAUSE_DIR   wait until the command waits at PAUSE_DIR/paused
#                                (tests/support/faulty_module.cpp), stop pivcard.py
#                                (by its PID), wait until pcscd sees no card, then
#                                let the command go on (PAUSE_DIR/resume)
#   card-out.sh insert           start pivcard.py again with the same --state file
#                                (what the card held is still there) and wait for it
# Environment (set by the ctest fixture): TOKENKIT_PIV_LAB, the lab lab-up.sh made.
set -euo pipefail
LAB=${TOKENKIT_PIV_LAB:?not inside the piv ctest fixture}
EMU=$(cat "$LAB/emulators")
export PATH=/usr/bin:$PATH
PORT=${VPCD_PORT:-35963}
pidfile=$LAB/run/pivcard.pid
case "${1:-}" in
  pull)
    dir=${2:?usage: card-out.sh pull PAUSE_DIR}
    for _ in $(seq 3000); do [ -e "$dir/paused" ] && break; sleep 0.02; done
    if [ ! -e "$dir/paused" ]; then
      echo "card-out: the command never reached the pause in $dir" >&2
      touch "$dir/resume"
      exit 1
    fi
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
    for _ in $(seq 250); do opensc-tool -a >/dev/null 2>&1 || break; sleep 0.02; done
    touch "$dir/resume"
    echo "card pulled out (pivcard.py $pid stopped)"
    ;;
  insert)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then exit 0; fi
    python3 "$EMU/pivcard.py" --port "$PORT" --state "$LAB/pivcard.json" \
      </dev/null >>"$LAB/run/pivcard.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 250); do opensc-tool -a >/dev/null 2>&1 && { echo "card back in"; exit 0; }; sleep 0.05; done
    echo "card-out: the card never came back; see $LAB/run/pivcard.log" >&2
    exit 1
    ;;
  *)
    echo "usage: card-out.sh pull PAUSE_DIR | card-out.sh insert" >&2
    exit 2
    ;;
esac
