#!/usr/bin/env bash
# Scale benchmark (issue 8): controller CPU per host and peak RSS of warm audits behind the
# in-process lab server at several fleet sizes, for this tree and a baseline revision built
# side by side, measured in the same run. Both controllers drive the same hosts with the same
# agent build (this tree's), so that every audit is warm (no upload) and only the controllers
# differ.
#
# Usage: bench/scale.sh            (SIZES="200 1000 5000" RUNS=3 BASELINE=c24a013)
# Needs: python3, GNU time (/usr/bin/time). Prints a table; figures go to docs/performance.md.
set -euo pipefail

SIZES=${SIZES:-"200 1000 5000"}
RUNS=${RUNS:-3}
BASELINE=${BASELINE:-c24a013}
AS_OF=${AS_OF:-2026-11-24}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d /tmp/ecfleet-scale.XXXXXX)
lab_pid=
cleanup() {
    [ -n "$lab_pid" ] && kill "$lab_pid" 2>/dev/null || true
    git -C "$root" worktree remove --force "$work/baseline" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building $BASELINE and this tree (release, one target directory: shared dependencies)" >&2
git worktree add -q --detach "$work/baseline" "$BASELINE"
(cd "$work/baseline" && CARGO_TARGET_DIR="$root/target" cargo build --release -q -p ecfleet)
cp "$root/target/release/ecfleet" "$work/ecfleet-before"
# Cargo keys workspace crates by their path inside the workspace, so the baseline's artifacts
# look current to this tree; newer sources make it rebuild them.
find "$root/src" "$root/agent/src" "$root/proto/src" -name '*.rs' -exec touch {} +
cargo build --release -q
after=$root/target/release/ecfleet
before=$work/ecfleet-before
agents=$root/target/release

# measure BIN INVENTORY: "CPU_S RSS_KB" medians of $RUNS warm audits.
measure() {
    local bin=$1 inventory=$2 cpus=() rss=()
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%U %S %M" -o "$work/time" "$bin" audit -i "$inventory" --as-of "$AS_OF" \
            --agent-dir "$agents" --format json --no-progress --no-share > "$work/out.json" 2>/dev/null || true
        python3 - "$work/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["reachable"] == r["summary"]["hosts"], r["summary"]
PY
        read -r usr sys kb < <(tail -1 "$work/time")
        cpus+=("$(python3 -c "print($usr + $sys)")")
        rss+=("$kb")
    done
    python3 -c "
import statistics, sys
n = int(sys.argv[1]); v = list(map(float, sys.argv[2:]))
print(statistics.median(v[:n]), statistics.median(v[n:]))" "$RUNS" "${cpus[@]}" "${rss[@]}"
}

results=()
for n in $SIZES; do
    echo "== $n lab hosts" >&2
    "$after" lab up --hosts "$n" --dir "$work/lab$n" 2> "$work/lab$n.log" &
    lab_pid=$!
    until grep -q "^serving" "$work/lab$n.log" 2>/dev/null; do sleep 0.2; done
    inventory=$work/lab$n/inventory.toml
    # Warm-up: the agent goes to every host once.
    "$after" audit -i "$inventory" --as-of "$AS_OF" --agent-dir "$agents" --format json \
        --no-progress --no-share > /dev/null 2>&1 || true
    read -r b_cpu b_rss < <(measure "$before" "$inventory")
    read -r a_cpu a_rss < <(measure "$after" "$inventory")
    results+=("$n $b_cpu $b_rss $a_cpu $a_rss")
    kill "$lab_pid"; wait "$lab_pid" 2>/dev/null || true; lab_pid=
done

python3 - "$BASELINE" "${results[@]}" <<'PY'
import sys
base = sys.argv[1]
rows = [list(map(float, r.split())) for r in sys.argv[2:]]
print(f"warm audits behind the in-process lab server, median of runs; before = {base}, after = this tree")
print(f"{'hosts':>6} {'before ms/host':>15} {'after ms/host':>14} {'after/before':>13} {'before RSS MiB':>15} {'after RSS MiB':>14}")
per = {}
for n, bc, br, ac, ar in rows:
    b, a = bc / n * 1000, ac / n * 1000
    per[int(n)] = a
    print(f"{int(n):>6} {b:>15.2f} {a:>14.2f} {a / b:>12.2f}x {br / 1024:>15.1f} {ar / 1024:>14.1f}")
if 1000 in per and 5000 in per:
    print(f"after: CPU per host at 5000 vs 1000 hosts: {per[5000] / per[1000]:.2f}x (target <= 1.2x)")
PY
