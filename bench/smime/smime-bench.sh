#!/usr/bin/env bash
# S/MIME benchmark: sign, verify, encrypt and decrypt a 1 MB and a 100 MB
# message, and sign N small messages, with
#   tokenkit       the key on tokenkit's software token (tokenkit-pkcs11.so),
#                  its default PIN KDF cost (about 1 s of every login), and
#                  again on a token whose PIN was set with 1,000 PBKDF2
#                  iterations, to show the rest apart from the login
#   openssl        `openssl cms -stream` with the same key in a file
#   openssl+libp11 `openssl cms` with libp11's pkcs11 engine and the key on
#                  the same kind of token (where libp11 manages)
#   gpgsm          the same key imported into a throw-away GNUPGHOME; gpgsm
#                  hands the key work to gpg-agent, so a second row
#                  "gpgsm + gpg-agent" adds the agent's peak RSS and CPU
# Wall time, CPU time (user + system) and peak memory (max RSS of the
# process, GNU time); the ratio columns are the tool's time (memory) divided
# by tokenkit's, with and without the PIN KDF in the login. One run prints
# one Markdown table.
#
#   bench/smime/smime-bench.sh [BUILD_DIR] [--big MB] [--small N] [--repeat N]
#
# Not a test: it asserts nothing about speed. Each tool's output is checked
# (the decrypted text equals the input, signatures verify) so a failing tool
# shows as "failed", never as a fast time.
set -euo pipefail
build=build
big_mb=100
small_n=1000
repeat=3
while (($#)); do
  case $1 in
    --big) big_mb=$2; shift 2 ;;
    --small) small_n=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) build=$1; shift ;;
  esac
done
build=$(realpath "$build")
tool=$build/tools/tokenkit
module=$build/pkcs11-module/tokenkit-pkcs11.so
many=$build/bench/smime/smime_sign_many
for f in "$tool" "$module" "$many"; do
  [[ -e $f ]] || { echo "missing $f: cmake --build $build --target tokenkit tokenkit-pkcs11 smime_sign_many" >&2; exit 2; }
