//! The SSH transport (russh + russh-sftp): connect with strict host-key checking, key or
//! password authentication, exec with stdout/stderr/exit status, SFTP upload (atomic rename)
//! and download. Every network await has a timeout. russh types stay inside this module.

pub mod known_hosts;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use russh::client::{self, Handle};
use russh::keys::ssh_key::PublicKey;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use russh::{ChannelMsg, Preferred, cipher};
use russh_sftp::client::SftpSession;
use tokio::io::AsyncWriteExt;

use self::known_hosts::{HostKeyVerdict, KnownHosts, fingerprint};
use super::{ExecOutput, TransportError};
use crate::inventory::SecretRef;

/// Most output a single command may return before it is cut off (a runaway agent or shell).
const MAX_OUTPUT_BYTES: usize = 32 << 20;

/// How to reach one host.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The inventory name, for messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    pub password: Option<SecretRef>,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
}

/// What connections in one run share: parsed known_hosts files and loaded keys (each read
/// once, not once per host), and whether new host keys may be learned.
pub struct SshContext {
    accept_new_host_keys: bool,
    known_hosts: Mutex<HashMap<PathBuf, Arc<KnownHosts>>>,
    keys: Mutex<HashMap<PathBuf, Arc<PrivateKey>>>,
}

impl SshContext {
    pub fn new(accept_new_host_keys: bool) -> Self {
        SshContext {
            accept_new_host_keys,
            known_hosts: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn known_hosts(&self, path: &Path) -> Result<Arc<KnownHosts>, TransportError> {
        let mut cache = self.known_hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kh) = cache.get(path) {
            return Ok(kh.clone());
        }
        let kh = Arc::new(KnownHosts::load(path).map_err(|e| {
            TransportError::Credential(format!("cannot read known_hosts {}: {e}", path.display()))
        })?);
        cache.insert(path.to_path_buf(), kh.clone());
        Ok(kh)
    }

    fn key(&self, path: &Path) -> Result<Arc<PrivateKey>, TransportError> {
        let mut cache = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(path) {
            return Ok(k.clone());
        }
        let key = russh::keys::load_secret_key(path, None).map_err(|e| {
            let hint = if e.to_string().to_lowercase().contains("encrypt") {
                "encrypted keys are not supported yet; use a dedicated unencrypted key readable only by you"
            } else {
                "check identity_file in the inventory"
            };
            TransportError::Credential(format!("cannot load identity file {}: {e} ({hint})", path.display()))
        })?;
        let key = Arc::new(key);
        cache.insert(path.to_path_buf(), key.clone());
        Ok(key)
    }
}

/// russh's callback side: verifies the host key and remembers why it refused one.
struct Verifier {
    name: String,
    address: String,
    port: u16,
    known_hosts: Arc<KnownHosts>,
    known_hosts_path: PathBuf,
    accept_new: bool,
    refusal: Arc<Mutex<Option<TransportError>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            self.refuse(TransportError::Protocol(format!("{} presented a host certificate; certificates are not trusted yet, record its plain key in known_hosts", self.name)));
            return Ok(false);
        };
        let verdict = self.known_hosts.check(&self.address, self.port, key);
        let (host, print, file) = (
            self.name.clone(),
            fingerprint(key),
            self.known_hosts_path.display().to_string(),
        );
        let refusal = match verdict {
            HostKeyVerdict::Trusted => return Ok(true),
            HostKeyVerdict::Unknown if self.accept_new => {
                known_hosts::learn(&self.known_hosts_path, &self.address, self.port, key)?;
                tracing::info!(host = %self.name, fingerprint = %print, "learned new host key");
                return Ok(true);
            }
            HostKeyVerdict::Unknown => TransportError::HostKeyUnknown {
                host,
                fingerprint: print,
                file,
            },
            HostKeyVerdict::Changed { line } => TransportError::HostKeyChanged {
                host,
                fingerprint: print,
                file,
                line,
            },
            HostKeyVerdict::Revoked { line } => TransportError::HostKeyRevoked {
                host,
                fingerprint: print,
                file,
                line,
            },
        };
        self.refuse(refusal);
        Ok(false)
    }
}

