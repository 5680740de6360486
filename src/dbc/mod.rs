//! DBC model and signal codec.
//!
//! DBC text is parsed with the `can-dbc` crate and converted into the typed model of this
//! module ([`Dbc`], [`Message`], [`Signal`]); encoding and decoding frames is done here.
//! Loading checks every signal's layout against its frame, so the codec never reads or
//! writes outside a frame of the message's size. Errors in the text carry file:line:column.

mod codec;
mod error;
mod load;
mod model;
mod normalise;

use std::collections::HashMap;
use std::path::Path;

pub use error::{DbcError, Location, Warning};
pub use model::{ByteOrder, Decoded, Message, Multiplex, MuxSelector, Signal, ValueType};

/// A loaded DBC file: its messages, indexed by id and by name.
#[derive(Debug, Clone)]
pub struct Dbc {
    origin: String,
    messages: Vec<Message>,
    by_id: HashMap<(u32, bool), usize>,
    by_name: HashMap<String, usize>,
    notes: Vec<String>,
    warnings: Vec<Warning>,
}

impl Dbc {
    /// Read and parse a DBC file (UTF-8, or Windows-1252 as written by many DBC editors).
    pub fn from_file(path: &Path) -> Result<Dbc, DbcError> {
        let bytes = std::fs::read(path).map_err(|source| DbcError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        match String::from_utf8(bytes) {
            Ok(text) => Self::parse(&text, &origin),
            Err(e) => {
                let text =
                    can_dbc::decode_cp1252(e.as_bytes()).ok_or_else(|| DbcError::NotText {
                        path: path.to_path_buf(),
                    })?;
                let mut dbc = Self::parse(&text, &origin)?;
                dbc.notes.insert(
                    0,
                    format!("{origin}: read as Windows-1252 (not valid UTF-8)"),
                );
                Ok(dbc)
            }
        }
    }

    /// Parse DBC text; `origin` (usually the file name) is used in error locations.
    pub fn parse(text: &str, origin: &str) -> Result<Dbc, DbcError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let (messages, notes, warnings) = load::load(text, origin)?;
        let by_id = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ((m.id, m.extended), i))
            .collect();
        let by_name = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Ok(Dbc {
            origin: origin.to_string(),
            messages,
            by_id,
            by_name,
            notes,
            warnings,
        })
    }

    /// Where the DBC text came from (file name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// All messages, in file order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The message with this name.
    pub fn message(&self, name: &str) -> Option<&Message> {
        self.by_name.get(name).and_then(|&i| self.messages.get(i))
    }

    /// The message with this CAN id (without the DBC extended flag).
    pub fn message_by_id(&self, id: u32, extended: bool) -> Option<&Message> {
        self.by_id
            .get(&(id, extended))
            .and_then(|&i| self.messages.get(i))
    }

    /// Find "Message.Signal"
    pub fn signal(&self, path: &str) -> Option<(&Message, &Signal)> {
        let (message, signal) = path.split_once('.')?;
        let message = self.message(message)?;
        Some((message, message.signal(signal)?))
    }

    /// This DBC with another's messages added (a DUT's own DBC plus its inverter protocol's):
    /// a message id or name both define is refused, naming both files.
    pub fn merged(mut self, other: &Dbc) -> Result<Dbc, String> {
        for m in &other.messages {
            let clash = self
                .message_by_id(m.id, m.extended)
                .or_else(|| self.message(&m.name));
            if let Some(c) = clash {
                return Err(format!(
                    "message {} ({:#X}) of {} clashes with {} ({:#X}) of {}",
                    m.name, m.id, other.origin, c.name, c.id, self.origin
                ));
            }
            let i = self.messages.len();
            self.by_id.insert((m.id, m.extended), i);
            self.by_name.insert(m.name.clone(), i);
            self.messages.push(m.clone());
        }
        self.notes.extend(other.notes.iter().cloned());
        self.warnings.extend(other.warnings.iter().cloned());
        Ok(self)
    }

    /// What loading skipped or read differently (pseudo-messages, statements over lines).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Problems that do not stop loading (cantools' strict mode warns or refuses):
    /// references to unknown messages or signals, duplicate `VAL_` entries, min > max, CAN
    /// FD lengths without `VFrameFormat`; each located by line and column.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests;
