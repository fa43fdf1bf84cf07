#!/usr/bin/env bash
# Audit benchmark (issue #2): the same lab fleet behind real OpenSSH sshd instances on loopback,
# read by
#   1. ecfleet audit                                   (the product)
#   2. xargs -P $PARALLEL ssh … ecfleet-agent facts     (plain OpenSSH, KEX curve25519-sha256)
#   3. the same loop with OpenSSH's default KEX
#   4. ansible -m raw … ecfleet-agent facts             (only when `ansible` is on PATH or
#                                                       $ANSIBLE_BIN points at it)
# Every contender does the same remote work (run the agent on each host and bring back its JSON)
# with the same parallelism, against the same hosts; each run is checked for completeness (every
# host answered) before its time counts. Figures are medians of $RUNS runs and are printed as
# ratios against the best OpenSSH loop, measured in the same run. ecfleet built at $BASELINE
# (default: the revision before the foundation redesign of issue 8) runs too, against the same
# hosts with the same agent, so that this tree is compared with it in the same run. Then
# ecfleet's peak RSS is measured auditing $RSS_HOSTS hosts.
#
# Usage: bench/audit.sh            (HOSTS=200 RSS_HOSTS=1000 RUNS=3 PARALLEL=50 SSHD=8
#                                   BASELINE=c24a013; BASELINE= skips it)
# Needs: openssh-server, openssh-client, python3, GNU time (/usr/bin/time). Run as any user that
# sshd accepts keys for (root in CI containers works: PermitRootLogin prohibit-password).
set -euo pipefail

HOSTS=${HOSTS:-200}
RSS_HOSTS=${RSS_HOSTS:-1000}
RUNS=${RUNS:-3}
PARALLEL=${PARALLEL:-50}
SSHD=${SSHD:-8}
AS_OF=${AS_OF:-2026-11-24}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

