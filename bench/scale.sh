#!/usr/bin/env bash
# Scale benchmark (issues 8 and 20): controller CPU per host and peak RSS of this tree against
# a baseline revision built side by side, measured in the same run, behind the in-process lab
# server (this tree's, for both controllers, with this tree's agent: only the controllers
# differ).
#
#  1. warm audits at SIZES hosts (the agent already on every host);
#  2. a nightly backup at BACKUP_SIZES hosts: the night after a first one, each controller on
#     its own copy of the share;
#  3. a lab run night at RUN_SIZES hosts (plan, then run with the lab's playbook: the lab's
#     clock runs fast), each controller on the same pristine lab hosts and an empty share.
#
# Backup and run nights write the share, measured on each file system in SHARES (NIGHT_RUNS
# nights each, medians): `tmpfs` (a folder in TMPFS, /dev/shm: file operations cost the
# controller only their system calls, as on a network share where the file server does the
# file system's work) and `disk` (the work folder's file system). Why both: on a local ext4
# without a journal (this project's build machine), every new file scans the inodes deleted in
# the last minute (ext4's `recently_deleted`), so a night's own churn makes each new file
# dearer than the last (docs/performance.md).
#
# Usage: bench/scale.sh   (SIZES="200 1000 5000 10000" BACKUP_SIZES="200 1000"
#                          RUN_SIZES="200 1000" RUNS=3 NIGHT_RUNS=1 SHARES="tmpfs disk"
#                          BASELINE=9f1ec7d)
#        BEFORE_BIN=… AFTER_BIN=… AGENT_DIR=… bench/scale.sh   (built binaries: no build)
# Needs: python3, GNU time (/usr/bin/time). Prints tables; figures go to docs/performance.md.
set -euo pipefail

