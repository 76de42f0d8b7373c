#!/usr/bin/env bash
# Secrets hygiene of the tokenkit command, against a fresh SoftHSM2 token:
#  - the user PIN (right or wrong) never appears in stdout or stderr, with
#    --pin-file, --pin-env, TOKENKIT_PIN, --json, and with TOKENKIT_DEBUG=1;
#  - while tokenkit waits for its PIN (--pin-file on a FIFO), the PIN is not
#    in /proc/<pid>/cmdline, the process is not dumpable and its core limit
#    is 0 (tools/src/main.cpp: prctl(PR_SET_DUMPABLE, 0), RLIMIT_CORE 0).
# Each inspection is first shown able to fail (a control case), so that a
# broken inspection cannot pass silently.
# Usage: secrets_hygiene.sh TOKENKIT SOFTHSM2_MODULE. Exit 77 = skipped.
set -euo pipefail
tokenkit=$1
module=$2
PIN='Hyg13ne-PIN-5072'
WRONG='Wr0ng-PIN-9361'
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

tmp=$(mktemp -d /tmp/tokenkit-secrets-XXXXXX)
watch_pid=""
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
chmod 0755 "$tmp"
mkdir "$tmp/tokens"
export SOFTHSM2_CONF=$tmp/softhsm2.conf
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label hygiene --pin "$PIN" --so-pin "so-$PIN" >/dev/null
pkcs11-tool --module "$module" --token-label hygiene --login --pin "$PIN" \
  --keypairgen --key-type EC:prime256v1 --id 51 --label "hygiene key" >/dev/null 2>&1
printf '%s\n' "$PIN" >"$tmp/pin"
printf '%s\n' "$WRONG" >"$tmp/wrong"
export TOKENKIT_MODULE=$module
unset TOKENKIT_PIN TOKENKIT_DEBUG

# run NAME EXPECTED_EXIT SECRET [ENV=VALUE...] -- ARGS...: runs tokenkit,
# checks its exit code and that SECRET is in neither output stream.
run() {
  local name=$1 want=$2 secret=$3
  shift 3
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local rc=0
  env "${envs[@]}" "$tokenkit" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" != "$want" ]; then
    fail "$name: exit $rc, expected $want"; sed 's/^/  | /' "$tmp/err"; return
  fi
  if grep -qF -- "$secret" "$tmp/out" "$tmp/err"; then
    fail "$name: the PIN appears in the output"; grep -F -- "$secret" "$tmp/out" "$tmp/err" | sed 's/^/  | /'
    return
  fi
  ok "$name"
}

# Control: the output check sees a PIN that is printed.
if env TOKENKIT_DEBUG=1 "$tokenkit" objects --pin-file "/nonexistent/$PIN" >"$tmp/out" 2>"$tmp/err"; then :; fi
grep -qF -- "$PIN" "$tmp/err" || fail "control: a PIN in an error message was not seen"

for debug in 0 1; do
  d="TOKENKIT_DEBUG=$debug"
  run "pin-file, debug=$debug" 0 "$PIN" "$d" -- objects --token-label hygiene --pin-file "$tmp/pin"
  run "pin-env, debug=$debug" 0 "$PIN" "$d" HYG_PIN="$PIN" -- objects --token-label hygiene --pin-env HYG_PIN
  run "TOKENKIT_PIN, debug=$debug" 0 "$PIN" "$d" TOKENKIT_PIN="$PIN" -- objects --token-label hygiene --login
  run "json, debug=$debug" 0 "$PIN" "$d" -- objects --token-label hygiene --pin-file "$tmp/pin" --json
  run "wrong PIN file, debug=$debug" 5 "$WRONG" "$d" -- objects --token-label hygiene --pin-file "$tmp/wrong"
  run "wrong PIN env, debug=$debug" 5 "$WRONG" "$d" HYG_PIN="$WRONG" -- objects --token-label hygiene --pin-env HYG_PIN
  run "tokens, debug=$debug" 0 "$PIN" "$d" TOKENKIT_PIN="$PIN" -- tokens
done

# A PIN given in a URI's pin-value is never printed back in error messages
# (Uri::parse's errors and Uri::str() replace it with ***).
run "URI pin-value, no such token" 3 "$PIN" -- objects "pkcs11:token=nosuch?pin-value=$PIN"
run "URI pin-value, bad attribute" 10 "$PIN" -- objects "pkcs11:token=hygiene;tokn=x?pin-value=$PIN"

