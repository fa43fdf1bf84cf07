//! The in-process lab SSH server (russh): one loopback listener and host key per simulated
//! host. Like sshd it authenticates a public key, runs exec requests as real processes
//! (`sh -c`, in the host's directory) and serves SFTP on the real filesystem, confined to the
//! host's directory. It serves the controller exactly as a real host would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, Server as _, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::transfer_faults::{TransferFaults, WriteVerdict};
use tokio::sync::Mutex;

/// One simulated host to serve.
pub struct ServedHost {
    pub dir: PathBuf,
    pub host_key: PrivateKey,
    pub listener: TcpListener,
}

#[derive(Clone)]
struct LabHostServer {
    dir: Arc<PathBuf>,
    client_key: Arc<PublicKey>,
}

impl russh::server::Server for LabHostServer {
    type Handler = LabSession;
    fn new_client(&mut self, _: Option<SocketAddr>) -> LabSession {
        LabSession {
            dir: self.dir.clone(),
            client_key: self.client_key.clone(),
            channels: HashMap::new(),
        }
    }
}

struct LabSession {
    dir: Arc<PathBuf>,
    client_key: Arc<PublicKey>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl russh::server::Handler for LabSession {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if key.public_key.key_data() == self.client_key.key_data() {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(channel) = self.channels.remove(&id) else {
            return session.channel_failure(id);
        };
        session.channel_success(id)?;
        let command = String::from_utf8_lossy(data).into_owned();
        let dir = self.dir.clone();
        tokio::spawn(run_command(channel, command, dir));
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, self.channels.remove(&id)) {
            ("sftp", Some(channel)) => {
                session.channel_success(id)?;
                let fs = LabSftp {
                    root: self.dir.clone(),
                    handles: HashMap::new(),
                    next: 0,
                    connection: session.handle(),
                    dropped: false,
                };
                russh_sftp::server::run(channel.into_stream(), fs).await;
                Ok(())
            }
            _ => session.channel_failure(id),
        }
    }
}

