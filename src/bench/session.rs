//! A loaded rig for the commands that talk to its instruments one at a time (`hilrig
//! instruments`, `supply`, `load`): finding an instrument by id or role, its SCPI endpoint,
//! the bench lock, the check of the unit that answered, and the guard of a timed switch-on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::campaign::{BenchProvider, ProvidedBench};
use crate::guard::{Guard, GuardSpec};
use crate::plan::load_rig;
use crate::report::calibration::{self, Calibration};
use crate::report::InstrumentIdentity;
use crate::rig::{InstrumentConfig, Rig, Role};
use crate::run::lock::BenchLock;
use crate::scpi::{resolve_dialect, Dialect};
use crate::trace::today;

/// A loaded rig, with the simulated bench running when the rig is simulated.
pub struct Session {
    /// The rig, with simulated endpoints resolved.
    pub rig: Rig,
    rig_path: PathBuf,
    _bench: Option<Box<dyn ProvidedBench>>,
}

impl Session {
    /// Load the rig (`--rig`, `HILRIG_RIG`, `hilrig.toml`, else the built-in simulated
    /// bench); the bench `provider` starts for it (the simulated bench of a simulated rig)
    /// resolves the rig's endpoints and runs as long as the session.
    pub async fn start(
        rig: Option<PathBuf>,
        provider: &dyn BenchProvider,
    ) -> Result<Session, String> {
        let choice = crate::rig::choice::choose_from_env(rig).map_err(|e| e.to_string())?;
        let rig_path = choice.path.clone();
        let loaded = load_rig(&rig_path)
            .map_err(|e| format!("{choice}: {e}"))?
            .value;
        let bench = provider
            .start(&loaded, &rig_path, false)
            .await
            .map_err(|e| format!("cannot start the simulated bench: {e}"))?;
        Ok(Session {
            rig: bench
                .as_ref()
                .map_or(loaded.clone(), |b| b.resolve(&loaded)),
            rig_path,
            _bench: bench,
        })
    }

    /// The rig file's path.
    pub fn rig_path(&self) -> &Path {
        &self.rig_path
    }

    /// Whether the simulated bench serves this rig.
    pub fn simulated(&self) -> bool {
        self.rig.simulation.is_some()
    }

