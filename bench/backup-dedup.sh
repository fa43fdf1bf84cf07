#!/usr/bin/env bash
# Thirty nightly backups of an unchanged lab fleet (issue 20 §3; docs/backup.md): the share's
# growth as `du` counts it (blocks, and --apparent-size), against one night, in the same run;
# then `ecfleet backup verify` of every kept backup.
#
# Usage: bench/backup-dedup.sh    (HOSTS=200 NIGHTS=30; release builds of this tree)
# The agent keeps each night's folder on the host for an hour; the nights here are seconds
# apart, so the script removes those folders between nights as the agent's next run would.
set -euo pipefail

HOSTS=${HOSTS:-200}
NIGHTS=${NIGHTS:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q
bin=$root/target/release/ecfleet
work=$(mktemp -d /tmp/ecfleet-dedup.XXXXXX)
lab_pid=
cleanup() {
    [ -n "$lab_pid" ] && kill "$lab_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" lab up --hosts "$HOSTS" --dir "$work/lab" 2> "$work/lab.log" &
lab_pid=$!
until grep -q "^serving" "$work/lab.log" 2>/dev/null; do sleep 0.2; done
inventory=$work/lab/inventory.toml
share=$work/lab/share

night() {
    "$bin" backup -i "$inventory" --agent-dir "$root/target/release" --format json --no-progress \
        > "$work/night.json" 2>/dev/null
    rm -rf "$work"/lab/hosts/*/.ecfleet/backup
}
du_of() { du -s -B1 "$@" "$share/tenants" | cut -f1; }

start=$(date +%s)
night
one_blocks=$(du_of) one_bytes=$(du_of --apparent-size)
for _ in $(seq 2 "$NIGHTS"); do night; done
blocks=$(du_of) bytes=$(du_of --apparent-size)
took=$(( $(date +%s) - start ))
"$bin" backup verify -i "$inventory" --format json > "$work/verify.json" || true
python3 - "$HOSTS" "$NIGHTS" "$one_blocks" "$one_bytes" "$blocks" "$bytes" "$took" "$work/night.json" "$work/verify.json" <<'PY'
import json, sys
hosts, nights, ob, oa, b, a, took = map(int, sys.argv[1:8])
last = json.load(open(sys.argv[8]))["summary"]
v = json.load(open(sys.argv[9]))["summary"]
print(f"{nights} nightly backups of {hosts} unchanged lab hosts ({took} s)")
print(f"one night: {ob / 2**20:.1f} MiB on disk (du), {oa / 2**20:.1f} MiB in bytes (du --apparent-size)")
print(f"{nights} nights: {b / 2**20:.1f} MiB on disk = {b / ob:.2f}x one night; {a / 2**20:.1f} MiB in bytes = {a / oa:.2f}x (target < 2x)")
print(f"the last night: {last['new_bytes'] / 1024:.0f} KiB new, {last['reused_bytes'] / 2**20:.1f} MiB kept once")
print(f"backup verify: {v['verified']} of {v['backups']} backups verified, {v['damaged']} damaged, {v['incomplete']} incomplete; "
      f"named {v['named_bytes'] / 2**20:.0f} MiB, stored {v['stored_bytes'] / 2**20:.0f} MiB")
PY
