//! Flashing the firmware under test, and proving what runs.
//!
//! - [`manifest`]: `firmware-under-test/manifest.yaml`, the images with their SHA-256; an
//!   image is only ever flashed from a [`VerifiedImage`], whose bytes matched the manifest.
//! - [`Flasher`]: attach, program, verify, reset and run, with [`FlashEvent`]s for progress.
//!   Two backends: [`probe`] (probe-rs, for a real BMS on a debug probe) and the simulated
//!   bench's `SimFlasher` (in `sim/flasher.rs`: its BMS, which "flashing" reloads with one of
//!   its images). This module does not know the simulation: a caller with a simulated bench
//!   passes its flasher in (`Bench::flasher`); without one the rig's debug probe is used.
//! - [`readback`]: after the reset, the BMS's `BMS_Version` frame (version and the first
//!   bytes of the image SHA-256) must name what was flashed before any test runs.
//!
//! [`flash_and_verify`] does the whole sequence; the command line and the runner call it.

pub mod console;
pub mod manifest;
pub mod probe;
pub mod readback;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::can::Bus;
use crate::dbc::Dbc;
use crate::plan::InputError;
use crate::report::FirmwareInfo;
use crate::rig::Rig;

pub use manifest::{ImageEntry, ImageFormat, Manifest, VerifiedImage};
pub use readback::{read_running, verify_running, verify_running_message, RunningFirmware};

/// The manifest shipped with the project, relative to the working directory.
pub const DEFAULT_MANIFEST: &str = "firmware-under-test/manifest.yaml";

/// A phase of programming, as progress bars show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Reading back flash contents that an erase would lose but the image does not cover.
    Fill,
    /// Erasing flash sectors.
    Erase,
    /// Writing the image.
    Program,
    /// Reading the flash back and comparing it with the image.
    Verify,
}

impl Phase {
    /// Lower-case name (`erase`, `program`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Fill => "fill",
            Phase::Erase => "erase",
            Phase::Program => "program",
            Phase::Verify => "verify",
        }
    }
}

/// Something that happened while flashing, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum FlashEvent {
    /// Connected to the target through the probe.
    Attached {
        /// The probe (name and selector), or the simulated bench.
        probe: String,
        /// The chip or simulated target.
        chip: String,
    },
    /// What the image covers: regions, sectors to erase, bytes to write.
    Layout(FlashPlan),
    /// A phase will run; `total` is its size in bytes when known.
    Planned {
        /// The phase.
        phase: Phase,
        /// Bytes the phase handles.
        total: Option<u64>,
    },
    /// A phase started.
    Started(Phase),
    /// A phase handled `bytes` more bytes.
    Progress {
        /// The phase.
        phase: Phase,
        /// Bytes done in this step.
        bytes: u64,
    },
    /// A phase finished.
    Finished(Phase),
    /// A phase failed (the error follows as the result).
    Failed(Phase),
    /// The target was reset and runs the image.
    Running,
    /// A message from the flash algorithm or the backend.
    Message(String),
}

/// Where flash events go (the CLI draws progress bars; tests record them).
pub type ProgressSink = Arc<dyn Fn(FlashEvent) + Send + Sync>;

/// A sink that drops every event.
pub fn no_progress() -> ProgressSink {
    Arc::new(|_| {})
}

/// The part of the chip's flash an image covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlashPlan {
    /// One entry per flash region the image writes to.
    pub regions: Vec<PlannedRegion>,
}

impl FlashPlan {
    /// Bytes written in total.
    pub fn bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.bytes).sum()
    }

    /// Sectors erased in total.
    pub fn sectors(&self) -> u64 {
        self.regions.iter().map(|r| r.sectors).sum()
    }
}

/// Image data in one flash region, and the sectors that must be erased for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRegion {
    /// Region name from the target description (or `flash`).
    pub name: String,
    /// Lowest address written.
    pub start: u64,
    /// One past the highest address written.
    pub end: u64,
    /// Bytes of image data in the region.
    pub bytes: u64,
    /// Sectors touched (erased before programming).
    pub sectors: u64,
    /// First address erased.
    pub erase_start: u64,
    /// One past the last address erased.
    pub erase_end: u64,
}

