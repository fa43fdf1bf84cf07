#!/usr/bin/env bash
# What the agent's self-check (--expect-sha256) costs per start: the release agent started 50
# times with and without it (`--version`, so nothing else runs); medians and the difference.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q -p ecfleet-agent
agent=$root/target/release/ecfleet-agent
hash=$(sha256sum "$agent" | cut -c1-64)
python3 - "$agent" "$hash" <<'PY'
import os, statistics, subprocess, sys, time
agent, digest = sys.argv[1], sys.argv[2]
def median_ms(args):
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        subprocess.run([agent] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000
plain = median_ms(["--version"])
checked = median_ms(["--expect-sha256", digest, "--version"])
size = os.path.getsize(agent) / 1e6
print(f"agent {size:.1f} MB: start {plain:.2f} ms, with self-check {checked:.2f} ms "
      f"(+{checked - plain:.2f} ms, {checked / plain:.1f}x the bare start)")
PY
