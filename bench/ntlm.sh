#!/usr/bin/env bash
# ecfleet's own NTLM against the sspi crate's (issue 18 §1: "consider moving NTLM onto sspi ...
# say where with a measurement"). examples/ntlm_stacks.rs logs both clients in to ecfleet's
# acceptor, in alternating rounds, and seals WinRM-sized envelopes that the acceptor unseals
# (each client's output is checked while it is timed). Prints the client's time per login and
# sspi / ecfleet. Nothing here is a test.
#
# Usage: bench/ntlm.sh [HANDSHAKES=4000] [ENVELOPES=8] [BYTES=16384]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release --example ntlm_stacks -- "${1:-4000}" "${2:-8}" "${3:-16384}"
