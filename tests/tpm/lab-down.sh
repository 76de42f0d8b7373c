#!/bin/bash
# ctest fixture cleanup: stop what lab-up.sh started (by PID), remove the lab.
# Usage: lab-down.sh LAB EMULATORS
LAB=${1:?usage: lab-down.sh LAB EMULATORS}; EMU=${2:?usage: lab-down.sh LAB EMULATORS}
[ -d "$LAB" ] || exit 0
LAB=$LAB WIPE=1 "$EMU/tpm-down.sh"
