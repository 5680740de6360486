//! The simulated target: "flashing" the simulated bench's BMS loads one of its images
//! (`sim-yaml`, defect images included) and restarts its firmware, with the same manifest
//! check, events and readback as a real target.
//!
//! Programming parses the image file into what the BMS will run (refusing it unless what was
//! parsed hashes to the checked SHA-256); verifying compares the loaded image's SHA-256 with
//! the manifest's; the reset restarts the BMS's firmware task with it.

use async_trait::async_trait;

use super::firmware::FirmwareImage;
use super::Bench;
use crate::flash::manifest::{sha256_hex, ImageFormat, SIM_TARGET};
use crate::flash::{
    Attached, FlashError, FlashEvent, FlashOptions, FlashPlan, Flasher, Phase, PlannedRegion,
    ProgressSink, VerifiedImage,
};

/// Flashes the simulated bench's BMS.
pub struct SimFlasher<'a> {
    bench: &'a mut Bench,
    staged: Option<(FirmwareImage, String)>,
    attached: bool,
}

impl<'a> SimFlasher<'a> {
    /// A flasher for a running simulated bench.
    pub fn new(bench: &'a mut Bench) -> Self {
        Self {
            bench,
            staged: None,
            attached: false,
        }
    }
}

impl Bench {
    /// A flasher for this bench's BMS, to hand to [`crate::flash::flash_on_rig`].
    pub fn flasher(&mut self) -> Box<dyn Flasher + '_> {
        Box::new(SimFlasher::new(self))
    }
}

fn check_simulated(image: &VerifiedImage) -> Result<(), FlashError> {
    let e = &image.entry;
    if e.format != ImageFormat::SimYaml || e.target.as_deref() != Some(SIM_TARGET) {
        return Err(FlashError::WrongTarget {
            id: e.id.clone(),
            what: format!(
                "a {} image for {}",
                e.format,
                e.chip.as_deref().unwrap_or("a real chip")
            ),
            advice: format!(
                "the simulated BMS runs `{SIM_TARGET}` images (format sim-yaml); flash this one \
                 on a rig with a debug probe, or pick a {SIM_TARGET} image from the manifest"
            ),
        });
    }
    Ok(())
}

#[async_trait]
impl Flasher for SimFlasher<'_> {
    fn describe(&self) -> String {
        format!("simulated BMS ({SIM_TARGET})")
    }

    async fn attach(&mut self, progress: &ProgressSink) -> Result<Attached, FlashError> {
        let a = Attached {
            probe: "simulated bench".into(),
            chip: SIM_TARGET.into(),
        };
        if !self.attached {
            self.attached = true;
            a.report(progress);
        }
        Ok(a)
    }

    async fn program(
        &mut self,
        image: &VerifiedImage,
        options: &FlashOptions,
        progress: &ProgressSink,
    ) -> Result<FlashPlan, FlashError> {
        check_simulated(image)?;
        let size = image.bytes.len() as u64;
        let plan = FlashPlan {
            regions: vec![PlannedRegion {
                name: "image".into(),
                start: 0,
                end: size,
                bytes: size,
                sectors: 1,
                erase_start: 0,
                erase_end: size,
            }],
        };
        progress(FlashEvent::Layout(plan.clone()));
        let loaded = parse_image(image)?;
        if loaded.id != image.entry.id || loaded.version != image.entry.version {
            return Err(FlashError::Sim(format!(
                "{} says image `{}` version {}, the manifest `{}` version {}; correct the \
                 manifest or the file",
                image.path.display(),
                loaded.id,
                loaded.version,
                image.entry.id,
                image.entry.version
            )));
        }
        if options.dry_run {
            return Ok(plan);
        }
        // The debugger halts the BMS while its flash is written: it falls silent on CAN.
        self.bench.halt_firmware();
        progress(FlashEvent::Planned {
            phase: Phase::Program,
            total: Some(size),
        });
        progress(FlashEvent::Started(Phase::Program));
        progress(FlashEvent::Progress {
            phase: Phase::Program,
            bytes: size,
        });
        progress(FlashEvent::Finished(Phase::Program));
        self.staged = Some((loaded, sha256_hex(&image.bytes)));
        Ok(plan)
    }

    async fn verify(
        &mut self,
        image: &VerifiedImage,
        progress: &ProgressSink,
    ) -> Result<(), FlashError> {
        let size = image.bytes.len() as u64;
        progress(FlashEvent::Planned {
            phase: Phase::Verify,
            total: Some(size),
        });
        progress(FlashEvent::Started(Phase::Verify));
        let Some((_, staged_sha)) = &self.staged else {
            progress(FlashEvent::Failed(Phase::Verify));
            return Err(FlashError::VerifyMismatch {
                id: image.entry.id.clone(),
                detail: "nothing was programmed".into(),
            });
        };
        if *staged_sha != image.sha256 {
            progress(FlashEvent::Failed(Phase::Verify));
            return Err(FlashError::VerifyMismatch {
                id: image.entry.id.clone(),
                detail: format!(
                    "loaded SHA-256 {staged_sha}, image SHA-256 {}",
                    image.sha256
                ),
            });
        }
        progress(FlashEvent::Progress {
            phase: Phase::Verify,
            bytes: size,
        });
        progress(FlashEvent::Finished(Phase::Verify));
        Ok(())
    }

    async fn reset_and_run(&mut self, progress: &ProgressSink) -> Result<(), FlashError> {
        let Some((image, _)) = self.staged.take() else {
            return Err(FlashError::Sim(
                "reset without a programmed image: program one first".into(),
            ));
        };
        self.bench
            .load_firmware(image)
            .await
            .map_err(|e| FlashError::Sim(e.to_string()))?;
        progress(FlashEvent::Running);
        Ok(())
    }
}

/// Parse the sim-yaml image file; what was parsed must hash to the checked bytes' SHA-256
/// (a file changed after the check is refused).
fn parse_image(image: &VerifiedImage) -> Result<FirmwareImage, FlashError> {
    let loaded = FirmwareImage::load(&image.path).map_err(|e| FlashError::Format {
        id: image.entry.id.clone(),
        format: "sim-yaml".into(),
        detail: e.to_string(),
    })?;
    if loaded.sha256 != image.sha256 {
        return Err(FlashError::HashMismatch {
            id: image.entry.id.clone(),
            file: image.path.display().to_string(),
            manifest: "the manifest".into(),
            expected: image.sha256.clone(),
            actual: loaded.sha256,
        });
    }
    Ok(loaded)
}