# --- The running process, while it waits for its PIN on a FIFO. ---------------
# The files in /proc/<pid>/ of a non-dumpable process are owned by root
# (proc(5); the /proc/<pid> folder itself keeps the process's owner), which
# only shows when the process is not root: as root, tokenkit runs as nobody.
as=()
if [ "$(id -u)" -eq 0 ]; then
  as=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  chmod -R a+rwX "$tmp"
  cp "$tokenkit" "$tmp/tokenkit"  # the build tree may not be reachable by nobody
  chmod a+rx "$tmp/tokenkit"
  tokenkit=$tmp/tokenkit
fi
# A core limit above 0 to start from, so that 0 means tokenkit set it.
ulimit -S -c "$(ulimit -H -c)" 2>/dev/null || true
if [ "$(ulimit -S -c)" = "0" ]; then
  ulimit -H -c unlimited 2>/dev/null && ulimit -S -c unlimited 2>/dev/null || true
fi
core_start=$(ulimit -S -c)

# inspect PID: prints "<PIN in cmdline: yes|no> <dumpable: yes|no> <core soft>/<hard>".
inspect() {
  local pid=$1 uid owner has=no dumpable=yes
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$PIN" && has=yes
  uid=$(awk '/^Uid:/ {print $3}' "/proc/$pid/status")  # effective uid
  owner=$(stat -c %u "/proc/$pid/status")
  if [ "$uid" != 0 ] && [ "$owner" = 0 ]; then dumpable=no; fi
  local core
  core=$(awk '/^Max core file size/ {print $5 "/" $6}' "/proc/$pid/limits")
  echo "$has $dumpable $core"
}

# Controls: a plain process with the PIN in its arguments is seen as such.
"${as[@]}" bash -c 'sleep 5; :' control "$PIN" >/dev/null 2>&1 &
ctl=$!
# Until the control has exec'd (before that, /proc shows this shell's fork);
# a fixed 0.3 s sleep assumed it had by then, which a loaded machine need
# not honour.
for _ in $(seq 600); do
  tr '\0' ' ' <"/proc/$ctl/cmdline" 2>/dev/null | grep -qF -- "$PIN" && break
  sleep 0.05
done
read -r has dumpable core <<<"$(inspect "$ctl")"
kill "$ctl" 2>/dev/null || true
wait "$ctl" 2>/dev/null || true
[ "$has" = yes ] || fail "control: a PIN on a command line was not seen in /proc/<pid>/cmdline"
[ "$dumpable" = yes ] || fail "control: an ordinary process was not seen as dumpable"
if [ "$core_start" = 0 ]; then
  echo "skipped: the core limit check (cannot raise RLIMIT_CORE above 0 here, so 0 proves nothing)"
fi

mkfifo "$tmp/fifo"
chmod 0666 "$tmp/fifo"
env TOKENKIT_DEBUG=1 "${as[@]}" "$tokenkit" objects --token-label hygiene --pin-file "$tmp/fifo" \
  >"$tmp/out" 2>"$tmp/err" &
tk=$!
# Opening the FIFO for writing blocks until tokenkit opens it to read the PIN;
# a watchdog opens it instead if tokenkit never gets there.
(
  trap 'kill $s 2>/dev/null; exit 0' TERM
  sleep 60 &
  s=$!
  wait $s
  exec 4<"$tmp/fifo"
) >/dev/null 2>&1 &
watch_pid=$!
exec 3>"$tmp/fifo"
if kill -0 "$tk" 2>/dev/null; then
  read -r has dumpable core <<<"$(inspect "$tk")"
  [ "$has" = no ] && ok "PIN not in /proc/<pid>/cmdline" || fail "the PIN is in /proc/<pid>/cmdline"
  [ "$dumpable" = no ] && ok "tokenkit is not dumpable" || fail "tokenkit is dumpable (PR_SET_DUMPABLE not 0)"
  if [ "$core_start" != 0 ]; then
    [ "$core" = "0/0" ] && ok "RLIMIT_CORE is 0" || fail "RLIMIT_CORE of tokenkit is $core, started from $core_start"
  fi
else
  fail "tokenkit exited before it read its PIN"
fi
printf '%s\n' "$PIN" >&3
exec 3>&-
rc=0
wait "$tk" || rc=$?
kill "$watch_pid" 2>/dev/null || true
watch_pid=""
[ "$rc" = 0 ] || { fail "tokenkit with a FIFO PIN exited $rc"; sed 's/^/  | /' "$tmp/err"; }
grep -qF -- "$PIN" "$tmp/out" "$tmp/err" && fail "the FIFO PIN appears in the output"
grep -q "hygiene key" "$tmp/out" || fail "tokenkit did not list the private key after logging in"

if [ "$fails" -ne 0 ]; then
  echo "$fails secrets-hygiene failure(s)"
  exit 1
fi
echo "secrets hygiene: all checks passed"