BASELINE=${BASELINE-c24a013}
work=$(mktemp -d /tmp/ecfleet-bench.XXXXXX)
pids=()
cleanup() {
    if [ -n "${KEEP:-}" ]; then
        echo "kept $work; sshd pids: ${pids[*]}" >&2
        return
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    git -C "$root" worktree remove --force "$work/baseline" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$BASELINE" ]; then
    echo "== building $BASELINE (release, in this tree's target directory)" >&2
    git worktree add -q --detach "$work/baseline" "$BASELINE"
    (cd "$work/baseline" && CARGO_TARGET_DIR="$root/target" cargo build --release -q -p ecfleet)
    cp "$root/target/release/ecfleet" "$work/ecfleet-baseline"
    # Cargo keys workspace crates by their path inside the workspace, so the baseline's
    # artifacts look current to this tree; newer sources make it rebuild them.
    find "$root/src" "$root/agent/src" "$root/proto/src" -name '*.rs' -exec touch {} +
fi
echo "== building (release)" >&2
cargo build --release -q
ecfleet=$root/target/release/ecfleet
agent=$root/target/release/ecfleet-agent

# shellcheck source=bench/lib-sshd.sh
. "$root/bench/lib-sshd.sh"
start_sshds

# make_fleet N DIR: a lab of N hosts, an ecfleet inventory, a host list for the loops
# (name port lab_root) and an Ansible INI inventory. The lab's hosts share 127.0.0.1 and a few
# ports, and Ansible names its ControlMaster socket after host, port and user, so by default it
# would run every host behind one port over a single shared connection: 8 logins for 200 hosts,
# which no real fleet (one address per server) allows. Each host gets its own control path.
make_fleet() {
    local n=$1 dir=$2
    "$ecfleet" lab init --hosts "$n" --as-of "$AS_OF" --dir "$dir/lab" > /dev/null
    [ "$user" = "$(id -un)" ] || chown -R "$user" "$dir/lab"
    {
        printf '[defaults]\nuser = "%s"\nidentity_file = "%s"\nknown_hosts = "%s"\nos = "linux"\nconnect_timeout = 30\n\n' \
            "$user" "$work/id_ed25519" "$work/known_hosts"
        printf '[share]\npath = "%s"\n\n' "$dir/share"
    } > "$dir/inventory.toml"
    : > "$dir/hosts.txt"
    printf '[lab]\n' > "$dir/ansible.ini"
    local i=0 last_tenant=""
    for h in $(ls "$dir/lab/hosts" | sort); do
        local tenant="tenant${h:1:2}" port=${ports[$((i % SSHD))]} lab_root="$dir/lab/hosts/$h"
        if [ "$tenant" != "$last_tenant" ]; then
            printf '[[tenant]]\nname = "%s"\n\n' "$tenant" >> "$dir/inventory.toml"
            last_tenant=$tenant
        fi
        printf '[[tenant.host]]\nname = "%s"\naddress = "127.0.0.1"\nport = %s\nlab_root = "%s"\n\n' \
            "$h" "$port" "$lab_root" >> "$dir/inventory.toml"
        echo "$h $port $lab_root" >> "$dir/hosts.txt"
        echo "$h ansible_host=127.0.0.1 ansible_port=$port lab_root=$lab_root ansible_control_path=%(directory)s/$h" >> "$dir/ansible.ini"
        i=$((i + 1))
    done
}

# Each contender is run_X (timed) and check_X (untimed: did every host answer?).

run_ecfleet() {
    local dir=$1 bin=${3:-$ecfleet}
    "$bin" audit -i "$dir/inventory.toml" --as-of "$AS_OF" --format json --no-progress \
        --no-share --concurrency "$PARALLEL" --agent-dir "$(dirname "$agent")" \
        > "$dir/ecfleet.json" 2> "$dir/ecfleet.err" || true
}
check_ecfleet() {
    local dir=$1 n=$2
    python3 - "$dir/ecfleet.json" "$n" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ok = sum(1 for h in r["hosts"] if h["reachable"])
if ok != int(sys.argv[2]):
    sys.exit(f"ecfleet read {ok} of {sys.argv[2]} hosts: " + "; ".join(
        f'{h["host"]}: {h["error"]}' for h in r["hosts"] if not h["reachable"])[:500])
EOF
}

# The plain OpenSSH loop: one ssh per host, the agent's JSON saved per host.
run_ssh_loop() {
    local dir=$1 kex=$3
    rm -rf "$dir/out" && mkdir -p "$dir/out"
    export work dir user KEY KNOWN
    if [ "$kex" = default ]; then KEXOPT=; else KEXOPT="-o KexAlgorithms=$kex"; fi
    export KEXOPT
    xargs -P "$PARALLEL" -L 1 sh -c '
        ssh -q -i "$KEY" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN" \
            -o StrictHostKeyChecking=yes $KEXOPT -p "$1" "$user@127.0.0.1" \
            "$2/.ecfleet/ecfleet-agent facts --backend lab --lab-root $2" > "$dir/out/$0.json"
    ' < "$dir/hosts.txt" || true
}
check_ssh_loop() {
    local dir=$1 n=$2 got
    got=$(grep -l '"schema_version"' "$dir"/out/*.json | wc -l)
    [ "$got" -eq "$n" ] || { echo "ssh loop ($3) read $got of $n hosts" >&2; return 1; }
}

# The floor: the same loop running `true` instead of the agent. What a server spends on a
# connection, a login and a command that does nothing; no client can make a host cheaper than it.
run_floor() {
    local dir=$1
    export KEY KNOWN user
    xargs -P "$PARALLEL" -L 1 sh -c '
        ssh -q -i "$KEY" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN" \
            -o StrictHostKeyChecking=yes -o KexAlgorithms=curve25519-sha256 -p "$1" \
            "$user@127.0.0.1" true || echo "$0" >> "$dir/floor.failed"
    ' < "$dir/hosts.txt"
}
check_floor() {
    local dir=$1
    [ ! -e "$dir/floor.failed" ] || { echo "floor: $(wc -l < "$dir/floor.failed") hosts failed" >&2; rm -f "$dir/floor.failed"; return 1; }
}

run_ansible() {
    local dir=$1 cp
    cp=$(mktemp -d "$work/ansible-cp.XXXX") # cold connections every run, like a nightly job
    ANSIBLE_SSH_CONTROL_PATH_DIR=$cp ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_FORKS=$PARALLEL \
    ANSIBLE_LOCAL_TEMP="$work/ansible-tmp" \
        "$ANSIBLE_BIN" all -i "$dir/ansible.ini" -m raw -o -u "$user" \
        --private-key "$KEY" \
        "--ssh-common-args=-o UserKnownHostsFile=$KNOWN -o StrictHostKeyChecking=yes" \
        -a 'exec {{ lab_root }}/.ecfleet/ecfleet-agent facts --backend lab --lab-root {{ lab_root }}' \
        > "$dir/ansible.out" 2> "$dir/ansible.err" || true
}
# Ansible leaves its ControlMaster connections open (ControlPersist 60 s); closing them ends the
# servers' side of the run, so that it is counted, and keeps them from weighing on the next run.
settle_ansible() {
    local s
    for s in "$work"/ansible-cp.*/*; do
        [ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1
    done
    rm -rf "$work"/ansible-cp.*
}
check_ansible() {
    local dir=$1 n=$2 got
    got=$(grep -c 'schema_version' "$dir/ansible.out" || true)
    [ "$got" -eq "$n" ] || { echo "ansible read $got of $n hosts" >&2; tail -3 "$dir/ansible.err" >&2; return 1; }
}

# busy_ticks: clock ticks this machine has spent so far, on all cores, in anything but idle and
# I/O wait (/proc/stat). A run's busy time less the contender's own CPU is what its servers cost:
# sshd's per-connection processes, the shells and agents, and the kernel's loopback work that no
# process is charged for. Nothing else on the machine is busy while the benchmark runs.
busy_ticks() {
    awk '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) }' /proc/stat
}
TICKS_PER_S=$(getconf CLK_TCK)

# measure NAME ARGS...: runs run_NAME $RUNS times (each checked by check_NAME) and prints
# "WALL CPU SERVER": median wall seconds; median CPU seconds (user + sys) of the contender's own
# process tree, i.e. what it costs the controller machine; and median CPU seconds the servers
# spent on the run: busy_ticks over the run, its settle_NAME when there is one (untimed clean-up)
# and a second for the servers to finish, less the CPU of the contender and of its clean-up.
measure() {
    local name=$1
    shift
    local walls=() cpus=() servers=() wall usr sys settle_usr=0 settle_sys=0 before after
    for _ in $(seq "$RUNS"); do
        local TIMEFORMAT='%R %U %S'
        before=$(busy_ticks)
        { time "run_$name" "$@" > /dev/null 2>&1; } 2> "$work/time"
        if declare -F "settle_$name" > /dev/null; then
            { time "settle_$name" > /dev/null 2>&1; } 2> "$work/settle"
            read -r _ settle_usr settle_sys < "$work/settle"
        fi
        sleep 1 # let the servers reap the last connections
        after=$(busy_ticks)
        "check_$name" "$@" >&2 || { echo failed; return; }
        read -r wall usr sys < "$work/time"
        walls+=("$wall")
        cpus+=("$(python3 -c "print($usr + $sys)")")
        servers+=("$(python3 -c "print(max(0, ($after - $before) / $TICKS_PER_S - $usr - $sys - $settle_usr - $settle_sys))")")
    done
    python3 -c "
import statistics, sys
n = int(sys.argv[1]); v = list(map(float, sys.argv[2:]))
print(*(round(statistics.median(v[i * n:(i + 1) * n]), 3) for i in range(3)))" \
        "$RUNS" "${walls[@]}" "${cpus[@]}" "${servers[@]}"
}

KEY=$work/id_ed25519
KNOWN=$work/known_hosts
echo "== fleet of $HOSTS lab hosts behind $SSHD sshd instances ($(ssh -V 2>&1))" >&2
mkdir -p "$work/f$HOSTS"
make_fleet "$HOSTS" "$work/f$HOSTS"
# Warm-up: ecfleet puts the agent on every host (the loops need it there too), then one
# untimed pass of a loop so that page cache and sshd are warm for everyone.
run_ecfleet "$work/f$HOSTS"
check_ecfleet "$work/f$HOSTS" "$HOSTS"
run_ssh_loop "$work/f$HOSTS" "$HOSTS" default

declare -A result
result[ecfleet]=$(measure ecfleet "$work/f$HOSTS" "$HOSTS")
[ -z "$BASELINE" ] || result[baseline]=$(measure ecfleet "$work/f$HOSTS" "$HOSTS" "$work/ecfleet-baseline")
result[curve]=$(measure ssh_loop "$work/f$HOSTS" "$HOSTS" curve25519-sha256)
result[default]=$(measure ssh_loop "$work/f$HOSTS" "$HOSTS" default)
result[floor]=$(measure floor "$work/f$HOSTS" "$HOSTS")
ANSIBLE_BIN=${ANSIBLE_BIN:-$(command -v ansible || true)}
if [ -n "$ANSIBLE_BIN" ]; then
    echo "== $("$ANSIBLE_BIN" --version | head -1)" >&2
    result[ansible]=$(measure ansible "$work/f$HOSTS" "$HOSTS")
fi

# Phase 2: the same contenders against the in-process lab server (`ecfleet lab up`). Its
# per-connection cost is a fraction of sshd's (no fork and re-exec per connection), so the
# servers' share of this machine's 2 cores shrinks and each contender's own cost shows: closer
# to a real fleet, where every server has CPUs of its own.
echo "== fleet of $HOSTS lab hosts behind the in-process lab server" >&2
"$ecfleet" lab up --hosts "$HOSTS" --dir "$work/inproc" 2> "$work/inproc.log" &
pids+=($!)
for _ in $(seq 600); do
    grep -q "serving" "$work/inproc.log" 2>/dev/null && break
    sleep 0.1
done
python3 - "$work/inproc" <<'EOF'
import re, sys
d = sys.argv[1]
text = open(f"{d}/inventory.toml").read()
hosts = re.findall(r'name = "(t[^"]+)"\naddress = "([^"]+)"\nport = (\d+)\nrole = "\w+"\nlab_root = "([^"]+)"', text)
open(f"{d}/hosts.txt", "w").write("".join(f"{n} {p} {r}\n" for n, a, p, r in hosts))
open(f"{d}/ansible.ini", "w").write("[lab]\n" + "".join(
    f"{n} ansible_host={a} ansible_port={p} lab_root={r} ansible_control_path=%(directory)s/{n}\n"
    for n, a, p, r in hosts))
EOF
sshd_user=$user
KEY=$work/inproc/keys/id_ed25519
KNOWN=$work/inproc/keys/known_hosts
user=ecfleet
run_ecfleet "$work/inproc"
check_ecfleet "$work/inproc" "$HOSTS"
declare -A inproc
inproc[ecfleet]=$(measure ecfleet "$work/inproc" "$HOSTS")
[ -z "$BASELINE" ] || inproc[baseline]=$(measure ecfleet "$work/inproc" "$HOSTS" "$work/ecfleet-baseline")
inproc[curve]=$(measure ssh_loop "$work/inproc" "$HOSTS" curve25519-sha256)
inproc[default]=$(measure ssh_loop "$work/inproc" "$HOSTS" default)
inproc[floor]=$(measure floor "$work/inproc" "$HOSTS")
if [ -n "$ANSIBLE_BIN" ]; then
    inproc[ansible]=$(measure ansible "$work/inproc" "$HOSTS")
fi
user=$sshd_user
KEY=$work/id_ed25519
KNOWN=$work/known_hosts

echo "== peak memory: ecfleet auditing $RSS_HOSTS hosts (the first run uploads the agent)" >&2
mkdir -p "$work/f$RSS_HOSTS"
make_fleet "$RSS_HOSTS" "$work/f$RSS_HOSTS"
rss_run() {
    /usr/bin/time -f '%M %e' -o "$work/rss.$1" "$ecfleet" audit \
        -i "$work/f$RSS_HOSTS/inventory.toml" --as-of "$AS_OF" --format json --no-progress \
        --no-share > "$work/f$RSS_HOSTS/ecfleet.json" 2>/dev/null || true
    check_ecfleet "$work/f$RSS_HOSTS" "$RSS_HOSTS"
}
rss_run cold
rss_run warm

python3 - "$HOSTS" "$PARALLEL" "$RUNS" "$RSS_HOSTS" "$(tail -1 "$work/rss.cold")" \
    "$(tail -1 "$work/rss.warm")" "${result[ecfleet]}" "${result[curve]}" "${result[default]}" \
    "${result[ansible]:-}" "${result[floor]}" "${inproc[ecfleet]}" "${inproc[curve]}" \
    "${inproc[default]}" "${inproc[ansible]:-}" "${inproc[floor]}" "$(nproc)" \
    "${result[baseline]:-}" "${inproc[baseline]:-}" "$BASELINE" <<'EOF'
import sys
hosts, par, runs, rss_hosts = sys.argv[1:5]
cold, warm = (a.split() for a in sys.argv[5:7])
cores = int(sys.argv[17])
baselines = sys.argv[18:20]
baseline_rev = sys.argv[20]
phases = [("behind OpenSSH sshd on loopback", sys.argv[7:12] + [baselines[0]]),
          ("behind the in-process lab server (cheap server side)", sys.argv[12:17] + [baselines[1]])]
def triple(v):
    if v.startswith("failed"):
        sys.exit("a contender did not read every host; see the messages above")
    return tuple(map(float, v.split()))
n = int(hosts)
for title, (e, c, d, a, f, b) in phases:
    rows = [("ecfleet audit", triple(e)),
            (f"xargs -P {par} ssh (curve25519)", triple(c)),
            (f"xargs -P {par} ssh (default KEX)", triple(d))]
    ansible = triple(a) if a else None
    if ansible:
        rows.append((f"ansible -m raw (forks {par})", ansible))
    base = triple(b) if b else None
    if base:
        rows.append((f"ecfleet audit at {baseline_rev}", base))
    eco = rows[0][1]
    best = min(rows[1][1], rows[2][1])
    print(f"\n{hosts} lab hosts {title}, parallelism {par}, median of {runs} runs")
    print(f"{'contender':34} {'wall s':>7} {'hosts/s':>8} {'vs best ssh loop':>17} "
          f"{'controller CPU s':>17} {'server CPU ms/host':>19}")
    for name, (wall, cpu, server) in rows:
        print(f"{name:34} {wall:7.2f} {n/wall:8.0f} {best[0]/wall:16.2f}x {cpu:17.2f} "
              f"{server * 1000 / n:19.1f}")
    floor = triple(f)
    print(f"{'floor: the ssh loop running true':34} {floor[0]:7.2f} {n/floor[0]:8.0f} {'':17} "
          f"{floor[1]:17.2f} {floor[2] * 1000 / n:19.1f}")
    if base:
        print(f"this tree vs ecfleet at {baseline_rev}: {base[0]/eco[0]:.2f}x the speed, "
              f"{base[1]/max(eco[1], 0.001):.2f}x less controller CPU (target: not slower, >= 1x)")
    print(f"ecfleet vs best OpenSSH loop: {best[0]/eco[0]:.2f}x the speed (target > 1x), "
          f"{best[1]/max(eco[1], 0.001):.1f}x less controller CPU")
    if ansible:
        print(f"ecfleet vs ansible -m raw:    {ansible[0]/eco[0]:.1f}x the speed (target >= 10x), "
              f"{ansible[1]/max(eco[1], 0.001):.1f}x less controller CPU")
        bound = floor[2] / cores
        print(f"  the servers' floor alone is {floor[2]:.2f} CPU s; on {cores} shared cores no client "
              f"can finish in under {bound:.2f} s, i.e. beat ansible by more than "
              f"{ansible[0]/bound:.1f}x here")
print(f"\npeak RSS, {rss_hosts} hosts: {int(cold[0])/1024:.1f} MiB with agent upload ({cold[1]} s), "
      f"{int(warm[0])/1024:.1f} MiB warm ({warm[1]} s); target < 100 MiB")
EOF
