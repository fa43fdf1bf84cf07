#!/usr/bin/env bash
# Staging benchmark (issue 9): a 150 MB lab installer to $HOSTS lab hosts behind real OpenSSH
# sshd on loopback, in one run:
#   1. `ecfleet stage --concurrency $PARALLEL` (fresh hosts)      vs
#   2. `xargs -P $PARALLEL scp` of the same file to the same hosts (the baseline),
#   medians of $RUNS, as aggregate MB/s and a ratio;
#   3. ecfleet again on hosts that have it (what moves: ~0 bytes);
#   4. ecfleet killed (SIGKILL) once half of the bytes arrived, then run again: what the second
#      run sends (it should send only the missing half);
#   5. the controller's peak RSS while staging to $RSS_HOSTS hosts behind the in-process lab
#      server (the installer is read once, never once per host; target < 350 MB).
#
# Usage: bench/stage.sh            (HOSTS=20 PARALLEL=10 RUNS=3 SIZE_MB=150 SSHD=4 RSS_HOSTS=200)
# Needs: openssh-server, openssh-client, python3, GNU time, ~SIZE_MB x (HOSTS + RSS_HOSTS) of disk.
set -euo pipefail

HOSTS=${HOSTS:-20}
PARALLEL=${PARALLEL:-10}
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-150}
SSHD=${SSHD:-4}
RSS_HOSTS=${RSS_HOSTS:-200}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== building (release)" >&2
cargo build --release -q
ecfleet=$root/target/release/ecfleet
work=$(mktemp -d /tmp/ecfleet-stage-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/lib-sshd.sh
. "$root/bench/lib-sshd.sh"
start_sshds

msi=$work/AzureADConnect.msi
"$ecfleet" lab msi --version 2.6.92.0 --size-mb "$SIZE_MB" --out "$msi" > /dev/null
size=$(stat -c %s "$msi")
sha=$(sha256sum "$msi" | cut -c1-16)

"$ecfleet" lab init --hosts "$HOSTS" --as-of 2026-11-24 --dir "$work/lab" > /dev/null
[ "$user" = "$(id -un)" ] || chown -R "$user" "$work/lab"
{
    printf '[defaults]\nuser = "%s"\nidentity_file = "%s"\nknown_hosts = "%s"\nos = "linux"\n\n' \
        "$user" "$work/id_ed25519" "$work/known_hosts"
    i=0
    for h in $(ls "$work/lab/hosts" | sort); do
        printf '[[tenant]]\nname = "t%s"\n[[tenant.host]]\nname = "%s"\naddress = "127.0.0.1"\nport = %s\nlab_root = "%s"\n\n' \
            "$i" "$h" "${ports[$((i % SSHD))]}" "$work/lab/hosts/$h"
        echo "$h ${ports[$((i % SSHD))]} $work/lab/hosts/$h" >> "$work/hosts.txt"
        i=$((i + 1))
    done
} > "$work/inventory.toml"
# Room for the installer on every lab host (the lab's free_bytes are simulated).
for m in "$work"/lab/hosts/*/machine.toml; do
    sed -i 's/^free_bytes = .*/free_bytes = 107374182400/' "$m"
done

clear_staged() { rm -rf "$work"/lab/hosts/*/.ecfleet/staged "$work"/lab/hosts/*/scp-staged; }

run_ecfleet() {
    "$ecfleet" stage -i "$work/inventory.toml" --msi "$msi" --format json --no-progress \
        --concurrency "$PARALLEL" > "$work/stage.json"
}
sent_by_ecfleet() { python3 -c "import json; print(json.load(open('$work/stage.json'))['summary']['bytes_sent'])"; }

run_scp() {
    export KEY=$work/id_ed25519 KNOWN=$work/known_hosts user msi
    xargs -P "$PARALLEL" -L 1 sh -c '
        ssh -q -i "$KEY" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN" -p "$1" "$user@127.0.0.1" "mkdir -p $2/scp-staged" &&
        scp -q -i "$KEY" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN" -P "$1" "$msi" "$user@127.0.0.1:$2/scp-staged/AzureADConnect.msi"
    ' < "$work/hosts.txt"
    for h in "$work"/lab/hosts/*; do cmp -s "$msi" "$h/scp-staged/AzureADConnect.msi" || { echo "scp: $h incomplete" >&2; exit 1; }; done
}

median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
timed() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); python3 -c "print($e - $s)"; }

echo "== warm-up: the agent on every host, page cache warm" >&2
run_ecfleet; clear_staged; run_scp; clear_staged

e_times=(); s_times=()
for _ in $(seq "$RUNS"); do
    clear_staged; e_times+=("$(timed run_ecfleet)")
    [ "$(sent_by_ecfleet)" -eq $((size * HOSTS)) ] || { echo "ecfleet did not send everything" >&2; exit 1; }
    clear_staged; s_times+=("$(timed run_scp)")
done
e_wall=$(median "${e_times[@]}"); s_wall=$(median "${s_times[@]}")

echo "== again, on hosts that have it" >&2
clear_staged; run_ecfleet
again_wall=$(timed run_ecfleet); again_sent=$(sent_by_ecfleet)

# Bytes on the hosts' staging folders so far (finished and partial files).
staged_bytes() {
    { find "$work"/lab/hosts/*/.ecfleet/staged -type f -printf '%s\n' 2>/dev/null || true; } |
        awk '{ s += $1 } END { print s + 0 }'
}