/// Kills a command's whole process group (sh and whatever it started).
#[cfg_attr(not(unix), allow(unused_variables))]
pub(super) fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on a process group we created; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Runs one exec request as a real process (in a process group of its own), streams its output
/// back, reports its exit status. When the client goes away first (its deadline passed, or it
/// disconnected), the whole group is killed, as sshd's session teardown would.
async fn run_command(channel: Channel<Msg>, command: String, dir: Arc<PathBuf>) {
    let (mut reader, writer) = channel.split();
    let child = super::own_group(
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(dir.as_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true),
    )
    .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = writer
                .extended_data(1, format!("lab: cannot run command: {e}\n").as_bytes())
                .await;
            let _ = writer.exit_status(127).await;
            let _ = writer.eof().await;
            let _ = writer.close().await;
            return;
        }
    };
    let pid = child.id();
    // Feed whatever the client sends to stdin, and keep the channel drained; the task ends
    // when the client closes the channel.
    let mut stdin = child.stdin.take();
    let mut feeder = tokio::spawn(async move {
        while let Some(msg) = reader.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                ChannelMsg::Eof => stdin = None,
                _ => {}
            }
        }
    });
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = async {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let err = async {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let (out, err) = tokio::select! {
        both = async { tokio::join!(out, err) } => both,
        _ = &mut feeder => {
            // The client left before the command ended.
            kill_group(pid);
            let _ = child.wait().await;
            return;
        }
    };
    let status = child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(255);
    if !out.is_empty() {
        let _ = writer.data(&out[..]).await;
    }
    if !err.is_empty() {
        let _ = writer.extended_data(1, &err[..]).await;
    }
    let _ = writer.exit_status(status as u32).await;
    let _ = writer.eof().await;
    let _ = writer.close().await;
    feeder.abort();
}

/// SFTP on the real filesystem, confined to one host's directory, with the host's transfer
/// faults ([`TransferFaults`]) on the files that have any.
struct LabSftp {
    root: Arc<PathBuf>,
    handles: HashMap<String, OpenFile>,
    next: u64,
    /// The SSH connection, to drop it when a fault says so.
    connection: russh::server::Handle,
    /// The connection was dropped by a fault: the requests already queued behind the cut are
    /// refused unapplied, as nothing after a real cut reaches the host (else pipelined writes
    /// past the cut would land and leave a hole before them).
    dropped: bool,
}

struct OpenFile {
    file: tokio::fs::File,
    faults: Option<TransferFaults>,
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn io_status(e: std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

impl LabSftp {
    /// The real path for a client path; anything outside the host directory is refused.
    fn resolve(&self, path: &str) -> Result<PathBuf, StatusCode> {
        let p = Path::new(path);
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(StatusCode::PermissionDenied);
        }
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        };
        if full.starts_with(self.root.as_path()) {
            Ok(full)
        } else {
            Err(StatusCode::PermissionDenied)
        }
    }
}

impl russh_sftp::server::Handler for LabSftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _ext: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = self.resolve(&filename)?;
        let mut o = tokio::fs::OpenOptions::new();
        o.read(pflags.contains(OpenFlags::READ))
            .write(pflags.contains(OpenFlags::WRITE) || pflags.contains(OpenFlags::APPEND))
            .append(pflags.contains(OpenFlags::APPEND))
            .create(pflags.contains(OpenFlags::CREATE))
            .truncate(pflags.contains(OpenFlags::TRUNCATE));
        if pflags.contains(OpenFlags::EXCLUDE) {
            o.create_new(true);
        }
        let file = o.open(&path).await.map_err(io_status)?;
        self.next += 1;
        let handle = format!("h{}", self.next);
        let faults = if pflags.contains(OpenFlags::WRITE) {
            TransferFaults::for_file(&self.root, &path)
        } else {
            None
        };
        self.handles
            .insert(handle.clone(), OpenFile { file, faults });
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        if let Some(mut f) = self.handles.remove(&handle) {
            f.file.flush().await.map_err(io_status)?;
        }
        Ok(ok(id))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let f = &mut self
            .handles
            .get_mut(&handle)
            .ok_or(StatusCode::Failure)?
            .file;
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io_status)?;
        let mut buf = vec![0; len.min(1 << 20) as usize];
        let n = f.read(&mut buf).await.map_err(io_status)?;
        if n == 0 {
            return Err(StatusCode::Eof.into());
        }
        buf.truncate(n);
        Ok(Data { id, data: buf })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        if self.dropped {
            return Err(StatusCode::ConnectionLost.into());
        }
        let open = self.handles.get_mut(&handle).ok_or(StatusCode::Failure)?;
        let verdict = open
            .faults
            .as_ref()
            .map_or(WriteVerdict::Write, |f| f.write(offset, data.len()));
        let keep = match verdict {
            WriteVerdict::Write => data.len(),
            WriteVerdict::WriteThenDrop(n) | WriteVerdict::WriteThenFull(n) => n,
        };
        open.file
            .seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io_status)?;
        open.file
            .write_all(&data[..keep])
            .await
            .map_err(io_status)?;
        match verdict {
            WriteVerdict::Write => Ok(ok(id)),
            WriteVerdict::WriteThenFull(_) => Err(StatusCode::Failure
                .with_message("No space left on device (simulated: faults.disk_fills_at_bytes)")),
            WriteVerdict::WriteThenDrop(_) => {
                self.dropped = true;
                open.file.flush().await.map_err(io_status)?;
                let _ = self
                    .connection
                    .disconnect(
                        russh::Disconnect::ConnectionLost,
                        "simulated: faults.staging_drops_at_bytes".into(),
                        "en".into(),
                    )
                    .await;
                Err(StatusCode::ConnectionLost.into())
            }
        }
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let meta = tokio::fs::symlink_metadata(self.resolve(&path)?)
            .await
            .map_err(io_status)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let meta = tokio::fs::metadata(self.resolve(&path)?)
            .await
            .map_err(io_status)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let f = self.handles.get(&handle).ok_or(StatusCode::Failure)?;
        let meta = f.file.metadata().await.map_err(io_status)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    #[cfg_attr(not(unix), allow(unused_variables))]
    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = self.resolve(&path)?;
        #[cfg(unix)]
        if let Some(mode) = attrs.permissions {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .await
                .map_err(io_status)?;
        }
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Ok(ok(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_file(self.resolve(&filename)?)
            .await
            .map_err(io_status)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        tokio::fs::create_dir(self.resolve(&path)?)
            .await
            .map_err(io_status)?;
        Ok(ok(id))
    }

    async fn rename(&mut self, id: u32, from: String, to: String) -> Result<Status, Self::Error> {
        let (from, to) = (self.resolve(&from)?, self.resolve(&to)?);
        if tokio::fs::metadata(&to).await.is_ok() {
            return Err(StatusCode::Failure.into());
        }
        tokio::fs::rename(from, to).await.map_err(io_status)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let full = if path == "." || path.is_empty() {
            self.root.as_path().to_path_buf()
        } else {
            self.resolve(&path)?
        };
        Ok(Name {
            id,
            files: vec![File::dummy(full.to_string_lossy())],
        })
    }
}

