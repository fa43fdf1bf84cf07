//! `ecfleet-agent`: the helper binary ecfleet pushes to each Entra Connect host. One subcommand
//! per step; each prints one JSON document on stdout. Errors go to stderr with exit code 2.
//! It parses its own arguments to stay small: it ships to customer servers.

mod backend;
mod backup;
mod digest;
mod stage;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ecfleet_proto::step::Step;

const USAGE: &str =
    "usage: ecfleet-agent [--expect-sha256 HEX] facts [--backend windows|lab] [--lab-root DIR]
       ecfleet-agent [--expect-sha256 HEX] backup [--out-dir DIR] [--backend windows|lab] [--lab-root DIR]
       ecfleet-agent [--expect-sha256 HEX] stage --path FILE --sha256 HEX --size BYTES [--discard] [--backend …]
       ecfleet-agent [--expect-sha256 HEX] handoff --installer FILE --version VERSION [--backend …]
       ecfleet-agent [--expect-sha256 HEX] restart-adsync [--backend …]
       ecfleet-agent --version";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--expect-sha256") {
        let Some(expected) = args.get(1).cloned() else {
            eprintln!("ecfleet-agent: --expect-sha256 needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        args.drain(..2);
        match self_check(&expected) {
            // The controller trusts what follows only after this line.
            Ok(actual) => println!("{} {actual}", ecfleet_proto::AGENT_READY_PREFIX),
            Err(actual) => {
                // The controller reads this as "put the right build here and ask again".
                println!("{}", ecfleet_proto::AGENT_MISMATCH_MARKER);
                eprintln!(
                    "ecfleet-agent: this copy is {actual}, the controller expects {expected}"
                );
                return ExitCode::from(ecfleet_proto::AGENT_MISMATCH_EXIT);
            }
        }
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ecfleet-agent: {message}");
            ExitCode::from(2)
        }
    }
}

/// Compares the SHA-256 of this executable with `expected` (hex, any case). `Ok` and `Err`
/// both carry what this copy is.
fn self_check(expected: &str) -> Result<String, String> {
    let unreadable = |e: std::io::Error| format!("unreadable ({e})");
    let exe = std::env::current_exe().map_err(unreadable)?;
    let mut file = std::fs::File::open(&exe).map_err(unreadable)?;
    // Streamed through one small buffer: reading the whole file into memory first costs a page
    // fault per 4 KiB and was most of the check's time (bench/agent-self-check.sh).
    let (actual, _) = digest::sha256_reader(&mut file).map_err(unreadable)?;
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(actual)
    } else {
        Err(actual)
    }
}

fn run(args: &[String]) -> Result<(), String> {
    if matches!(
        args.first().map(String::as_str),
        Some("--version" | "version")
    ) {
        println!("ecfleet-agent {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let (step, rest) = Step::parse(args).map_err(|e| format!("{e}\n{USAGE}"))?;
    let backend = parse_backend(&rest)?;
    let document = match step {
        Step::Facts => backend::collect_facts(&backend)?,
        Step::Backup { out_dir } => backup::run(&backend, out_dir.map(PathBuf::from))?,
        Step::Stage {
            path,
            sha256,
            size,
            discard,
        } => to_json(&stage::check(
            &backend,
            &stage::Request {
                path: PathBuf::from(path),
                sha256,
                size,
                discard,
            },
        )?)?,
        Step::Handoff { installer, version } => to_json(&backend::handoff(
            &backend,
            std::path::Path::new(&installer),
            &version,
        )?)?,
        Step::RestartAdsync => to_json(&backend::restart_adsync(&backend)?)?,
    };
    print_document(&document)
}

/// A step's answer as JSON text.
fn to_json(answer: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(answer).map_err(|e| format!("cannot encode: {e}"))
}

fn print_document(output: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|_| stdout.write_all(b"\n"))
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("cannot write the result: {e}"))
}

fn parse_backend(args: &[String]) -> Result<backend::Backend, String> {
    let mut kind: Option<String> = None;
    let mut lab_root: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--backend" => kind = Some(value("--backend")?),
            "--lab-root" => lab_root = Some(PathBuf::from(value("--lab-root")?)),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    match (kind.as_deref(), lab_root) {
        (Some("lab") | None, Some(root)) => Ok(backend::Backend::Lab(root)),
        (Some("lab"), None) => Err("the lab backend needs --lab-root DIR".into()),
        (Some("windows"), None) => Ok(backend::Backend::Windows),
        (Some("windows"), Some(_)) => Err("--lab-root only goes with --backend lab".into()),
        (None, None) => Ok(backend::Backend::native()),
        (Some(other), _) => Err(format!("unknown backend `{other}` (windows or lab)")),
    }
}
