#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus/ from real inputs: URIs
# that p11tool and pkcs11-tool print for a SoftHSM2 token holding RSA, EC and
# Ed25519 keys and certificates; certificates made by openssl; CKA_ID hex as
# people write it; PIN files as editors save them. Run it by hand when a
# target changes; the output is checked in (fuzzing runs need no tools).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mod=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
export SOFTHSM2_CONF=$tmp/softhsm2.conf
mkdir -p "$tmp/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\n' "$tmp" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label "fuzz seed" --pin 1234 --so-pin 5678 >/dev/null

seed() {  # seed TARGET NAME < content
  mkdir -p "$out/$1"
  cat >"$out/$1/$2"
}

# Certificates (DER), several key types, name forms and time encodings.
cd "$tmp"
openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -subj "/CN=Alice Example/O=Example Org/emailAddress=alice@example.org" \
  -addext "subjectAltName=email:alice@example.org,email:a@example.net" -days 365 -outform DER -out rsa.der 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ec.key -subj "/C=DE/L=Berlin/CN=Bob" \
  -set_serial 0x0123456789abcdef0123456789abcdef -days 36500 -outform DER -out ec.der 2>/dev/null
openssl req -x509 -newkey ed25519 -nodes -keyout ed.key -subj "/CN=Ed Twofive\\, Jr./O=Ünïcode GmbH" -utf8 \
  -days 10 -outform DER -out ed.der 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -keyout ca.key -subj "/CN=Test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -days 30 -outform PEM -out ca.pem 2>/dev/null
openssl req -new -newkey rsa:1024 -nodes -keyout leaf.key -subj "/CN=leaf/emailAddress=leaf@example.com" -out leaf.csr 2>/dev/null
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial -5 -days 2 -outform DER -out leaf.der 2>/dev/null ||
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 5 -days 2 -outform DER -out leaf.der 2>/dev/null
openssl x509 -in ca.pem -outform DER -out ca.der
for c in rsa ec ed ca leaf; do seed certificate "$c.der" <"$c.der"; done

# Objects on the token, so the tools have URIs to print.
openssl pkcs8 -topk8 -nocrypt -in rsa.key -outform DER -out rsa.p8
openssl pkcs8 -topk8 -nocrypt -in ec.key -outform DER -out ec.p8
pkcs11-tool --module $mod --login --pin 1234 --write-object rsa.p8 --type privkey --id 01 --label "alice mail" >/dev/null 2>&1
pkcs11-tool --module $mod --login --pin 1234 --write-object rsa.der --type cert --id 01 --label "alice mail" >/dev/null 2>&1
pkcs11-tool --module $mod --login --pin 1234 --write-object ec.p8 --type privkey --id a1b2c3 --label "bob;sig/%" >/dev/null 2>&1
pkcs11-tool --module $mod --login --pin 1234 --write-object ec.der --type cert --id a1b2c3 --label "bob;sig/%" >/dev/null 2>&1
pkcs11-tool --module $mod --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 0203 --label ed >/dev/null 2>&1

n=0
{ p11tool --provider $mod --list-token-urls
  p11tool --provider $mod --login --set-pin 1234 --list-all 2>/dev/null | sed -n 's/^[[:space:]]*URL: //p'
  pkcs11-tool --module $mod --login --pin 1234 --list-objects 2>/dev/null | sed -n 's/^[[:space:]]*uri:[[:space:]]*//p'
} | sort -u | while IFS= read -r u; do
  n=$((n + 1)); printf '%s' "$u" | seed uri "tool-$n"
done
i=0
for u in 'pkcs11:' 'pkcs11:token=alice;object=mail;type=private' \
  'pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=1234abcd;token=fuzz%20seed;id=%01%02;type=cert' \
  'pkcs11:slot-id=3;slot-description=x;slot-manufacturer=y' \
  'pkcs11:library-manufacturer=OpenSC%20Project;library-description=OpenSC%20smartcard%20framework;library-version=0.23' \
  'pkcs11:token=a?module-name=softhsm2' 'pkcs11:token=a?module-path=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so' \
  'pkcs11:token=a?pin-source=file:/home/alice/.pin' 'pkcs11:token=a?pin-value=1234' \
  'pkcs11:object=%E2%82%AC;type=secret-key' 'pkcs11:type=data;object=x' 'pkcs11:type=public' ; do
  i=$((i + 1)); printf '%s' "$u" | seed uri "rfc7512-$i"
done

