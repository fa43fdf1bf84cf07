//! The command line: clap definitions only. Flags are parsed into plain values here and turned
//! into real objects in `main.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ecfleet",
    version,
    about = "Audit, plan and upgrade Microsoft Entra Connect sync servers across a fleet"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate the inventory; report every error with file:line and a fix.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Collect facts from every host and judge them against the version catalog.
    Audit(AuditArgs),
    /// Per host: in-place, migrate, two-hop, up-to-date or blocked (with the fix), in waves by
    /// maintenance window, staging servers first; optionally saved as a plan file.
    Plan(PlanArgs),
    /// Back up every selected host's sync configuration to the share (verified, never
    /// overwritten), report configuration drift since the previous backup, apply retention.
    Backup(BackupArgs),
    /// Put the installer on every selected host ahead of the window (verified by SHA-256 on the
    /// host, and its Microsoft signature on Windows); only what a host lacks is sent.
    Stage(StageArgs),
    /// The in-place upgrade, phase by phase (preflight, backup, stage and the operator's
    /// upgrade, verify), for the plan's in-place hosts, in its waves.
    Run(RunArgs),
    /// Show a run from its ledger on the share (finished, in progress, or stopped), or write
    /// the customer reports of a run or an audit snapshot as HTML (`report audit latest
    /// --format html --out DIR`).
    Report(ReportArgs),
    /// Put the results of the shards of one fleet (`--shard i/n`) together into one, checking
    /// that every shard is there once (docs/scale-out.md).
    #[command(subcommand)]
    Merge(MergeCommand),
    /// A simulated fleet on this machine.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Print the shell completion script for bash, zsh, fish or powershell (e.g.
    /// `ecfleet completions bash > /etc/bash_completion.d/ecfleet`).
    Completions {
        /// The shell to complete for: bash, zsh, fish or powershell (also elvish).
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a manual page for every command and subcommand into DIR (created if missing),
    /// e.g. `ecfleet man /usr/local/share/man/man1`.
    Man {
        /// The folder the pages go to (`man1`), created if missing.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Args, Clone)]
pub struct ReportArgs {
    /// The run's id, or `latest`; or `audit` for an audit snapshot (then SNAPSHOT).
    #[arg(value_name = "RUN-ID|latest|audit")]
    pub run: String,
    /// After `audit`: the snapshot's folder name under `audits/` on the share, or `latest`
    /// (the default).
    #[arg(value_name = "SNAPSHOT|latest")]
    pub snapshot: Option<String>,
    /// The inventory whose share holds the run.
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// Output: a table for people, JSON (docs/json-output.md), or the customer reports as
    /// HTML, one file per tenant and one for the fleet, into --out (docs/report.md). Default:
    /// a run's table; an audit snapshot's JSON.
    #[arg(long, value_enum)]
    pub format: Option<ReportFormatArg>,
    /// With --format html: the folder the reports go to (made if missing; a report of the
    /// same name is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With --format html: the version catalog support and deadlines are judged with (default
    /// the built-in one; give the run's plan's own if it was made with --catalog).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Full tables on a terminal too (by default fitted to its width).
    #[arg(long)]
    pub wide: bool,
    /// Send the run's end-of-night messages that were not delivered again (all of them when
    /// the run sent none), to the inventory's channels (docs/notify.md).
    #[arg(long)]
    pub notify: bool,
}

#[derive(Subcommand)]
pub enum MergeCommand {
    /// The audits of shards 1..n into one audit snapshot on the share; exits as that audit
    /// would (0, 1 findings, 2 hosts not reached), 3 when the shards do not fit together.
    Audit(MergeAuditArgs),
    /// The runs of shards 1..n of one plan into one run on the share (its report, and its
    /// customer reports with `ecfleet report`); exits as that run would (docs/exit-codes.md),
    /// 3 when the runs do not fit together.
    Run(MergeRunArgs),
}

#[derive(Args, Clone)]
pub struct MergeRunArgs {
    /// Each shard's run id (the ledger under `runs/` on the share).
    #[arg(value_name = "RUN-ID", required = true)]
    pub runs: Vec<String>,
    /// The inventory every shard ran from.
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The plan file every shard ran (`run --plan FILE --shard i/n`).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Output: a table for people, or JSON (as `ecfleet report`).
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormatArg,
    /// Full tables on a terminal too.
    #[arg(long)]
    pub wide: bool,
}

#[derive(Args, Clone)]
pub struct MergeAuditArgs {
    /// Each shard's audit: its snapshot's folder name under `audits/` on the share (the
    /// `snapshot:` line each audit printed), or a path to an `audit.json`.
    #[arg(value_name = "SNAPSHOT", required = true)]
    pub snapshots: Vec<String>,
    /// The inventory every shard was audited from.
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// Output: a table for people, JSON or CSV (as `ecfleet audit`).
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
    /// Full tables on a terminal too.
    #[arg(long)]
    pub wide: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    Table,
    Json,
    Html,
}

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Check an inventory without contacting any host: every error at once, with its file,
    /// line, key and fix (the share must exist and be writable).
    Check {
        /// The inventory to check.
        #[arg(short, long, value_name = "FILE")]
        inventory: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Csv,
}

/// What every fleet command takes: the inventory, the date, the host selection and how to
/// reach the hosts.
#[derive(Args, Clone)]
pub struct FleetArgs {
    /// The inventory (TOML): tenants, hosts, how to reach them, the share (docs/inventory.md).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The date support and deadlines are judged for (YYYY-MM-DD); default today. A plan also
    /// counts the next maintenance windows from midnight UTC of that day.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Only these hosts (repeatable).
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Only the hosts of these tenants (repeatable).
    #[arg(long = "tenant", value_name = "NAME")]
    pub tenants: Vec<String>,
    /// Only shard I of N (from 1), split by tenant: for N controllers or jobs that each take
    /// one shard, put together with `ecfleet merge` (docs/scale-out.md).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::shard::Shard>,
    /// Hosts worked on at once (default: the inventory's, else 64).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// A newer version catalog than the built-in one.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Record host keys not yet in known_hosts (never changed ones).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Where the agent builds are (default: beside ecfleet, as `cargo build` leaves them).
    #[arg(long, value_name = "DIR")]
    pub agent_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Full tables on a terminal too (by default a terminal gets tables fitted to its width,
    /// at most three lines per host; piped output is always full).
    #[arg(long)]
    pub wide: bool,
    /// Also write the run's events (run, wave and host started/finished, stopping) as JSON
    /// Lines to FILE, one flushed line per event, for a monitor to follow; `-` is stderr.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct AuditArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Output: a table for people, JSON or CSV for machines (docs/json-output.md).
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
    /// Audit thresholds (default: the built-in playbooks/audit.toml).
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
    /// Do not write the snapshot to the share.
    #[arg(long)]
    pub no_share: bool,
    /// Also write the audit's numbers to FILE in Prometheus' text format, for a textfile
    /// collector (docs/monitoring.md); replaced whole, never half-written.
    #[arg(long, value_name = "FILE.prom")]
    pub metrics: Option<PathBuf>,
    /// Answer as a monitoring plugin (Nagios, Icinga, Checkmk): one status line with
    /// performance data instead of the report, and the plugin exit codes 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN (docs/monitoring.md).
    #[arg(long, conflicts_with = "format")]
    pub nagios: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TagArg {
    Nightly,
    PreUpgrade,
}

#[derive(Args, Clone)]
pub struct BackupArgs {
    /// `verify`: instead of taking a backup, read back every kept backup's every file on the
    /// share and match it against its manifest (all hosts on the share, or those selected).
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Option<BackupActionArg>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Output: a table for people, or JSON (docs/json-output.md).
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormatArg,
    /// Why the backup is taken: `nightly` (the default), or `pre-upgrade` before an upgrade
    /// done by hand (retention never removes those).
    #[arg(long, value_enum)]
    pub tag: Option<TagArg>,
    /// Keep this many nightly backups per host (default: the inventory's [backup] keep; none:
    /// all).
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Keep the nightly backups of this many days (default: the inventory's [backup] keep_days).
    #[arg(long, value_name = "DAYS")]
    pub keep_days: Option<u32>,
    /// How long one host's backup may take, gathering, fetching and storing (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub host_deadline: u64,
    /// Also write the backup's numbers to FILE in Prometheus' text format (a file of its own,
    /// not the audit's: each run replaces its file whole; docs/monitoring.md).
    #[arg(long, value_name = "FILE.prom")]
    pub metrics: Option<PathBuf>,
}

/// What `ecfleet backup` does besides taking backups.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupActionArg {
    /// Check every kept backup on the share (docs/backup.md, Verifying).
    Verify,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Output: a table for people, or JSON (docs/json-output.md).
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormatArg,
    /// The plan to run (`ecfleet plan --out`); without it the selected hosts are planned now
    /// against --msi.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub plan: Option<PathBuf>,
    /// Carry on a run whose controller stopped (`latest`, or its id): every host from its last
    /// completed phase; hosts handed to the operator are watched, never handed off again.
    #[arg(long, value_name = "RUN-ID|latest")]
    pub resume: Option<String>,
    /// The installer to upgrade with; its version must be the plan's target. With --resume:
    /// the run's own (kept in its ledger) unless given.
    #[arg(long, value_name = "PATH", required_unless_present = "resume")]
    pub msi: Option<PathBuf>,
    /// Refuse the installer unless its SHA-256 is this (a plan made with --msi pins it too).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Stop starting hosts once this many (N) or this share (P%) of them failed.
    #[arg(long, value_name = "N|P%")]
    pub max_failures: Option<String>,
    /// Upgrade outside the tenants' maintenance windows too.
    #[arg(long, conflicts_with = "wait_for_window")]
    pub ignore_windows: bool,
    /// A host whose window is closed waits for it to open (after its preflight and backup)
    /// instead of being deferred.
    #[arg(long)]
    pub wait_for_window: bool,
    /// Upgrade the first N hosts (in plan order) first, and the rest only when they all pass.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub canary: Option<u32>,
    /// Go on after a canary that did not all pass.
    #[arg(long, requires = "canary")]
    pub continue_after_canary: bool,
    /// Do not ask before starting (unattended runs).
    #[arg(long)]
    pub yes: bool,
    /// Phase deadlines and watch settings (default: the built-in playbooks/in-place-upgrade.toml).
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
    /// Also write the run's outcomes to FILE in Prometheus' text format (docs/monitoring.md).
    #[arg(long, value_name = "FILE.prom")]
    pub metrics: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct StageArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Output: a table for people, or JSON (docs/json-output.md).
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormatArg,
    /// The installer (AzureADConnect.msi).
    #[arg(long, value_name = "PATH")]
    pub msi: PathBuf,
    /// Refuse the installer unless its SHA-256 is this.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// How long one host may take, facts, transfer and check (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub host_deadline: u64,
    /// Stage only the hosts this saved plan upgrades in place (the plan must be of this
    /// inventory, and the installer the plan's).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PlanFormatArg {
    Table,
    Json,
}

#[derive(Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Output: a table for people, or JSON (docs/json-output.md).
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormatArg,
    /// The build to upgrade to (default: the newest confirmed, not recalled build in the catalog).
    #[arg(long, value_name = "VERSION", conflicts_with = "msi")]
    pub target: Option<String>,
    /// The installer to upgrade with: its own ProductVersion is the target, its SHA-256 goes in
    /// the plan.
    #[arg(long, value_name = "PATH")]
    pub msi: Option<PathBuf>,
    /// Refuse the installer unless its SHA-256 is this.
    #[arg(long, value_name = "HEX", requires = "msi")]
    pub sha256: Option<String>,
    /// Plan from a saved audit (audit.json from the share, or `ecfleet audit --format json`)
    /// instead of asking the hosts.
    #[arg(long, value_name = "FILE")]
    pub from_audit: Option<PathBuf>,
    /// Also write the plan document (JSON) to FILE, for `ecfleet run --plan`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when nothing is to be done, 2 when some host needs an action, 1 on any error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Planning policy (default: the built-in playbooks/plan.toml).
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
}

/// How many lab hosts, and which scenarios.
#[derive(Args, Debug, Clone, Copy)]
pub struct LabShapeArgs {
    /// How many simulated hosts (the named scenarios first, then a realistic mix).
    #[arg(long, default_value_t = 20)]
    pub hosts: usize,
    /// Also the scenarios that fail during `ecfleet run` (installer fails, versions lag, …;
    /// docs/lab.md), after the first 18.
    #[arg(long)]
    pub faults: bool,
    /// Serve this many of the hosts over WinRM (HTTP, NTLM, message encryption) instead of
    /// SSH, spread over the fleet (`lab up`, `lab demo`).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub winrm: usize,
}

impl LabShapeArgs {
    pub fn shape(self) -> crate::lab::Shape {
        crate::lab::Shape {
            hosts: self.hosts,
            faults: self.faults,
            winrm: self.winrm,
        }
    }
}

#[derive(Subcommand)]
pub enum LabCommand {
    /// Write N simulated hosts to DIR/hosts/<name>/machine.toml.
    Init {
        #[command(flatten)]
        shape: LabShapeArgs,
        /// Where the lab goes (`DIR/hosts/<name>/machine.toml`).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The date the versions are picked for (YYYY-MM-DD; default today).
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
    },
    /// Write the hosts, serve them over SSH on 127.0.0.1 and write DIR/inventory.toml; runs
    /// until interrupted.
    Up {
        #[command(flatten)]
        shape: LabShapeArgs,
        /// Where the lab goes: hosts, keys, the share and `inventory.toml`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// First port (one per host); default: any free ports.
        #[arg(long, default_value_t = 0)]
        port_base: u16,
    },
    /// Write a lab installer: a real MSI database whose Property table says it is Entra Connect
    /// VERSION, padded to SIZE MiB (real ones are about 150).
    Msi {
        /// The ProductVersion it says (e.g. 2.6.92.0).
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Padding in MiB (incompressible), so that staging has something to carry.
        #[arg(long, value_name = "MIB", default_value_t = 0)]
        size_mb: u64,
        /// Another ProductName, to make a foreign installer (for testing the refusal).
        #[arg(long, value_name = "NAME")]
        product_name: Option<String>,
    },
    /// Start a lab, audit it, print the table and stop: ecfleet's main job in one command.
    Demo {
        #[command(flatten)]
        shape: LabShapeArgs,
        /// Where the lab goes.
        #[arg(long, value_name = "DIR", default_value = "lab")]
        dir: PathBuf,
        /// Output: a table for people, JSON or CSV for machines.
        #[arg(long, value_enum, default_value = "table")]
        format: FormatArg,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand says what it does, and every option what it is for (`--help`).
    #[test]
    fn every_command_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name()).trim().to_string();
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{here}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here} --{id}: no help text"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
