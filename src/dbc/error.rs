//! The one error type of the DBC domain.

use std::fmt;
use std::path::PathBuf;

/// A place in a DBC input: file (or other origin), 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File name or other origin of the text.
    pub origin: String,
    /// 1-based line; 0 when the line is not known.
    pub line: usize,
    /// 1-based column (in characters); 0 when not known.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.origin),
            (line, 0) => write!(f, "{}:{line}", self.origin),
            (line, column) => write!(f, "{}:{line}:{column}", self.origin),
        }
    }
}

/// A problem in a DBC file that does not stop loading, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where the problem is.
    pub at: Location,
    /// What is wrong and what was done about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Everything that can go wrong loading a DBC file or encoding/decoding a frame with it.
#[derive(Debug, thiserror::Error)]
pub enum DbcError {
    /// The DBC file could not be read.
    #[error("cannot read DBC file {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not text in UTF-8 or Windows-1252.
    #[error("{}: not a text file (neither UTF-8 nor Windows-1252)", path.display())]
    NotText {
        /// The file that was read.
        path: PathBuf,
    },
    /// The DBC text does not follow the DBC syntax.
    #[error("{at}: {message}")]
    Parse {
        /// Where the parser stopped.
        at: Location,
        /// What the parser expected or found.
        message: String,
    },
    /// A message definition cannot be used (bad id, size, multiplexing, duplicate).
    #[error("{at}: message {message}: {reason}")]
    BadMessage {
        /// Where the message is defined.
        at: Location,
        /// Message name.
        message: String,
        /// What is wrong with it and what to change.
        reason: String,
    },
    /// A signal definition cannot be used (size, position, type, scaling).
    #[error("{at}: signal {message}.{signal}: {reason}")]
    BadSignal {
        /// Where the signal is defined.
        at: Location,
        /// Message name.
        message: String,
        /// Signal name.
        signal: String,
        /// What is wrong with it and what to change.
        reason: String,
    },
    /// The file defines no message.
    #[error("{at}: no messages (BO_) in this DBC file; a DBC for decoding defines at least one")]
    Empty {
        /// The file (line 0) or the pseudo-message it has.
        at: Location,
    },
    /// A frame has fewer data bytes than a signal to decode needs.
    #[error("frame for {message} has {got} data bytes, but signal {signal} needs {needed}")]
    FrameTooShort {
        /// Message name.
        message: String,
        /// The first signal that does not fit.
        signal: String,
        /// Data bytes the signal needs.
        needed: usize,
        /// Data bytes the frame has.
        got: usize,
    },
    /// A signal name that the message does not define.
    #[error("message {message} has no signal named `{signal}` (it has: {known})")]
    UnknownSignal {
        /// Message name.
        message: String,
        /// The name that was asked for.
        signal: String,
        /// The signal names the message does define, comma separated.
        known: String,
    },
    /// The same signal was given twice for one frame.
    #[error("signal {message}.{signal} was given more than once")]
    DuplicateValue {
        /// Message name.
        message: String,
        /// Signal name.
        signal: String,
    },
    /// A physical value that the signal cannot carry.
    #[error("{value} {unit} is outside what {message}.{signal} can carry ({lo} to {hi} {unit})")]
    OutOfRange {
        /// Message name.
        message: String,
        /// Signal name.
        signal: String,
        /// The physical value given.
        value: f64,
        /// Lowest encodable physical value.
        lo: f64,
        /// Highest encodable physical value.
        hi: f64,
        /// The signal's unit.
        unit: String,
    },
    /// A multiplexed signal given for a frame whose multiplexor value does not carry it.
    #[error(
        "{message}.{signal} is only sent when {multiplexor} = {wanted}, but {multiplexor} = {actual}; \
         give {multiplexor} = {wanted} or leave {signal} out"
    )]
    NotSelected {
        /// Message name.
        message: String,
        /// Signal name.
        signal: String,
        /// Name of the multiplexor signal.
        multiplexor: String,
        /// Multiplexor value that carries the signal.
        wanted: u64,
        /// Multiplexor raw value of the frame.
        actual: i128,
    },
}

impl DbcError {
    /// Where in the DBC text the error is, for errors that come from the text.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Parse { at, .. }
            | Self::BadMessage { at, .. }
            | Self::BadSignal { at, .. }
            | Self::Empty { at } => Some(at),
            _ => None,
        }
    }
}
