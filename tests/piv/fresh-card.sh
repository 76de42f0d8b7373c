#!/bin/bash
# A fresh emulated PIV card for the next test. First the way a real YubiKey
# is reset (ykman piv reset): block the PIN and the PUK with wrong tries, then
# the YubiKey RESET instruction (INS FB), all in one opensc-tool call (~30 ms).
# If that fails, stop pivcard.py (by its PID), drop its state file and start
# it again (~2 s: pcscd has to see the card go and come back).
# Environment (set by the ctest fixture): TOKENKIT_PIV_LAB, the lab lab-up.sh made.
set -euo pipefail
LAB=${TOKENKIT_PIV_LAB:?not inside the piv ctest fixture}
EMU=$(cat "$LAB/emulators")
export PATH=/usr/bin:$PATH
PORT=${VPCD_PORT:-35963}
W8=3030303030303030                                   # "00000000", a wrong PIN/PUK
PIN="-s 002000800830303030303030FF"                    # VERIFY PIN (SP 800-73-4 3.2.1)
PUK="-s 002C008010${W8}${W8}"                          # RESET RETRY COUNTER with a wrong PUK
# shellcheck disable=SC2086
out=$(opensc-tool -r 0 -s 00A4040009A00000030800001000 $PIN $PIN $PIN $PIN $PUK $PUK $PUK $PUK \
      -s 00FB0000 2>&1 || true)
if [ "$(printf '%s\n' "$out" | grep -c 'Received' || true)" = 10 ] &&
   printf '%s\n' "$out" | tail -n 2 | grep -q 'SW1=0x90, SW2=0x00'; then
  exit 0
fi
echo "fresh-card: the PIV reset did not work, restarting the emulator" >&2
pidfile=$LAB/run/pivcard.pid
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
  fi
fi
rm -f "$LAB/pivcard.json" "$LAB/pivcard.json.tmp"
# Wait until pcscd has seen the card go, so the wait below sees the new one.
for _ in $(seq 100); do opensc-tool -a >/dev/null 2>&1 || break; sleep 0.02; done
python3 "$EMU/pivcard.py" --port "$PORT" --state "$LAB/pivcard.json" \
  </dev/null >>"$LAB/run/pivcard.log" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 200); do opensc-tool -a >/dev/null 2>&1 && exit 0; sleep 0.05; done
echo "fresh-card: the card never came back; see $LAB/run/pivcard.log" >&2
exit 1
