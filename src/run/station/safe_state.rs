//! The safe-state sequence of a station: short-circuit switch open, load off, supply off
//! (each read back, reconnecting once after a lost connection), cells to nominal, the BMS's standby request (confirmed by the
//! fixture's condition when it declares one), and the supply's watchdog at the end.

use super::*;

/// Connect a rig entry again (after a lost connection), as the same kind of instrument.
async fn reconnect(entry: &InstrumentConfig) -> Result<Driver, RunError> {
    let no_bus = |_: &str| Err("a SCPI instrument has no bus".to_string());
    Ok(instrument::connect(entry, no_bus)
        .await
        .map_err(RunError::InstrumentText)?
        .driver)
}

/// Do `act` on a shared instrument (bounded in time); when it fails, connect its rig entry
/// once more (a lost connection; the dialect's connect sequence clears its error queue),
/// put the fresh driver of the right kind (`take`) in place and do `act` again.
async fn retried<T: ?Sized, F: std::future::Future<Output = Result<(), RunError>>>(
    inst: &Shared<T>,
    entry: Option<&InstrumentConfig>,
    kind: &str,
    take: fn(Driver) -> Option<Box<T>>,
    act: impl Fn() -> F,
) -> Result<(), RunError> {
    let r = bounded(act()).await;
    let (Err(first), Some(entry)) = (&r, entry) else {
        return r;
    };
    let again = bounded(async {
        let fresh = take(reconnect(entry).await?)
            .ok_or_else(|| RunError::setup(format!("`{}` is not a {kind}", entry.id)))?;
        *inst.lock().await = fresh;
        act().await
    })
    .await;
    again.map_err(|e| RunError::InstrumentText(format!("{first}; after reconnecting: {e}")))
}

impl Station {
    /// Drive every instrument to its safe state: short-circuit switch open, load input off,
    /// supply output off, cells to nominal, BMS standby request. Each action is bounded in time, failures do not stop
    /// the sequence, and each outcome is recorded: confirmed when an answer shows it took
    /// effect (the instrument's read-back, the BMS's own state), otherwise sent only.
    pub async fn safe_state(&self) -> Vec<SafeStateAction> {
        let out = self.drive_safe_state().await;
        self.stop_monitor();
        out
    }

