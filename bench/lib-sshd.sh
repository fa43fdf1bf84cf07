# Shared by the benchmarks: private OpenSSH sshd instances on loopback for lab hosts.
# Source it, then call `start_sshds`; it uses and sets these globals:
#   in:  work (a private temp dir), SSHD (how many instances), pids (array, for cleanup)
#   out: user (the remote user), ports (array), $work/id_ed25519 (client key),
#        $work/known_hosts (every instance's host key)
start_sshds() {
    sshd_bin=/usr/sbin/sshd
    [ -x "$sshd_bin" ] || { echo "needs OpenSSH sshd: apt-get install -y openssh-server" >&2; exit 1; }
    mkdir -p /run/sshd 2>/dev/null || true

    # The remote user. sshd runs every command through the user's login shell, and an interactive
    # set-up there (root's ~/.bashrc here starts pyenv: dozens of processes per command) would be
    # most of what is measured, for every contender alike. As root, the benchmark therefore uses a
    # user of its own with /bin/sh as its shell, like a service account; otherwise the current user.
    user=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        user=ecfleet-bench
        id "$user" >/dev/null 2>&1 || useradd --system --home-dir / --no-create-home --shell /bin/sh "$user"
        usermod -p "*" "$user" # no password, but not locked: sshd refuses locked accounts
        chmod 755 "$work"
    else
        echo "note: not root, so sshd runs commands through $(getent passwd "$user" | cut -d: -f7) and its start-up files" >&2
    fi

    ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
    cp "$work/id_ed25519.pub" "$work/authorized_keys"
    : > "$work/known_hosts"
    ports=()
    for i in $(seq 0 $((SSHD - 1))); do
        ssh-keygen -q -t ed25519 -N '' -f "$work/host$i"
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        cat > "$work/sshd$i.conf" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $work/host$i
PidFile $work/sshd$i.pid
AuthorizedKeysFile $work/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 1000:30:2000
MaxSessions 50
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
        "$sshd_bin" -D -e -f "$work/sshd$i.conf" >/dev/null 2>"$work/sshd$i.log" &
        pids+=($!)
        ports+=("$port")
        echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host$i.pub")" >> "$work/known_hosts"
    done
    for port in "${ports[@]}"; do
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.05
        done
    done
}
