//! Standard output that cannot panic: a closed pipe (`hilrig ... | head`) or a full device
//! ends the command with a message on stderr and a non-zero exit instead of a panic.

use std::io::Write;

/// Exit code when standard output cannot be written.
pub const EXIT_STDOUT: i32 = 2;

/// Print one line on stdout; false (after saying why on stderr) when it cannot be written.
pub fn print(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            eprint(&format!("error: cannot write to standard output: {e}"));
            false
        }
    }
}

/// Print one line on stderr; errors writing stderr itself are ignored (nowhere to report).
pub fn eprint(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Turn the standard library's panic on a failed `println!` (any command's) into a message
/// and [`EXIT_STDOUT`]; every other panic keeps the default report.
pub fn install_stdout_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = text.strip_prefix("failed printing to stdout: ") {
            eprint(&format!("error: cannot write to standard output: {why}"));
            std::process::exit(EXIT_STDOUT);
        }
        default(info);
    }));
}
