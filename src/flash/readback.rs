//! Proving what runs: after the reset, the BMS's version message (`BMS_Version` in the
//! project DBC: `FwMajor`, `FwMinor`, `FwPatch` and `ImageHash`, the first four bytes of the
//! image SHA-256 in hash order) must name the image that was flashed.
//!
//! The first version frame after the call decides: a BMS that reports anything else fails
//! before any test. A DBC whose version message has no `ImageHash` signal is checked on the
//! version alone, with a warning in the log.

use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use super::manifest::{hash_prefix, prefix_hex};
use super::FlashError;
use crate::can::{Bus, Received};
use crate::dbc::{Dbc, Message};
use crate::report::FirmwareInfo;

/// The version message of the project DBC.
pub const DEFAULT_VERSION_MESSAGE: &str = "BMS_Version";

/// Signals of the version message: major, minor, patch, image hash.
pub const VERSION_SIGNALS: [&str; 4] = ["FwMajor", "FwMinor", "FwPatch", "ImageHash"];

/// What the BMS says it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningFirmware {
    /// `major.minor.patch`.
    pub version: String,
    /// The `ImageHash` value, when the message has one.
    pub image_hash: Option<u32>,
}

impl RunningFirmware {
    /// The image hash as hex bytes in hash order, or `not reported`.
    pub fn hash_text(&self) -> String {
        self.image_hash
            .map(prefix_hex)
            .unwrap_or_else(|| "not reported".into())
    }
}

/// How long to wait for a version message: two seconds to boot plus three of its cycles
/// (from the DBC's `GenMsgCycleTime`, 1 s when unset), at least 5 s.
pub fn timeout_for(dbc: &Dbc, message: &str) -> Duration {
    let cycle = dbc
        .message(message)
        .and_then(|m| m.cycle_time_ms)
        .map(|ms| Duration::from_millis(ms as u64))
        .unwrap_or(Duration::from_secs(1));
    (Duration::from_secs(2) + cycle * 3).max(Duration::from_secs(5))
}

fn version_message<'a>(dbc: &'a Dbc, message: &str) -> Result<&'a Message, FlashError> {
    let msg = dbc.message(message).ok_or_else(|| {
        FlashError::ReadbackSetup(format!(
            "the DBC {} has no message `{message}` to read the running firmware version from; \
             name the BMS's version message with `version_message:` in the DUT fixture",
            dbc.origin()
        ))
    })?;
    for s in &VERSION_SIGNALS[..3] {
        if msg.signal(s).is_none() {
            return Err(FlashError::ReadbackSetup(format!(
                "message `{message}` in {} has no signal `{s}`; the version message must carry \
                 {} (and ImageHash, the first four bytes of the image SHA-256)",
                dbc.origin(),
                VERSION_SIGNALS[..3].join(", ")
            )));
        }
    }
    Ok(msg)
}

fn decode(msg: &Message, data: &[u8]) -> Option<RunningFirmware> {
    let values = msg.decode(data).ok()?;
    let get = |n: &str| values.iter().find(|d| d.name == n);
    let part = |n: &str| get(n).map(|d| d.physical.round().clamp(0.0, 255.0) as u8);
    Some(RunningFirmware {
        version: format!(
            "{}.{}.{}",
            part("FwMajor")?,
            part("FwMinor")?,
            part("FwPatch")?
        ),
        image_hash: get("ImageHash").map(|d| d.raw.round().clamp(0.0, u32::MAX as f64) as u32),
    })
}