    fn stop_monitor(&self) {
        if let Some(m) = self
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            m.abort();
        }
    }

    async fn drive_safe_state(&self) -> Vec<SafeStateAction> {
        self.stop_background();
        let mut out = Vec::new();
        if let Some((sw, _)) = &self.short {
            let r = retried(
                sw,
                self.short_entry.as_ref(),
                "short-circuit switch",
                |d| match d {
                    Driver::Short(s, _) => Some(s),
                    _ => None,
                },
                || async { Ok(open_switch(sw, &self.signals).await?) },
            )
            .await;
            out.push(confirmed_action(
                sw.lock().await.id(),
                "short-circuit switch open (confirmed by read-back)",
                r,
            ));
        }
        if let Some(l) = &self.load {
            let r = retried(
                l,
                self.load_entry.as_ref(),
                "load",
                |d| match d {
                    Driver::Load(l) => Some(l),
                    _ => None,
                },
                || async {
                    let mut g = l.lock().await;
                    g.set_input(false).await?;
                    match g.input().await? {
                        false => Ok(()),
                        true => Err(RunError::InstrumentText(
                            "input still on after switching it off".into(),
                        )),
                    }
                },
            )
            .await;
            out.push(confirmed_action(
                l.lock().await.id(),
                "input off (confirmed by read-back)",
                r,
            ));
        }
        if let Some(s) = &self.supply {
            let r = retried(
                s,
                self.supply_entry.as_ref(),
                "supply",
                |d| match d {
                    Driver::Supply(s) => Some(s),
                    _ => None,
                },
                || async {
                    let mut g = s.lock().await;
                    g.set_output(false).await?;
                    match g.output().await? {
                        false => Ok(()),
                        true => Err(RunError::InstrumentText(
                            "output still on after switching it off".into(),
                        )),
                    }
                },
            )
            .await;
            out.push(confirmed_action(
                s.lock().await.id(),
                "output off (confirmed by read-back)",
                r,
            ));
        }
        // A CAN frame is only sent: nothing on the bus acknowledges it to us. Unless an
        // answer confirms it, it counts as done (sent, not confirmed) only while the DUT's
        // bus is alive (a frame from the DUT within the dead-bus time).
        let bus_alive = || {
            self.bus_alive()
                .map_err(|e| RunError::bus(format!("sent, but not confirmed: {e}")))
        };
        if let Some(c) = &self.cells {
            let v = self.nominal_cell_voltage;
            let n = self.cells_in_series;
            let r = bounded(async {
                let mut g = c.lock().await;
                for cell in 1..=n {
                    g.set_cell_voltage(cell, v).await?;
                }
                Ok(())
            })
            .await;
            let (id, over_can) = {
                let g = c.lock().await;
                (g.id().to_string(), g.over_can())
            };
            let (text, r) = if over_can {
                let text = format!(
                    "all cells to nominal {v:.3} V over CAN: sent, not confirmed (the cell \
                     simulator gives no read-back)"
                );
                (text, r.and_then(|_| bus_alive()))
            } else {
                let text = format!(
                    "all cells to nominal {v:.3} V over SCPI: accepted by the unit, not read back"
                );
                (text, r)
            };
            out.push(action(&id, &text, r));
        }
        if let (Some(bus), Some(sr)) = (&self.dut_bus, &self.state_request) {
            out.push(self.request_standby(bus.as_ref(), sr).await);
        }
        out
    }

    /// At the end of the run, after [`Station::safe_state`]: the supply's I/O watchdog,
    /// when [`Station::program_protection`] armed one. Disarmed (bounded in time) when the
    /// safe state was confirmed (`safe_state_reached`), so that an idle bench or the next
    /// manual command is not switched off by it; otherwise left armed, as a second line of
    /// defence. None when no watchdog was armed.
    pub async fn end_watchdog(&self, safe_state_reached: bool) -> Option<WatchdogRecord> {
        let (id, delay) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let supply = self.supply.as_ref()?;
        Some(end_watchdog(supply, &id, delay, safe_state_reached).await)
    }

    /// Whether the DUT's bus is alive: a frame from the DUT within the dead-bus time.
    fn bus_alive(&self) -> Result<(), RunError> {
        match self.signals.last_bus_frame() {
            Some(t) if t.elapsed() <= DEAD_BUS_AFTER => Ok(()),
            Some(t) => Err(RunError::bus(format!(
                "no frame from the DUT for {:.1} s",
                t.elapsed().as_secs_f64()
            ))),
            None => Err(RunError::bus("no frame from the DUT was ever received")),
        }
    }

    /// Send the standby request. With the fixture's `confirm`, repeat it every cycle until
    /// the condition holds on values received after the first request, for at most
    /// [`STANDBY_CONFIRM_WITHIN`]; without one, it is sent, not confirmed.
    async fn request_standby(&self, bus: &dyn Bus, sr: &StateRequest) -> SafeStateAction {
        let send = async || -> Result<(), RunError> {
            let f = encode_request(sr, sr.standby)
                .ok_or_else(|| RunError::bus("cannot encode the standby request"))?;
            bounded(async { bus.send(f).await.map_err(RunError::bus) }).await
        };
        let sent_at = Instant::now();
        let sent = send().await;
        let Some(confirm) = &sr.confirm else {
            let r = sent.and_then(|_| {
                self.bus_alive()
                    .map_err(|e| RunError::bus(format!("sent, but not confirmed: {e}")))
            });
            return action(
                "dut",
                "BMS standby request over CAN: sent, not confirmed (the fixture declares no \
                 `confirm`)",
                r,
            );
        };
        let what = format!(
            "BMS standby request over CAN (confirmed by `{}`)",
            confirm.text
        );
        if let Err(e) = sent {
            return action("dut", &what, Err(e));
        }
        let deadline = sent_at + STANDBY_CONFIRM_WITHIN;
        let mut next_send = sent_at + sr.cycle;
        loop {
            if self.signals.eval_since(&confirm.cond, sent_at) == Some(true) {
                return confirmed_action("dut", &what, Ok(()));
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_send {
                // Repeated as the BMS expects its request every cycle; a failure to send
                // shows as the missing answer.
                if let Err(e) = send().await {
                    tracing::warn!("safe state: repeating the standby request: {e}");
                }
                next_send += sr.cycle;
            }
            tokio::time::sleep(CONFIRM_POLL.min(deadline.saturating_duration_since(now))).await;
        }
        let dead = self
            .bus_alive()
            .err()
            .map(|e| format!("; {e}"))
            .unwrap_or_default();
        action(
            "dut",
            &what,
            Err(RunError::bus(format!(
                "sent, but not confirmed: `{}` did not hold within {} s of the request; last \
                 seen: {}{dead}",
                confirm.text,
                STANDBY_CONFIRM_WITHIN.as_secs_f64(),
                self.last_seen(confirm, sent_at)
            ))),
        )
    }

    /// The latest value of each signal of a confirm condition, with its value-table name
    /// and whether it arrived before `since`.
    fn last_seen(&self, confirm: &Confirm, since: Instant) -> String {
        let seen: Vec<String> = confirm
            .cond
            .signals()
            .into_iter()
            .map(|name| match self.signals.get(name) {
                None => format!("{name}: nothing received"),
                Some((v, at)) => {
                    let label = confirm
                        .labels
                        .get(name)
                        .and_then(|ls| ls.iter().find(|(x, _)| Op::Eq.apply(*x, v)))
                        .map(|(_, l)| format!(" ({l})"))
                        .unwrap_or_default();
                    let stale = if at < since {
                        ", received before the request"
                    } else {
                        ""
                    };
                    format!("{name} = {v}{label}{stale}")
                }
            })
            .collect();
        seen.join(", ")
    }
}