# CKA_ID hex as people and tools write it.
i=0
for h in '' '01' 'a1b2c3' 'A1:B2:C3' '%a1%b2%c3' '0123456789abcdefABCDEF' '01 02 03' 'abc' 'zz' '45:'; do
  i=$((i + 1)); printf '%s' "$h" | seed hex "id-$i"
done

# PIN files: as editors and scripts save them, and the edge sizes.
printf '1234' | seed pin_file plain
printf '1234\n' | seed pin_file newline
printf '1234\r\n' | seed pin_file crlf
printf '12 34\n\n' | seed pin_file two-newlines
printf 'p\xc3\xa4ss w\xc3\xb6rd\n' | seed pin_file utf8
printf '\n' | seed pin_file only-newline
head -c 4096 /dev/zero | tr '\0' 'x' | seed pin_file max
head -c 4097 /dev/zero | tr '\0' 'x' | seed pin_file max-plus-one
# Directory attribute values for cert_values: one byte choosing the address
# (alice@example.org, leaf@example.com, bob@example.org), then values framed
# as a 2-byte big-endian length and the bytes: DER, PKCS#7 (as
# userSMIMECertificate holds), PEM, duplicates, garbage.
openssl crl2pkcs7 -nocrl -certfile <(openssl x509 -inform DER -in "$out/certificate/leaf.der"; openssl x509 -inform DER -in "$out/certificate/ca.der") -outform DER -out bundle.p7c
openssl x509 -inform DER -in "$out/certificate/rsa.der" -out rsa.pem
mkdir -p "$out/cert_values"
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]; c = out + "/certificate/"
rd = lambda f: open(f, "rb").read()
frame = lambda sel, vals: bytes([sel]) + b"".join(struct.pack(">H", len(v)) + v for v in vals)
rsa, ec, leaf = rd(c + "rsa.der"), rd(c + "ec.der"), rd(c + "leaf.der")
seeds = {"one-der": frame(0, [rsa]), "two-der": frame(0, [rsa, ec]), "duplicate": frame(0, [rsa, rsa]),
         "pkcs7-bundle": frame(1, [rd("bundle.p7c")]), "pem": frame(0, [rd("rsa.pem")]),
         "wrong-address": frame(2, [rsa, leaf]),
         "garbage-and-cert": frame(1, [b"\x30\x82\x01\x00" + b"\x00" * 20, leaf]),
         "trailing-bytes": frame(0, [rsa + b"\x00\x00"]), "empty-value": frame(0, [b"", ec])}
for k, v in seeds.items():
    open(out + "/cert_values/" + k, "wb").write(v)
PY

# The S/MIME base64 codec: the first byte sets the size of the pieces the
# text is fed in; the rest is base64 as openssl writes it, and the cases the
# decoder must accept or refuse.
{ printf '\007'; openssl rand 300 | openssl base64 | sed 's/$/\r/'; } | seed base64 crlf-lines
{ printf ' '; openssl rand 100 | openssl base64; } | seed base64 lf-lines
printf '\003QUI=\r\n' | seed base64 padding-one
printf '\001QQ==\r\nignored*' | seed base64 padding-two
printf '\005QUJD \t\r\nQU\r\nJD\r\n\r\n' | seed base64 blanks
printf '\002QUJD\r\nQU*D\r\n' | seed base64 bad-char
printf '\011QUJDQQ' | seed base64 short
{ printf '\021'; for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done; } | seed base64 binary

# verify's two multipart/signed splitters: the first byte sets the
# boundary's length (byte % 8 + 1), the second the memory splitter's step
# (byte + 1); then the boundary, then the body.
sig='Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n'
printf "\002\006bnd\r\n\r\n--bnd\r\nContent-Type: text/plain\r\n\r\nhello\r\n--bnd\r\n${sig}--bnd--\r\n" | seed smime_multipart crlf
printf "\000\002b--b\ntext --b text\nx\r\r\n--b   \n${sig}--b--\n" | seed smime_multipart lf-padding
printf "\000\000b--b\r\n--b\r\n${sig}" | seed smime_multipart empty-cut-short
printf "\001\003ab--ab\r\nx\r\n--ab\r\n${sig}AA --ab AA\r\n--abc\r\n" | seed smime_multipart boundary-in-signature
printf "\000\377b--b\r\nx\r\n--b--\r\n--b\r\n${sig}--b--\r\n" | seed smime_multipart close-first

echo "seed corpora written to $out"
