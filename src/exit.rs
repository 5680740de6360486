//! How a command ends: the exit codes, and [`Failure`], the error every command returns to
//! the one place (`cli::main`) that prints it and maps it to the process's exit code.
//!
//! Exit codes: 0 done (a run: every test passed); 1 a check or test failed, or an
//! instrument reported an error; 2 usage or input errors, aborted runs, anything that kept
//! the command from finishing.

/// Exit code when a check or test failed, or an instrument reported an error.
pub const EXIT_FAILED: i32 = 1;

/// Exit code for usage or input errors and aborted runs.
pub const EXIT_ABORT: i32 = 2;

/// A command that could not finish: the text to print on stderr and the exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The whole text for stderr (`error: ...`); empty when it was printed already.
    pub message: String,
    /// The process's exit code.
    pub code: i32,
}

impl Failure {
    /// `error: {text}`, exit code 2.
    pub fn abort(text: impl std::fmt::Display) -> Self {
        Failure {
            message: format!("error: {text}"),
            code: EXIT_ABORT,
        }
    }

    /// `error: {text}`, exit code 1.
    pub fn failed(text: impl std::fmt::Display) -> Self {
        Failure {
            message: format!("error: {text}"),
            code: EXIT_FAILED,
        }
    }

    /// The text exactly as given (no `error: ` before it), exit code 2.
    pub fn plain(text: impl std::fmt::Display) -> Self {
        Failure {
            message: text.to_string(),
            code: EXIT_ABORT,
        }
    }

    /// Exit with `code`; what went wrong has been printed already.
    pub fn printed(code: i32) -> Self {
        Failure {
            message: String::new(),
            code,
        }
    }

    /// Print the message (if any) on stderr and return the exit code.
    pub fn report(&self) -> i32 {
        if !self.message.is_empty() {
            crate::stdio::eprint(&self.message);
        }
        self.code
    }
}

/// A bare message is an input error: `error: {text}`, exit code 2.
impl From<String> for Failure {
    fn from(text: String) -> Self {
        Failure::abort(text)
    }
}

/// The exit code of a command's outcome, its failure printed first.
pub fn code(outcome: Result<i32, Failure>) -> i32 {
    outcome.unwrap_or_else(|f| f.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::abort(Failure::abort("no rig"), "error: no rig", 2)]
    #[case::failed(Failure::failed("check"), "error: check", 1)]
    #[case::plain(Failure::plain("rig.yaml:3: bad"), "rig.yaml:3: bad", 2)]
    #[case::printed(Failure::printed(1), "", 1)]
    #[case::from_string(Failure::from("bad".to_string()), "error: bad", 2)]
    fn failures_carry_their_text_and_code(
        #[case] f: Failure,
        #[case] text: &str,
        #[case] code: i32,
    ) {
        assert_eq!((f.message.as_str(), f.code), (text, code));
    }

    #[test]
    fn an_outcome_maps_to_its_code() {
        assert_eq!(code(Ok(0)), 0);
        assert_eq!(code(Err(Failure::printed(1))), 1);
    }
}
