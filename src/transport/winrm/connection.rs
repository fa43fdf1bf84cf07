//! A WinRM host as a [`Connection`]: every command in its own WinRS shell ([`shell::run`]) over
//! the host's one authenticated HTTP connection ([`HttpExchange`], used by one request at a
//! time). Files of [`PULL_MIN`] bytes and more go by host pull: the controller offers them over
//! its own HTTPS ([`pull`]) and one command on the host fetches them ([`fetch`]). When that
//! fails (the host cannot reach the controller, no client), this connection stops trying and
//! sends over the command's stdin instead, into one writer process on the host, in
//! envelope-sized Sends; [`Connection::transfer_method`] says which way the last file went,
//! and why. Either way SHA-256 is checked on the host before an atomic rename. What the host
//! runs decides the commands: `sh` for a lab host behind a WinRM endpoint, PowerShell on
//! Windows (asked once per connection: `echo ecfleet-%OS%`).

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{Mutex, OnceCell};

use super::envelope::{Session, ShellOptions};
use super::fetch::{self, Target};
use super::http::HttpExchange;
use super::pull;
use super::shell::{self, Run, ShellError, Stdin};
use crate::error::ErrorKind;
use crate::session::RemoteShell;
use crate::transport::{Connection, ExecOutput, Payload, TransportError};

/// Output a command may return (as over SSH).
const MAX_OUTPUT: usize = 32 << 20;
/// The envelope quota assumed when the host's is not known: Windows 2008 R2's 150 KiB, the
/// smallest there is (2012 and later: 500).
pub const DEFAULT_QUOTA: usize = 150 << 10;
/// The largest quota used even where a host allows more (Azure images set 8 MiB): bigger
/// Sends gain little once round trips are few, and cost memory per host.
const MAX_QUOTA: usize = 1 << 20;
/// Files this big and bigger go by host pull (smaller ones take fewer round trips over stdin).
pub const PULL_MIN: usize = 256 << 10;
/// How the last file went, said in the host's result.
pub const BY_PULL: &str = "host pull (HTTPS from the controller)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remote {
    Posix,
    Windows,
}

pub struct WinRmConnection {
    name: String,
    exchange: Mutex<HttpExchange>,
    session: Session,
    remote: OnceCell<Remote>,
    /// The service's envelope quota in bytes, asked once (for the size of Sends).
    quota: OnceCell<usize>,
    /// Host pull is allowed (the inventory's `file_transfer`).
    pull_allowed: bool,
    /// Why host pull failed on this connection (then it is not tried again).
    pull_failed: std::sync::Mutex<Option<String>>,
    /// How the last file went.
    method: std::sync::Mutex<Option<String>>,
}

fn transport_error(name: &str, e: ShellError) -> TransportError {
    let kind = match &e {
        ShellError::Exchange(x) => x.kind,
        ShellError::Timeout(_) => ErrorKind::Timeout,
        ShellError::TooLong(_) => ErrorKind::Refused,
        ShellError::Fault { fault, .. } if fault.code == Some(5) => ErrorKind::Auth,
        ShellError::Fault { .. } | ShellError::Reply(_) | ShellError::TooMuchOutput(_) => {
            ErrorKind::Protocol
        }
    };
    TransportError::new(kind, format!("{name}: {e}"))
}

/// `path` quoted for the host's writer (the session's quoting: control characters refused).
fn quoted(name: &str, remote: Remote, path: &str) -> Result<String, TransportError> {
    let shell = match remote {
        Remote::Posix => RemoteShell::Posix,
        Remote::Windows => RemoteShell::PowerShell,
    };
    shell
        .quote(path)
        .map_err(|e| TransportError::new(ErrorKind::Refused, format!("{name}: {e}")))
}

/// The start of every PowerShell script that writes a file: stop at the first error, `$p` the
/// (quoted) path, its folder made.
pub(super) fn ps_writing(quoted_path: &str) -> String {
    format!(
        "$ErrorActionPreference='Stop'; $p={quoted_path}; \
         [void](New-Item -ItemType Directory -Force -Path ([IO.Path]::GetDirectoryName($p))); "
    )
}