/// How to program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashOptions {
    /// Read the flash back after programming and compare it with the image.
    pub verify: bool,
    /// Prepare everything (attach, parse, lay out) but write nothing.
    pub dry_run: bool,
    /// Erase the whole chip instead of the sectors the image covers.
    pub chip_erase: bool,
}

impl Default for FlashOptions {
    fn default() -> Self {
        Self {
            verify: true,
            dry_run: false,
            chip_erase: false,
        }
    }
}

/// The target a flasher reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The probe, as shown to people.
    pub probe: String,
    /// The chip (probe-rs name) or simulated target.
    pub chip: String,
}

impl Attached {
    /// Tell `progress` that the probe and chip are attached.
    pub fn report(&self, progress: &ProgressSink) {
        progress(FlashEvent::Attached {
            probe: self.probe.clone(),
            chip: self.chip.clone(),
        });
    }
}

/// Programs a target: attach, program, verify, reset and run.
#[async_trait]
pub trait Flasher: Send {
    /// What this flasher programs, for messages.
    fn describe(&self) -> String;
    /// Connect to the target (for probe-rs: open the probe and attach to the chip).
    async fn attach(&mut self, progress: &ProgressSink) -> Result<Attached, FlashError>;
    /// Erase and write the image (attaching first when not attached yet).
    async fn program(
        &mut self,
        image: &VerifiedImage,
        options: &FlashOptions,
        progress: &ProgressSink,
    ) -> Result<FlashPlan, FlashError>;
    /// Read the flash back and compare it with the image.
    async fn verify(
        &mut self,
        image: &VerifiedImage,
        progress: &ProgressSink,
    ) -> Result<(), FlashError>;
    /// Reset the target and let it run the new image.
    async fn reset_and_run(&mut self, progress: &ProgressSink) -> Result<(), FlashError>;
}

/// Attach, program and (when asked) verify `image`; false on a dry run, where nothing more
/// is done.
async fn program_verified(
    flasher: &mut dyn Flasher,
    image: &VerifiedImage,
    options: &FlashOptions,
    progress: &ProgressSink,
) -> Result<bool, FlashError> {
    flasher.attach(progress).await?;
    flasher.program(image, options, progress).await?;
    if options.dry_run {
        return Ok(false);
    }
    if options.verify {
        flasher.verify(image, progress).await?;
    }
    Ok(true)
}

/// Program, verify, reset and run `image`; returns what now runs (for results.json).
pub async fn flash(
    flasher: &mut dyn Flasher,
    image: &VerifiedImage,
    options: &FlashOptions,
    progress: &ProgressSink,
) -> Result<FirmwareInfo, FlashError> {
    if !program_verified(flasher, image, options, progress).await? {
        return Ok(image.info());
    }
    flasher.reset_and_run(progress).await?;
    Ok(image.info())
}

/// Where to read back what the BMS runs after the reset.
pub struct ReadbackTarget<'a> {
    /// The bus the BMS is on.
    pub bus: &'a dyn Bus,
    /// The BMS's DBC.
    pub dbc: &'a Dbc,
    /// The version message (`BMS_Version`, or the fixture's `version_message`).
    pub message: &'a str,
    /// How long to wait for it.
    pub timeout: Duration,
}

/// Flash `image`, then prove over CAN that the BMS runs it: what a run calls before any test.
///
/// Frames are taken from the moment the reset completes: whatever the bus carried before
/// (the old image, queued frames) is dropped, so only the new image can answer.
pub async fn flash_and_verify(
    flasher: &mut dyn Flasher,
    image: &VerifiedImage,
    options: &FlashOptions,
    readback: &ReadbackTarget<'_>,
    progress: &ProgressSink,
) -> Result<FirmwareInfo, FlashError> {
    if !program_verified(flasher, image, options, progress).await? {
        return Ok(image.info());
    }
    let mut rx = readback.bus.subscribe();
    flasher.reset_and_run(progress).await?;
    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
    let info = image.info();
    readback::verify_from(
        rx,
        readback.bus.name(),
        readback.dbc,
        readback.message,
        &info,
        readback.timeout,
    )
    .await?;
    Ok(info)
}

