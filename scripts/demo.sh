#!/usr/bin/env bash
# The README's first command ends here: tokenkit at work on the embedded
# default token — tokenkit's own software token (tokenkit-pkcs11.so), kept in
# $XDG_DATA_HOME/tokenkit/tokens — with nothing to configure and no hardware.
#
# The first run makes the token with `tokenkit token init` (random SO and user
# PINs in 0600 files beside it), makes a test CA and two PKCS#12 files with
# openssl (an RSA and an EC identity, as a CA would hand them out), and moves
# them onto the token with `tokenkit import-p12`. Every run then shows what
# `tokenkit tokens` and `tokenkit objects` see.
set -euo pipefail
BUILD=${1:-build}
TK="$BUILD/tools/tokenkit"
DATA=${XDG_DATA_HOME:-$HOME/.local/share}/tokenkit
LABEL=tokenkit-demo
PIN_FILE="$DATA/demo-pin"
SO_PIN_FILE="$DATA/demo-so-pin"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
random_pin() { od -An -N6 -tu2 /dev/urandom | tr -d ' \n' | head -c 10; }

umask 077
mkdir -p "$DATA"
if ! "$TK" tokens --token-label "$LABEL" >/dev/null 2>&1; then
  random_pin >"$SO_PIN_FILE"
  random_pin >"$PIN_FILE"
  say "tokenkit token init --label $LABEL --so-pin-file $SO_PIN_FILE --new-pin-file $PIN_FILE"
  "$TK" token init --label "$LABEL" --so-pin-file "$SO_PIN_FILE" --new-pin-file "$PIN_FILE"

  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/p12pass"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.crt" -days 365 \
    -subj "/O=tokenkit demo/CN=Demo CA" -addext basicConstraints=critical,CA:true 2>/dev/null
  for who in alice:rsa:2048 bob:ec:P-256; do
    IFS=: read -r name kind size <<<"$who"
    if [ "$kind" = rsa ]; then
      openssl req -newkey rsa:$size -nodes -keyout "$work/$name.key" -out "$work/$name.csr" \
        -subj "/CN=Demo ${name^}" 2>/dev/null
      usage=digitalSignature,keyEncipherment
    else
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:$size -nodes -keyout "$work/$name.key" \
        -out "$work/$name.csr" -subj "/CN=Demo ${name^}" 2>/dev/null
      usage=digitalSignature
    fi
    printf 'keyUsage=%s\nextendedKeyUsage=emailProtection\nsubjectAltName=email:%s@example.org\n' \
      "$usage" "$name" >"$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
      -CAcreateserial -days 365 -extfile "$work/$name.ext" -out "$work/$name.crt" 2>/dev/null
    openssl pkcs12 -export -inkey "$work/$name.key" -in "$work/$name.crt" -certfile "$work/ca.crt" \
      -name "$name mail" -passout "file:$work/p12pass" -out "$work/$name.p12"
    rm "$work/$name.key"
    say "tokenkit import-p12 $name.p12 --token pkcs11:token=$LABEL --pin-file $PIN_FILE --password-file p12pass"
    "$TK" import-p12 "$work/$name.p12" --token "pkcs11:token=$LABEL" --pin-file "$PIN_FILE" \
      --password-file "$work/p12pass"
  done
fi

say "tokenkit tokens --token-label $LABEL"
"$TK" tokens --token-label "$LABEL"
say "tokenkit objects pkcs11:token=$LABEL   (no PIN: public objects only)"
"$TK" objects "pkcs11:token=$LABEL"
say "tokenkit objects 'pkcs11:token=$LABEL;type=private' --pin-file $PIN_FILE"
"$TK" objects "pkcs11:token=$LABEL;type=private" --pin-file "$PIN_FILE"
say "tokenkit objects 'pkcs11:token=$LABEL;type=private' --pin-file $PIN_FILE --json"
"$TK" objects "pkcs11:token=$LABEL;type=private" --pin-file "$PIN_FILE" --json
echo
echo "The private keys are sensitive and not extractable: there is no way to read them off the token."