impl Verifier {
    fn refuse(&self, e: TransportError) {
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

/// One authenticated SSH connection.
pub struct SshConnection {
    handle: Handle<Verifier>,
    name: String,
}

fn client_config(known_algorithms: Vec<russh::keys::Algorithm>) -> client::Config {
    // AES-GCM first: 20–40 % less CPU than chacha20 on AES-NI machines (design/SSH.md §2).
    let mut preferred = Preferred {
        cipher: std::borrow::Cow::Owned(vec![
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_CTR,
            cipher::AES_128_CTR,
        ]),
        ..Preferred::default()
    };
    if !known_algorithms.is_empty() {
        // Ask for a host key type we already know for this host, as OpenSSH does.
        let mut keys = known_algorithms;
        for a in Preferred::default().key.iter() {
            if !keys.contains(a) {
                keys.push(a.clone());
            }
        }
        preferred.key = std::borrow::Cow::Owned(keys);
    }
    client::Config {
        preferred,
        inactivity_timeout: Some(Duration::from_secs(600)),
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

async fn within<T>(
    limit: Duration,
    what: impl Fn() -> String,
    fut: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Timeout {
            what: what(),
            secs: limit.as_secs(),
        }),
    }
}

impl SshConnection {
    /// TCP connect, key exchange, host-key check and authentication, all within the target's
    /// connect timeout.
    pub async fn connect(ctx: &SshContext, target: &SshTarget) -> Result<Self, TransportError> {
        let known = ctx.known_hosts(&target.known_hosts)?;
        let refusal = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            name: target.name.clone(),
            address: target.address.clone(),
            port: target.port,
            known_hosts: known.clone(),
            known_hosts_path: target.known_hosts.clone(),
            accept_new: ctx.accept_new_host_keys,
            refusal: refusal.clone(),
        };
        let config = Arc::new(client_config(
            known.algorithms_for(&target.address, target.port),
        ));
        let addr = format!("{}:{}", target.address, target.port);
        let connect = async {
            let stream = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
                .await
                .map_err(|source| TransportError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let mut handle = match client::connect_stream(config, stream, verifier).await {
                Ok(h) => h,
                Err(e) => {
                    if let Some(refused) = refusal.lock().unwrap_or_else(|p| p.into_inner()).take()
                    {
                        return Err(refused);
                    }
                    return Err(TransportError::Protocol(format!(
                        "SSH handshake with {addr} failed: {e}"
                    )));
                }
            };
            authenticate(ctx, &mut handle, target).await?;
            Ok(SshConnection {
                handle,
                name: target.name.clone(),
            })
        };
        within(
            target.connect_timeout,
            || format!("connecting to {addr}"),
            connect,
        )
        .await
    }

    /// Runs one command and collects its output, within `limit`.
    pub async fn exec(&self, command: &str, limit: Duration) -> Result<ExecOutput, TransportError> {
        let run = async {
            let mut channel = self.handle.channel_open_session().await.map_err(protocol)?;
            channel.exec(true, command).await.map_err(protocol)?;
            let mut out = ExecOutput::default();
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => append(&mut out.stdout, &data)?,
                    ChannelMsg::ExtendedData { data, ext: 1 } => append(&mut out.stderr, &data)?,
                    ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.signal = Some(format!("{signal_name:?}"))
                    }
                    _ => {}
                }
            }
            Ok(out)
        };
        within(limit, || format!("command on {}", self.name), run).await
    }

    async fn sftp(&self) -> Result<SftpSession, TransportError> {
        let mut channel = self.handle.channel_open_session().await.map_err(protocol)?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(protocol)?;
        // The server answers the request; a refusal (no `Subsystem sftp` in sshd_config) must
        // be an error now, not a silent wait for an SFTP handshake that never comes.
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => {
                    return Err(TransportError::Protocol(format!(
                        "{} refused the SFTP subsystem; enable it in sshd_config (Subsystem sftp …)",
                        self.name
                    )));
                }
                Some(_) => continue,
            }
        }
        let config = russh_sftp::client::Config {
            request_timeout_secs: 60,
            ..Default::default()
        };
        SftpSession::new_with_config(channel.into_stream(), config)
            .await
            .map_err(|e| TransportError::Sftp {
                path: String::new(),
                message: format!("cannot start SFTP: {e}"),
            })
    }

    /// Writes `data` to `path` (an SFTP path) through a temporary name and a rename, so a
    /// reader never sees half a file. Creates missing parent directories.
    pub async fn upload(
        &self,
        data: Bytes,
        path: &str,
        mode: Option<u32>,
        limit: Duration,
    ) -> Result<(), TransportError> {
        let sftp_err = |message: String| TransportError::Sftp {
            path: path.to_string(),
            message,
        };
        let run = async {
            let sftp = self.sftp().await?;
            let mut dir = String::new();
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            for (i, part) in parent.split('/').enumerate() {
                if i > 0 || part.is_empty() {
                    dir.push('/');
                }
                dir.push_str(part);
                if part.is_empty() || part.ends_with(':') {
                    continue;
                }
                // Exists already, most of the time; a real failure shows at create() below.
                let _ = sftp.create_dir(dir.clone()).await;
            }
            let tmp = format!("{path}.ecfleet-partial");
            let mut file = sftp
                .create(tmp.clone())
                .await
                .map_err(|e| sftp_err(format!("cannot create {tmp}: {e}")))?;
            file.write_all(&data)
                .await
                .map_err(|e| sftp_err(format!("write failed: {e}")))?;
            file.shutdown()
                .await
                .map_err(|e| sftp_err(format!("write failed: {e}")))?;
            if let Some(mode) = mode {
                let attrs = russh_sftp::protocol::FileAttributes {
                    permissions: Some(mode),
                    ..Default::default()
                };
                let _ = sftp.set_metadata(tmp.clone(), attrs).await;
            }
            let _ = sftp.remove_file(path.to_string()).await;
            sftp.rename(tmp.clone(), path.to_string())
                .await
                .map_err(|e| sftp_err(format!("cannot rename {tmp} into place: {e}")))?;
            let _ = sftp.close().await;
            Ok(())
        };
        within(
            limit,
            || format!("upload to {} on {}", path, self.name),
            run,
        )
        .await
    }

    /// Reads a whole remote file over SFTP.
    pub async fn download(&self, path: &str, limit: Duration) -> Result<Vec<u8>, TransportError> {
        let run = async {
            let sftp = self.sftp().await?;
            let data = sftp
                .read(path.to_string())
                .await
                .map_err(|e| TransportError::Sftp {
                    path: path.to_string(),
                    message: e.to_string(),
                })?;
            let _ = sftp.close().await;
            Ok(data)
        };
        within(
            limit,
            || format!("download of {} from {}", path, self.name),
            run,
        )
        .await
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.handle
                .disconnect(russh::Disconnect::ByApplication, "", "en"),
        )
        .await;
    }
}

