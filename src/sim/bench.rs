//! The simulated bench as a whole: plant, SCPI instrument servers (on loopback TCP, or
//! in memory behind `mem://` endpoints for virtual time), the virtual CAN bus, the cell
//! simulator, the BMS firmware host, the plant tick and the ground truth.
//!
//! A rig entry with `role: short` gets a simulated switch unit ([`SimSwitch`], the
//! DAQ970A's command set) whose `short.channel` closes the plant's short-circuit path of
//! `short.resistance`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::bms_host::{self, Truth};
use super::capture::CurrentTrace;
use super::firmware::FirmwareImage;
use super::plant::{self, PackConfig, Plant};
use super::scpi_server::{self, SimInstrument};
use super::scpi_server::{SimScope, SimSwitch, SIMULATED_SWITCH_DIALECTS};
use crate::can::VirtualBus;
use crate::dbc::Dbc;
use crate::plan::InputError;
use crate::rig::{Backend, InstrumentConfig, Rig, Role, SimulatedFault};
use crate::scpi::{builtin_dialect, builtin_scope_dialect};
use crate::scpi::{register_memory, MemoryEndpoint, Transport};

/// The project DBC, which the reference firmware speaks.
pub const FIRMWARE_DBC: &str = include_str!("../../fixtures/dbc/sim-bms.dbc");

/// Errors starting the simulated bench.
#[derive(Debug, Error)]
pub enum SimError {
    /// The rig has no `simulation:` section.
    #[error("rig `{0}` is not a simulated rig (it has no `simulation:` section)")]
    NotSimulated(String),
    /// The firmware image could not be loaded.
    #[error("{0}")]
    Firmware(#[from] InputError),
    /// An instrument cannot be simulated.
    #[error("simulated instrument `{id}`: {reason}")]
    Instrument {
        /// Instrument id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A loopback port could not be opened.
    #[error("cannot open a loopback port for `{id}`: {source}")]
    Io {
        /// Instrument id.
        id: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How the simulated SCPI instruments are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScpiExposure {
    /// Loopback TCP ports chosen at start (`tcp://127.0.0.1:PORT`): real transports, real time.
    #[default]
    Tcp,
    /// In-memory pipes behind `mem://ID-N` endpoints: no sockets, so the bench runs under a
    /// paused (virtual) clock.
    InMemory,
}

/// How to build the simulated bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// How the SCPI instruments are reached.
    pub scpi: ScpiExposure,
    /// The pack; None: the rig's `simulation:` pack (typical cells of its chemistry, as many
    /// as the firmware image watches, at its state of charge and ambient, four NTCs).
    pub pack: Option<PackConfig>,
    /// The plant's integration step.
    pub tick: Duration,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            scpi: ScpiExposure::Tcp,
            pack: None,
            tick: plant::DEFAULT_TICK,
        }
    }
}

/// A running simulated bench. Dropping it stops every task.
pub struct Bench {
    /// The plant (for tests and the ground truth).
    pub plant: Plant,
    /// The firmware image the simulated BMS runs.
    pub image: FirmwareImage,
    /// What really happened inside the BMS.
    pub truth: Truth,
    instruments: BTreeMap<String, SimInstrument>,
    scopes: BTreeMap<String, SimScope>,
    switches: BTreeMap<String, SimSwitch>,
    addresses: BTreeMap<String, String>,
    buses: BTreeMap<String, String>,
    ports: BTreeMap<String, VirtualBus>,
    _memory: Vec<MemoryEndpoint>,
    tasks: Vec<JoinHandle<()>>,
    firmware_task: Option<tokio::task::AbortHandle>,
    dbc: Arc<Dbc>,
    dut_port: Option<VirtualBus>,
    inverter_board: super::inverter::Board,
    modbus: Option<String>,
}

static BENCH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A simulated SCPI unit as the bench exposes it.
trait Exposed: Clone + Send + Sync + 'static {
    /// Its `tcp://` address when it listens on loopback.
    fn tcp_address(&self) -> String;
    /// A connection without a socket.
    fn connect(&self) -> Box<dyn Transport>;
    /// Answer `*IDN?` with this serial number.
    fn serial(&self, serial: &str);
}

