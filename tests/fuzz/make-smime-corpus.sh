#!/usr/bin/env bash
# Seeds for the S/MIME fuzz targets (smime_verify, smime_decrypt,
# mime_headers): real messages made by tokenkit with keys on a fresh SoftHSM2
# token (RSA, EC P-256 imported from openssl; Ed25519 generated on the token
# by pkcs11-tool) and by openssl cms. Run by hand with a built tokenkit:
#   tests/fuzz/make-smime-corpus.sh build/tools/tokenkit
# The output is checked in (fuzzing runs need no tools).
set -euo pipefail
tool=$(realpath "${1:?usage: make-smime-corpus.sh path/to/tokenkit}")
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mod=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
export SOFTHSM2_CONF=$tmp/softhsm2.conf TOKENKIT_MODULE=$mod
mkdir -p tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\n' "$tmp" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label seed --pin 1234 --so-pin 5678 >/dev/null
echo 1234 >pin
p11() { pkcs11-tool --module "$mod" --token-label seed --login --pin 1234 "$@" >/dev/null 2>&1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -subj "/CN=Seed CA" -days 3650 -addext basicConstraints=critical,CA:true 2>/dev/null
issue() {  # issue NAME EMAIL KEYSPEC
  openssl req -new -newkey "$3" -nodes -keyout "$1.key" -subj "/CN=$1/emailAddress=$2" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=email:%s\nextendedKeyUsage=emailProtection\n' "$2" >ext
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -days 3650 -extfile ext -out "$1.pem" 2>/dev/null
  openssl pkey -in "$1.key" -outform DER -out "$1.key.der"
  openssl x509 -in "$1.pem" -outform DER -out "$1.der"
}
issue alice alice@example.org rsa:2048
issue bob bob@example.org ec:<(openssl ecparam -name prime256v1)
p11 --write-object alice.key.der --type privkey --id 01 --label alice
p11 --write-object alice.der --type cert --id 01 --label alice
p11 --write-object bob.key.der --type privkey --id 02 --label bob --usage-derive
p11 --write-object bob.der --type cert --id 02 --label bob
p11 --keypairgen --key-type EC:edwards25519 --id 03 --label carol
pkcs11-tool --module "$mod" --token-label seed --read-object --type pubkey --id 03 -o carol.pub >/dev/null 2>&1
printf 'subjectAltName=email:carol@example.org\nextendedKeyUsage=emailProtection\n' >ext
openssl x509 -new -force_pubkey carol.pub -subj "/CN=carol/emailAddress=carol@example.org" -CA ca.pem \
  -CAkey ca.key -days 3650 -extfile ext -outform DER -out carol.der 2>/dev/null
p11 --write-object carol.der --type cert --id 03 --label carol

printf 'From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: seed\nContent-Type: text/plain; charset=us-ascii\n\nHello Bob,\nthe keys stay on the token.\n' >msg.eml
printf 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain\n\npart one\n--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgc=\n--b1--\n' >multi.eml

seed() { mkdir -p "$out/$1"; cp "$3" "$out/$1/$2"; }
tk() { "$tool" smime "$@" --pin-file pin; }
key() { echo "pkcs11:token=seed;id=%$1"; }
tk sign --key "$(key 01)" --in msg.eml --out s-rsa.eml
tk sign --key "$(key 01)" --pss --digest SHA384 --in multi.eml --out s-pss.eml
tk sign --key "$(key 02)" --in msg.eml --out s-ec.eml
tk sign --key "$(key 02)" --opaque --in msg.eml --out s-ec-opaque.eml
tk sign --key "$(key 03)" --in msg.eml --out s-ed.eml
tk sign --key "$(key 03)" --opaque --in multi.eml --out s-ed-opaque.eml
openssl cms -sign -in msg.eml -signer alice.pem -inkey alice.key -out s-openssl.eml 2>/dev/null
for f in s-rsa s-pss s-ec s-ec-opaque s-ed s-ed-opaque s-openssl; do seed smime_verify "$f.eml" "$f.eml"; done

"$tool" smime encrypt --recipient alice.pem --in msg.eml --out e-rsa-gcm.eml
"$tool" smime encrypt --recipient alice.pem --cbc --oaep --in msg.eml --out e-rsa-cbc-oaep.eml
"$tool" smime encrypt --recipient bob.pem --recipient alice.pem --in multi.eml --out e-ec-rsa.eml
tk sign --key "$(key 02)" --encrypt-to alice.pem --in msg.eml --out e-signed.eml
openssl cms -encrypt -aes128 -in msg.eml -out e-openssl.eml alice.pem 2>/dev/null
# X25519 (RFC 8418): dave's key in a file (encrypting needs only the
# certificate), mixed with RSA and P-256; and a KARI with ukm and AES-128
# wrap from the tests' independent RFC 8418 peer.
openssl genpkey -algorithm X25519 -out dave.key
openssl pkey -in dave.key -pubout -out dave.pub
printf 'subjectAltName=email:dave@example.org\nkeyUsage=critical,keyAgreement\nextendedKeyUsage=emailProtection\n' >ext
openssl x509 -new -force_pubkey dave.pub -subj "/CN=dave/emailAddress=dave@example.org" -CA ca.pem \
  -CAkey ca.key -days 3650 -extfile ext -out dave.pem 2>/dev/null
"$tool" smime encrypt --recipient alice.pem --recipient bob.pem --recipient dave.pem --in msg.eml \
  --out e-x25519-mixed.eml
"$tool" smime encrypt --recipient dave.pem --cbc --in multi.eml --out e-x25519-cbc.eml
python3 "$here/../smime/rfc8418.py" encrypt dave.pem msg.eml e-x25519-ukm.eml --ukm 0102 --wrap 128
for f in e-rsa-gcm e-rsa-cbc-oaep e-ec-rsa e-signed e-openssl e-x25519-mixed e-x25519-cbc e-x25519-ukm; do
  seed smime_decrypt "$f.eml" "$f.eml"
done

# Header blocks: the messages above, and folded/odd From fields.
for f in s-rsa s-ed-opaque e-ec-rsa; do seed mime_headers "$f.eml" "$f.eml"; done
printf 'From: "Doe, Jane"\r\n <jane@example.org>\r\nContent-Type: text/plain\r\n\r\nbody\r\n' >folded
printf 'from:plain@example.org\nX-Long: %s\n\n' "$(head -c 3000 /dev/zero | tr '\0' a)" >long
seed mime_headers folded.eml folded
seed mime_headers long.eml long