fn append(buf: &mut Vec<u8>, data: &[u8]) -> Result<(), TransportError> {
    if buf.len() + data.len() > MAX_OUTPUT_BYTES {
        return Err(TransportError::Protocol(format!(
            "command output exceeded {} MiB",
            MAX_OUTPUT_BYTES >> 20
        )));
    }
    buf.extend_from_slice(data);
    Ok(())
}

fn protocol(e: russh::Error) -> TransportError {
    TransportError::Protocol(e.to_string())
}

async fn authenticate(
    ctx: &SshContext,
    handle: &mut Handle<Verifier>,
    target: &SshTarget,
) -> Result<(), TransportError> {
    let mut tried = Vec::new();
    if let Some(path) = &target.identity_file {
        let key = ctx.key(path)?;
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(protocol)?
                .flatten()
        } else {
            None
        };
        let result = handle
            .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(protocol)?;
        if result.success() {
            return Ok(());
        }
        tried.push(format!("key {}", path.display()));
    }
    if let Some(reference) = &target.password {
        let secret = reference
            .resolve()
            .map_err(|e| TransportError::Credential(e.to_string()))?;
        let result = handle
            .authenticate_password(target.user.clone(), secret.expose())
            .await
            .map_err(protocol)?;
        if result.success() {
            return Ok(());
        }
        tried.push(format!("password from {reference}"));
    }
    Err(TransportError::Auth {
        user: target.user.clone(),
        host: target.name.clone(),
        tried: tried.join(", "),
    })
}

/// The public half of a key, for tests and the lab.
pub fn public_key_of(key: &PrivateKey) -> PublicKey {
    key.public_key().clone()
}