SIZES=${SIZES:-"200 1000 5000 10000"}
BACKUP_SIZES=${BACKUP_SIZES:-"200 1000"}
RUN_SIZES=${RUN_SIZES:-"200 1000"}
RUNS=${RUNS:-3}
NIGHT_RUNS=${NIGHT_RUNS:-1}
SHARES=${SHARES:-"tmpfs disk"}
TMPFS=${TMPFS:-/dev/shm}
BASELINE=${BASELINE:-9f1ec7d}
AS_OF=${AS_OF:-2026-11-24}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d /tmp/ecfleet-scale.XXXXXX)
lab_pid=
cleanup() {
    [ -n "$lab_pid" ] && kill "$lab_pid" 2>/dev/null || true
    rm -rf "$TMPFS/ecfleet-scale-${work##*.}"-*
    git -C "$root" worktree remove --force "$work/baseline" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# 10,000 lab hosts are 10,000 listening sockets in the lab server and as many connections per
# audit: raise the open-file limit to the hard limit, and widen the ports connections come
# from where this machine lets us (both said, so the figures can be read with them).
ulimit -n "$(ulimit -Hn)" || true
echo "== open files: $(ulimit -n)" >&2
if [ -w /proc/sys/net/ipv4/ip_local_port_range ]; then
    echo "10000 65000" > /proc/sys/net/ipv4/ip_local_port_range || true
fi
echo "== local ports: $(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null | tr '\t' '-'), tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null)" >&2

if [ -n "${BEFORE_BIN:-}" ] && [ -n "${AFTER_BIN:-}" ]; then
    # Binaries built already (a quick check of this script): no build.
    before=$BEFORE_BIN after=$AFTER_BIN
else
    echo "== building $BASELINE and this tree (release, one target directory: shared dependencies)" >&2
    git worktree add -q --detach "$work/baseline" "$BASELINE"
    (cd "$work/baseline" && CARGO_TARGET_DIR="$root/target" cargo build --release -q -p ecfleet)
    cp "$root/target/release/ecfleet" "$work/ecfleet-before"
    # Cargo keys workspace crates by their path inside the workspace, so the baseline's
    # artifacts look current to this tree; newer sources make it rebuild them.
    find "$root/src" "$root/agent/src" "$root/proto/src" -name '*.rs' -exec touch {} +
    cargo build --release -q
    after=$root/target/release/ecfleet
    before=$work/ecfleet-before
fi
agents=${AGENT_DIR:-$root/target/release}

# timed OUT BIN ARGS…: runs BIN, leaves "CPU_S RSS_KB" in $work/timed.
timed() {
    local out=$1
    shift
    /usr/bin/time -f "%U %S %M" -o "$work/time" "$@" > "$out" 2> "$work/stderr" || true
    read -r usr sys kb < <(tail -1 "$work/time")
    echo "$(python3 -c "print($usr + $sys)") $kb" > "$work/timed"
}

# medians "CPU…" "RSS…": the median of each half.
medians() {
    python3 -c "
import statistics, sys
n = len(sys.argv[1:]) // 2; v = list(map(float, sys.argv[1:]))
print(statistics.median(v[:n]), statistics.median(v[n:]))" "$@"
}

# share_dir KIND NAME: an empty folder for a share on file system KIND (tmpfs or disk).
share_dir() {
    local kind=$1 name=$2 d
    if [ "$kind" = tmpfs ]; then
        # Named after this run's work folder: the exit removes what an interrupted night left.
        d=$(mktemp -d "$TMPFS/ecfleet-scale-${work##*.}-$name.XXXXXX")
    else
        d=$work/$name
        rm -rf "$d"
        mkdir -p "$d"
    fi
    echo "$d"
}

# on_share INVENTORY SHARE: the inventory with its share's path replaced (printed: its file).
on_share() {
    local inventory=$1 share=$2 out
    out=$(mktemp --suffix=.toml "$work/inventory.XXXXXX")
    sed "s|^path = .*share\"|path = \"$share\"|" "$inventory" > "$out"
    grep -q "^path = \"$share\"" "$out" || { echo "no share path in $inventory" >&2; exit 1; }
    echo "$out"
}

lab_up() {
    local n=$1 dir=$2
    "$after" lab up --hosts "$n" --dir "$dir" 2> "$dir.log" &
    lab_pid=$!
    until grep -q "^serving" "$dir.log" 2>/dev/null; do
        kill -0 "$lab_pid" 2>/dev/null || { cat "$dir.log" >&2; exit 1; }
        sleep 0.2
    done
}

lab_down() {
    kill "$lab_pid"; wait "$lab_pid" 2>/dev/null || true; lab_pid=
}

# measure_audit BIN INVENTORY: "CPU_S RSS_KB" medians of $RUNS warm audits.
measure_audit() {
    local bin=$1 inventory=$2 cpus=() rss=()
    for _ in $(seq "$RUNS"); do
        timed "$work/out.json" "$bin" audit -i "$inventory" --as-of "$AS_OF" \
            --agent-dir "$agents" --format json --no-progress --no-share
        python3 - "$work/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["reachable"] == r["summary"]["hosts"], r["summary"]
PY
        read -r c k < "$work/timed"
        cpus+=("$c"); rss+=("$k")
    done
    medians "${cpus[@]}" "${rss[@]}"
}

audits=()
for n in $SIZES; do
    echo "== audit: $n lab hosts" >&2
    lab_up "$n" "$work/lab$n"
    inventory=$work/lab$n/inventory.toml
    # Warm-up: the agent goes to every host once.
    "$after" audit -i "$inventory" --as-of "$AS_OF" --agent-dir "$agents" --format json \
        --no-progress --no-share > /dev/null 2>&1 || true
    read -r b_cpu b_rss < <(measure_audit "$before" "$inventory")
    read -r a_cpu a_rss < <(measure_audit "$after" "$inventory")
    audits+=("$n $b_cpu $b_rss $a_cpu $a_rss")
    lab_down
    rm -rf "$work/lab$n"
done

# repeated N COMMAND…: COMMAND (which prints "CPU_S RSS_KB") N times; the medians printed.
repeated() {
    local n=$1 cpus=() rss=()
    shift
    for _ in $(seq "$n"); do
        read -r c k < <("$@")
        cpus+=("$c"); rss+=("$k")
    done
    medians "${cpus[@]}" "${rss[@]}"
}

# backup_night BIN INVENTORY LAB KIND: on a new share of KIND, a first night, then the timed
# one; the agent's folders of the first night are removed as its next run would an hour on.
backup_night() {
    local bin=$1 lab=$3 kind=$4 share inventory
    share=$(share_dir "$kind" backup-share)
    inventory=$(on_share "$2" "$share")
    "$bin" backup -i "$inventory" --agent-dir "$agents" --format json --no-progress > /dev/null 2>&1 || true
    rm -rf "$lab"/hosts/*/.ecfleet/backup
    timed "$work/backup.json" "$bin" backup -i "$inventory" --agent-dir "$agents" --format json --no-progress
    python3 - "$work/backup.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["failed"] == 0, r["summary"]
PY
    rm -rf "$lab"/hosts/*/.ecfleet/backup "$share"
    cat "$work/timed"
}

backups=()
for n in $BACKUP_SIZES; do
    echo "== backup: $n lab hosts" >&2
    lab_up "$n" "$work/blab$n"
    inventory=$work/blab$n/inventory.toml
    for kind in $SHARES; do
        read -r b_cpu b_rss < <(repeated "$NIGHT_RUNS" backup_night "$before" "$inventory" "$work/blab$n" "$kind")
        read -r a_cpu a_rss < <(repeated "$NIGHT_RUNS" backup_night "$after" "$inventory" "$work/blab$n" "$kind")
        backups+=("$kind $n $b_cpu $b_rss $a_cpu $a_rss")
    done
    lab_down
    rm -rf "$work/blab$n"
done

# run_night BIN LAB KIND: plan and run the night on the pristine lab hosts and an empty share
# of KIND.
run_night() {
    local bin=$1 lab=$2 kind=$3 share inventory
    rm -rf "$lab/hosts"
    cp -a "$lab/hosts.pristine" "$lab/hosts"
    share=$(share_dir "$kind" run-share)
    inventory=$(on_share "$lab/inventory.toml" "$share")
    "$bin" plan -i "$inventory" --as-of "$AS_OF" --msi "$work/lab.msi" \
        --out "$work/plan.json" --agent-dir "$agents" --no-progress > /dev/null 2>&1 || true
    timed "$work/run.json" "$bin" run -i "$inventory" --yes --ignore-windows --format json \
        --plan "$work/plan.json" --msi "$work/lab.msi" --playbook "$lab/run-playbook.toml" \
        --agent-dir "$agents" --no-progress
    python3 - "$work/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["verified"] > 0, r["summary"]
PY
    rm -rf "$share"
    cat "$work/timed"
}

"$after" lab msi --version 2.6.92.0 --size-mb 1 --out "$work/lab.msi" 2> /dev/null
runs=()
for n in $RUN_SIZES; do
    echo "== run night: $n lab hosts" >&2
    lab_up "$n" "$work/rlab$n"
    lab=$work/rlab$n
    "$after" audit -i "$lab/inventory.toml" --as-of "$AS_OF" --agent-dir "$agents" --format json \
        --no-progress --no-share > /dev/null 2>&1 || true
    cp -a "$lab/hosts" "$lab/hosts.pristine"
    for kind in $SHARES; do
        read -r b_cpu b_rss < <(repeated "$NIGHT_RUNS" run_night "$before" "$lab" "$kind")
        read -r a_cpu a_rss < <(repeated "$NIGHT_RUNS" run_night "$after" "$lab" "$kind")
        runs+=("$kind $n $b_cpu $b_rss $a_cpu $a_rss")
    done
    lab_down
    rm -rf "$lab"
done

python3 - "$BASELINE" "${#audits[@]}" "${audits[@]}" "${#backups[@]}" "${backups[@]}" "${runs[@]}" <<'PY'
import sys
base = sys.argv[1]
args = sys.argv[2:]
def take(args):
    k = int(args[0]); return [r.split() for r in args[1:1 + k]], args[1 + k:]
audits, args = take(args)
audits = [["-"] + r for r in audits]
backups, args = take(args)
runs = [r.split() for r in args]
def table(title, rows):
    print(title)
    print(f"{'share':>6} {'hosts':>6} {'before ms/host':>15} {'after ms/host':>14} {'after/before':>13} {'before RSS MiB':>15} {'after RSS MiB':>14}")
    per = {}
    for kind, *numbers in rows:
        n, bc, br, ac, ar = map(float, numbers)
        b, a = bc / n * 1000, ac / n * 1000
        per[(kind, int(n))] = a
        print(f"{kind:>6} {int(n):>6} {b:>15.2f} {a:>14.2f} {a / b:>12.2f}x {br / 1024:>15.1f} {ar / 1024:>14.1f}")
    return per
print(f"before = {base}, after = this tree; controller CPU (user + sys) per host and peak RSS")
audit = table("warm audits (no share), median of runs", audits)
if ("-", 1000) in audit:
    for big in (5000, 10000):
        if ("-", big) in audit:
            print(f"after: CPU per host at {big} vs 1000 hosts: {audit[('-', big)] / audit[('-', 1000)]:.2f}x (target <= 1.2x)")
print()
table("a nightly backup (the night after a first one), median of nights", backups)
print()
run = table("a lab run night (plan, then run; the lab's clock runs fast), median of nights", runs)
for (kind, n), a in run.items():
    if ("-", n) in audit:
        print(f"after: a run night's CPU per host at {n} hosts ({kind} share) is {a / audit[('-', n)]:.1f}x the warm audit's (target <= 10x)")
PY