/// Windows PowerShell by its full path (cmd expands `%SystemRoot%`): never a PATH search that
/// could find another `powershell.exe` first.
const POWERSHELL: &str = r#""%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe""#;

/// Pieces a fetched file is read in over WinRM, one command each: base64 makes 16 MiB about
/// 21 MiB of output, well inside [`MAX_OUTPUT`].
const GET_PIECE: u64 = 4 << 20;

/// `powershell.exe … -EncodedCommand` for `script` (UTF-16LE, base64): nothing in it is seen
/// by cmd's parser.
fn powershell(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    format!(
        "{POWERSHELL} -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {}",
        data_encoding::BASE64.encode(&utf16)
    )
}

impl WinRmConnection {
    /// `pull_allowed`: big files may go by host pull.
    pub fn new(name: String, exchange: HttpExchange, session: Session, pull_allowed: bool) -> Self {
        WinRmConnection {
            name,
            exchange: Mutex::new(exchange),
            session,
            remote: OnceCell::new(),
            quota: OnceCell::new(),
            pull_allowed,
            pull_failed: std::sync::Mutex::new(None),
            method: std::sync::Mutex::new(None),
        }
    }

    fn set_method(&self, how: String) {
        *self.method.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
    }

    /// Fetched by the host from the controller: `Some(bytes sent)`; `None` when host pull does
    /// not apply or failed (then the caller sends over stdin).
    async fn pull(
        &self,
        file: &Payload,
        path: &str,
        target: Target<'_>,
        limit: Duration,
    ) -> Result<Option<u64>, TransportError> {
        if !self.pull_allowed {
            self.set_method("WinRM stdin (file_transfer = \"stdin\")".into());
            return Ok(None);
        }
        if file.data.len() < PULL_MIN {
            self.set_method("WinRM stdin (a small file)".into());
            return Ok(None);
        }
        let failed = self
            .pull_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(why) = failed {
            self.set_method(format!("WinRM stdin (host pull failed: {why})"));
            return Ok(None);
        }
        let fall_back = |why: String| {
            tracing::warn!(
                "{}: host pull failed ({why}); sending over WinRM stdin instead (slower)",
                self.name
            );
            *self.pull_failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
            self.set_method(format!("WinRM stdin (host pull failed: {why})"));
            Ok(None)
        };
        let (local, peer, dialer) = {
            let exchange = self.exchange.lock().await;
            (
                exchange.local_address(),
                exchange.peer_address(),
                exchange.dialer().clone(),
            )
        };
        let offer = if let Some(hop) = dialer.last_hop() {
            // The host sees the jump host, not this machine: it can pull only through a port
            // the jump host forwards back here (its pull_address).
            if dialer.pull_address().is_none() {
                self.set_method(format!(
                    "WinRM stdin (reached through jump host {hop}: the host cannot reach this controller to pull; set pull_address on the jump host to let it, docs/jump-hosts.md)"
                ));
                return Ok(None);
            }
            let deadline = tokio::time::Instant::now() + limit;
            match pull::offer_through(&dialer, file.data.clone(), deadline).await {
                Ok(o) => o,
                Err(e) => return fall_back(e),
            }
        } else {
            let (Some(local), Some(peer)) = (local, peer) else {
                return fall_back("no connection to take the addresses from".into());
            };
            match pull::offer(local, peer, file.data.clone()).await {
                Ok(o) => o,
                Err(e) => return fall_back(e),
            }
        };
        let remote = self.remote(limit).await?;
        let q = quoted(&self.name, remote, path)?;
        let seconds = limit.as_secs().max(1);
        let command = match remote {
            Remote::Posix => fetch::posix(&offer, &q, &target, seconds),
            Remote::Windows => powershell(&fetch::windows(&offer, &q, &target, seconds)),
        };
        let out = self.run(&command, None, limit).await?;
        drop(offer);
        if !out.success() {
            let why = match out.exit_status {
                Some(fetch::EXIT_WRONG_CONTENT) => format!("wrong content: {}", out.stderr_tail()),
                _ => out.stderr_tail(),
            };
            return fall_back(why);
        }
        self.set_method(match dialer.last_hop() {
            Some(hop) => format!("{BY_PULL} through jump host {hop}"),
            None => BY_PULL.into(),
        });
        let total = file.data.len() as u64;
        Ok(Some(match target {
            Target::Whole { .. } => total,
            Target::Rest { .. } => {
                let from: u64 = out
                    .stdout_text()
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                total.saturating_sub(from)
            }
        }))
    }

