#!/usr/bin/env bash
# Kerberos against NTLM for WinRM (issue 18 §1; docs/winrm.md): the same lab fleet of $HOSTS
# hosts, every one reached over WinRM through the project's test endpoint (which accepts both),
# audited with auth = "kerberos" and with auth = "ntlm", alternating, $RUNS times each, in one
# run. Kerberos' tickets come from a private MIT KDC on loopback. Prints the medians of the
# controller's CPU (user + sys, the ecfleet process only) and wall time, per host, and their
# ratios, Kerberos / NTLM. The issue's bar: at most 1.5x NTLM's controller CPU per host.
# Nothing here is a test.
#
# Usage: bench/kerberos.sh        (HOSTS=200 RUNS=3)
# Needs: krb5-kdc krb5-admin-server python3-gssapi python3-venv, GNU time (/usr/bin/time).
set -euo pipefail

HOSTS=${HOSTS:-200}
RUNS=${RUNS:-3}
REALM=ECFLEET.TEST
PASSWORD='S3cret!pw-Not-In-Logs'

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d /tmp/ecfleet-kerberos.XXXXXX)
KDC= ENDPOINT=
cleanup() {
    [ -n "$KDC" ] && kill "$KDC" 2>/dev/null
    [ -n "$ENDPOINT" ] && kill "$ENDPOINT" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

for p in /usr/sbin/krb5kdc /usr/sbin/kadmin.local /usr/bin/time; do
    [ -x "$p" ] || { echo "needs $p: apt-get install -y krb5-kdc krb5-admin-server time" >&2; exit 1; }
done
/usr/bin/python3 -c "import gssapi" 2>/dev/null || { echo "needs python3-gssapi" >&2; exit 1; }

echo "== building (release)" >&2
cargo build --release -q
E=$root/target/release/ecfleet

# The KDC: a private realm on loopback (as tests/common/kdc.rs).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/krb5.conf" <<EOF
[libdefaults]
 default_realm = $REALM
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
[realms]
 $REALM = {
  kdc = 127.0.0.1:$port
 }
EOF
cat > "$work/kdc.conf" <<EOF
[kdcdefaults]
 kdc_listen = 127.0.0.1:$port
 kdc_tcp_listen = 127.0.0.1:$port
[realms]
 $REALM = {
  database_name = $work/principal
  key_stash_file = $work/stash
  acl_file = $work/kadm5.acl
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }
EOF
: > "$work/kadm5.acl"
export KRB5_CONFIG=$work/krb5.conf KRB5_KDC_PROFILE=$work/kdc.conf
kdb5_util create -s -r "$REALM" -P master-key-of-a-bench > /dev/null
kadmin.local -r "$REALM" -q "addprinc -pw $PASSWORD +requires_preauth fleet" > /dev/null
kadmin.local -r "$REALM" -q "addprinc -randkey HTTP/ec.ecfleet.test" > /dev/null
kadmin.local -r "$REALM" -q "ktadd -k $work/http.keytab HTTP/ec.ecfleet.test" > /dev/null
/usr/sbin/krb5kdc -n -r "$REALM" &
KDC=$!

# The endpoint on Debian's Python with its gssapi, and pyspnego for NTLM.
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q pyspnego==0.12.4
printf ':fleet:%s\n' "$PASSWORD" > "$work/users"
"$work/venv/bin/python" tests/winrm_endpoint/endpoint.py --users "$work/users" \
    --keytab "$work/http.keytab" --max-shells 1000 > "$work/endpoint.out" 2> "$work/endpoint.err" &
ENDPOINT=$!
for _ in $(seq 100); do grep -q "^listening on" "$work/endpoint.out" && break; sleep 0.1; done
wport=$(sed -n 's/^listening on //p' "$work/endpoint.out")

# The lab's hosts (one tenant each), every one over WinRM through the endpoint, which runs
# their agent locally.
"$E" lab init --hosts "$HOSTS" --as-of 2026-11-24 --dir "$work/lab" > /dev/null
mkdir -p "$work/share"
inventory() {
    local auth=$1 out=$2
    python3 - "$work/lab/hosts" "$out" "$auth" "$wport" "$port" "$work/share" <<'EOF'
import os, sys
hosts_dir, dst, auth, wport, kport, share = sys.argv[1:]
lines = ['[defaults]', 'user = "fleet"', 'password = { env = "BENCH_WINRM_PASSWORD" }',
         'transport = "winrm"', 'file_transfer = "stdin"', 'connect_timeout = 60',
         'realm = "ECFLEET.TEST"', f'kdc = "127.0.0.1:{kport}"', 'concurrency = 16', '',
         f'[share]\npath = "{share}"', '']
for name in sorted(os.listdir(hosts_dir)):
    role = "staging" if "staging" in name else "active"
    lines += ['[[tenant]]', f'name = "bench-{name}"', '', '[[tenant.host]]', f'name = "{name}"',
              'address = "127.0.0.1"', f'port = {wport}', f'role = "{role}"',
              f'lab_root = "{os.path.join(hosts_dir, name)}"', f'auth = "{auth}"',
              'spn = "HTTP/ec.ecfleet.test"', '']
open(dst, "w").write("\n".join(lines))
EOF
}
inventory kerberos "$work/kerberos.toml"
inventory ntlm "$work/ntlm.toml"
export BENCH_WINRM_PASSWORD=$PASSWORD

# The agents go to every host first, so that the runs below time the audit alone.
"$E" audit -i "$work/ntlm.toml" --no-share > /dev/null 2>&1 || true

# shellcheck source=bench/lib-audit.sh
. "$root/bench/lib-audit.sh"
audit() { timed_audit "$E" "$1" "$HOSTS" "$work"; }

: > "$work/kerberos.txt"
: > "$work/ntlm.txt"
for i in $(seq "$RUNS"); do
    audit "$work/ntlm.toml" >> "$work/ntlm.txt"
    audit "$work/kerberos.toml" >> "$work/kerberos.txt"
    echo "run $i: ntlm $(tail -1 "$work/ntlm.txt"), kerberos $(tail -1 "$work/kerberos.txt") (wall s, cpu s)" >&2
done

python3 - "$work/ntlm.txt" "$work/kerberos.txt" "$HOSTS" <<'EOF'
import statistics, sys
def load(p):
    rows = [tuple(map(float, l.split())) for l in open(p) if l.strip()]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
(nw, nc), (kw, kc) = load(sys.argv[1]), load(sys.argv[2])
hosts = int(sys.argv[3])
print(f"WinRM audit of {hosts} lab hosts through the test endpoint, medians:")
print(f"  NTLM:     {nw:6.2f} s wall, {nc:6.2f} s controller CPU ({1000 * nc / hosts:.1f} ms per host)")
print(f"  Kerberos: {kw:6.2f} s wall, {kc:6.2f} s controller CPU ({1000 * kc / hosts:.1f} ms per host)")
print(f"  ratio Kerberos/NTLM: CPU {kc / nc:.2f}x (bar: 1.5x), wall {kw / nw:.2f}x")
EOF
