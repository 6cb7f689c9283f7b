//! The `livefeed` binary: parses flags, installs logging and signal
//! handling, and runs the server (or the `post` and `tail` clients).

use clap::Parser;
use futures::StreamExt;
use livefeed::app::{bind, run};
use livefeed::cli::{Cli, Command};
use livefeed::{Config, ServerError};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        None => cli.serve,
        Some(Command::Serve(config)) => *config,
        Some(Command::Post(args)) => return livefeed::cli::post(args),
        Some(Command::Edit(args)) => return livefeed::cli::edit(args),
        Some(Command::Delete(args)) => return livefeed::cli::delete(args),
        Some(Command::Tail(args)) => return livefeed::cli::tail(args),
    };
    let logs_on_stderr = livefeed::logging::init(config.log_format, config.log_level);
    match async_std::task::block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            if !logs_on_stderr {
                eprintln!("livefeed: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), ServerError> {
    let listener = bind(config.addr)?;
    let signals = signal_hook_async_std::Signals::new([SIGINT, SIGTERM]).map_err(|source| {
        ServerError::Listen {
            addr: config.addr,
            source,
        }
    })?;
    let handle = signals.handle();
    let shutdown = async move {
        let mut signals = signals;
        if let Some(signal) = signals.next().await {
            log::info!("received signal {signal}");
        }
    };
    let result = run(config, listener, shutdown).await;
    handle.close();
    result
}