echo "== interrupted at half, then resumed" >&2
clear_staged
"$ecfleet" stage -i "$work/inventory.toml" --msi "$msi" --format json --no-progress \
    --concurrency "$PARALLEL" > /dev/null 2>&1 &
victim=$!
half=$((size * HOSTS / 2))
while kill -0 "$victim" 2>/dev/null; do
    got=$(staged_bytes)
    [ "$got" -ge "$half" ] && break
    sleep 0.05
done
kill -9 "$victim" 2>/dev/null || true
wait "$victim" 2>/dev/null || true
arrived=$(staged_bytes)
run_ecfleet
resume_sent=$(sent_by_ecfleet)

echo "== peak RSS staging to $RSS_HOSTS hosts behind the in-process lab server" >&2
"$ecfleet" lab up --hosts "$RSS_HOSTS" --dir "$work/inproc" 2> "$work/inproc.log" &
pids+=($!)
until grep -q "^serving" "$work/inproc.log" 2>/dev/null; do sleep 0.2; done
for m in "$work"/inproc/hosts/*/machine.toml; do
    sed -i 's/^free_bytes = .*/free_bytes = 107374182400/' "$m"
done
/usr/bin/time -f '%M %e' -o "$work/rss" "$ecfleet" stage -i "$work/inproc/inventory.toml" \
    --msi "$msi" --format json --no-progress > "$work/rss.json"
read -r rss_kb rss_wall < "$work/rss"
rss_ok=$(python3 -c "import json; print(json.load(open('$work/rss.json'))['summary']['staged'])")
rm -rf "$work"/inproc/hosts/*/.ecfleet/staged

python3 - "$HOSTS" "$PARALLEL" "$RUNS" "$size" "$e_wall" "$s_wall" "$again_wall" "$again_sent" \
    "$arrived" "$resume_sent" "$rss_kb" "$rss_wall" "$RSS_HOSTS" "$rss_ok" <<'PY'
import sys
hosts, par, runs, size = map(int, sys.argv[1:5])
e, s, again = map(float, sys.argv[5:8])
again_sent, arrived, resume_sent, rss_kb = map(int, sys.argv[8:12])
rss_wall, rss_hosts, rss_ok = float(sys.argv[12]), int(sys.argv[13]), int(sys.argv[14])
mb = size * hosts / 1e6
print(f"\n{size/1e6:.0f} MB installer to {hosts} lab hosts behind OpenSSH sshd, parallelism {par}, median of {runs}")
print(f"{'contender':28} {'wall s':>7} {'aggregate MB/s':>15}")
print(f"{'ecfleet stage':28} {e:7.2f} {mb/e:15.0f}")
print(f"{'xargs -P ' + str(par) + ' scp':28} {s:7.2f} {mb/s:15.0f}")
print(f"ecfleet vs scp: {s/e:.2f}x the aggregate speed (target >= 1x)")
print(f"again on hosts that have it: {again:.2f} s, {again_sent} bytes sent (target ~0)")
print(f"killed at {arrived/1e6:.0f} of {mb:.0f} MB, then run again: sent {resume_sent/1e6:.0f} MB "
      f"({resume_sent/(size*hosts - arrived) if size*hosts > arrived else 0:.2f}x what was missing; target ~1x)")
print(f"peak RSS staging to {rss_hosts} hosts (in-process lab server): {rss_kb/1024:.0f} MiB in {rss_wall:.0f} s, "
      f"{rss_ok} staged (target < 350 MiB)")
PY