    /// The envelope quota: the service's `MaxEnvelopeSizekb` (500 on 2012 and later) when it
    /// tells (an administrator may ask), else [`DEFAULT_QUOTA`]. Asked only for stdin.
    async fn quota(&self, limit: Duration) -> usize {
        *self
            .quota
            .get_or_init(|| async {
                let ask = async {
                    let mut exchange = self.exchange.lock().await;
                    shell::config(&mut *exchange, &self.session).await
                };
                match tokio::time::timeout(limit, ask).await {
                    Ok(Ok(c)) => c
                        .max_envelope_size_kb
                        .map(|kb| (kb as usize) << 10)
                        .filter(|q| *q >= DEFAULT_QUOTA)
                        .unwrap_or(DEFAULT_QUOTA)
                        .min(MAX_QUOTA),
                    _ => DEFAULT_QUOTA,
                }
            })
            .await
    }

    async fn run(
        &self,
        command: &str,
        stdin: Option<Stdin<'_>>,
        limit: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let envelope_quota = match stdin {
            Some(_) => self.quota(limit).await,
            None => DEFAULT_QUOTA,
        };
        let run = Run {
            command,
            arguments: &[],
            skip_cmd_shell: false,
            stdin,
            max_output: MAX_OUTPUT,
            envelope_quota,
        };
        let shell_options = ShellOptions {
            codepage: Some(65001),
            no_profile: Some(true),
            ..ShellOptions::default()
        };
        let started = tokio::time::Instant::now();
        let mut exchange = tokio::time::timeout(limit, self.exchange.lock())
            .await
            .map_err(|_| {
                TransportError::timeout(
                    &format!("{}: waiting for the connection", self.name),
                    limit,
                )
            })?;
        let left = limit.saturating_sub(started.elapsed());
        let done = shell::run(&mut *exchange, &self.session, &shell_options, &run, left)
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        Ok(ExecOutput {
            stdout: done.stdout,
            stderr: done.stderr,
            exit_status: done.exit_code.map(|c| c as u32),
            signal: None,
        })
    }

    async fn remote(&self, limit: Duration) -> Result<Remote, TransportError> {
        self.remote
            .get_or_try_init(|| async {
                let out = self.run("echo ecfleet-%OS%", None, limit).await?;
                Ok(if out.stdout_text().contains("ecfleet-Windows_NT") {
                    Remote::Windows
                } else {
                    Remote::Posix
                })
            })
            .await
            .copied()
    }

    fn failed(&self, what: &str, out: &ExecOutput) -> TransportError {
        TransportError::new(
            ErrorKind::Refused,
            format!("{}: {what} failed: {}", self.name, out.stderr_tail()),
        )
    }

