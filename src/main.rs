//! The kmsxacct binary: parse, set up logging, dispatch, map the outcome to an exit code.

use clap::Parser;
use kmsxacct::cli::Cli;
use kmsxacct::error::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use std::io::IsTerminal;
use std::process::ExitCode;

/// mimalloc: the policy engine allocates many small strings, and `explain --batch` runs it
/// hundreds of thousands of times; the system allocator was 40% of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::from(EXIT_OK as u8);
        }
        Err(e) => {
            // One line: what clap says before its usage hint names the bad value and what is allowed.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("{}", message.join(" "));
            return ExitCode::from(EXIT_BAD_INPUT as u8);
        }
    };
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
        tracing_subscriber::registry()
            .with(fmt)
            .with(kmsxacct::log_filter(cli.verbose, cli.quiet))
            .init();
    }
    let result = match kmsxacct::run_local(&cli) {
        Some(result) => result,
        None => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(EXIT_FAILED as u8);
                }
            };
            let result = runtime.block_on(kmsxacct::run(cli));
            // Don't wait for SDK background tasks (idle connections) at exit.
            runtime.shutdown_background();
            result
        }
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK as u8),
        Err(e) => {
            // Errors are one line, whatever the SDK's messages hold.
            let text = e.to_string();
            let message: Vec<&str> =
                text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("error: {}", message.join(" "));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
