//! DBC model and signal codec.
