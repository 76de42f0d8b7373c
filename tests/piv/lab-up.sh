#!/bin/bash
# ctest fixture: start the emulated YubiKey (pcscd + vpcd + pivcard.py) once
# for the tests labelled "piv". Usage: lab-up.sh LAB EMULATORS
# Only one pcscd can run on a machine: refuse clearly if one already does.
set -euo pipefail
LAB=${1:?usage: lab-up.sh LAB EMULATORS}; EMU=${2:?usage: lab-up.sh LAB EMULATORS}
# Debian's python3 has python3-cryptography; a pyenv python3 first in PATH may not.
export PATH=/usr/bin:$PATH LAB
missing=()
for pkg in pcscd vsmartcard-vpcd opensc opensc-pkcs11 ykcs11 python3-cryptography; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "piv lab: missing Debian packages: ${missing[*]} (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
# A live pcscd (a zombie left by a dead parent does not count).
running=$( (ps -C pcscd -o pid=,stat= || true) | awk '$2 !~ /^Z/ {print $1}' | tr '\n' ' ')
if [ -n "$running" ]; then
  echo "piv lab: a pcscd is already running on this machine (pid $running); only one can run," \
       "and the PIV tests need their own." \
       "Stop it (or the other test run that owns it) and run the piv tests again." >&2
  exit 1
fi
# A lab left behind by an interrupted run: stop its daemons (by their PIDs).
[ -d "$LAB/run" ] && "$EMU/lab-down.sh" >/dev/null 2>&1 || true
rm -rf "$LAB"
mkdir -p "$LAB"
echo "$EMU" > "$LAB/emulators"   # for fresh-card.sh
if ! "$EMU/piv-up.sh"; then
  echo "piv lab: the emulated card did not come up; logs:" >&2
  tail -n 20 "$LAB"/run/*.log >&2 || true
  "$EMU/lab-down.sh" >/dev/null 2>&1 || true
  exit 1
fi
echo "piv lab up in $LAB"