    /// The instrument with this id.
    pub fn instrument(&self, id: &str) -> Result<&InstrumentConfig, String> {
        self.rig
            .instruments
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| {
                let ids: Vec<&str> = self.rig.instruments.iter().map(|i| i.id.as_str()).collect();
                format!(
                    "rig {} has no instrument `{id}`; it has: {}",
                    self.rig_path.display(),
                    ids.join(", ")
                )
            })
    }

    /// The instrument with this id, or the rig's first one in `role`.
    pub fn by_role(&self, role: Role, id: Option<&str>) -> Result<&InstrumentConfig, String> {
        let inst = match id {
            Some(id) => self.instrument(id)?,
            None => self.rig.instrument(role).ok_or_else(|| {
                format!(
                    "rig {} has no instrument with role {}",
                    self.rig_path.display(),
                    role_name(role)
                )
            })?,
        };
        if inst.role != role {
            return Err(format!(
                "instrument `{}` has role {}, not {}",
                inst.id,
                role_name(inst.role),
                role_name(role)
            ));
        }
        Ok(inst)
    }

    /// The dialect and address of a SCPI instrument.
    pub fn scpi_endpoint(&self, inst: &InstrumentConfig) -> Result<(Dialect, String), String> {
        let name = inst.dialect.as_deref().ok_or_else(|| {
            format!(
                "instrument `{}` has no `dialect:`; it is not a SCPI instrument",
                inst.id
            )
        })?;
        if inst.role == Role::Short {
            return Err(format!(
                "instrument `{}` is the short-circuit switch (dialect `{name}`): it is closed by \
                 a plan's `short` stimulus only, never by hand",
                inst.id
            ));
        }
        if inst.role == Role::Scope {
            return Err(format!(
                "instrument `{}` is an oscilloscope (dialect `{name}`): this command speaks to \
                 supplies, loads and cell simulators only; a scope is driven by plans",
                inst.id
            ));
        }
        let base = self.rig_path.parent().unwrap_or(Path::new("."));
        let dialect =
            resolve_dialect(name, base).map_err(|e| format!("instrument `{}`: {e}", inst.id))?;
        let address = inst
            .address
            .clone()
            .ok_or_else(|| format!("instrument `{}` has no `address:`", inst.id))?;
        Ok((dialect, address))
    }

    /// Take the bench lock for a command that changes an instrument.
    pub async fn lock(&self, what: &str, wait: Option<Duration>) -> Result<BenchLock, String> {
        let wait = wait.unwrap_or_default();
        BenchLock::acquire(&self.rig.station, self.simulated(), what, wait)
            .await
            .map_err(|e| e.to_string())
    }

    /// Check the unit that answered (`idn`) is the rig file's: its serial, and for a
    /// command that changes it, a calibration that has not expired (unless
    /// `allow_expired`, the same override as `run`).
    pub fn check_unit(
        &self,
        inst: &InstrumentConfig,
        idn: &str,
        changes: bool,
        allow_expired: bool,
    ) -> Result<(), String> {
        let identity = InstrumentIdentity::parse(&inst.id, idn);
        if let Some(expected) = &inst.serial {
            if identity.other_serial_than(Some(expected)) {
                return Err(format!(
                    "instrument `{}`: serial {} is not the rig file's {expected}; another unit \
                     is connected, or the rig file is out of date",
                    inst.id, identity.serial
                ));
            }
        }
        let serial = inst
            .serial
            .clone()
            .or(Some(identity.serial).filter(|s| !s.is_empty()));
        if changes {
            if let Calibration::Expired { due, days_over } =
                calibration::judge(&self.rig.calibration, serial.as_deref(), &today())
            {
                if !allow_expired {
                    return Err(format!(
                        "instrument `{}`: calibration overdue since {due} ({days_over} days); \
                         give --allow-expired-calibration to use it anyway",
                        inst.id
                    ));
                }
                eprintln!(
                    "warning: instrument `{}`: calibration overdue since {due}",
                    inst.id
                );
            }
        }
        Ok(())
    }

    /// A note for people when settings do not outlive the command.
    pub fn note(&self) -> Option<&'static str> {
        self.simulated().then_some(
            "note: simulated bench started for this command; its settings end with it \
             (`hilrig sim serve` keeps one running)",
        )
    }
}

impl Session {
    /// For `on --for` (`timed` set): start the out-of-process guard of `inst`, which
    /// switches it off if this process dies before it does. None without `--for`, on a
    /// simulated rig (its instruments end with this process) and for a dialect the guard
    /// cannot drive.
    pub fn guard_timed_on(
        &self,
        inst: &InstrumentConfig,
        timed: Option<Duration>,
    ) -> Result<Option<Guard>, String> {
        let Some(duration) = timed.filter(|_| !self.simulated()) else {
            return Ok(None);
        };
        let dir = std::env::temp_dir().join(format!(
            "hilrig-{}-on-{}",
            role_name(inst.role),
            std::process::id()
        ));
        let command = format!(
            "{} on --for {} s",
            role_name(inst.role),
            duration.as_secs_f64()
        );
        let Some(spec) = GuardSpec::of_instrument(inst, &dir, &command) else {
            return Ok(None);
        };
        if spec
            .instruments
            .iter()
            .any(|i| crate::scpi::builtin_dialect(&i.dialect).is_none())
        {
            return Err(format!(
                "instrument `{}`: the guard process knows only the built-in dialects, so \
                 nothing switches `{}` off if hilrig is killed; use `on` without --for",
                inst.id,
                inst.dialect.as_deref().unwrap_or_default()
            ));
        }
        Guard::start(&spec)
            .map(Some)
            .map_err(|e| format!("{e}; nothing is switched on without it"))
    }
}

/// A role as written in rig files.
pub fn role_name(role: Role) -> &'static str {
    role.key()
}