done
tmp=$(mktemp -d)
gpg_agent_up=
cleanup() {
  [[ -n $gpg_agent_up ]] && GNUPGHOME=$tmp/gnupg gpgconf --kill gpg-agent 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"

# --- the token, the key and the certificate --------------------------------
export TOKENKIT_PKCS11_DIR=$tmp/store TOKENKIT_MODULE=$module
mkdir -p "$TOKENKIT_PKCS11_DIR"
pin=246810
echo "$pin" >pin
p11() { pkcs11-tool --module "$module" "$@" >/dev/null 2>&1; }
p11 --init-token --slot-index 0 --label bench --so-pin 13579113
p11 --token-label bench --login --login-type so --so-pin 13579113 --init-pin --new-pin "$pin"
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 30 \
  -subj "/CN=Bench/emailAddress=bench@example.org" -addext "subjectAltName=email:bench@example.org" \
  -addext "keyUsage=digitalSignature,keyEncipherment" -addext "extendedKeyUsage=emailProtection" 2>/dev/null
openssl pkey -in key.pem -outform DER -out key.der
openssl x509 -in cert.pem -outform DER -out cert.der
p11 --token-label bench --login --pin "$pin" --write-object key.der --type privkey --id 01 --label bench
p11 --token-label bench --login --pin "$pin" --write-object cert.der --type cert --id 01 --label bench
uri="pkcs11:token=bench;id=%01"
# The same key on a second tokenkit token whose PIN was set with 1,000
# PBKDF2 iterations (TOKENKIT_KDF_ITERATIONS, for tests only; the cost is
# stored with the PIN): its login costs a millisecond, so its rows show what
# tokenkit costs apart from the login.
fast=$tmp/store-fast
mkdir -p "$fast"
TOKENKIT_PKCS11_DIR=$fast TOKENKIT_KDF_ITERATIONS=1000 p11 --init-token --slot-index 0 --label bench --so-pin 13579113
TOKENKIT_PKCS11_DIR=$fast TOKENKIT_KDF_ITERATIONS=1000 p11 --token-label bench --login --login-type so --so-pin 13579113 --init-pin --new-pin "$pin"
TOKENKIT_PKCS11_DIR=$fast p11 --token-label bench --login --pin "$pin" --write-object key.der --type privkey --id 01 --label bench
TOKENKIT_PKCS11_DIR=$fast p11 --token-label bench --login --pin "$pin" --write-object cert.der --type cert --id 01 --label bench
kdf1k="tokenkit (PIN KDF 1,000)"
# The same key on a SoftHSM2 token: libp11 0.4.12 cannot use tokenkit's
# module from openssl cms (see the notes under the table), so its rows and a
# second tokenkit row use SoftHSM2.
softhsm=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
export SOFTHSM2_CONF=$tmp/softhsm2.conf
mkdir -p "$tmp/softhsm"
printf 'directories.tokendir = %s/softhsm\nobjectstore.backend = file\n' "$tmp" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --pin "$pin" --so-pin 13579113 >/dev/null
pkcs11-tool --module "$softhsm" --token-label bench --login --pin "$pin" --write-object key.der --type privkey --id 01 --label bench >/dev/null 2>&1
pkcs11-tool --module "$softhsm" --token-label bench --login --pin "$pin" --write-object cert.der --type cert --id 01 --label bench >/dev/null 2>&1

# --- messages --------------------------------------------------------------
make_message() {  # make_message FILE MB: a text/plain entity of about MB MiB
  { printf 'From: Bench <bench@example.org>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n'
    openssl rand -base64 $(($2 * 1024 * 1024 * 3 / 4)) | sed 's/$/\r/'; } >"$1"
}
make_message m1.eml 1
make_message m100.eml "$big_mb"
printf 'From: Bench <bench@example.org>\r\nContent-Type: text/plain\r\n\r\nA short note.\r\n' >small.eml

# --- gpgsm -----------------------------------------------------------------
have_gpgsm=
if command -v gpgsm >/dev/null; then
  export GNUPGHOME=$tmp/gnupg
  mkdir -m 700 "$GNUPGHOME"
  echo "allow-loopback-pinentry" >"$GNUPGHOME/gpg-agent.conf"
  printf 'disable-crl-checks\ndisable-policy-checks\n' >"$GNUPGHOME/gpgsm.conf"
  # gpgsm 2.2 reads PKCS#12 with the old 3DES/SHA-1 protection only.
  openssl pkcs12 -export -inkey key.pem -in cert.pem -passout pass:bench -keypbe PBE-SHA1-3DES \
    -certpbe PBE-SHA1-3DES -macalg sha1 -out bench.p12
  if echo bench | gpgsm --batch --pinentry-mode loopback --passphrase-fd 0 --import bench.p12 >/dev/null 2>&1; then
    gpg_agent_up=1
    fpr=$(gpgsm --with-colons --list-secret-keys | awk -F: '/^fpr/ {print $10; exit}')
    echo "$fpr S relax" >"$GNUPGHOME/trustlist.txt"
    gpgsm --batch --import cert.pem >/dev/null 2>&1
    have_gpgsm=1
  fi
fi
# gpgsm reads the key's passphrase from fd 0 (the agent keeps the key).
printf '#!/bin/sh\necho bench | exec gpgsm --batch --pinentry-mode loopback --passphrase-fd 0 "$@"\n' >gpgsm_
chmod +x gpgsm_
gpgsm_() { ./gpgsm_ "$@"; }

# --- libp11 ----------------------------------------------------------------
p11uri="$uri;type=private;pin-value=$pin"

# --- measuring -------------------------------------------------------------
results=()
# measure LABEL OP SIZE CHECK -- COMMAND...: runs COMMAND under GNU time;
# CHECK is a shell snippet that must succeed afterwards.
# Each command runs $repeat times; the table has the lowest wall time, the
# lowest CPU time and the highest peak RSS of the runs (on a shared machine
# the lowest time is the one least disturbed by the other load).
measure() {
  local tool=$1 op=$2 size=$3 check=$4
  shift 5
  local best_t= best_c= max_kb=0 secs user sys kb
  for ((run = 0; run < repeat; run++)); do
    if ! /usr/bin/time -f '%e %U %S %M' -o t.out "$@" >cmd.out 2>cmd.err || ! eval "$check" >/dev/null 2>&1; then
      results+=("$op|$size|$tool|failed|failed|-")
      notes+=("$tool $op $size failed: $(grep -v '^Engine' cmd.err | head -2 | tr '\n' ' ' | cut -c1-300)")
      return
    fi
    read -r secs user sys kb <t.out
    best_t=$(awk -v a="$secs" -v b="$best_t" 'BEGIN { print (b == "" || a < b) ? a : b }')
    best_c=$(awk -v a="$user" -v s="$sys" -v b="$best_c" 'BEGIN { c = a + s; printf "%.2f", (b == "" || c < b) ? c : b }')
    ((kb > max_kb)) && max_kb=$kb
  done
  results+=("$op|$size|$tool|$best_t|$max_kb|$best_c")
}
# measure_gpgsm AGENT OP SIZE CHECK -- COMMAND...: as measure, for gpgsm,
# which hands private-key work (sign, decrypt) to gpg-agent, a process of
# its own that GNU time does not see. Each run gets a fresh agent: started
# before the command when AGENT is "launch" (sign, decrypt), else only if
# gpgsm starts one itself. After the command the agent's peak RSS (VmHWM)
# and CPU time (/proc) are read, and a second row "gpgsm + gpg-agent" adds
# them to gpgsm's: the memory and CPU the operation needed in all.
tick=$(getconf CLK_TCK)
agent_pid() { gpg-connect-agent --no-autostart 'getinfo pid' /bye 2>/dev/null | awk '/^D / {print $2}'; }
measure_gpgsm() {
  local agent=$1 op=$2 size=$3 check=$4
  shift 5
  local best_t= best_c= best_ac= max_kb=0 max_akb=0 secs user sys kb pid akb acpu used=
  for ((run = 0; run < repeat; run++)); do
    gpgconf --kill gpg-agent 2>/dev/null || true
    [[ $agent == launch ]] && gpgconf --launch gpg-agent
    if ! /usr/bin/time -f '%e %U %S %M' -o t.out "$@" >cmd.out 2>cmd.err || ! eval "$check" >/dev/null 2>&1; then
      results+=("$op|$size|gpgsm|failed|failed|-")
      notes+=("gpgsm $op $size failed: $(head -2 cmd.err | tr '\n' ' ' | cut -c1-300)")
      return
    fi
    read -r secs user sys kb <t.out
    pid=$(agent_pid) akb=0 acpu=0
    if [[ -n $pid && -r /proc/$pid/status ]]; then
      used=1
      akb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
      # utime and stime, fields 14 and 15 of /proc/PID/stat (after "(comm)")
      acpu=$(sed 's/.*) //' "/proc/$pid/stat" | awk -v t="$tick" '{ printf "%.2f", ($12 + $13) / t }')
    fi
    best_t=$(awk -v a="$secs" -v b="$best_t" 'BEGIN { print (b == "" || a < b) ? a : b }')
    best_c=$(awk -v a="$user" -v s="$sys" -v b="$best_c" 'BEGIN { c = a + s; printf "%.2f", (b == "" || c < b) ? c : b }')
    best_ac=$(awk -v a="$user" -v s="$sys" -v g="$acpu" -v b="$best_ac" 'BEGIN { c = a + s + g; printf "%.2f", (b == "" || c < b) ? c : b }')
    ((kb > max_kb)) && max_kb=$kb
    ((kb + akb > max_akb)) && max_akb=$((kb + akb))
  done
  results+=("$op|$size|gpgsm|$best_t|$max_kb|$best_c")
  if [[ -n $used ]]; then
    results+=("$op|$size|gpgsm + gpg-agent|$best_t|$max_akb|$best_ac")
  else
    notes+=("gpgsm $op $size: no gpg-agent was started (gpgsm did this one alone)")
  fi
}
notes=()
same() { cmp -s <(tr -d '\r' <"$1") <(tr -d '\r' <"$2"); }

for size in 1 100; do
  m=m$size.eml
  label="$size MB"; [[ $size == 100 ]] && label="$big_mb MB"
  # sign
  measure tokenkit sign "$label" "true" -- "$tool" smime sign --key "$uri" --pin-file pin --in $m --out tk.s
  measure "$kdf1k" sign "$label" "true" -- env TOKENKIT_PKCS11_DIR=$fast "$tool" smime sign --key "$uri" --pin-file pin --in $m --out tk3.s
  measure openssl sign "$label" "true" -- openssl cms -sign -stream -signer cert.pem -inkey key.pem -in $m -out os.s
  measure "tokenkit (SoftHSM2)" sign "$label" "true" -- env TOKENKIT_MODULE=$softhsm "$tool" smime sign --key "$uri" --pin-file pin --in $m --out tk2.s
  measure "openssl+libp11 (SoftHSM2)" sign "$label" "true" -- env PKCS11_MODULE_PATH="$softhsm" openssl cms -sign -stream \
    -engine pkcs11 -keyform engine -signer cert.pem -inkey "$p11uri" -in $m -out op.s
  [[ -n $have_gpgsm ]] && measure_gpgsm launch sign "$label" "true" -- ./gpgsm_ -u "$fpr" --detach-sign -o gs.s $m
  # verify (each tool its own signature)
  measure tokenkit verify "$label" "same tk.v $m" -- "$tool" smime verify --no-system-cas --ca-file cert.pem --in tk.s --out tk.v
  measure openssl verify "$label" "same os.v $m" -- openssl cms -verify -CAfile cert.pem -in os.s -out os.v
  [[ -n $have_gpgsm ]] && measure_gpgsm auto verify "$label" "true" -- ./gpgsm_ --verify gs.s $m
  # opaque signed-data (application/pkcs7-mime): the content inside the CMS
  measure "$kdf1k" "sign opaque" "$label" "true" -- env TOKENKIT_PKCS11_DIR=$fast "$tool" smime sign --opaque --key "$uri" --pin-file pin --in $m --out tk.o
  measure openssl "sign opaque" "$label" "true" -- openssl cms -sign -nodetach -stream -signer cert.pem -inkey key.pem -in $m -out os.o
  measure tokenkit "verify opaque" "$label" "same tk.ov $m" -- "$tool" smime verify --no-system-cas --ca-file cert.pem --in tk.o --out tk.ov
  measure openssl "verify opaque" "$label" "same os.ov $m" -- openssl cms -verify -CAfile cert.pem -in os.o -out os.ov
  # encrypt
  measure tokenkit encrypt "$label" "true" -- "$tool" smime encrypt --recipient cert.pem --in $m --out tk.e
  measure openssl encrypt "$label" "true" -- openssl cms -encrypt -stream -aes-256-gcm -in $m -out os.e cert.pem
  [[ -n $have_gpgsm ]] && measure_gpgsm auto encrypt "$label" "true" -- ./gpgsm_ -r "$fpr" --encrypt -o gs.e $m
  # decrypt (each tool its own message)
  measure tokenkit decrypt "$label" "same tk.d $m" -- "$tool" smime decrypt --key "$uri" --pin-file pin --in tk.e --out tk.d
  measure "$kdf1k" decrypt "$label" "same tk3.d $m" -- env TOKENKIT_PKCS11_DIR=$fast "$tool" smime decrypt --key "$uri" --pin-file pin --in tk.e --out tk3.d
  measure openssl decrypt "$label" "same os.d $m" -- openssl cms -decrypt -inkey key.pem -in os.e -out os.d
  measure "tokenkit (SoftHSM2)" decrypt "$label" "same tk2.d $m" -- env TOKENKIT_MODULE=$softhsm "$tool" smime decrypt --key "$uri" --pin-file pin --in tk.e --out tk2.d
  measure "openssl+libp11 (SoftHSM2)" decrypt "$label" "same op.d $m" -- env PKCS11_MODULE_PATH="$softhsm" openssl cms -decrypt \
    -engine pkcs11 -keyform engine -inkey "$p11uri" -recip cert.pem -in os.e -out op.d
  [[ -n $have_gpgsm ]] && measure_gpgsm launch decrypt "$label" "same gs.d $m" -- ./gpgsm_ --decrypt -o gs.d gs.e
  rm -f tk.* tk2.* tk3.* os.* op.* gs.*
done

# --- small messages ----------------------------------------------------------
# tokenkit's library signs N messages in one process (one login); every tool
# is also run once per message, $per_process times, as a mail client that
# starts it per message would. Reported per message.
per_process=20
small() {  # small TOOL COMMAND...
  local tool=$1
  shift
  local start end
  start=$(date +%s.%N)
  for ((i = 0; i < per_process; i++)); do
    "$@" >/dev/null 2>cmd.err || { results+=("sign small|per message, one process each|$tool|failed|-"); notes+=("$tool small sign failed: $(head -c 200 cmd.err)"); return; }
  done
  end=$(date +%s.%N)
  results+=("sign small|per message, one process each|$tool|$(awk -v a="$start" -v b="$end" -v n="$per_process" 'BEGIN { printf "%.4f", (b - a) / n }')|-")
}
line=$("$many" "$module" "$uri" pin small.eml "$small_n")
secs=$(sed -n 's/.* in \([0-9.]*\) s:.*/\1/p' <<<"$line")
results+=("sign small|per message, $small_n in one process|tokenkit (library)|$(awk -v a="$secs" -v n="$small_n" 'BEGIN { printf "%.4f", a / n }')|-")
small tokenkit "$tool" smime sign --key "$uri" --pin-file pin --in small.eml --out s.tmp
small "$kdf1k" env TOKENKIT_PKCS11_DIR=$fast "$tool" smime sign --key "$uri" --pin-file pin --in small.eml --out s.tmp
small "tokenkit (SoftHSM2)" env TOKENKIT_MODULE=$softhsm "$tool" smime sign --key "$uri" --pin-file pin --in small.eml --out s.tmp
small openssl openssl cms -sign -signer cert.pem -inkey key.pem -in small.eml -out s.tmp
small "openssl+libp11 (SoftHSM2)" env PKCS11_MODULE_PATH="$softhsm" openssl cms -sign -engine pkcs11 -keyform engine \
  -signer cert.pem -inkey "$p11uri" -in small.eml -out s.tmp
[[ -n $have_gpgsm ]] && small gpgsm ./gpgsm_ -u "$fpr" --detach-sign -o s.tmp small.eml

# --- the login ----------------------------------------------------------------
# What one login costs on each token: `tokenkit objects` with and without
# --login (best of 3 each, so that a busy machine shows less).
best_of3() {
  local best=
  for _ in 1 2 3; do
    /usr/bin/time -f '%e' -o t.out "$@" >/dev/null 2>&1 || { echo failed; return; }
    best=$(awk -v a="$(cat t.out)" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  echo "$best"
}
logins=()
login_row() {  # login_row LABEL ENV...
  local label=$1
  shift
  local without with
  without=$(best_of3 env "$@" "$tool" objects "pkcs11:token=bench")
  with=$(best_of3 env "$@" "$tool" objects "pkcs11:token=bench" --login --pin-file pin)
  logins+=("| $label | $without | $with | $(awk -v a="$with" -v b="$without" 'BEGIN { printf "%.2f", a - b }') |")
}
login_row tokenkit TOKENKIT_PKCS11_DIR="$TOKENKIT_PKCS11_DIR"
login_row "$kdf1k" TOKENKIT_PKCS11_DIR="$fast"
login_row "tokenkit (SoftHSM2)" TOKENKIT_MODULE="$softhsm"

# --- what a program costs before it reads a byte -----------------------------
# Peak RSS of commands that only start (and, for the PKCS#11 ones, load the
# same module and open the same token): the part of every peak RSS above
# that is not the message. Highest of $repeat runs, kB.
floors=()
floor_row() {  # floor_row LABEL COMMAND...
  local label=$1 max=0 kb
  shift
  for ((run = 0; run < repeat; run++)); do
    /usr/bin/time -f '%M' -o t.out "$@" >/dev/null 2>&1 || { floors+=("| $label | failed |"); return; }
    kb=$(cat t.out)
    ((kb > max)) && max=$kb
  done
  floors+=("| $label | $(awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }') |")
}
floor_row '`true` (the C library alone)' /bin/true
floor_row '`openssl version`' openssl version
floor_row '`gpgsm --version`' gpgsm --version
floor_row '`tokenkit --version`' "$tool" --version
floor_row '`pkcs11-tool -L`, tokenkit'"'"'s module' pkcs11-tool --module "$module" -L
floor_row '`pkcs11-tool -L`, SoftHSM2' pkcs11-tool --module "$softhsm" -L
floor_row '`tokenkit objects` on the token (module loaded, token open)' "$tool" objects "pkcs11:token=bench"

# --- the table ---------------------------------------------------------------
# "× tokenkit": the tool's value over tokenkit's (default PIN KDF, login
# included); "× w/o KDF": the tool's time over tokenkit's on the token with
# the cheap PIN KDF, where the operation has one.
echo "| operation | message | tool | time (s) | CPU (s) | × tokenkit | × w/o KDF | peak RSS (MB) | × tokenkit |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
declare -A base_t base_m fast_t
for r in "${results[@]}"; do
  IFS='|' read -r op size t secs mb _ <<<"$r"
  key="$op|$size"
  [[ $op == "sign small" ]] && key="sign small"
  if [[ $t == tokenkit || $t == "tokenkit (library)" ]] && [[ -z ${base_t[$key]:-} ]]; then
    base_t[$key]=$secs
    base_m[$key]=$mb
  fi
  [[ $t == "$kdf1k" && -z ${fast_t[$op|$size]:-} ]] && fast_t[$op|$size]=$secs
done
ratio() { [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' || echo "-"; }
for r in "${results[@]}"; do
  IFS='|' read -r op size t secs mb cpu <<<"$r"
  key="$op|$size"
  [[ $op == "sign small" ]] && key="sign small"
  bt=${base_t[$key]:-}; bm=${base_m[$key]:-}; ft=${fast_t[$op|$size]:-}
  mbs=-
  [[ $mb =~ ^[0-9]+$ ]] && mbs=$(awk -v k="$mb" 'BEGIN { printf "%.1f", k / 1024 }')
  echo "| $op | $size | $t | $secs | ${cpu:--} | $(ratio "$secs" "$bt") | $(ratio "$secs" "$ft") | $mbs | $(ratio "$mb" "$bm") |"
done
# What the message itself costs: each tool's peak RSS at the big message
# less its peak RSS at 1 MB (the same command, the same libraries mapped).
echo
echo "| operation | tool | peak RSS, 1 MB (MB) | peak RSS, $big_mb MB (MB) | growth (MB) |"
echo "|---|---|---:|---:|---:|"
declare -A small_kb
for r in "${results[@]}"; do
  IFS='|' read -r op size t secs kb _ <<<"$r"
  [[ $size == "1 MB" && $kb =~ ^[0-9]+$ ]] && small_kb[$op|$t]=$kb
done
for r in "${results[@]}"; do
  IFS='|' read -r op size t secs kb _ <<<"$r"
  [[ $size == "$big_mb MB" && $kb =~ ^[0-9]+$ && -n ${small_kb[$op|$t]:-} ]] || continue
  awk -v op="$op" -v t="$t" -v a="${small_kb[$op|$t]}" -v b="$kb" \
    'BEGIN { printf "| %s | %s | %.1f | %.1f | %+.1f |\n", op, t, a / 1024, b / 1024, (b - a) / 1024 }'
done
echo
echo "| started, nothing read | peak RSS (MB) |"
echo "|---|---:|"
for f in "${floors[@]}"; do echo "$f"; done
echo
echo "| login (\`tokenkit objects\`) | without --login (s) | with --login (s) | login (s) |"
echo "|---|---:|---:|---:|"
for l in "${logins[@]}"; do echo "$l"; done
echo
for n in "${notes[@]}"; do echo "- $n"; done
echo
echo "best of $repeat runs each; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(openssl version | cut -d' ' -f1-2), gpgsm $(gpgsm --version 2>/dev/null | head -1 | awk '{print $3}'), $(date -u +%Y-%m-%d)"
