#!/usr/bin/env bash
# Jump hosts (issue 18 §2; docs/jump-hosts.md): the same lab fleet audited directly and through
# one OpenSSH sshd bastion on loopback (every host of the run behind one shared bastion
# connection), in one run, alternating, $RUNS times each. Prints the medians of wall time and
# controller CPU (user + sys) and their ratios, through / direct. The issue's bar: wall time at
# most 1.3x direct. Nothing here is a test.
#
# Usage: bench/jump.sh        (HOSTS=200 WINRM=50 RUNS=3)
# Needs: openssh-server, python3, GNU time (/usr/bin/time).
set -euo pipefail

HOSTS=${HOSTS:-200}
WINRM=${WINRM:-50}
RUNS=${RUNS:-3}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d /tmp/ecfleet-jump.XXXXXX)
LAB= BASTION=
cleanup() {
    [ -n "$LAB" ] && kill "$LAB" 2>/dev/null
    [ -n "$BASTION" ] && kill "$BASTION" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

echo "== building (release)" >&2
cargo build --release -q
E=$root/target/release/ecfleet
[ -x /usr/sbin/sshd ] || { echo "needs OpenSSH sshd: apt-get install -y openssh-server" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
mkdir -p /run/sshd

"$E" lab up --hosts "$HOSTS" --winrm "$WINRM" --dir "$work/lab" 2> "$work/lab.log" &
LAB=$!
for _ in $(seq 300); do grep -q "^serving" "$work/lab.log" && break; sleep 0.1; done
grep -q "^serving" "$work/lab.log" || { cat "$work/lab.log" >&2; exit 1; }

# The bastion: a real sshd accepting the lab's client key.
ssh-keygen -q -t ed25519 -N '' -f "$work/bastion_key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/bastion.conf" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $work/bastion_key
PidFile $work/bastion.pid
AuthorizedKeysFile $work/lab/keys/id_ed25519.pub
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
LogLevel ERROR
EOF
/usr/sbin/sshd -D -e -f "$work/bastion.conf" 2> "$work/bastion.log" &
BASTION=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/bastion_key.pub")" >> "$work/lab/keys/known_hosts"

direct=$work/lab/inventory.toml
through=$work/through.toml
python3 - "$direct" "$through" "$(id -un)" "$port" <<'EOF'
import sys
src, dst, user, port = sys.argv[1:]
text = open(src).read()
parts = text.split("[[tenant]]\n")
out = parts[0]
for part in parts[1:]:
    name, rest = part.split("\n", 1)
    out += f'[[tenant]]\n{name}\njump = ["{user}@127.0.0.1:{port}"]\n{rest}'
open(dst, "w").write(out)
EOF

# The agents go to every host first, so that the runs below time the audit alone.
"$E" audit -i "$direct" --no-share > /dev/null 2>&1 || true

# audit INVENTORY: "wall cpu" of one audit; every host must have answered.
# shellcheck source=bench/lib-audit.sh
. "$root/bench/lib-audit.sh"
audit() { timed_audit "$E" "$1" "$HOSTS" "$work"; }

: > "$work/direct.txt"
: > "$work/through.txt"
for i in $(seq "$RUNS"); do
    audit "$direct" >> "$work/direct.txt"
    audit "$through" >> "$work/through.txt"
    echo "run $i: direct $(tail -1 "$work/direct.txt"), through $(tail -1 "$work/through.txt") (wall s, cpu s)" >&2
done

python3 - "$work/direct.txt" "$work/through.txt" "$HOSTS" "$WINRM" <<'EOF'
import statistics, sys
def load(p):
    rows = [tuple(map(float, l.split())) for l in open(p) if l.strip()]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
(dw, dc), (tw, tc) = load(sys.argv[1]), load(sys.argv[2])
hosts, winrm = int(sys.argv[3]), int(sys.argv[4])
print(f"audit of {hosts} lab hosts ({winrm} over WinRM), medians:")
print(f"  direct:              {dw:6.2f} s wall, {dc:6.2f} s controller CPU")
print(f"  through one bastion: {tw:6.2f} s wall, {tc:6.2f} s controller CPU")
print(f"  ratio through/direct: wall {tw / dw:.2f}x (bar: 1.3x), CPU {tc / dc:.2f}x")
EOF
