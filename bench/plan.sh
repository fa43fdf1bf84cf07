#!/usr/bin/env bash
# Plan benchmark (issue #3): `ecfleet plan --from-audit` over a saved audit of 1,000 lab hosts.
# The audit is made once, against the in-process lab server (`ecfleet lab up`). Then each
# contender is timed; figures are medians of $RUNS runs, given as ratios against baselines
# measured in the same run:
#   - python3 json.load of the same audit file (reading the input at all), and
#   - `ecfleet inventory check` of the same inventory (starting ecfleet and parsing the inventory).
#
# Usage: bench/plan.sh        (HOSTS=1000 RUNS=5)
set -euo pipefail
HOSTS=${HOSTS:-1000}
RUNS=${RUNS:-5}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== building (release)" >&2
cargo build --release -q
ecfleet=$root/target/release/ecfleet
work=$(mktemp -d /tmp/ecfleet-plan-bench.XXXXXX)
lab_pid=
cleanup() {
    [ -n "$lab_pid" ] && kill "$lab_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== lab of $HOSTS hosts, one audit" >&2
"$ecfleet" lab up --hosts "$HOSTS" --dir "$work/lab" 2> "$work/lab.log" &
lab_pid=$!
for _ in $(seq 600); do
    [ -f "$work/lab/inventory.toml" ] && grep -q "serving" "$work/lab.log" && break
    sleep 0.1
done
"$ecfleet" audit -i "$work/lab/inventory.toml" --format json --no-share --no-progress \
    > "$work/audit.json" || true
kill "$lab_pid"
lab_pid=
python3 - "$work/audit.json" "$HOSTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = sum(h["reachable"] for h in r["hosts"])
if ok != int(sys.argv[2]):
    sys.exit(f"the audit read {ok} of {sys.argv[2]} hosts")
PY

# median CMD...: median wall seconds of $RUNS runs (stdout discarded).
median() {
    local times=() t0 t1
    for _ in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        "$@" > /dev/null 2>&1
        t1=$(date +%s.%N)
        times+=("$(python3 -c "print($t1 - $t0)")")
    done
    python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "${times[@]}"
}

plan_s=$(median "$ecfleet" plan -i "$work/lab/inventory.toml" --from-audit "$work/audit.json" \
    --format json --out "$work/plan.json")
table_s=$(median "$ecfleet" plan -i "$work/lab/inventory.toml" --from-audit "$work/audit.json")
json_s=$(median python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$work/audit.json")
check_s=$(median "$ecfleet" inventory check -i "$work/lab/inventory.toml")
python3 - "$HOSTS" "$RUNS" "$(stat -c %s "$work/audit.json")" "$plan_s" "$table_s" "$json_s" "$check_s" \
    "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary'])" "$work/plan.json")" <<'PY'
import sys
hosts, runs, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
plan, table, js, check = map(float, sys.argv[4:8])
print(f"\nplanning {hosts} hosts from a saved audit ({size/1e6:.1f} MB), median of {runs} runs")
print(f"{'what':52} {'seconds':>8} {'vs json.load':>13}")
for name, s in [("ecfleet plan --from-audit --format json --out FILE", plan),
                ("ecfleet plan --from-audit (table)", table),
                ("baseline: python3 json.load(audit.json)", js),
                ("baseline: ecfleet inventory check", check)]:
    print(f"{name:52} {s:8.3f} {s/js:12.2f}x")
print(f"\nplan: {sys.argv[8]}")
print(f"target: well under a second for {hosts} hosts -> {'met' if plan < 1 else 'NOT met'} ({plan:.3f} s)")
PY
