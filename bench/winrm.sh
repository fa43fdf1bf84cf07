#!/usr/bin/env bash
# WinRM file transfer, measured in one run on one machine (issue 10; docs/performance.md):
#   - ecfleet sending a MB-sized installer (default 150) to one WinRM lab host (the lab's
#     in-process WinRM server), both ways: host pull (the default: the host fetches it from the
#     controller's HTTPS with curl) and streamed stdin over NTLM message encryption
#     (`file_transfer = "stdin"`, the fallback);
#   - ecfleet pushing the same file to one SSH lab host (SFTP), the baseline it should approach;
#   - pywinrm on the same WinRM endpoint: its usual chunked upload (one command per chunk,
#     base64 on the command line, as winrmcp/Packer do) on PYWINRM_MB (default 1), and a
#     streamed upload (stdin Sends into one `cat`) on PYWINRM_STREAM_MB (default 20).
# Figures are MB/s and ratios against each other. Nothing here is a test.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=${MB:-150}
PYWINRM_MB=${PYWINRM_MB:-1}
PYWINRM_STREAM_MB=${PYWINRM_STREAM_MB:-20}

cargo build --release -q
cargo build --release -q -p ecfleet-agent
E=$PWD/target/release/ecfleet
work=$(mktemp -d)
LAB=
cleanup() { [ -n "$LAB" ] && kill "$LAB" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q pywinrm==0.5.0 pyspnego==0.12.4

"$E" lab up --hosts 2 --winrm 1 --dir "$work/lab" 2> "$work/lab.log" &
LAB=$!
for _ in $(seq 100); do grep -q "^serving" "$work/lab.log" && break; sleep 0.1; done
inv=$work/lab/inventory.toml
read -r ssh_host winrm_host winrm_port < <(python3 - "$inv" <<'EOF'
import sys, tomllib
doc = tomllib.load(open(sys.argv[1], "rb"))
hosts = [h for t in doc["tenant"] for h in t["host"]]
ssh = [h for h in hosts if h.get("transport") != "winrm"][0]
winrm = [h for h in hosts if h.get("transport") == "winrm"][0]
print(ssh["name"], winrm["name"], winrm["port"])
EOF
)
password=$(cat "$work/lab/keys/winrm-password")
"$E" lab msi --version 2.6.92.0 --size-mb "$MB" --out "$work/AzureADConnect.msi" > /dev/null
# The agents first, so that the stages below time the installer only.
"$E" audit -i "$inv" --no-share > /dev/null 2>&1 || true

seconds() { python3 -c "import time; print(time.monotonic())"; }
# The same lab with every WinRM host sending over stdin.
sed 's/^transport = "winrm"$/transport = "winrm"\nfile_transfer = "stdin"/' "$inv" > "$work/stdin.toml"
stage() {
  local inventory=$1 host=$2 t0 t1
  # Each time from nothing: the staged copy of the previous round goes.
  rm -rf "$work/lab/hosts/$host/.ecfleet/staged"
  t0=$(seconds)
  "$E" stage -i "$inventory" --msi "$work/AzureADConnect.msi" --host "$host" > /dev/null
  t1=$(seconds)
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}
t_ssh=$(stage "$inv" "$ssh_host")
t_pull=$(stage "$inv" "$winrm_host")
t_winrm=$(stage "$work/stdin.toml" "$winrm_host")

read -r t_chunked t_streamed < <("$work/venv/bin/python" - "$winrm_port" "$password" "$PYWINRM_MB" "$PYWINRM_STREAM_MB" "$work" <<'EOF'
import base64, hashlib, os, sys, time, winrm
port, password, mb, stream_mb, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = winrm.Session(f"http://127.0.0.1:{port}/wsman", auth=("ecfleet", password), transport="ntlm")
p = s.protocol
data = os.urandom(mb << 20)
shell = p.open_shell()
t0 = time.monotonic()
# The usual chunked upload: one command per piece, base64 on the command line (under cmd's
# 8191-character limit), appended on the host.
piece = 6000
for i in range(0, len(data), piece):
    b64 = base64.b64encode(data[i:i + piece]).decode()
    cid = p.run_command(shell, f"echo {b64} | base64 -d >> {work}/pywinrm-chunked")
    p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
t_chunked = time.monotonic() - t0
data = os.urandom(stream_mb << 20)
t0 = time.monotonic()
cid = p.run_command(shell, f"cat > {work}/pywinrm-streamed")
step = 100_000
for i in range(0, len(data), step):
    p.send_command_input(shell, cid, data[i:i + step], end=i + step >= len(data))
p.get_command_output(shell, cid)
p.cleanup_command(shell, cid)
t_streamed = time.monotonic() - t0
p.close_shell(shell)
print(f"{t_chunked:.2f} {t_streamed:.2f}")
EOF
)

python3 - "$MB" "$t_ssh" "$t_pull" "$t_winrm" "$PYWINRM_MB" "$t_chunked" "$PYWINRM_STREAM_MB" "$t_streamed" <<'EOF'
import sys
mb, t_ssh, t_pull, t_winrm, pmb, t_chunked, smb, t_streamed = sys.argv[1:]
mb, pmb, smb = float(mb), float(pmb), float(smb)
rates = {
    "ecfleet → WinRM host (host pull, the default)": mb / float(t_pull),
    "ecfleet → WinRM host (stdin streaming, the fallback)": mb / float(t_winrm),
    "ecfleet → SSH host (SFTP)": mb / float(t_ssh),
    "pywinrm chunked upload (command per piece)": pmb / float(t_chunked),
    "pywinrm streamed upload (stdin Sends)": smb / float(t_streamed),
}
pull = rates["ecfleet → WinRM host (host pull, the default)"]
stdin = rates["ecfleet → WinRM host (stdin streaming, the fallback)"]
print("| transfer | MB/s | host pull is | stdin streaming is |")
print("|---|---|---|---|")
for name, r in rates.items():
    a = "—" if r == pull else f"{pull / r:.2f}×"
    b = "—" if r == stdin else f"{stdin / r:.2f}×"
    print(f"| {name} | {r:.1f} | {a} | {b} |")
EOF

# --- Part 2: audit HOSTS (default 200) WinRM lab hosts: ecfleet vs a pywinrm thread pool of 50
# running the same agent command on the same endpoints; then the controller's peak RSS auditing
# RSS_HOSTS (default 1000) WinRM hosts.
HOSTS=${HOSTS:-200}
RSS_HOSTS=${RSS_HOSTS:-1000}
kill "$LAB" 2>/dev/null; LAB=
"$E" lab up --hosts "$HOSTS" --winrm "$HOSTS" --dir "$work/fleet" 2> "$work/fleet.log" &
LAB=$!
for _ in $(seq 300); do grep -q "^serving" "$work/fleet.log" && break; sleep 0.1; done
finv=$work/fleet/inventory.toml
# Provision the agents once; both contenders then run them.
"$E" audit -i "$finv" --no-share > /dev/null 2>&1 || true
measure() {  # wall seconds, CPU seconds (user+sys of the command and its children), peak RSS MiB
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t0 = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.2f} {r.ru_utime + r.ru_stime:.2f} {r.ru_maxrss / 1024:.0f}")
PY
}
read -r e_wall e_cpu e_rss < <(measure "$E" audit -i "$finv" --no-share)
cat > "$work/pool.py" <<'PY'
import sys, tomllib, winrm
from concurrent.futures import ThreadPoolExecutor
inv, password = sys.argv[1], sys.argv[2]
doc = tomllib.load(open(inv, "rb"))
hosts = [h for t in doc["tenant"] for h in t["host"]]
def one(h):
    s = winrm.Session(f"http://127.0.0.1:{h['port']}/wsman", auth=("ecfleet", password), transport="ntlm")
    root = h["lab_root"]
    r = s.run_cmd(f"{root}/.ecfleet/ecfleet-agent facts --backend lab --lab-root {root}")
    return r.status_code == 0 and r.std_out.startswith(b"{")
