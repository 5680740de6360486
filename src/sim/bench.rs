//! The simulated bench as a whole: plant, SCPI instrument servers on loopback TCP, the
//! virtual CAN bus, the cell simulator and the BMS firmware host.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::bms_host::{self, Truth};
use super::firmware::FirmwareImage;
use super::plant::Plant;
use super::scpi_server::{self, SimInstrument};
use crate::can::VirtualBus;
use crate::dbc::Dbc;
use crate::plan::InputError;
use crate::rig::{Backend, Rig, Role};
use crate::scpi::builtin_dialect;

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

/// A running simulated bench. Dropping it stops every task.
pub struct Bench {
    /// The plant (for tests and the ground truth).
    pub plant: Plant,
    /// The firmware image the simulated BMS runs.
    pub image: FirmwareImage,
    /// What really happened inside the BMS.
    pub truth: Truth,
    instruments: BTreeMap<String, SimInstrument>,
    addresses: BTreeMap<String, String>,
    buses: BTreeMap<String, String>,
    _ports: Vec<VirtualBus>,
    tasks: Vec<JoinHandle<()>>,
}

static BENCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Bench {
    /// Start every simulated instrument and bus the rig names (a rig as returned by
    /// `plan::load_rig`, whose paths are already resolved).
    pub async fn start(rig: &Rig, rig_path: &Path) -> Result<Bench, SimError> {
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
        let plant = Plant::new(image.config.cells as usize, 3.3, 4, 25.0);
        let truth = Truth::default();

        let n = BENCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut buses = BTreeMap::new();
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        for b in rig.buses.iter().filter(|b| b.backend == Backend::Virtual) {
            let name = format!("sim-{}-{n}-{}", std::process::id(), b.interface);
            let port = VirtualBus::create(&name);
            if b.dut {
                tasks.push(bms_host::spawn(
                    &image,
                    plant.clone(),
                    port.clone(),
                    dbc.clone(),
                    truth.clone(),
                ));
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
            ports.push(port);
        }

        let mut instruments = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for inst in &rig.instruments {
            let Some(addr) = inst.address.as_deref().filter(|a| a.starts_with("sim://")) else {
                continue;
            };
            let err = |reason: String| SimError::Instrument {
                id: inst.id.clone(),
                reason,
            };
            let dialect_id = inst
                .dialect
                .as_deref()
                .ok_or_else(|| err("no dialect given".into()))?;
            let dialect = builtin_dialect(dialect_id)
                .ok_or_else(|| err(format!("no built-in dialect `{dialect_id}`")))?;
            let listener =
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| SimError::Io {
                        id: inst.id.clone(),
                        source,
                    })?;
            let server = scpi_server::serve(listener, dialect, plant.clone()).await;
            addresses.insert(addr.to_string(), format!("tcp://{}", server.local_addr()));
            instruments.insert(inst.id.clone(), server);
        }
        Ok(Bench {
            plant,
            image,
            truth,
            instruments,
            addresses,
            buses,
            _ports: ports,
            tasks,
        })
    }

    /// A simulated SCPI instrument by rig id.
    pub fn instrument(&self, id: &str) -> Option<&SimInstrument> {
        self.instruments.get(id)
    }

    /// `sim://NAME` -> real `tcp://127.0.0.1:PORT` addresses.
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
    }
}