/// Flash `image` on a rig and prove the BMS runs it: through `flasher` when given (the
/// simulated bench's, `Bench::flasher`), else the chip on the rig's debug probe. `rig` has its endpoints resolved (as
/// `Bench::resolve` returns it); the readback listens on its DUT bus, through `dbc`, for
/// `version_message` (default `BMS_Version`).
pub async fn flash_on_rig(
    rig: &Rig,
    flasher: Option<Box<dyn Flasher + '_>>,
    image: &VerifiedImage,
    dbc: &Dbc,
    version_message: Option<&str>,
    options: &FlashOptions,
    progress: &ProgressSink,
) -> Result<FirmwareInfo, FlashError> {
    let mut flasher: Box<dyn Flasher + '_> = match flasher {
        Some(f) => f,
        None => Box::new(probe::ProbeRsFlasher::new(rig.probe.as_ref(), image)?),
    };
    if options.dry_run {
        return flash(flasher.as_mut(), image, options, progress).await;
    }
    // The probe and chip first, then the bus: nothing is written unless both are there.
    flasher.attach(progress).await?;
    let bus = readback::open_dut_bus(rig, || {
        FlashError::NoFlasher(format!(
            "rig `{}` has no CAN bus with `dut: true`, so what the BMS runs cannot be read back \
             after flashing; mark the BMS's bus with `dut: true`",
            rig.station
        ))
    })?;
    let message = version_message.unwrap_or(readback::DEFAULT_VERSION_MESSAGE);
    let target = ReadbackTarget {
        bus: bus.as_ref(),
        dbc,
        message,
        timeout: readback::timeout_for(dbc, message),
    };
    flash_and_verify(flasher.as_mut(), image, options, &target, progress).await
}

/// Flash the image a plan or suite declares (`firmware: ID`, an id in `manifest`) and prove
/// it runs: what `hilrig run` calls after starting the bench and before the first test.
/// Returns what runs, for results.json.
pub async fn flash_declared(
    id: &str,
    manifest: &Path,
    rig: &Rig,
    flasher: Option<Box<dyn Flasher + '_>>,
    dbc: &Dbc,
    version_message: Option<&str>,
    progress: &ProgressSink,
) -> Result<FirmwareInfo, FlashError> {
    let manifest = Manifest::load(manifest)?;
    let entry = manifest.image(id).ok_or_else(|| FlashError::UnknownImage {
        wanted: id.to_string(),
        manifest: manifest.path.display().to_string(),
        known: manifest.images.iter().map(|e| e.id.clone()).collect(),
    })?;
    let image = manifest.open(entry)?;
    flash_on_rig(
        rig,
        flasher,
        &image,
        dbc,
        version_message,
        &FlashOptions::default(),
        progress,
    )
    .await
}

