# Shared by the benchmarks that compare two ways of auditing the same fleet.
# Source it; `timed_audit ECFLEET INVENTORY HOSTS WORK` runs one audit (no share, JSON), checks
# that every one of HOSTS hosts answered (else prints the audit's last error lines and exits),
# and prints "wall-seconds cpu-seconds" (the ecfleet process: user + sys, GNU time).
timed_audit() {
    local ecfleet=$1 inventory=$2 hosts=$3 work=$4
    /usr/bin/time -f "%e %U %S" -o "$work/time" "$ecfleet" audit -i "$inventory" --no-share \
        --format json > "$work/out.json" 2> "$work/err" || true
    python3 - "$work/out.json" "$hosts" <<'PY' || { tail -3 "$work/err" >&2; exit 1; }
import json, sys
report = json.load(open(sys.argv[1]))
down = [h["host"] for h in report["hosts"] if not h["reachable"]]
if len(report["hosts"]) != int(sys.argv[2]) or down:
    sys.exit(f"incomplete audit: unreachable {down[:5]}")
PY
    # GNU time writes "Command exited with non-zero status" first when the audit exits 1.
    tail -1 "$work/time" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }'
}
