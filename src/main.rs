//! The `hilrig` command: parse the command line, set up logging, map the outcome to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match hilrig::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // Help, version and usage errors; a closed or full stdout is an error, not a pass.
        Err(mut e) => {
            hilrig::cli::suggest_subcommand(&mut e);
            if let Err(io) = e.print() {
                eprintln!("error: cannot write to standard output: {io}");
                return std::process::ExitCode::from(2);
            }
            return std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HILRIG_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        // Colour codes only on a terminal: a pipe or a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    hilrig::cli::main(cli)
}
