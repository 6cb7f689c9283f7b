//! The `livefeed` binary: parses flags, installs logging and signal
//! handling, and runs the server (or the `post` and `tail` clients).

use clap::Parser;
use futures::StreamExt;
use livefeed::config::{Cli, Command};
use livefeed::server::{bind, run};
use livefeed::{Config, ServerError};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::process::ExitCode;

#[async_std::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        None => cli.serve,
        Some(Command::Serve(config)) => *config,
        Some(Command::Post(args)) => return livefeed::cli::post(args).await,
        Some(Command::Tail(args)) => return livefeed::cli::tail(args).await,
    };
    let logs_on_stderr = livefeed::logging::init(config.log_format, config.log_level);
    match serve(config).await {
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
