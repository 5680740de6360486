//! Instrument traits and their SCPI- and CAN-backed implementations.