macro_rules! exposed {
    ($($t:ty),*) => {$(
        impl Exposed for $t {
            fn tcp_address(&self) -> String {
                self.address()
            }
            fn connect(&self) -> Box<dyn Transport> {
                self.connect_in_memory()
            }
            fn serial(&self, serial: &str) {
                self.set_serial(serial)
            }
        }
    )*};
}
exposed!(SimInstrument, SimScope, SimSwitch);

/// Where the simulated SCPI units are reached: the `sim://` address map and the in-memory
/// endpoints kept alive.
struct Exposure {
    scpi: ScpiExposure,
    n: u64,
    addresses: BTreeMap<String, String>,
    memory: Vec<MemoryEndpoint>,
}

impl Exposure {
    /// Start the rig's unit `inst` on a loopback port (`tcp`) or in memory (`in_memory`) as
    /// the options say, give it the rig's serial number, and map `sim_addr` to where it is
    /// reached.
    async fn expose<H, F>(
        &mut self,
        inst: &InstrumentConfig,
        sim_addr: &str,
        tcp: impl FnOnce(TcpListener) -> F,
        in_memory: impl FnOnce() -> H,
    ) -> Result<H, SimError>
    where
        H: Exposed,
        F: std::future::Future<Output = H>,
    {
        let (unit, address) = match self.scpi {
            ScpiExposure::Tcp => {
                let listener =
                    TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|source| SimError::Io {
                            id: inst.id.clone(),
                            source,
                        })?;
                let unit = tcp(listener).await;
                let address = unit.tcp_address();
                (unit, address)
            }
            ScpiExposure::InMemory => {
                let unit = in_memory();
                let handle = unit.clone();
                let endpoint = register_memory(
                    &format!("{}-{}", inst.id, self.n),
                    Arc::new(move || handle.connect()),
                );
                let address = endpoint.address();
                self.memory.push(endpoint);
                (unit, address)
            }
        };
        if let Some(serial) = &inst.serial {
            unit.serial(serial);
        }
        self.addresses.insert(sim_addr.to_string(), address);
        Ok(unit)
    }
}

impl Bench {
    /// Start every simulated instrument and bus the rig names (a rig as returned by
    /// `plan::load_rig`, whose paths are already resolved), with SCPI on loopback TCP.
    pub async fn start(rig: &Rig, rig_path: &Path) -> Result<Bench, SimError> {
        Self::start_with(rig, rig_path, &BenchOptions::default()).await
    }