with ThreadPoolExecutor(50) as pool:
    ok = sum(pool.map(one, hosts))
assert ok == len(hosts), f"{ok} of {len(hosts)}"
PY
fpassword=$(cat "$work/fleet/keys/winrm-password")
read -r p_wall p_cpu p_rss < <(measure "$work/venv/bin/python" "$work/pool.py" "$finv" "$fpassword")
kill "$LAB" 2>/dev/null; LAB=

"$E" lab up --hosts "$RSS_HOSTS" --winrm "$RSS_HOSTS" --dir "$work/big" 2> "$work/big.log" &
LAB=$!
for _ in $(seq 600); do grep -q "^serving" "$work/big.log" && break; sleep 0.1; done
"$E" audit -i "$work/big/inventory.toml" --no-share > /dev/null 2>&1 || true
read -r b_wall b_cpu b_rss < <(measure "$E" audit -i "$work/big/inventory.toml" --no-share)

python3 - "$HOSTS" "$e_wall" "$e_cpu" "$p_wall" "$p_cpu" "$RSS_HOSTS" "$b_wall" "$b_rss" <<'PY'
import sys
n, ew, ec, pw, pc, big, bw, brss = sys.argv[1:]
ew, ec, pw, pc = map(float, (ew, ec, pw, pc))
print()
print(f"| audit of {n} WinRM lab hosts | wall | controller CPU |")
print("|---|---|---|")
print(f"| ecfleet audit | {ew:.2f} s | {ec:.2f} s |")
print(f"| pywinrm, a pool of 50, the same agent command | {pw:.2f} s (ecfleet is {pw / ew:.1f}×) | {pc:.2f} s (ecfleet is {pc / max(ec, 0.01):.1f}×) |")
print()
print(f"ecfleet auditing {big} WinRM lab hosts: {float(bw):.1f} s, peak RSS {brss} MiB")
PY