async fn first_version(
    mut rx: broadcast::Receiver<Received>,
    bus: &str,
    msg: &Message,
    timeout: Duration,
) -> Result<RunningFirmware, FlashError> {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(r) if r.frame.is_data(msg.id, msg.extended) => {
                    match decode(msg, &r.frame.data) {
                        Some(v) => return Ok(v),
                        None => tracing::warn!(
                            "{} frame with {} bytes could not be decoded; waiting for the next",
                            msg.name,
                            r.frame.data.len()
                        ),
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {
                    return Err(FlashError::Bus {
                        bus: bus.to_string(),
                        detail: "the bus closed".into(),
                    })
                }
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| {
            Err(FlashError::NoReadback {
                message: msg.name.clone(),
                bus: bus.to_string(),
                timeout: timeout.as_secs_f64(),
            })
        })
}

/// Read what the BMS runs from the next `message` frame on `bus`.
pub async fn read_running(
    bus: &dyn Bus,
    dbc: &Dbc,
    message: &str,
    timeout: Duration,
) -> Result<RunningFirmware, FlashError> {
    let msg = version_message(dbc, message)?;
    first_version(bus.subscribe(), bus.name(), msg, timeout).await
}

/// Check that the BMS runs `expected`, from its next `BMS_Version` frame.
pub async fn verify_running(
    bus: &dyn Bus,
    dbc: &Dbc,
    expected: &FirmwareInfo,
    timeout: Duration,
) -> Result<(), FlashError> {
    verify_running_message(bus, dbc, DEFAULT_VERSION_MESSAGE, expected, timeout).await
}

/// Check that the BMS runs `expected`, from its next frame of the version message `message`.
pub async fn verify_running_message(
    bus: &dyn Bus,
    dbc: &Dbc,
    message: &str,
    expected: &FirmwareInfo,
    timeout: Duration,
) -> Result<(), FlashError> {
    verify_from(bus.subscribe(), bus.name(), dbc, message, expected, timeout)
        .await
        .map(|_| ())
}

/// Check the first version frame `rx` receives against `expected`.
pub(crate) async fn verify_from(
    rx: broadcast::Receiver<Received>,
    bus: &str,
    dbc: &Dbc,
    message: &str,
    expected: &FirmwareInfo,
    timeout: Duration,
) -> Result<RunningFirmware, FlashError> {
    let msg = version_message(dbc, message)?;
    let want_hash = hash_prefix(&expected.sha256);
    let got = first_version(rx, bus, msg, timeout).await?;
    if got.image_hash.is_none() {
        tracing::warn!(
            "{message} in {} has no ImageHash signal: the running firmware is checked on its \
             version only",
            dbc.origin()
        );
    }
    let hash_ok = match (got.image_hash, want_hash) {
        (Some(g), Some(w)) => g == w,
        _ => true,
    };
    if got.version.trim() != expected.version.trim() || !hash_ok {
        return Err(FlashError::ReadbackMismatch {
            id: expected.id.clone(),
            message: message.to_string(),
            expected: format!(
                "version {} (image hash {})",
                expected.version,
                want_hash.map(prefix_hex).unwrap_or_else(|| "?".into())
            ),
            got: format!("version {} (image hash {})", got.version, got.hash_text()),
        });
    }
    Ok(got)
}

/// Read what the BMS on `rig`'s DUT bus runs (for a run whose plan flashes nothing): its
/// version and, when the message carries it, the first four bytes of the image SHA-256.
/// `expected`, when given (the simulated bench knows its image), must match.
/// `rig` has its endpoints resolved; the bus is closed again before returning.
pub async fn read_on_rig(
    rig: &crate::rig::Rig,
    dbc: &Dbc,
    message: Option<&str>,
    expected: Option<&FirmwareInfo>,
) -> Result<FirmwareInfo, FlashError> {
    let message = message.unwrap_or(DEFAULT_VERSION_MESSAGE);
    let bus = open_dut_bus(rig, || {
        FlashError::ReadbackSetup(format!(
            "rig `{}` has no CAN bus with `dut: true` to read the firmware version from",
            rig.station
        ))
    })?;
    let timeout = timeout_for(dbc, message);
    match expected {
        Some(want) => {
            verify_from(bus.subscribe(), bus.name(), dbc, message, want, timeout).await?;
            Ok(want.clone())
        }
        None => {
            let got = read_running(bus.as_ref(), dbc, message, timeout).await?;
            Ok(FirmwareInfo {
                id: "as reported by the BMS".into(),
                version: got.version.clone(),
                sha256: got
                    .image_hash
                    .map(prefix_hex)
                    .unwrap_or_else(|| "not reported".into()),
            })
        }
    }
}

/// Open the rig's DUT bus (the one with `dut: true`); `missing` says why one is needed.
pub(crate) fn open_dut_bus(
    rig: &crate::rig::Rig,
    missing: impl FnOnce() -> FlashError,
) -> Result<Box<dyn crate::can::Bus>, FlashError> {
    let bus_cfg = rig.dut_bus().ok_or_else(missing)?;
    crate::can::open(&bus_cfg.endpoint()).map_err(|e| FlashError::Bus {
        bus: bus_cfg.endpoint(),
        detail: format!("cannot open it: {e}"),
    })
}
