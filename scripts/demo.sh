#!/usr/bin/env bash
# The README's first command ends here: tokenkit at work on the embedded
# default token, with nothing to configure and no hardware.
#
# Today the embedded default is a SoftHSM2 token kept in the user's data
# directory ($XDG_DATA_HOME/tokenkit/softhsm2); it becomes tokenkit's own
# software token when pkcs11-module/ lands. The demo makes the token once
# (with a random PIN kept in a 0600 file beside it), puts an RSA and an EC key
# pair with certificates on it (made by openssl, written with pkcs11-tool),
# and shows what `tokenkit tokens` and `tokenkit objects` see.
set -euo pipefail
BUILD=${1:-build}
TK="$BUILD/tools/tokenkit"
DATA=${XDG_DATA_HOME:-$HOME/.local/share}/tokenkit
CONF="$DATA/softhsm2.conf"
PIN_FILE="$DATA/demo-pin"
MODULE=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
LABEL=tokenkit-demo

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

umask 077
mkdir -p "$DATA/softhsm2"
if [ ! -f "$CONF" ]; then
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$DATA/softhsm2" >"$CONF"
fi
export SOFTHSM2_CONF="$CONF"

if ! "$TK" tokens --token-label "$LABEL" >/dev/null 2>&1; then
  echo "Creating the demo token \"$LABEL\" in $DATA/softhsm2 (PIN in $PIN_FILE)"
  head -c 12 /dev/urandom | od -An -tu1 | tr -d ' \n' | head -c 8 >"$PIN_FILE"
  SO_PIN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # softhsm2-util takes PINs only as arguments: this one time, at creation.
  softhsm2-util --init-token --free --label "$LABEL" --so-pin "$SO_PIN" \
    --pin "$(cat "$PIN_FILE")" >/dev/null
  unset SO_PIN
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/rsa.pem" -out "$work/rsa.crt" \
    -days 365 -subj "/CN=Demo Alice/emailAddress=alice@example.org" \
    -addext "subjectAltName=email:alice@example.org" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ec.pem" \
    -out "$work/ec.crt" -days 365 -subj "/CN=Demo Bob/emailAddress=bob@example.org" 2>/dev/null
  for k in rsa ec; do
    openssl pkey -in "$work/$k.pem" -outform DER -out "$work/$k.key"
    openssl x509 -in "$work/$k.crt" -outform DER -out "$work/$k.der"
    id=$([ $k = rsa ] && echo 01 || echo 02)
    for what in "privkey $work/$k.key" "cert $work/$k.der"; do
      set -- $what
      pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login \
        --pin "$(cat "$PIN_FILE")" --write-object "$2" --type "$1" --id $id \
        --label "demo-$k" >/dev/null 2>&1
    done
  done
fi

say "tokenkit tokens --token-label $LABEL"
"$TK" tokens --token-label "$LABEL"
say "tokenkit objects pkcs11:token=$LABEL   (no PIN: public objects only)"
"$TK" objects "pkcs11:token=$LABEL"
say "tokenkit objects pkcs11:token=$LABEL --pin-file $PIN_FILE"
"$TK" objects "pkcs11:token=$LABEL" --pin-file "$PIN_FILE"
say "tokenkit objects 'pkcs11:token=$LABEL;type=private' --pin-file $PIN_FILE --json"
"$TK" objects "pkcs11:token=$LABEL;type=private" --pin-file "$PIN_FILE" --json | head -40
echo
echo "The private keys above are sensitive and not extractable: tokenkit has no way to read them."
