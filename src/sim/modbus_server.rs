//! The simulated BMS's Modbus TCP server: the reference firmware's inverter announcement in
//! the register map `fixtures/modbus/sim-bms-inverter.yaml` (embedded), served on a
//! loopback port the bench lists among its endpoints, or in memory on a virtual-time bench.
//!
//! The framing (MBAP header, function 0x01-0x04 PDUs) is written here rather than taken
//! from `tokio-modbus`'s server: that server serves only a `TcpListener` or a serial port
//! (its per-connection loop is private), and a virtual-time bench runs without sockets.
//! It also makes the simulated peer an implementation independent of the client hilrig
//! uses (`tokio-modbus`), and `pymodbus` checks it from outside (`tests/it/modbus_sim.rs`).
//!
//! Reads of mapped registers answer from the firmware's latest announcement (the same values
//! it sends over Pylontech LV CAN); a read that touches an unmapped address answers
//! exception 0x02 (illegal data address), a write or another function 0x01 (illegal
//! function), and a read before the firmware has run 0x06 (server device busy).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::prelude::ExceptionCode;

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

/// The simulated BMS's Modbus TCP peer: its map and the firmware's latest announcement.
#[derive(Clone)]
pub struct Peer {
    map: Arc<RegisterMap>,
    board: Board,
}

impl Peer {
    /// A peer serving `map` from `board`.
    pub fn new(map: RegisterMap, board: Board) -> Self {
        Self {
            map: Arc::new(map),
            board,
        }
    }

    /// The response PDU to a request PDU addressed to `unit`: data, or `function | 0x80`
    /// and an exception code.
    fn respond(&self, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let function = pdu.first().copied().unwrap_or(0);
        match self.answer_pdu(unit, pdu) {
            Ok(data) => data,
            Err(code) => vec![function | 0x80, u8::from(code)],
        }
    }

    fn answer_pdu(&self, unit: u8, pdu: &[u8]) -> Result<Vec<u8>, ExceptionCode> {
        if unit != self.map.unit && unit != 0 {
            // Another unit id: a gateway would report its target as absent.
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        let function = match pdu.first() {
            Some(0x01) => Function::Coil,
            Some(0x02) => Function::DiscreteInput,
            Some(0x03) => Function::Holding,
            Some(0x04) => Function::Input,
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        let [_, a0, a1, n0, n1] = pdu else {
            return Err(ExceptionCode::IllegalDataValue);
        };
        let (address, count) = (
            u16::from_be_bytes([*a0, *a1]),
            u16::from_be_bytes([*n0, *n1]),
        );
        let words = answer(&self.map, &self.board, function, address, count)?;
        let mut out = vec![function.code()];
        if function.reads_bits() {
            let mut bytes = vec![0u8; words.len().div_ceil(8)];
            for (i, w) in words.iter().enumerate() {
                if *w != 0 {
                    bytes[i / 8] |= 1 << (i % 8);
                }
            }
            out.push(bytes.len() as u8);
            out.extend(bytes);
        } else {
            out.push((words.len() * 2) as u8);
            out.extend(words.iter().flat_map(|w| w.to_be_bytes()));
        }
        Ok(out)
    }

    /// Answer Modbus TCP requests (MBAP framing) on one byte stream until it closes; a
    /// frame that is not Modbus TCP (protocol id not 0, a length out of 2..=254) closes it.
    pub async fn serve_stream<S>(self, mut stream: S) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            let mut header = [0u8; 7];
            match stream.read_exact(&mut header).await {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                r => r?,
            };
            let protocol = u16::from_be_bytes([header[2], header[3]]);
            let length = u16::from_be_bytes([header[4], header[5]]) as usize;
            if protocol != 0 || !(2..=254).contains(&length) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a Modbus TCP frame (protocol id {protocol}, length {length})"),
                ));
            }
            let mut pdu = vec![0u8; length - 1];
            stream.read_exact(&mut pdu).await?;
            let reply = self.respond(header[6], &pdu);
            let mut frame = Vec::with_capacity(7 + reply.len());
            frame.extend_from_slice(&header[..4]);
            frame.extend_from_slice(&((reply.len() + 1) as u16).to_be_bytes());
            frame.push(header[6]);
            frame.extend(reply);
            stream.write_all(&frame).await?;
        }
    }

    /// A client end of an in-memory connection to this peer (virtual-time benches).
    pub fn connect_in_memory(&self) -> Box<dyn crate::scpi::Transport> {
        let (near, far) = tokio::io::duplex(4096);
        let peer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = peer.serve_stream(far).await {
                tracing::debug!("simulated Modbus server: {e}");
            }
        });
        Box::new(near)
    }
}

