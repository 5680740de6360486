//! The bench outside a run: a rig's instruments one at a time, by hand.
//!
//! [`session::Session`] loads the rig (its simulated bench started by the caller, so that
//! nothing here names `sim`) and finds an instrument by id or role; on it, `hilrig
//! instruments check` ([`check`]), `ping` and `scpi` ([`direct`]), and the manual control
//! of a supply or load (`hilrig supply|load`, [`manual`]). Settings take the bench lock
//! (`run::lock`) and are checked against the rig's envelope first; a timed switch-on is
//! covered by the out-of-process guard (`crate::guard`).

pub mod check;
pub mod direct;
pub mod manual;
pub mod session;
