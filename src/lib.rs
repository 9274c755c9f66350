//! kmsxacct: set up, prove and remove cross-account access to an AWS KMS key through its alias.
//!
//! Pure logic (names, policy documents, planning, the deployment record) is kept apart from the
//! AWS calls (`aws`, `owner`, `user`), and each subcommand lives in `commands`.

pub mod admin;
pub mod aws;
pub mod caller;
pub mod cli;
pub mod commands;
pub mod diagnosis;
pub mod error;
pub mod export;
pub mod names;
pub mod output;
pub mod owner;
pub mod plan;
pub mod policy;
pub mod record;
pub mod user;
pub mod writes;

use cli::{Cli, Command};
use commands::Context;
use output::Printer;

/// Runs a command that never talks to AWS (explain, lint, policies, completions, man) on the
/// calling thread, with no async runtime to start; `None` for every other command, which
/// [`run`] takes. Ctrl-C ends these as it ends any program.
pub fn run_local(cli: &Cli) -> Option<error::Result<()>> {
    // The context (and its printer) is made only for a command run here.
    let with_context = |command: &dyn Fn(&Context) -> error::Result<()>| {
        let ctx = context(cli);
        let result = command(&ctx);
        ctx.printer.done();
        result
    };
    Some(match &cli.command {
        Command::Explain(args) => with_context(&|ctx| commands::explain::run(ctx, args)),
        Command::Lint(args) => with_context(&|ctx| commands::lint::run(ctx, args)),
        Command::Policies(args) => with_context(&|ctx| commands::policies::run(ctx, args)),
        Command::Completions(args) => commands::completions::completions(args),
        Command::Man => commands::completions::man(),
        _ => return None,
    })
}

/// Runs a parsed command line to completion; Ctrl-C ends it with [`error::Error::Interrupted`].
pub async fn run(cli: Cli) -> error::Result<()> {
    if let Some(result) = run_local(&cli) {
        return result;
    }
    let ctx = context(&cli);
    let work = async {
        match &cli.command {
            Command::Setup(args) => commands::setup::run(&ctx, args).await,
            Command::Plan(args) => {
                let args = commands::setup::SetupArgs { dry_run: true, ..args.clone() };
                commands::setup::run(&ctx, &args).await
            }
            Command::Verify(args) => commands::verify::run(&ctx, args).await,
            Command::Teardown(args) => commands::teardown::run(&ctx, args).await,
            Command::Status(args) => commands::status::run(&ctx, args).await,
            Command::Rotate(args) => commands::rotate::run(&ctx, args).await,
            Command::Restore(args) => commands::restore::run(&ctx, args).await,
            Command::Diagnose(args) => commands::diagnose::run(&ctx, args).await,
            Command::Export(args) => commands::export::run(&ctx, args).await,
            Command::Explain(_)
            | Command::Lint(_)
            | Command::Policies(_)
            | Command::Completions(_)
            | Command::Man => unreachable!("run_local runs the commands that need no AWS"),
        }
    };
    let result = tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(error::Error::Interrupted),
    };
    ctx.printer.done();
    result
}

/// What every command shares: the config path, the printer, the call log, the concurrency.
fn context(cli: &Cli) -> Context {
    Context {
        config: cli.config.clone(),
        // Only commands that talk to AWS can take long enough to want a spinner.
        printer: Printer::new(
            cli.output,
            cli.quiet,
            matches!(
                cli.command,
                Command::Setup(_)
                    | Command::Plan(_)
                    | Command::Verify(_)
                    | Command::Teardown(_)
                    | Command::Status(_)
                    | Command::Rotate(_)
                    | Command::Restore(_)
                    | Command::Diagnose(_)
                    | Command::Export(_)
            ),
        ),
        calls: aws::calls::CallLog::default(),
        concurrency: usize::from(cli.concurrency),
    }
}

/// Log filter: RUST_LOG if set (`target=level` and `level` directives, comma-separated), else
/// from -v/-q. The SDK's wire-level logs (canonical requests, connections) show only at -vvv; the
/// SDK redacts tokens, signatures and sensitive fields there, which the integration tests hold it
/// to. Otherwise those crates are capped at warn.
pub fn log_filter(verbose: u8, quiet: bool) -> tracing_subscriber::filter::Targets {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "kmsxacct=info,warn",
        (false, 2) => "kmsxacct=debug,warn",
        _ => "trace",
    };
    let base = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let caps = "aws_sigv4=warn,aws_smithy_runtime=warn,aws_smithy_http_client=warn,aws_smithy_runtime_api=warn,aws_config=warn,aws_runtime=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn";
    let wire = verbose >= 3 && !quiet;
    let with_caps = |base: &str| if wire { base.to_string() } else { format!("{base},{caps}") };
    // A RUST_LOG that does not parse is ignored, as a logging setting must not stop the command.
    base.and_then(|b| with_caps(&b).parse().ok())
        .or_else(|| with_caps(default).parse().ok())
        .unwrap_or_default()
}
