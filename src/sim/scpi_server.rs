//! Simulated SCPI instruments.
