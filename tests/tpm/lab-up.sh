#!/bin/bash
# ctest fixture: start the emulated TPM 2.0 token (swtpm + a private D-Bus
# session bus + tpm2-abrmd, ../shared/emulators/tpm-up.sh) once for the tests
# labelled "tpm". Usage: lab-up.sh LAB EMULATORS
# Each test then makes its own tpm2-pkcs11 store (a fresh token) under the
# primary key this lab made; $LAB/primary-handle names it.
set -euo pipefail
LAB=${1:?usage: lab-up.sh LAB EMULATORS}; EMU=${2:?usage: lab-up.sh LAB EMULATORS}
export PATH=/usr/bin:$PATH
missing=()
for pkg in swtpm tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtss2-tcti-swtpm0 libtpm2-pkcs11-1 \
           libtpm2-pkcs11-tools dbus-daemon; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tpm lab: missing Debian packages: ${missing[*]} (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
# A lab left behind by an interrupted run: stop its daemons (by their PIDs).
[ -d "$LAB/run" ] && LAB=$LAB "$EMU/tpm-down.sh" >/dev/null 2>&1 || true
rm -rf "$LAB"
mkdir -p "$LAB"
# swtpm listens on PORT and PORT+1 (control): take two free ports, so that
# other TPM labs on the machine (another checkout's tests) do not collide.
port=$(python3 - <<'PY'
import socket
for p in range(24000, 30000, 2):
    try:
        socks = []
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("127.0.0.1", q)); socks.append(s)
        print(p); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)
if ! LAB=$LAB TPM_PORT=$port MODE=abrmd "$EMU/tpm-up.sh" >"$LAB/up.log" 2>&1; then
  echo "tpm lab: the emulated TPM did not come up; logs:" >&2
  tail -n 20 "$LAB/up.log" "$LAB"/run/*.log >&2 || true
  LAB=$LAB "$EMU/tpm-down.sh" >/dev/null 2>&1 || true
  exit 1
fi
# shellcheck disable=SC1091
. "$LAB/env"
tpm2_getcap handles-persistent | sed -n 's/^- //p' | head -n 1 > "$LAB/primary-handle"
if [ ! -s "$LAB/primary-handle" ]; then
  echo "tpm lab: tpm2_ptool init left no persistent primary key" >&2
  LAB=$LAB "$EMU/tpm-down.sh" >/dev/null 2>&1 || true
  exit 1
fi
echo "tpm lab up in $LAB (swtpm on 127.0.0.1:$port, primary key $(cat "$LAB/primary-handle"))"