    async fn put_file(
        &self,
        file: &Payload,
        path: &str,
        mode: Option<u32>,
        limit: Duration,
    ) -> Result<(), TransportError> {
        let target = Target::Whole {
            sha256: &file.sha256,
            mode: mode.unwrap_or(0o644),
        };
        if self.pull(file, path, target, limit).await?.is_some() {
            return Ok(());
        }
        let remote = self.remote(limit).await?;
        let q = quoted(&self.name, remote, path)?;
        let (command, stdin) = match remote {
            Remote::Posix => (
                format!(
                    "set -e; p={p}; t=\"$p.ecfleet-partial\"; mkdir -p \"$(dirname \"$p\")\"; cat > \"$t\"; \
                     h=$(sha256sum \"$t\" | cut -d ' ' -f 1); \
                     if [ \"$h\" != {sha} ]; then rm -f \"$t\"; echo \"received SHA-256 $h\" >&2; exit 3; fi; \
                     chmod {mode:o} \"$t\"; mv -f \"$t\" \"$p\"",
                    p = q,
                    sha = file.sha256,
                    mode = mode.unwrap_or(0o644),
                ),
                Stdin::Raw(&file.data),
            ),
            Remote::Windows => (
                powershell(&format!(
                    "{head}$t=$p+'.ecfleet-partial'; \
                     $f=[IO.File]::Create($t); $h=[Security.Cryptography.SHA256]::Create(); \
                     foreach($l in $input){{ if($l.Length){{ $b=[Convert]::FromBase64String($l); $f.Write($b,0,$b.Length); [void]$h.TransformBlock($b,0,$b.Length,$null,0) }} }}; \
                     [void]$h.TransformFinalBlock([byte[]]@(),0,0); $f.Close(); \
                     $s=-join($h.Hash|ForEach-Object{{$_.ToString('x2')}}); \
                     if($s -ne '{sha}'){{ Remove-Item -LiteralPath $t; throw \"received SHA-256 $s\" }}; \
                     Move-Item -Force -LiteralPath $t -Destination $p",
                    head = ps_writing(&q),
                    sha = file.sha256,
                )),
                Stdin::Base64Lines(&file.data),
            ),
        };
        let out = self.run(&command, Some(stdin), limit).await?;
        if !out.success() {
            return Err(self.failed(&format!("writing {path}"), &out));
        }
        Ok(())
    }

    async fn put_rest(
        &self,
        file: &Payload,
        path: &str,
        limit: Duration,
    ) -> Result<u64, TransportError> {
        let target = Target::Rest {
            total: file.data.len() as u64,
        };
        if let Some(sent) = self.pull(file, path, target, limit).await? {
            return Ok(sent);
        }
        let remote = self.remote(limit).await?;
        let q = quoted(&self.name, remote, path)?;
        let size_command = match remote {
            Remote::Posix => format!("if [ -f {p} ]; then wc -c < {p}; else echo 0; fi", p = q),
            Remote::Windows => powershell(&format!(
                "$p={}; if(Test-Path -LiteralPath $p){{(Get-Item -Force -LiteralPath $p).Length}}else{{0}}",
                q
            )),
        };
        let out = self.run(&size_command, None, limit).await?;
        let have: u64 = out
            .stdout_text()
            .trim()
            .parse()
            .map_err(|_| self.failed(&format!("reading the size of {path}"), &out))?;
        let total = file.data.len() as u64;
        let from = if have <= total { have } else { 0 };
        let rest = &file.data[from as usize..];
        let append = from > 0;
        let (command, stdin) = match remote {
            Remote::Posix => (
                format!(
                    "p={p}; mkdir -p \"$(dirname \"$p\")\" && cat {op} \"$p\"",
                    p = q,
                    op = if append { ">>" } else { ">" }
                ),
                Stdin::Raw(rest),
            ),
            Remote::Windows => (
                powershell(&format!(
                    "{head}$f=New-Object IO.FileStream($p,[IO.FileMode]::{mode}); \
                     foreach($l in $input){{ if($l.Length){{ $b=[Convert]::FromBase64String($l); $f.Write($b,0,$b.Length) }} }}; $f.Close()",
                    head = ps_writing(&q),
                    mode = if append { "Append" } else { "Create" }
                )),
                Stdin::Base64Lines(rest),
            ),
        };
        let out = self.run(&command, Some(stdin), limit).await?;
        if !out.success() {
            return Err(self.failed(&format!("writing {path}"), &out));
        }
        Ok(rest.len() as u64)
    }

