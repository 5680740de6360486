//! The `hilrig` command: parse the command line, set up logging, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = hilrig::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HILRIG_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    std::process::exit(hilrig::cli::main(cli));
}