async fn bounded<F: std::future::Future<Output = Result<(), RunError>>>(
    f: F,
) -> Result<(), RunError> {
    match timeout(SAFE_STEP_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(RunError::Timeout(format!(
            "no answer within {} s",
            SAFE_STEP_TIMEOUT.as_secs()
        ))),
    }
}

/// Disarm `supply`'s I/O watchdog (armed as `id` with `delay`) when the safe state was
/// confirmed, and say what became of it.
pub(super) async fn end_watchdog(
    supply: &Shared<dyn Supply>,
    id: &str,
    delay: Duration,
    safe_state_reached: bool,
) -> WatchdogRecord {
    let left_armed = if safe_state_reached {
        let r = bounded(async {
            match supply.lock().await.disarm_watchdog().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(RunError::setup("the instrument has no watchdog to disarm")),
                Err(e) => Err(RunError::from(e)),
            }
        })
        .await;
        r.err().map(|e| format!("disarming it failed: {e}"))
    } else {
        Some(
            "the safe state was not confirmed, so it stays armed as a second line of defence"
                .to_string(),
        )
    };
    WatchdogRecord {
        instrument: id.to_string(),
        armed_s: delay.as_secs_f64(),
        disarmed: left_armed.is_none(),
        left_armed,
    }
}

/// A step that is done when `r` is Ok, without an answer confirming it.
fn action(instrument: &str, what: &str, r: Result<(), RunError>) -> SafeStateAction {
    SafeStateAction {
        instrument: instrument.to_string(),
        action: what.to_string(),
        ok: r.is_ok(),
        confirmed: false,
        error: r.err().map(|e| e.to_string()),
    }
}

/// A step whose Ok `r` comes from an answer (a read-back, the BMS's own state).
fn confirmed_action(instrument: &str, what: &str, r: Result<(), RunError>) -> SafeStateAction {
    SafeStateAction {
        confirmed: r.is_ok(),
        ..action(instrument, what, r)
    }
}