    /// Start the bench with options (in-memory SCPI for virtual time, another pack).
    pub async fn start_with(
        rig: &Rig,
        rig_path: &Path,
        options: &BenchOptions,
    ) -> Result<Bench, SimError> {
        let sim = rig
            .simulation
            .as_ref()
            .ok_or_else(|| SimError::NotSimulated(rig_path.display().to_string()))?;
        let image = FirmwareImage::load(&sim.firmware)?;
        let dbc = Arc::new(Dbc::parse(FIRMWARE_DBC, "sim-bms.dbc").map_err(|e| {
            SimError::Instrument {
                id: "bms".into(),
                reason: format!("built-in DBC: {e}"),
            }
        })?);
        let pack = options
            .pack
            .clone()
            .unwrap_or_else(|| PackConfig::of_rig(rig, image.config.cells as usize));
        let plant = Plant::with_pack(&pack);
        let truth = Truth::default();
        bms_host::watch_levels(&plant, &image, truth.clone());

        let n = BENCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut buses = BTreeMap::new();
        let mut ports = BTreeMap::new();
        let mut tasks = vec![plant::spawn_ticker(plant.clone(), options.tick)];
        let mut firmware_task = None;
        let mut dut_port = None;
        let inverter_board = super::inverter::Board::default();
        for b in rig.buses.iter().filter(|b| b.backend == Backend::Virtual) {
            let name = format!("sim-{}-{n}-{}", std::process::id(), b.interface);
            let port = VirtualBus::create(&name);
            if b.dut {
                let fw = bms_host::spawn(
                    &image,
                    plant.clone(),
                    port.clone(),
                    dbc.clone(),
                    truth.clone(),
                    inverter_board.clone(),
                );
                firmware_task = Some(fw.abort_handle());
                tasks.push(fw);
                dut_port = Some(port.clone());
            }
            if rig
                .instruments
                .iter()
                .any(|i| i.role == Role::CellSim && i.bus.as_deref() == Some(&b.id))
            {
                tasks.push(bms_host::spawn_cell_simulator(
                    plant.clone(),
                    &port,
                    dbc.clone(),
                ));
            }
            buses.insert(b.interface.clone(), name);
            ports.insert(b.id.clone(), port);
        }

        let mut instruments = BTreeMap::new();
        let mut scopes = BTreeMap::new();
        let mut switches = BTreeMap::new();
        let mut exposure = Exposure {
            scpi: options.scpi,
            n,
            addresses: BTreeMap::new(),
            memory: Vec::new(),
        };
        // What the scopes sample: the plant's pack current, recorded from the start.
        let trace = CurrentTrace::watch(&plant);
        for inst in &rig.instruments {
            let Some(addr) = inst.address.as_deref().filter(|a| a.starts_with("sim://")) else {
                continue;
            };
            let err = |reason: String| SimError::Instrument {
                id: inst.id.clone(),
                reason,
            };
            if inst.role == Role::Scope {
                let dialect_id = inst
                    .dialect
                    .as_deref()
                    .ok_or_else(|| err("no dialect given".into()))?;
                let dialect = builtin_scope_dialect(dialect_id)
                    .ok_or_else(|| err(format!("no built-in scope dialect `{dialect_id}`")))?;
                let input = inst
                    .capture
                    .ok_or_else(|| err("no `capture:` (channel, volts_per_amp)".into()))?;
                let scope = exposure
                    .expose(
                        inst,
                        addr,
                        |listener| {
                            SimScope::serve(
                                listener,
                                dialect.clone(),
                                trace.clone(),
                                input.channel,
                                input.volts_per_amp,
                            )
                        },
                        || {
                            SimScope::serve_in_memory(
                                dialect.clone(),
                                trace.clone(),
                                input.channel,
                                input.volts_per_amp,
                            )
                        },
                    )
                    .await?;
                scopes.insert(inst.id.clone(), scope);
                continue;
            }
            if inst.role == Role::Short {
                let dialect_id = inst
                    .dialect
                    .as_deref()
                    .ok_or_else(|| err("no dialect given".into()))?;
                if !SIMULATED_SWITCH_DIALECTS.contains(&dialect_id) {
                    return Err(err(format!(
                        "no simulated switch unit for dialect `{dialect_id}` (simulated: {})",
                        SIMULATED_SWITCH_DIALECTS.join(", ")
                    )));
                }
                let path = inst
                    .short
                    .ok_or_else(|| err("no `short:` (channel, resistance, max_closed)".into()))?;
                if !SimSwitch::installed(path.channel) {
                    return Err(err(format!(
                        "`short.channel: {}` is not a channel of the simulated unit \
                         (101-120, 201-220, 301-320)",
                        path.channel
                    )));
                }
                if !(path.resistance.0.is_finite() && path.resistance.0 > 0.0) {
                    return Err(err(format!(
                        "`short.resistance` must be above 0 Ω, not {} Ω",
                        path.resistance.0
                    )));
                }
                plant.lock().short.resistance_ohm = path.resistance.0;
                let switch = exposure
                    .expose(
                        inst,
                        addr,
                        |listener| SimSwitch::serve(listener, plant.clone(), path.channel),
                        || SimSwitch::serve_in_memory(plant.clone(), path.channel),
                    )
                    .await?;
                switches.insert(inst.id.clone(), switch);
                continue;
            }
            let dialect_id = inst
                .dialect
                .as_deref()
                .ok_or_else(|| err("no dialect given".into()))?;
            let dialect = builtin_dialect(dialect_id)
                .ok_or_else(|| err(format!("no built-in dialect `{dialect_id}`")))?;
            let server = exposure
                .expose(
                    inst,
                    addr,
                    |listener| scpi_server::serve(listener, dialect.clone(), plant.clone()),
                    || scpi_server::serve_in_memory(dialect.clone(), plant.clone()),
                )
                .await?;
            if inst.role == Role::CellSim {
                server.set_cell_offset(inst.cell_offset);
            }
            if inst.role == Role::Supply
                && sim.faults.contains(&SimulatedFault::SupplyOutputStuckOn)
            {
                server.stick_output_on();
            }
            instruments.insert(inst.id.clone(), server);
        }
        let Exposure {
            mut addresses,
            mut memory,
            ..
        } = exposure;
        // The firmware's inverter-facing Modbus TCP map: on loopback, or in memory when
        // the bench runs without sockets (virtual time). `sim://modbus` in a rig's
        // `modbus:` links reaches it.
        let mut modbus = None;
        if image.inverter.is_some() {
            let err = |reason: String| SimError::Instrument {
                id: "modbus".into(),
                reason,
            };
            let peer = super::modbus_server::Peer::new(
                super::modbus_server::sim_map().map_err(err)?,
                inverter_board.clone(),
            );
            let address = match options.scpi {
                ScpiExposure::Tcp => {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|e| err(format!("cannot listen on loopback: {e}")))?;
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    tasks.push(super::modbus_server::spawn(listener, peer));
                    format!("tcp://127.0.0.1:{port}")
                }
                ScpiExposure::InMemory => {
                    let endpoint = register_memory(
                        &format!("modbus-{n}"),
                        Arc::new(move || peer.connect_in_memory()),
                    );
                    let address = endpoint.address();
                    memory.push(endpoint);
                    address
                }
            };
            addresses.insert("sim://modbus".to_string(), address.clone());
            modbus = Some(address);
        }
        Ok(Bench {
            inverter_board,
            modbus,
            plant,
            image,
            truth,
            instruments,
            scopes,
            switches,
            addresses,
            buses,
            ports,
            _memory: memory,
            tasks,
            firmware_task,
            dbc,
            dut_port,
        })
    }

    /// Load another image into the simulated BMS and restart it, as flashing does: the old
    /// firmware stops, the new one boots on the same bus, and the ground truth starts afresh
    /// with the new image's levels.
    pub async fn load_firmware(&mut self, image: FirmwareImage) -> Result<(), SimError> {
        let err = |reason: String| SimError::Instrument {
            id: "bms".into(),
            reason,
        };
        let port = self
            .dut_port
            .clone()
            .ok_or_else(|| err("the rig has no virtual bus with `dut: true`".into()))?;
        let cells = self.plant.snapshot().cells.len();
        if image.config.cells as usize > cells {
            return Err(err(format!(
                "image `{}` watches {} cells, the simulated pack has {cells}",
                image.id, image.config.cells
            )));
        }
        if let Some(old) = self.firmware_task.take() {
            old.abort();
            if let Some(i) = self.tasks.iter().position(|t| t.id() == old.id()) {
                // Wait until it has stopped, so no frame of the old image follows.
                let _ = self.tasks.swap_remove(i).await;
            }
        }
        self.truth = Truth::default();
        bms_host::watch_levels(&self.plant, &image, self.truth.clone());
        let fw = bms_host::spawn(
            &image,
            self.plant.clone(),
            port,
            self.dbc.clone(),
            self.truth.clone(),
            self.inverter_board.clone(),
        );
        self.firmware_task = Some(fw.abort_handle());
        self.tasks.push(fw);
        self.image = image;
        Ok(())
    }

    /// The simulated BMS's Modbus TCP endpoint (`tcp://127.0.0.1:PORT`), when its image
    /// speaks to an inverter and the bench serves over TCP.
    pub fn modbus_address(&self) -> Option<&str> {
        self.modbus.as_deref()
    }

    /// The simulated BMS's latest inverter announcement (what its Modbus map serves).
    pub fn inverter_board(&self) -> &super::inverter::Board {
        &self.inverter_board
    }

    /// A port on a simulated CAN bus, by the rig's bus id.
    pub fn bus_port(&self, bus_id: &str) -> Option<&VirtualBus> {
        self.ports.get(bus_id)
    }

    /// Stop the simulated BMS firmware (fault injection: the DUT falls silent on CAN).
    pub fn halt_firmware(&self) {
        if let Some(t) = &self.firmware_task {
            t.abort();
        }
    }

    /// A simulated SCPI instrument by rig id.
    pub fn instrument(&self, id: &str) -> Option<&SimInstrument> {
        self.instruments.get(id)
    }

    /// A simulated oscilloscope by rig id.
    pub fn scope(&self, id: &str) -> Option<&SimScope> {
        self.scopes.get(id)
    }

    /// A simulated short-circuit switch unit by rig id.
    pub fn switch(&self, id: &str) -> Option<&SimSwitch> {
        self.switches.get(id)
    }

    /// `sim://NAME` -> real `tcp://127.0.0.1:PORT` (or `mem://ID-N`) addresses.
    pub fn addresses(&self) -> &BTreeMap<String, String> {
        &self.addresses
    }

    /// Rig virtual bus names -> the names this bench registered.
    pub fn buses(&self) -> &BTreeMap<String, String> {
        &self.buses
    }

    /// A copy of the rig with every simulated endpoint replaced by the real one.
    pub fn resolve(&self, rig: &Rig) -> Rig {
        let mut r = rig.clone();
        r.resolve_endpoints(&self.addresses, &self.buses);
        r
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for i in self.instruments.values() {
            i.shutdown();
        }
        for s in self.scopes.values() {
            s.shutdown();
        }
        for s in self.switches.values() {
            s.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::{ScpiSwitch, Switch};
    use crate::scpi::builtin_switch_dialect;

    fn sim_rig() -> (Rig, std::path::PathBuf) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rig/sim.yaml");
        let rig = crate::plan::load_rig(&path).unwrap().value;
        (rig, path)
    }

    #[rstest::rstest]
    #[case::tcp(ScpiExposure::Tcp, "tcp://")]
    #[case::in_memory(ScpiExposure::InMemory, "mem://")]
    #[tokio::test]
    async fn the_rigs_short_entry_is_a_switch_unit_on_the_plant(
        #[case] scpi: ScpiExposure,
        #[case] scheme: &str,
    ) {
        let (rig, path) = sim_rig();
        let options = BenchOptions {
            scpi,
            ..Default::default()
        };
        let bench = Bench::start_with(&rig, &path, &options).await.unwrap();
        assert!(bench.switch("short").is_some());
        assert!(bench.switch("scope").is_none());
        let address = bench.addresses()["sim://short"].clone();
        assert!(address.starts_with(scheme), "{address}");
        assert_eq!(bench.plant.snapshot().short.resistance_ohm, 0.25);
        let mut sw = ScpiSwitch::connect(
            "short",
            &address,
            builtin_switch_dialect("keysight-daq970a").unwrap(),
            101,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(sw.identity().contains("SIM-DAQ-0001"), "{}", sw.identity());
        sw.close().await.unwrap();
        assert!(bench.plant.snapshot().short.closed);
        assert!(bench.switch("short").unwrap().is_closed(101));
        sw.open().await.unwrap();
        assert!(!bench.plant.snapshot().short.closed);
    }

    #[rstest::rstest]
    #[case::channel_not_installed(Some(121), None, "`short.channel: 121`")]
    #[case::another_dialect(
        None,
        Some("acme-relay"),
        "no simulated switch unit for dialect `acme-relay`"
    )]
    #[tokio::test]
    async fn a_short_entry_the_bench_cannot_simulate_is_refused_by_name(
        #[case] channel: Option<u32>,
        #[case] dialect: Option<&str>,
        #[case] expected: &str,
    ) {
        let (mut rig, path) = sim_rig();
        let entry = rig
            .instruments
            .iter_mut()
            .find(|i| i.id == "short")
            .unwrap();
        if let Some(c) = channel {
            entry.short.as_mut().unwrap().channel = c;
        }
        if let Some(d) = dialect {
            entry.dialect = Some(d.into());
        }
        let options = BenchOptions {
            scpi: ScpiExposure::InMemory,
            ..Default::default()
        };
        let err = Bench::start_with(&rig, &path, &options)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("simulated instrument `short`"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}
