//! The simulated BMS's Modbus TCP server: the reference firmware's inverter announcement in
//! the register map `fixtures/modbus/sim-bms-inverter.yaml` (embedded), served with
//! `tokio-modbus` on a loopback port the bench lists among its endpoints.
//!
//! Reads of mapped registers answer from the firmware's latest announcement (the same values
//! it sends over Pylontech LV CAN); a read that touches an unmapped address answers
//! exception 0x02 (illegal data address), a write or another function 0x01 (illegal
//! function), and a read before the firmware has run 0x06 (server device busy).

use std::future::{self, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;

use super::inverter::Board;
use crate::modbus::{Function, RegisterMap};

/// The register map the simulated BMS serves.
pub const SIM_MAP: &str = include_str!("../../fixtures/modbus/sim-bms-inverter.yaml");

/// The simulated BMS's map, parsed.
pub fn sim_map() -> Result<RegisterMap, String> {
    RegisterMap::parse(SIM_MAP).map_err(|e| format!("the embedded sim-bms register map: {e}"))
}

/// The physical value of a logical signal in an announcement.
pub fn announced_value(name: &str, a: &sim_bms::pylon::Announcement, soc: u16) -> Option<f64> {
    let pack_v = a.pack_cv as f64 / 100.0;
    let pack_i = a.current_da as f64 / 10.0;
    Some(match name {
        "inv.cvl" => a.cvl_dv as f64 / 10.0,
        "inv.ccl" => a.ccl_da as f64 / 10.0,
        "inv.dcl" => a.dcl_da as f64 / 10.0,
        "inv.dvl" => a.dvl_dv as f64 / 10.0,
        "inv.soc" => soc as f64,
        "inv.soh" => 100.0,
        "inv.pack_v" => pack_v,
        "inv.pack_i" => pack_i,
        "inv.temp" => a.temp_dc as f64 / 10.0,
        "inv.alarms" => a.protection as f64,
        "inv.warnings" => a.warning as f64,
        "inv.pack_power" => ((pack_v * pack_i) * 10.0).round() / 10.0,
        "inv.charge_enable" => a.charge_enable as u8 as f64,
        "inv.discharge_enable" => a.discharge_enable as u8 as f64,
        _ => return None,
    })
}

/// The words (bits as 0/1) a read of `count` from `address` with `function` answers.
pub fn answer(
    map: &RegisterMap,
    board: &Board,
    function: Function,
    address: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    if count == 0 || count > 125 {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let Some((a, soc)) = board.latest() else {
        return Err(ExceptionCode::ServerDeviceBusy);
    };
    let mut out = Vec::with_capacity(count as usize);
    let end = address as u32 + count as u32;
    let mut at = address as u32;
    while at < end {
        let (name, r) = map
            .registers
            .iter()
            .find(|(_, r)| r.function == function && r.address as u32 == at)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        let value = announced_value(name, &a, soc).ok_or(ExceptionCode::ServerDeviceFailure)?;
        let words = map.encode(r, value);
        if at + words.len() as u32 > end {
            // A read that splits a 32-bit value.
            return Err(ExceptionCode::IllegalDataAddress);
        }
        at += words.len() as u32;
        out.extend(words);
    }
    Ok(out)
}

#[derive(Clone)]
struct Peer {
    map: Arc<RegisterMap>,
    board: Board,
}

type Reply = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

impl Service for Peer {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Reply;

    fn call(&self, req: Self::Request) -> Self::Future {
        let read = |f: Function, a: u16, n: u16| answer(&self.map, &self.board, f, a, n);
        let bits = |w: Vec<u16>| w.into_iter().map(|x| x != 0).collect::<Vec<bool>>();
        let r = if req.slave != self.map.unit && req.slave != 0 {
            // Another unit id: a gateway would report its target as absent.
            Err(ExceptionCode::GatewayTargetDevice)
        } else {
            match req.request {
                Request::ReadInputRegisters(a, n) => {
                    read(Function::Input, a, n).map(Response::ReadInputRegisters)
                }
                Request::ReadHoldingRegisters(a, n) => {
                    read(Function::Holding, a, n).map(Response::ReadHoldingRegisters)
                }
                Request::ReadCoils(a, n) => {
                    read(Function::Coil, a, n).map(|w| Response::ReadCoils(bits(w)))
                }
                Request::ReadDiscreteInputs(a, n) => read(Function::DiscreteInput, a, n)
                    .map(|w| Response::ReadDiscreteInputs(bits(w))),
                _ => Err(ExceptionCode::IllegalFunction),
            }
        };
        Box::pin(future::ready(r))
    }
}

/// Serve the simulated BMS's register map on `listener` until the task is aborted.
pub fn spawn(listener: TcpListener, map: RegisterMap, board: Board) -> JoinHandle<()> {
    let map = Arc::new(map);
    tokio::spawn(async move {
        let server = Server::new(listener);
        let on_connected = |stream, addr: SocketAddr| {
            let peer = Peer {
                map: map.clone(),
                board: board.clone(),
            };
            async move { accept_tcp_connection(stream, addr, move |_| Ok(Some(peer.clone()))) }
        };
        let on_error = |e| tracing::debug!("simulated Modbus server: {e}");
        if let Err(e) = server.serve(&on_connected, on_error).await {
            tracing::error!("simulated Modbus server stopped: {e}");
        }
    })
}
