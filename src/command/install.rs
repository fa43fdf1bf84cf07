//! `ecfleet completions <shell>` and `ecfleet man <dir>`: what a packaged tool installs beside
//! its binary, made from the command line's own definitions (`clap_complete`, `clap_mangen`), so
//! that they never drift from the flags.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Io;
use crate::cli::Cli;
use crate::exit;

/// The completion script for `shell` on stdout (made in memory first: the generator panics on
/// a write error, and a closed pipe is not a reason to panic).
pub fn completions(shell: clap_complete::Shell, io: &mut Io<'_>) -> u8 {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ecfleet", &mut script);
    match io.out.write_all(&script).and_then(|()| io.out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            let _ = writeln!(io.err, "error: cannot write the completion script: {e}");
            exit::FAILURE
        }
    }
}

/// One manual page per command and subcommand (`ecfleet.1`, `ecfleet-audit.1`,
/// `ecfleet-inventory-check.1`, …) in `dir`, created if missing; the pages' names on stdout.
pub fn man(dir: &Path, io: &mut Io<'_>) -> u8 {
    match write_pages(dir) {
        Ok(pages) => {
            for p in &pages {
                let _ = writeln!(io.out, "{}", p.display());
            }
            let _ = writeln!(io.err, "{} manual pages in {}", pages.len(), dir.display());
            exit::OK
        }
        Err(e) => {
            let _ = writeln!(
                io.err,
                "error: cannot write the manual pages to {}: {e}",
                dir.display()
            );
            exit::FAILURE
        }
    }
}

fn write_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    page_of(cmd, dir, &mut pages)?;
    pages.sort();
    Ok(pages)
}

fn page_of(cmd: clap::Command, dir: &Path, pages: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        page_of(sub, dir, pages)?;
    }
    pages.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
    Ok(())
}