/// Serve the simulated BMS's register map on `listener` until the task is aborted.
pub fn spawn(listener: TcpListener, peer: Peer) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let peer = peer.clone();
                    tokio::spawn(async move {
                        if let Err(e) = peer.serve_stream(stream).await {
                            tracing::debug!("simulated Modbus server: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::error!("simulated Modbus server stopped: {e}");
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn peer() -> Peer {
        let board = Board::default();
        board.publish(
            sim_bms::pylon::Announcement {
                cvl_dv: 568,
                ccl_da: 180,
                charge_enable: true,
                ..Default::default()
            },
            50,
        );
        Peer::new(sim_map().unwrap(), board)
    }

    /// Request PDUs and the response PDU the simulated BMS gives.
    #[rstest]
    #[case::cvl_and_ccl(1, &[0x04, 0x01, 0x00, 0x00, 0x02], &[0x04, 4, 0x02, 0x38, 0x00, 0xB4])]
    #[case::enable_bits(1, &[0x02, 0x00, 0x00, 0x00, 0x02], &[0x02, 1, 0b01])]
    #[case::broadcast_unit(0, &[0x04, 0x01, 0x04, 0x00, 0x01], &[0x04, 2, 0x00, 50])]
    #[case::unmapped_address(1, &[0x04, 0x00, 0x00, 0x00, 0x01], &[0x84, 0x02])]
    #[case::zero_count(1, &[0x04, 0x01, 0x00, 0x00, 0x00], &[0x84, 0x03])]
    #[case::huge_count(1, &[0x03, 0x02, 0x00, 0xFF, 0xFF], &[0x83, 0x03])]
    #[case::split_32_bit_value(1, &[0x03, 0x02, 0x00, 0x00, 0x01], &[0x83, 0x02])]
    #[case::truncated_request(1, &[0x04, 0x01], &[0x84, 0x03])]
    #[case::write_refused(1, &[0x06, 0x01, 0x00, 0x00, 0x01], &[0x86, 0x01])]
    #[case::empty_pdu(1, &[], &[0x80, 0x01])]
    #[case::other_unit(7, &[0x04, 0x01, 0x00, 0x00, 0x01], &[0x84, 0x0B])]
    fn answers_each_request(#[case] unit: u8, #[case] request: &[u8], #[case] response: &[u8]) {
        assert_eq!(peer().respond(unit, request), response);
    }

    /// The MBAP framing: the header echoed with the response's length, and a frame that is
    /// not Modbus TCP closes the connection with an error instead of an answer.
    #[tokio::test]
    async fn frames_over_a_stream_and_refuses_what_is_not_modbus_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut near, far) = tokio::io::duplex(1024);
        let server = tokio::spawn(peer().serve_stream(far));
        near.write_all(&[0x12, 0x34, 0, 0, 0, 6, 1, 0x04, 0x01, 0x00, 0x00, 0x01])
            .await
            .unwrap();
        let mut reply = [0u8; 11];
        near.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, [0x12, 0x34, 0, 0, 0, 5, 1, 0x04, 2, 0x02, 0x38]);
        near.write_all(&[0, 1, 0, 9, 0, 6, 1, 0x04, 0x01, 0x00, 0x00, 0x01])
            .await
            .unwrap();
        let err = server.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("protocol id 9"), "{err}");
    }
}
