//! Instruments from their rig entries: the one place that names the concrete types, so the
//! runner (`run::station`) drives supplies, loads and cell simulators through their traits
//! only. A SCPI instrument is connected with its identity checked against the dialect and
//! the dialect's connect sequence sent; a CAN cell simulator is built on the rig's bus.

use std::sync::Arc;

use super::cellsim::{CanCellSim, CellSim};
use super::{
    Load, Scope, ScpiCellSim, ScpiLoad, ScpiScope, ScpiSupply, ScpiSwitch, Supply, Switch,
};
use crate::can::Bus;
use crate::dbc::Dbc;
use crate::rig::{InstrumentConfig, Role, ShortPath};
use crate::scpi::{builtin_dialect, builtin_scope_dialect, builtin_switch_dialect};

/// An instrument as the runner drives it.
pub enum Driver {
    /// A DC supply.
    Supply(Box<dyn Supply>),
    /// An electronic load.
    Load(Box<dyn Load>),
    /// A cell simulator (SCPI or CAN).
    Cells(Box<dyn CellSim>),
    /// An oscilloscope on the pack current.
    Scope(Box<dyn Scope>),
    /// The short-circuit switch, with the path it closes.
    Short(Box<dyn Switch>, ShortPath),
}

/// A connected instrument, with what it answered to `*IDN?` and where (SCPI instruments).
pub struct Connected {
    /// The driver.
    pub driver: Driver,
    /// `(address, *IDN? reply)`; None for an instrument that answers nothing (CAN).
    pub identity: Option<(String, String)>,
}

/// Connect the instrument a rig entry describes. `bus` gives the rig's CAN bus of an id
/// (opened once and shared by the caller). Errors name the instrument and what is missing.
pub async fn connect(
    inst: &InstrumentConfig,
    bus: impl FnOnce(&str) -> Result<Arc<dyn Bus>, String>,
) -> Result<Connected, String> {
    let id = &inst.id;
    let timeout = inst.timeout.duration();
    let scpi = || -> Result<(&str, crate::scpi::Dialect), String> {
        let addr = inst
            .address
            .as_deref()
            .ok_or_else(|| format!("instrument `{id}` has no address"))?;
        let did = inst
            .dialect
            .as_deref()
            .ok_or_else(|| format!("instrument `{id}` has no dialect"))?;
        let dialect = builtin_dialect(did)
            .ok_or_else(|| format!("instrument `{id}`: unknown dialect `{did}`"))?;
        Ok((addr, dialect))
    };
    let answered = |addr: &str, idn: &str| Some((addr.to_string(), idn.to_string()));
    match inst.role {
        Role::Supply => {
            let (addr, dialect) = scpi()?;
            let s = ScpiSupply::connect(id, addr, dialect, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Connected {
                identity: answered(addr, s.identity()),
                driver: Driver::Supply(Box::new(s)),
            })
        }
        Role::Load => {
            let (addr, dialect) = scpi()?;
            let l = ScpiLoad::connect(id, addr, dialect, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Connected {
                identity: answered(addr, l.identity()),
                driver: Driver::Load(Box::new(l)),
            })
        }
        Role::CellSim if inst.over_scpi() => {
            let (addr, dialect) = scpi().map_err(|_| {
                format!(
                    "cell simulator `{id}` needs either `bus:` and `mapping:` (CAN) or \
                     `dialect:` and `address:` (SCPI)"
                )
            })?;
            let mut cs = ScpiCellSim::connect(id, addr, dialect, timeout)
                .await
                .map_err(|e| e.to_string())?
                .with_cell_offset(inst.cell_offset);
            let idn = cs.verify_identity().await.map_err(|e| e.to_string())?;
            Ok(Connected {
                identity: answered(addr, &idn),
                driver: Driver::Cells(Box::new(cs)),
            })
        }
        Role::CellSim => {
            let m = inst
                .mapping
                .as_ref()
                .ok_or_else(|| format!("cell simulator `{id}` has no mapping"))?;
            let bus_id = inst
                .bus
                .as_deref()
                .ok_or_else(|| format!("cell simulator `{id}` has no bus"))?;
            let bus: Box<dyn Bus> =
                Box::new(bus(bus_id).map_err(|e| format!("cell simulator `{id}`: {e}"))?);
            let dbc = Dbc::from_file(&m.dbc).map_err(|e| format!("cell simulator `{id}`: {e}"))?;
            let cs = CanCellSim::new(id, bus, &dbc, m).map_err(|e| e.to_string())?;
            Ok(Connected {
                identity: None,
                driver: Driver::Cells(Box::new(cs)),
            })
        }
        Role::Scope => {
            let addr = inst
                .address
                .as_deref()
                .ok_or_else(|| format!("scope `{id}` has no address"))?;
            let did = inst
                .dialect
                .as_deref()
                .ok_or_else(|| format!("scope `{id}` has no dialect"))?;
            let dialect = builtin_scope_dialect(did)
                .ok_or_else(|| format!("scope `{id}`: unknown scope dialect `{did}`"))?;
            let input = inst.capture.ok_or_else(|| {
                format!("scope `{id}` has no `capture:` (its channel and `volts_per_amp`)")
            })?;
            let s = ScpiScope::connect(id, addr, dialect, input, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Connected {
                identity: answered(addr, s.identity()),
                driver: Driver::Scope(Box::new(s)),
            })
        }
        Role::Short => {
            let addr = inst
                .address
                .as_deref()
                .ok_or_else(|| format!("short-circuit switch `{id}` has no address"))?;
            let did = inst
                .dialect
                .as_deref()
                .ok_or_else(|| format!("short-circuit switch `{id}` has no dialect"))?;
            let dialect = builtin_switch_dialect(did).ok_or_else(|| {
                format!("short-circuit switch `{id}`: unknown switch dialect `{did}`")
            })?;
            let path = inst.short.ok_or_else(|| {
                format!(
                    "short-circuit switch `{id}` has no `short:` (its channel, `resistance` \
                     and `max_closed`)"
                )
            })?;
            let s = ScpiSwitch::connect(id, addr, dialect, path.channel, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Connected {
                identity: answered(addr, s.identity()),
                driver: Driver::Short(Box::new(s), path),
            })
        }
        Role::Chamber => Err(format!(
            "instrument `{id}`: thermal chambers are not supported yet"
        )),
    }
}