/// The key exchanges a lab host offers: those of the OpenSSH server Windows ships (8.1 as a
/// feature on demand on Windows Server 2019 and 2022; Microsoft's own port at 9.5 to 9.8),
/// which has no `mlkem768x25519-sha256` (OpenSSH 9.9 and later): a Windows 9.5 sshd agrees
/// on `curve25519-sha256` (its own log; docs/design/DOMAIN.md §8b.2, S53). So a lab host costs
/// the controller what a real one does; a server that offers ML-KEM costs it about 0.25 ms
/// more per host (docs/performance.md).
fn windows_openssh_algorithms() -> russh::Preferred {
    let default = russh::Preferred::default();
    let kex: Vec<russh::kex::Name> = default
        .kex
        .iter()
        .filter(|k| **k != russh::kex::MLKEM768X25519_SHA256)
        .copied()
        .collect();
    russh::Preferred {
        kex: std::borrow::Cow::Owned(kex),
        ..default
    }
}

/// Serves every host until `shutdown` resolves.
pub async fn serve(
    hosts: Vec<ServedHost>,
    client_key: PublicKey,
    shutdown: impl Future<Output = ()>,
) {
    let client_key = Arc::new(client_key);
    let mut tasks = tokio::task::JoinSet::new();
    for host in hosts {
        let config = Arc::new(russh::server::Config {
            keys: vec![host.host_key],
            auth_rejection_time: std::time::Duration::from_millis(50),
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            inactivity_timeout: Some(std::time::Duration::from_secs(600)),
            // russh writes each message on its own (exit status, EOF, close), where OpenSSH's
            // sshd queues them and writes them together: without TCP_NODELAY the lab would
            // stall 40 ms on each such burst (Nagle behind a peer's delayed ACK), which a real
            // sshd does not.
            nodelay: true,
            preferred: windows_openssh_algorithms(),
            ..Default::default()
        });
        let mut server = LabHostServer {
            dir: Arc::new(host.dir),
            client_key: client_key.clone(),
        };
        let listener = Mutex::new(host.listener);
        tasks.spawn(async move {
            let listener = listener.into_inner();
            let _ = server.run_on_socket(config, &listener).await;
        });
    }
    shutdown.await;
    tasks.abort_all();
}

#[cfg(test)]
mod tests {
    /// A lab host offers the key exchanges of Windows' own OpenSSH server: curve25519 first,
    /// no ML-KEM, and russh's extension markers kept (strict key exchange, ext-info).
    #[test]
    fn a_lab_host_offers_what_windows_openssh_offers() {
        let kex = super::windows_openssh_algorithms().kex;
        let names: Vec<&str> = kex.iter().map(|k| k.as_ref()).collect();
        assert!(!names.contains(&"mlkem768x25519-sha256"), "{names:?}");
        assert_eq!(names.first(), Some(&"curve25519-sha256"), "{names:?}");
        assert!(names.contains(&"kex-strict-s-v00@openssh.com"), "{names:?}");
    }
}
