//! The probe-rs backend: a real BMS on a debug probe (ST-LINK, J-Link, CMSIS-DAP v2, ...).
//!
//! probe-rs is used as a library, built without the C libraries (no hidapi, no libusb): USB
//! probes are reached through nusb, so CMSIS-DAP v1 (HID) probes are not supported.
//! probe-rs calls block, so each step runs on tokio's blocking pool.

use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use probe_rs::config::{Registry, RegistryError};
use probe_rs::flashing::{
    self, BinLoader, BinOptions, DownloadOptions, ElfLoader, ElfOptions, FlashLoader,
    FlashProgress, HexLoader, ProgressEvent, ProgressOperation,
};
use probe_rs::probe::list::{Accessibility, Lister, ProbeListItem};
use probe_rs::probe::{
    DebugProbeError, DebugProbeSelector, Probe, ProbeCreationError, WireProtocol,
};
use probe_rs::{Permissions, Session, Target};

use super::manifest::ImageFormat;
use super::{
    Attached, FlashError, FlashEvent, FlashOptions, FlashPlan, Flasher, Phase, PlannedRegion,
    ProgressSink, VerifiedImage,
};
use crate::rig::{ProbeConfig, ProbeProtocol};

/// A debug probe found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeInfo {
    /// Probe name (`STLink V3`, `J-Link`, ...).
    pub name: String,
    /// Selector for the rig's `probe.selector` (`VID:PID[:SERIAL]`).
    pub selector: String,
    /// Whether this user may open it (false: udev rules are missing).
    pub accessible: bool,
}

fn connected() -> Vec<ProbeListItem> {
    if cfg!(target_os = "linux") && !std::path::Path::new("/sys/bus/usb/devices").exists() {
        // No USB subsystem (a container or VM without USB): no probe can be connected.
        return Vec::new();
    }
    Lister::new().list_all_with_access()
}

/// Every debug probe connected to this machine (empty when there is none).
pub fn list_probes() -> Vec<ProbeInfo> {
    connected()
        .into_iter()
        .map(|item| ProbeInfo {
            name: item.info.identifier.clone(),
            selector: DebugProbeSelector::from(&item.info).to_string(),
            accessible: item.accessibility == Accessibility::Accessible,
        })
        .collect()
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::from_builtin_families)
}

/// Every chip name in probe-rs's built-in target list.
pub fn chip_names() -> Vec<String> {
    registry()
        .families()
        .iter()
        .flat_map(|f| f.variants.iter().map(|v| v.name.clone()))
        .collect()
}

