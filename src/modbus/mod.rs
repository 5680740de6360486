//! Modbus client and register maps, beside `scpi/` and `can/`: hilrig reads a BMS's
//! inverter-facing register map over Modbus TCP or RTU (serial) with `tokio-modbus`.
//!
//! The register map is data (`fixtures/modbus/*.yaml`, see [`map`]): per logical signal its
//! function (`coil` 0x01, `discrete_input` 0x02, `holding` 0x03, `input` 0x04), address,
//! type (`bool`, `u16`, `i16`, `u32`, `i32`), scale, offset and unit, and for 32-bit values
//! the word order (`big`: high word first, the Modbus convention; `little`: word-swapped, as
//! Seplos V3 does [L]). Bytes within a register are always big-endian, as Modbus defines.
//!
//! Endpoints are the byte-stream addresses SCPI uses (`tcp://HOST:PORT`, default port 502;
//! `serial:///dev/ttyUSB0?baud=9600` for RTU), opened by `scpi::transport`; the unit
//! (slave) id comes from the map or the caller. Every request is bounded by a timeout, and
//! a Modbus exception is reported in words ([`exception_words`]).

pub mod client;
pub mod map;

pub use client::Client;
pub use map::{Function, Register, RegisterMap, ValueType, WordOrder};

/// Default Modbus TCP port.
pub const DEFAULT_TCP_PORT: u16 = 502;

/// What went wrong talking Modbus.
#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    /// The endpoint could not be opened.
    #[error("Modbus endpoint {endpoint}: {message}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// No answer within the timeout.
    #[error("Modbus {endpoint}: no answer to {what} within {after_ms} ms")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The request (`read input registers 0x0100 x 1`).
        what: String,
        /// The timeout in ms.
        after_ms: u64,
    },
    /// The peer answered with an exception.
    #[error("Modbus {endpoint}: {what} refused with exception {code:#04X} ({words})")]
    Exception {
        /// The endpoint.
        endpoint: String,
        /// The request.
        what: String,
        /// The exception code.
        code: u8,
        /// The code in words.
        words: &'static str,
    },
    /// The transport failed (connection lost, framing).
    #[error("Modbus {endpoint}: {what} failed: {message}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// The request.
        what: String,
        /// Why.
        message: String,
    },
    /// A register map file is wrong.
    #[error("register map {path}: {message}")]
    Map {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
}

/// A Modbus exception code in words (the Modbus application protocol's names).
pub fn exception_words(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function: the device does not support this function code",
        0x02 => "illegal data address: no such register or range at this device",
        0x03 => "illegal data value: a value in the request is not allowed",
        0x04 => "server device failure: the device failed while handling the request",
        0x05 => "acknowledge: accepted, but it will take long to finish",
        0x06 => "server device busy: try again later",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "an exception code the Modbus specification does not define",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0x01, "illegal function")]
    #[case(0x02, "illegal data address")]
    #[case(0x03, "illegal data value")]
    #[case(0x04, "server device failure")]
    #[case(0x0B, "gateway target")]
    #[case(0x7F, "does not define")]
    fn exception_codes_are_reported_in_words(#[case] code: u8, #[case] words: &str) {
        assert!(exception_words(code).contains(words), "{code}");
    }
}
