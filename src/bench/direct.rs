//! One instrument at a time, by hand: `hilrig instruments ping` (the round-trip latency of
//! `*IDN?`) and `hilrig instruments scpi` (one SCPI line, checked against the rig's envelope
//! before it is sent; see `crate::scpi::guard`).

use std::time::Duration;

use serde_json::json;

use super::session::Session;
use crate::exit::{Failure, EXIT_ABORT, EXIT_FAILED};
use crate::report::InstrumentIdentity;
use crate::scpi::guard::{check_line_with, only_queries};
use crate::scpi::ping::ping as time_queries;
use crate::scpi::{Client, ScpiError};

/// What `hilrig instruments scpi` sends, and what it may.
#[derive(Debug, Default)]
pub struct ScpiLine {
    /// Instrument id from the rig file.
    pub id: String,
    /// The SCPI line, e.g. "MEAS:VOLT?" or "VOLT 12;CURR 2".
    pub line: String,
    /// Allow commands that change the instrument (still checked against the envelope).
    pub allow_settings: bool,
    /// Also allow resets and switching a protection off.
    pub allow_unprotected: bool,
    /// Wait this long for the bench lock when a run holds it.
    pub wait: Option<Duration>,
}

/// Time `count` queries of `*IDN?` to instrument `id` (after one untimed) and print min,
/// median and p99 (`as_json`: one JSON object).
pub async fn ping(session: &Session, id: &str, count: u32, as_json: bool) -> Result<i32, Failure> {
    let inst = session.instrument(id)?;
    let (dialect, address) = session.scpi_endpoint(inst)?;
    let (id, timeout, count) = (inst.id.clone(), inst.timeout.duration(), count as usize);
    // The queries run on a thread of their own with a single-threaded runtime, so
    // that a round trip is not stretched by hand-overs between worker threads.
    let timed = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        rt.block_on(async {
            let (mut client, _) = Client::connect_for(&address, &dialect, timeout)
                .await
                .map_err(|e| format!("instrument `{id}`: {e}"))?;
            // The first query is not timed: it pays for the connection's first packets.
            client
                .query("*IDN?")
                .await
                .map_err(|e| format!("instrument `{id}`: {e}"))?;
            let latency = time_queries(&mut client, "*IDN?", count)
                .await
                .map_err(|e| format!("instrument `{id}`: {e}"))?;
            Ok::<_, String>((id, address, latency))
        })
    })
    .await;
    let (id, address, l) =
        timed.unwrap_or_else(|e| Err(format!("the timing thread failed: {e}")))?;
    if as_json {
        println!(
            "{}",
            json!({"id": id, "address": address, "query": "*IDN?", "latency_s": l})
        );
    } else {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{id}: {} × *IDN? over {address}: min {:.3} ms, median {:.3} ms, p99 {:.3} ms \
             (mean {:.3} ms, max {:.3} ms)",
            l.count,
            ms(l.min),
            ms(l.median),
            ms(l.p99),
            ms(l.mean),
            ms(l.max)
        );
    }
    Ok(0)
}

/// Send one SCPI line (checked first) to an instrument, print the reply and read its error
/// queue; the exit code: 0 done, 1 the instrument reported an error, 2 no reply.
pub async fn scpi(session: &Session, a: ScpiLine) -> Result<i32, Failure> {
    let inst = session.instrument(&a.id)?;
    let checks = check_line_with(
        &a.line,
        inst.role,
        &session.rig.envelope,
        a.allow_settings,
        a.allow_unprotected,
    )
    .map_err(|refusal| Failure::abort(format!("instrument `{}`: {refusal}", inst.id)))?;
    for c in &checks {
        eprintln!("checked: {c}");
    }
    let settings = !only_queries(&a.line);
    let what = format!("hilrig instruments scpi {} {:?}", a.id, a.line);
    let _lock = match settings {
        true => Some(session.lock(&what, a.wait).await?),
        false => None,
    };
    let (dialect, address) = session.scpi_endpoint(inst)?;
    let at = |e: ScpiError| Failure::abort(format!("instrument `{}`: {e}", inst.id));
    let (mut client, _) = Client::connect_for(&address, &dialect, inst.timeout.duration())
        .await
        .map_err(at)?;
    // Identity and serial first: a wrong instrument receives nothing but `*IDN?`.
    let idn = client.query("*IDN?").await.map_err(at)?;
    let idn = idn.trim();
    if !dialect.matches_identity(idn) {
        return Err(Failure::abort(format!(
            "instrument `{}`: answers `*IDN?` with {idn:?}, but dialect `{}` is for {} {}; \
             nothing else was sent",
            inst.id,
            dialect.id,
            dialect.maker_text(),
            dialect.model_text()
        )));
    }
    let identity = InstrumentIdentity::parse(&inst.id, idn);
    if let Some(expected) = &inst.serial {
        if identity.other_serial_than(Some(expected)) {
            return Err(Failure::abort(format!(
                "instrument `{}`: serial {} is not the rig file's {expected}; nothing else \
                 was sent",
                inst.id, identity.serial
            )));
        }
    }
    if settings {
        // Remote control first where the model needs it (e.g. EA's SYST:LOCK 1).
        for command in dialect.on_connect.clone() {
            if let Err(e) = client.write_checked(&command).await {
                return Err(Failure::failed(format!("instrument `{}`: {e}", inst.id)));
            }
        }
    }
    let sent = if a.line.split(';').any(|c| crate::scpi::is_query(c.trim())) {
        client.query(&a.line).await.map(Some)
    } else {
        client.write(&a.line).await.map(|()| None)
    };
    let mut code = 0;
    match sent {
        Ok(Some(reply)) => println!("{reply}"),
        Ok(None) => {}
        Err(ScpiError::Timeout { .. }) => {
            eprintln!(
                "error: instrument `{}`: no reply to `{}`; reading its error queue",
                inst.id, a.line
            );
            code = EXIT_ABORT;
        }
        Err(e) => return Err(at(e)),
    }
    match client.error_queue().await {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => {
            for (c, m) in errors {
                eprintln!(
                    "error: instrument `{}` reported {c},\"{m}\" after `{}`",
                    inst.id, a.line
                );
            }
            code = EXIT_FAILED;
        }
        Err(e) => {
            eprintln!(
                "error: instrument `{}`: reading the error queue: {e}",
                inst.id
            );
            code = EXIT_ABORT;
        }
    }
    if settings {
        if let Some(note) = session.note() {
            eprintln!("{note}");
        }
    }
    Ok(code)
}