/// Which image a run flashes: the suite's `firmware:`, else the one its plans agree on.
/// Plans that name different images are an error (set `firmware:` on the suite instead).
pub fn declared_firmware<'a>(
    suite: Option<&'a str>,
    plans: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Option<&'a str>, String> {
    if let Some(s) = suite {
        return Ok(Some(s));
    }
    let mut chosen: Option<(&str, &str)> = None;
    for (plan, fw) in plans {
        let Some(fw) = fw else { continue };
        match chosen {
            None => chosen = Some((plan, fw)),
            Some((first, other)) if other != fw => {
                return Err(format!(
                    "plan `{first}` declares firmware `{other}` and plan `{plan}` declares `{fw}`: \
                     a run flashes once, before its first test; set `firmware:` on the suite to \
                     choose one, or run the plans separately"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(chosen.map(|(_, fw)| fw))
}

/// Why flashing or the readback failed; each message says what to do.
#[derive(Debug, Error)]
pub enum FlashError {
    /// A manifest or rig file is wrong.
    #[error("{0}")]
    Input(#[from] InputError),
    /// The image file does not have the SHA-256 the manifest records.
    #[error(
        "refusing to flash image `{id}`: {file} has SHA-256 {actual}, but {manifest} records \
         {expected}. The file was changed or replaced after it was recorded: restore or rebuild \
         it; if the change is intended, put the new hash in the manifest (sha256sum {file})"
    )]
    HashMismatch {
        /// Image id.
        id: String,
        /// The image file.
        file: String,
        /// The manifest.
        manifest: String,
        /// SHA-256 the manifest records.
        expected: String,
        /// SHA-256 of the file.
        actual: String,
    },
    /// No manifest entry has this id.
    #[error(
        "no image `{wanted}` in {manifest}; known images: {}. Give an id from the manifest or \
         the path of an image file listed in it",
        known.join(", ")
    )]
    UnknownImage {
        /// What was asked for.
        wanted: String,
        /// The manifest.
        manifest: String,
        /// Ids in the manifest.
        known: Vec<String>,
    },
    /// An image file that the manifest does not list.
    #[error(
        "{path} is not listed in {manifest}, so nothing says what it should contain; add an \
         entry for it (id, version, chip, format, file, sha256: {sha256}) and flash it by id"
    )]
    NotInManifest {
        /// The file.
        path: String,
        /// The manifest.
        manifest: String,
        /// SHA-256 of the file.
        sha256: String,
    },
    /// The image cannot run on this target.
    #[error("image `{id}` is {what}; {advice}")]
    WrongTarget {
        /// Image id.
        id: String,
        /// What the image is.
        what: String,
        /// What to do.
        advice: String,
    },
    /// No debug probe is connected.
    #[error(
        "no debug probe found. Connect the probe (ST-LINK, J-Link, CMSIS-DAP v2, ...) to USB and \
         to the BMS's debug header, check `hilrig probe list`, then flash again; on a machine \
         without hardware use the simulated rig (--rig rig/sim.yaml)"
    )]
    NoProbe,
    /// The rig's selector matches no connected probe, or several probes need a selector.
    #[error("{0}")]
    ProbeSelection(String),
    /// The probe exists but this user may not open it.
    #[error(
        "permission denied opening debug probe {probe}. Install udev rules for debug probes \
         (the probe-rs rules file, 69-probe-rs.rules, into /etc/udev/rules.d/, then \
         `sudo udevadm control --reload && sudo udevadm trigger`), add this user to the group \
         they name (often `plugdev`), and re-plug the probe. ({detail})"
    )]
    PermissionDenied {
        /// The probe.
        probe: String,
        /// The underlying error.
        detail: String,
    },
    /// The chip name is not in probe-rs's target list.
    #[error(
        "unknown chip `{chip}`{}. Use a name from probe-rs's target list in the rig's \
         `probe.chip` or the manifest's `chip`",
        if suggestions.is_empty() { String::new() } else { format!("; did you mean {}?", suggestions.join(", ")) }
    )]
    UnknownChip {
        /// The name given.
        chip: String,
        /// Close names from the target list.
        suggestions: Vec<String>,
    },
    /// Neither rig nor manifest names the chip.
    #[error(
        "no chip for image `{id}`: set `chip:` on the image in the manifest or `probe.chip` in \
         the rig"
    )]
    NoChip {
        /// Image id.
        id: String,
    },
    /// The rig's chip and the image's chip differ.
    #[error(
        "image `{id}` is built for chip {image}, but the rig's probe is set up for {rig}; flash \
         an image built for {rig}, or correct `probe.chip` in the rig"
    )]
    ChipConflict {
        /// Image id.
        id: String,
        /// The image's chip.
        image: String,
        /// The rig's chip.
        rig: String,
    },
    /// The chip did not answer the probe.
    #[error(
        "chip {chip} is not responding ({detail}). Check that the BMS is powered, the debug \
         cable is seated (SWDIO, SWCLK, GND, and NRST for connect-under-reset), the protocol \
         (`probe.protocol: swd|jtag`) matches the board, and try a lower `probe.speed`"
    )]
    ChipNotResponding {
        /// The chip.
        chip: String,
        /// The underlying error.
        detail: String,
    },
    /// The image file could not be parsed in its format.
    #[error("cannot read image `{id}` as {format}: {detail}")]
    Format {
        /// Image id.
        id: String,
        /// The format tried.
        format: String,
        /// What went wrong.
        detail: String,
    },
    /// The image does not fit the chip's flash.
    #[error("image `{id}` does not fit chip {chip}: {detail}")]
    Layout {
        /// Image id.
        id: String,
        /// The chip.
        chip: String,
        /// What went wrong.
        detail: String,
    },
    /// The flash read back differs from the image.
    #[error(
        "verify failed: the flash read back differs from image `{id}` ({detail}). Flash again; \
         if it fails again, check the supply to the BMS during programming and whether the \
         flash is write-protected (option bytes, readout protection)"
    )]
    VerifyMismatch {
        /// Image id.
        id: String,
        /// What differed.
        detail: String,
    },
    /// Another error from the probe or flash algorithm.
    #[error("debug probe: {0}")]
    Probe(String),
    /// The rig does not say how to flash.
    #[error("{0}")]
    NoFlasher(String),
    /// Another run or flash holds the bench.
    #[error("{0}")]
    BenchBusy(String),
    /// The simulated bench could not load the image.
    #[error("simulated target: {0}")]
    Sim(String),
    /// The BMS's version message never arrived.
    #[error(
        "no {message} frame from the BMS on {bus} within {timeout:.1} s after the reset: the \
         image may not have started. Check that the BMS is powered and on this bus, and that \
         the firmware sends {message} (the fixture's `version_message` names another message)"
    )]
    NoReadback {
        /// Message name.
        message: String,
        /// Bus name.
        bus: String,
        /// Seconds waited.
        timeout: f64,
    },
    /// The BMS runs something other than what was flashed.
    #[error(
        "the BMS does not run what was flashed: expected image `{id}` {expected}, but {message} \
         reports {got}. No test was run. Flash again; if it persists, the image may not boot \
         (check its link address and format) or a bootloader may be starting an older image"
    )]
    ReadbackMismatch {
        /// Image id.
        id: String,
        /// Message name.
        message: String,
        /// Version and image hash flashed (`version 1.0.0 (image hash a732f928)`).
        expected: String,
        /// Version and image hash reported.
        got: String,
    },
    /// The DBC lacks the version message or its signals.
    #[error("{0}")]
    ReadbackSetup(String),
    /// The bus failed while reading back.
    #[error("CAN bus {bus} while reading back the firmware version: {detail}")]
    Bus {
        /// Bus name.
        bus: String,
        /// What went wrong.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suites_firmware_wins_and_plans_must_agree() {
        let plans = [("a", Some("x")), ("b", None), ("c", Some("x"))];
        assert_eq!(declared_firmware(None, plans), Ok(Some("x")));
        assert_eq!(declared_firmware(Some("y"), plans), Ok(Some("y")));
        assert_eq!(declared_firmware(None, [("a", None)]), Ok(None));
        let e = declared_firmware(None, [("a", Some("x")), ("b", Some("z"))]).unwrap_err();
        assert!(
            e.contains("`a`") && e.contains("`b`") && e.contains("suite"),
            "{e}"
        );
    }

    #[test]
    fn readback_waits_for_boot_and_three_cycles() {
        let dbc = Dbc::parse(
            "VERSION \"\"\n\nBU_: BMS\n\nBO_ 304 BMS_Version: 8 BMS\n SG_ FwMajor : 0|8@1+ (1,0) [0|255] \"\" Vector__XXX\n\nBA_DEF_ BO_ \"GenMsgCycleTime\" INT 0 10000;\nBA_ \"GenMsgCycleTime\" BO_ 304 2000;\n",
            "t.dbc",
        )
        .unwrap();
        assert_eq!(
            readback::timeout_for(&dbc, "BMS_Version"),
            Duration::from_secs(8)
        );
        assert_eq!(readback::timeout_for(&dbc, "Other"), Duration::from_secs(5));
    }
}
