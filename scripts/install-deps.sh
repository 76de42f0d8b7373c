#!/usr/bin/env bash
# Installs whatever Debian packages from scripts/deps.txt are missing.
# Idempotent: does nothing (and needs no network) when all are present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t want < <(grep -v '^\s*#' "$here/deps.txt" | grep -v '^\s*$')
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# libtpm2-pkcs11-1 registers tpm2-pkcs11 with p11-kit for every program.
# The TPM tests load it by path; registered, it makes every program that
# loads all p11-kit modules (tokenkit modules, p11tool, NSS through
# p11-kit-proxy) probe for a TPM through the default TCTIs (swtpm on
# 127.0.0.1:2321 among them), which hangs when another swtpm serves there.
# A blank "module:" in /etc/pkcs11/modules overrides the package's file.
unregister_tpm2_pkcs11() {
  local conf=/etc/pkcs11/modules/tpm2_pkcs11.module
  [ -e /usr/share/p11-kit/modules/tpm2_pkcs11.module ] || return 0
  grep -qx 'module:' "$conf" 2>/dev/null && return 0
  echo "install-deps: not registering tpm2-pkcs11 with p11-kit ($conf)"
  $SUDO mkdir -p /etc/pkcs11/modules
  printf '%s\n' '# scripts/install-deps.sh: tpm2-pkcs11 is loaded by path only (tests/tpm).' \
    'module:' | $SUDO tee "$conf" >/dev/null
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"
  unregister_tpm2_pkcs11
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
unregister_tpm2_pkcs11