    async fn get_file(
        &self,
        path: &str,
        max_bytes: u64,
        limit: Duration,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, TransportError> {
        let deadline = tokio::time::Instant::now() + limit;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let remote = self.remote(limit).await?;
        let q = quoted(&self.name, remote, path)?;
        let command = match remote {
            Remote::Posix => format!("wc -c < {q}"),
            Remote::Windows => powershell(&format!(
                "$ErrorActionPreference='Stop'; $ProgressPreference='SilentlyContinue'; (Get-Item -Force -LiteralPath {q}).Length"
            )),
        };
        let out = self.run(&command, None, left()).await?;
        if !out.success() {
            return Err(self.failed(&format!("reading the size of {path}"), &out));
        }
        let size: u64 = out
            .stdout_text()
            .trim()
            .parse()
            .map_err(|_| self.failed(&format!("reading the size of {path}"), &out))?;
        if size > max_bytes {
            return Err(TransportError::new(
                ErrorKind::Refused,
                format!(
                    "{}: {path} is larger than {max_bytes} bytes ({size} bytes)",
                    self.name
                ),
            ));
        }
        // In pieces, one command each, each written out as it comes: a whole file in one
        // command's output would stop at the output cap (32 MiB, about 24 MiB of file in
        // base64), and a whole file in memory would let a host size the controller's memory.
        let mut offset = 0u64;
        while offset < size {
            let n = GET_PIECE.min(size - offset);
            let piece = self.get_piece(remote, &q, path, offset, n, left()).await?;
            if piece.is_empty() {
                return Err(TransportError::new(
                    ErrorKind::Protocol,
                    format!(
                        "{}: {path} ended at {offset} bytes, not the {size} it had when the read began",
                        self.name
                    ),
                ));
            }
            let piece = &piece[..piece.len().min(n as usize)];
            sink.write_all(piece)
                .map_err(|e| crate::transport::sink_error(path, e))?;
            offset += piece.len() as u64;
        }
        Ok(offset)
    }

    /// `n` bytes of `path` (quoted as `q`) from `offset`.
    async fn get_piece(
        &self,
        remote: Remote,
        q: &str,
        path: &str,
        offset: u64,
        n: u64,
        limit: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let command = match remote {
            Remote::Posix => format!("tail -c +{} {q} | head -c {n}", offset + 1),
            Remote::Windows => powershell(&format!(
                "$ErrorActionPreference='Stop'; $f=[IO.File]::Open({q},'Open','Read','ReadWrite'); \
                 try {{ [void]$f.Seek({offset},'Begin'); $b=New-Object byte[] {n}; $r=0; \
                 while($r -lt {n}){{ $k=$f.Read($b,$r,{n}-$r); if($k -le 0){{ break }}; $r+=$k }} }} finally {{ $f.Close() }}; \
                 [Convert]::ToBase64String($b,0,$r)"
            )),
        };
        let out = self.run(&command, None, limit).await?;
        if !out.success() {
            return Err(self.failed(&format!("reading {path} from {offset}"), &out));
        }
        match remote {
            Remote::Posix => Ok(out.stdout),
            Remote::Windows => {
                let text: String = out.stdout_text().split_whitespace().collect();
                data_encoding::BASE64.decode(text.as_bytes()).map_err(|e| {
                    TransportError::new(
                        ErrorKind::Protocol,
                        format!("{}: {path} came back damaged ({e})", self.name),
                    )
                })
            }
        }
    }
}

impl Connection for WinRmConnection {
    fn exec<'a>(
        &'a self,
        command: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(self.run(command, None, limit))
    }

    fn put<'a>(
        &'a self,
        file: &'a Payload,
        path: &'a str,
        mode: Option<u32>,
        limit: Duration,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.put_file(file, path, mode, limit))
    }

    fn put_from<'a>(
        &'a self,
        file: &'a Payload,
        path: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(self.put_rest(file, path, limit))
    }

    fn get<'a>(
        &'a self,
        path: &'a str,
        max_bytes: u64,
        limit: Duration,
        out: &'a mut (dyn std::io::Write + Send),
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(self.get_file(path, max_bytes, limit, out))
    }

    fn transfer_method(&self) -> Option<String> {
        self.method
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Every command's shell is already deleted; dropping closes the TCP connection.
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_writers_fit_cmd_s_line_and_carry_no_data() {
        // The script is fixed size: the file's bytes go over stdin, never on the command line.
        let line = powershell(&"x".repeat(900));
        assert!(line.len() < super::super::envelope::CMD_LINE_LIMIT);
        let lines = shell::base64_lines(&vec![7u8; 10_000]);
        let text = String::from_utf8(lines).unwrap();
        let decoded: Vec<u8> = text
            .lines()
            .flat_map(|l| data_encoding::BASE64.decode(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(decoded, vec![7u8; 10_000]);
    }
}
