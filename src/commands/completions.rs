//! `kmsxacct completions SHELL` and `kmsxacct man`: shell completions and the man page, generated
//! from the same clap definitions as `--help`.

use crate::cli::Cli;
use crate::error::{Error, Result};
use clap::CommandFactory;
use std::io::Write;

/// Flags of `completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script for the shell to stdout.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "kmsxacct", &mut out);
    let _ = out.flush();
    Ok(())
}

/// Writes the man page (roff) to stdout.
pub fn man() -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out).or_else(|e| {
        // A closed pipe is a normal way for a reader to stop.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(Error::Failed(format!("cannot write the man page: {e}")))
        }
    })
}