/// Chip names close to `name`: those it is a prefix of, else the nearest by edit distance.
pub fn chip_suggestions(name: &str) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let names = chip_names();
    let mut prefixed: Vec<String> = names
        .iter()
        .filter(|n| n.to_ascii_lowercase().starts_with(&lower) && !lower.is_empty())
        .cloned()
        .collect();
    if !prefixed.is_empty() {
        prefixed.sort();
        prefixed.dedup();
        prefixed.truncate(8);
        return prefixed;
    }
    let limit = (lower.len() / 3).max(2);
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .filter_map(|n| {
            let d = crate::plan::error::edit_distance(&lower, &n.to_ascii_lowercase());
            (d <= limit).then_some((d, n))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// The probe-rs target for a chip name; unknown or ambiguous names get suggestions.
pub fn find_target(chip: &str) -> Result<Target, FlashError> {
    match registry().get_target_by_name(chip) {
        Ok(t) => Ok(t),
        Err(RegistryError::ChipNotUnique(_, matches)) => Err(FlashError::UnknownChip {
            chip: chip.to_string(),
            suggestions: matches.split(", ").take(8).map(str::to_string).collect(),
        }),
        Err(_) => Err(FlashError::UnknownChip {
            chip: chip.to_string(),
            suggestions: chip_suggestions(chip),
        }),
    }
}

/// The chip to flash: the rig's and the image's must agree; one of them must name it.
pub fn chip_for(rig: Option<&ProbeConfig>, image: &VerifiedImage) -> Result<String, FlashError> {
    let rig_chip = rig.and_then(|p| p.chip.as_deref());
    match (rig_chip, image.entry.chip.as_deref()) {
        (Some(r), Some(i)) if !r.eq_ignore_ascii_case(i) => Err(FlashError::ChipConflict {
            id: image.entry.id.clone(),
            image: i.to_string(),
            rig: r.to_string(),
        }),
        (Some(c), _) | (None, Some(c)) => Ok(c.to_string()),
        (None, None) => Err(FlashError::NoChip {
            id: image.entry.id.clone(),
        }),
    }
}

/// Where the first flash region starts (where a `bin` image goes without `base_address`).
pub fn flash_start(target: &Target) -> Option<u64> {
    target
        .memory_map
        .iter()
        .filter_map(|r| r.as_nvm_region())
        .filter(|r| !r.is_alias)
        .map(|r| r.range.start)
        .min()
}

/// Parse an image into a flash loader for the session's target.
pub fn load_image(session: &mut Session, image: &VerifiedImage) -> Result<FlashLoader, FlashError> {
    let mut loader = session.target().flash_loader();
    let mut file = Cursor::new(image.bytes.to_vec());
    let format_err = |detail: String| FlashError::Format {
        id: image.entry.id.clone(),
        format: image.entry.format.to_string(),
        detail,
    };
    let result = match image.entry.format {
        ImageFormat::Elf => {
            loader.load_image(session, &mut file, ElfLoader(ElfOptions::default()), None)
        }
        ImageFormat::Hex => loader.load_image(session, &mut file, HexLoader, None),
        ImageFormat::Bin => {
            let base = image
                .entry
                .base_address
                .or_else(|| flash_start(session.target()));
            loader.load_image(
                session,
                &mut file,
                BinLoader(BinOptions {
                    base_address: base,
                    skip: 0,
                }),
                None,
            )
        }
        ImageFormat::SimYaml => {
            return Err(FlashError::WrongTarget {
                id: image.entry.id.clone(),
                what: "a simulated-BMS image (sim-yaml)".into(),
                advice: "it runs only on the simulated bench (--rig rig/sim.yaml)".into(),
            })
        }
    };
    match result {
        Ok(()) => Ok(loader),
        Err(flashing::FileDownloadError::Flash(e)) => Err(FlashError::Layout {
            id: image.entry.id.clone(),
            chip: session.target().name.clone(),
            detail: e.to_string(),
        }),
        Err(e) => Err(format_err(chain(&e))),
    }
}

/// What the loaded image will erase and write, region by region; data outside the chip's
/// flash and RAM is an error naming the chip's regions.
pub fn plan_layout(target: &Target, loader: &FlashLoader) -> Result<FlashPlan, String> {
    let mut plan = FlashPlan::default();
    let mut sectors: Vec<std::collections::BTreeSet<u64>> = Vec::new();
    for (addr, data) in loader.data() {
        let end = addr + data.len() as u64;
        let region = target.memory_map.iter().find(|r| {
            let range = r.address_range();
            range.start <= addr && end <= range.end
        });
        let Some(region) = region else {
            let regions: Vec<String> = target
                .memory_map
                .iter()
                .map(|r| {
                    let range = r.address_range();
                    format!("{:#010x}..{:#010x}", range.start, range.end)
                })
                .collect();
            return Err(format!(
                "bytes {addr:#010x}..{end:#010x} lie outside the chip's memory ({}); the image \
                 is linked for another chip or address",
                regions.join(", ")
            ));
        };
        let (name, sector_list) = match region.as_nvm_region() {
            Some(nvm) => {
                let algo = target
                    .flash_algorithms
                    .iter()
                    .filter(|a| {
                        let r = &a.flash_properties.address_range;
                        r.start <= addr && end <= r.end
                    })
                    .max_by_key(|a| a.default)
                    .ok_or_else(|| {
                        format!(
                            "probe-rs has no flash algorithm for {addr:#010x}..{end:#010x} on {}",
                            target.name
                        )
                    })?;
                let props = &algo.flash_properties;
                let mut list = Vec::new();
                let mut a = addr;
                while a < end {
                    let offset = a - props.address_range.start;
                    let Some(desc) = props.sectors.iter().rev().find(|s| s.address <= offset)
                    else {
                        break;
                    };
                    if desc.size == 0 {
                        break;
                    }
                    let start = props.address_range.start
                        + desc.address
                        + (offset - desc.address) / desc.size * desc.size;
                    list.push((start, start + desc.size));
                    a = start + desc.size;
                }
                (nvm.name.clone().unwrap_or_else(|| "flash".into()), list)
            }
            None => ("ram".to_string(), Vec::new()),
        };
        let i = match plan.regions.iter().position(|r| r.name == name) {
            Some(i) => i,
            None => {
                plan.regions.push(PlannedRegion {
                    name,
                    start: addr,
                    end,
                    bytes: 0,
                    sectors: 0,
                    erase_start: u64::MAX,
                    erase_end: 0,
                });
                sectors.push(Default::default());
                plan.regions.len() - 1
            }
        };
        let r = &mut plan.regions[i];
        r.start = r.start.min(addr);
        r.end = r.end.max(end);
        r.bytes += data.len() as u64;
        for (s, e) in sector_list {
            sectors[i].insert(s);
            r.erase_start = r.erase_start.min(s);
            r.erase_end = r.erase_end.max(e);
        }
        r.sectors = sectors[i].len() as u64;
    }
    for r in &mut plan.regions {
        if r.sectors == 0 {
            r.erase_start = r.start;
            r.erase_end = r.start;
        }
    }
    Ok(plan)
}

/// A probe-rs progress event as a [`FlashEvent`].
pub fn map_progress(event: ProgressEvent) -> Option<FlashEvent> {
    let phase = |op: ProgressOperation| match op {
        ProgressOperation::Fill => Phase::Fill,
        ProgressOperation::Erase => Phase::Erase,
        ProgressOperation::Program => Phase::Program,
        ProgressOperation::Verify => Phase::Verify,
    };
    Some(match event {
        ProgressEvent::FlashLayoutReady { .. } => return None,
        ProgressEvent::AddProgressBar { operation, total } => FlashEvent::Planned {
            phase: phase(operation),
            total,
        },
        ProgressEvent::Started(op) => FlashEvent::Started(phase(op)),
        ProgressEvent::Progress {
            operation, size, ..
        } => FlashEvent::Progress {
            phase: phase(operation),
            bytes: size,
        },
        ProgressEvent::Failed(op) => FlashEvent::Failed(phase(op)),
        ProgressEvent::Finished(op) => FlashEvent::Finished(phase(op)),
        ProgressEvent::DiagnosticMessage { message } => FlashEvent::Message(message),
    })
}

/// An error and its causes, joined by `: `.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

fn permission_denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return true;
            }
        }
        let t = err.to_string().to_ascii_lowercase();
        if t.contains("permission denied") || t.contains("access denied") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Turn a probe-rs error at some step into advice: no probe, permissions (udev rules),
/// a chip that does not answer, a verify mismatch, or the plain error.
pub fn advice(
    e: &(dyn std::error::Error + 'static),
    probe: &str,
    chip: &str,
    id: &str,
) -> FlashError {
    if permission_denied(e) {
        return FlashError::PermissionDenied {
            probe: probe.to_string(),
            detail: chain(e),
        };
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<flashing::FlashError>() {
            if matches!(f, flashing::FlashError::Verify) {
                return FlashError::VerifyMismatch {
                    id: id.to_string(),
                    detail: chain(e),
                };
            }
        }
        if let Some(p) = err.downcast_ref::<DebugProbeError>() {
            match p {
                DebugProbeError::ProbeCouldNotBeCreated(ProbeCreationError::NotFound) => {
                    return FlashError::NoProbe
                }
                DebugProbeError::Timeout | DebugProbeError::TargetNotFound => {
                    return FlashError::ChipNotResponding {
                        chip: chip.to_string(),
                        detail: chain(e),
                    }
                }
                _ => {}
            }
        }
        if let Some(p) = err.downcast_ref::<probe_rs::Error>() {
            match p {
                probe_rs::Error::Timeout
                | probe_rs::Error::Arm(_)
                | probe_rs::Error::Riscv(_)
                | probe_rs::Error::Xtensa(_) => {
                    return FlashError::ChipNotResponding {
                        chip: chip.to_string(),
                        detail: chain(e),
                    }
                }
                probe_rs::Error::ChipNotFound(_) => {
                    return FlashError::UnknownChip {
                        chip: chip.to_string(),
                        suggestions: chip_suggestions(chip),
                    }
                }
                _ => {}
            }
        }
        cur = err.source();
    }
    FlashError::Probe(chain(e))
}

/// Open the probe the rig names (or the only one connected).
fn open_probe(config: &ProbeConfig) -> Result<(Probe, String), FlashError> {
    let found = connected();
    let wanted = match &config.selector {
        Some(s) => Some(s.parse::<DebugProbeSelector>().map_err(|e| {
            FlashError::ProbeSelection(format!(
                "probe.selector `{s}` is not VID:PID or VID:PID:SERIAL in hex ({e}); \
                 `hilrig probe list` prints the selectors of connected probes"
            ))
        })?),
        None => None,
    };
    let list = |items: &[ProbeListItem]| {
        items
            .iter()
            .map(|i| {
                format!(
                    "{} ({})",
                    i.info.identifier,
                    DebugProbeSelector::from(&i.info)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matching: Vec<_> = found
        .iter()
        .filter(|i| {
            wanted.as_ref().is_none_or(|w| {
                w.vendor_id == i.info.vendor_id
                    && w.product_id == i.info.product_id
                    && w.serial_number
                        .as_ref()
                        .is_none_or(|s| i.info.serial_number.as_ref() == Some(s))
            })
        })
        .cloned()
        .collect();
    let item = match (matching.len(), &wanted) {
        (0, _) if found.is_empty() => return Err(FlashError::NoProbe),
        (0, Some(w)) => {
            return Err(FlashError::ProbeSelection(format!(
                "no connected probe matches probe.selector `{w}`; connected: {}. Correct the \
                 selector in the rig (see `hilrig probe list`)",
                list(&found)
            )))
        }
        (1, _) => matching[0].clone(),
        _ => {
            return Err(FlashError::ProbeSelection(format!(
                "{} probes match{}: {}. Set probe.selector in the rig to the one wired to the \
                 BMS (VID:PID:SERIAL, as `hilrig probe list` prints)",
                matching.len(),
                wanted
                    .as_ref()
                    .map(|w| format!(" `{w}`"))
                    .unwrap_or_default(),
                list(&matching)
            )))
        }
    };
    let name = format!(
        "{} ({})",
        item.info.identifier,
        DebugProbeSelector::from(&item.info)
    );
    if item.accessibility == Accessibility::PermissionDenied {
        return Err(FlashError::PermissionDenied {
            probe: name,
            detail: "the device node is not accessible to this user".into(),
        });
    }
    let probe = item
        .info
        .open()
        .map_err(|e| advice(&e, &name, config.chip.as_deref().unwrap_or("?"), ""))?;
    Ok((probe, name))
}

/// Set protocol and speed, then attach to `target`.
fn attach_probe(
    mut probe: Probe,
    config: &ProbeConfig,
    target: Target,
    name: &str,
) -> Result<Session, FlashError> {
    let chip = target.name.clone();
    let protocol = match config.protocol.unwrap_or(ProbeProtocol::Swd) {
        ProbeProtocol::Swd => WireProtocol::Swd,
        ProbeProtocol::Jtag => WireProtocol::Jtag,
    };
    probe.select_protocol(protocol).map_err(|e| match e {
        DebugProbeError::UnsupportedProtocol(p) => FlashError::Probe(format!(
            "probe {name} does not speak {p}; change probe.protocol in the rig"
        )),
        e => advice(&e, name, &chip, ""),
    })?;
    if let Some(speed) = config.speed {
        probe
            .set_speed(speed.khz())
            .map_err(|e| advice(&e, name, &chip, ""))?;
    }
    probe
        .attach_with_registry(target, Permissions::default(), registry())
        .map_err(|e| advice(&e, name, &chip, ""))
}

struct State {
    given: Option<Probe>,
    session: Option<Session>,
    loader: Option<FlashLoader>,
}

impl State {
    /// The session of an attached probe.
    fn attached(&mut self) -> Result<&mut Session, FlashError> {
        self.session
            .as_mut()
            .ok_or_else(|| FlashError::Probe("not attached".into()))
    }
}

/// Run a blocking probe-rs step on tokio's blocking pool, with the flasher's state.
async fn blocking<T: Send + 'static>(
    state: Arc<Mutex<State>>,
    f: impl FnOnce(&mut State) -> Result<T, FlashError> + Send + 'static,
) -> Result<T, FlashError> {
    tokio::task::spawn_blocking(move || {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    })
    .await
    .map_err(|e| FlashError::Probe(format!("the probe task stopped: {e}")))?
}

/// Flashes a chip through a debug probe with probe-rs.
pub struct ProbeRsFlasher {
    config: ProbeConfig,
    chip: String,
    probe_name: String,
    state: Arc<Mutex<State>>,
}

impl ProbeRsFlasher {
    /// A flasher for `image` on the rig's probe; the chip comes from the rig or the manifest
    /// and must be in probe-rs's target list.
    pub fn new(config: Option<&ProbeConfig>, image: &VerifiedImage) -> Result<Self, FlashError> {
        if image.entry.is_simulated() {
            return Err(FlashError::WrongTarget {
                id: image.entry.id.clone(),
                what: "a simulated-BMS image (sim-yaml)".into(),
                advice: "it runs only on the simulated bench (--rig rig/sim.yaml); flash an \
                         elf, hex or bin image built for the chip on this rig's probe"
                    .into(),
            });
        }
        let chip = chip_for(config, image)?;
        find_target(&chip)?;
        Ok(Self {
            config: config.cloned().unwrap_or_default(),
            chip,
            probe_name: "debug probe".into(),
            state: Arc::new(Mutex::new(State {
                given: None,
                session: None,
                loader: None,
            })),
        })
    }

    /// A flasher on a probe opened elsewhere (probe-rs's FakeProbe in tests).
    pub fn with_probe(probe: Probe, config: ProbeConfig, chip: &str) -> Result<Self, FlashError> {
        find_target(chip)?;
        Ok(Self {
            probe_name: probe.get_name(),
            config,
            chip: chip.to_string(),
            state: Arc::new(Mutex::new(State {
                given: Some(probe),
                session: None,
                loader: None,
            })),
        })
    }

    /// The chip this flasher attaches to.
    pub fn chip(&self) -> &str {
        &self.chip
    }
}

#[async_trait]
impl Flasher for ProbeRsFlasher {
    fn describe(&self) -> String {
        format!("{} via {}", self.chip, self.probe_name)
    }

    async fn attach(&mut self, progress: &ProgressSink) -> Result<Attached, FlashError> {
        let config = self.config.clone();
        let chip = self.chip.clone();
        let given_name = self.probe_name.clone();
        let (name, fresh) = blocking(self.state.clone(), move |st| {
            if st.session.is_some() {
                return Ok((given_name, false));
            }
            let target = find_target(&chip)?;
            let (probe, name) = match st.given.take() {
                Some(p) => (p, given_name),
                None => open_probe(&config)?,
            };
            st.session = Some(attach_probe(probe, &config, target, &name)?);
            Ok((name, true))
        })
        .await?;
        self.probe_name = name;
        let a = Attached {
            probe: self.probe_name.clone(),
            chip: self.chip.clone(),
        };
        if fresh {
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
        self.attach(progress).await?;
        let image = image.clone();
        let options = *options;
        let sink = progress.clone();
        let (probe, chip) = (self.probe_name.clone(), self.chip.clone());
        blocking(self.state.clone(), move |st| {
            let session = st.attached()?;
            let loader = load_image(session, &image)?;
            let plan =
                plan_layout(session.target(), &loader).map_err(|detail| FlashError::Layout {
                    id: image.entry.id.clone(),
                    chip: chip.clone(),
                    detail,
                })?;
            sink(FlashEvent::Layout(plan.clone()));
            let mut download = DownloadOptions::default();
            let dry = options.dry_run;
            let events = sink.clone();
            download.progress = FlashProgress::new(move |ev| {
                if !dry {
                    if let Some(e) = map_progress(ev) {
                        events(e);
                    }
                }
            });
            download.dry_run = options.dry_run;
            download.do_chip_erase = options.chip_erase;
            download.verify = false;
            loader
                .commit(session, download)
                .map_err(|e| advice(&e, &probe, &chip, &image.entry.id))?;
            st.loader = Some(loader);
            Ok(plan)
        })
        .await
    }

    async fn verify(
        &mut self,
        image: &VerifiedImage,
        progress: &ProgressSink,
    ) -> Result<(), FlashError> {
        let id = image.entry.id.clone();
        let sink = progress.clone();
        let (probe, chip) = (self.probe_name.clone(), self.chip.clone());
        blocking(self.state.clone(), move |st| {
            let (Some(session), Some(loader)) = (st.session.as_mut(), st.loader.as_ref()) else {
                return Err(FlashError::VerifyMismatch {
                    id,
                    detail: "nothing was programmed in this session".into(),
                });
            };
            let mut p = FlashProgress::new(move |ev| {
                if let Some(e) = map_progress(ev) {
                    sink(e);
                }
            });
            loader
                .verify(session, &mut p)
                .map_err(|e| advice(&e, &probe, &chip, &id))
        })
        .await
    }

    async fn reset_and_run(&mut self, progress: &ProgressSink) -> Result<(), FlashError> {
        let (probe, chip) = (self.probe_name.clone(), self.chip.clone());
        blocking(self.state.clone(), move |st| {
            let session = st.attached()?;
            let mut core = session.core(0).map_err(|e| advice(&e, &probe, &chip, ""))?;
            core.reset().map_err(|e| advice(&e, &probe, &chip, ""))
        })
        .await?;
        progress(FlashEvent::Running);
        Ok(())
    }
}
