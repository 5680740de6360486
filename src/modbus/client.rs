//! A Modbus client over TCP or RTU (serial), on the byte-stream transports of `scpi`.
//!
//! `tcp://HOST[:PORT]` (default port 502) speaks Modbus TCP (MBAP header);
//! `serial://PATH?baud=N` speaks Modbus RTU (CRC framing); `mem://` endpoints speak Modbus
//! TCP framing over an in-memory pipe. Every request is bounded by the client's timeout.

use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::Slave;

use super::map::{Function, Register, RegisterMap};
use super::{exception_words, ModbusError, DEFAULT_TCP_PORT};
use crate::scpi::{self, Address, Transport};

/// The scpi transport, with the `Debug` tokio-modbus asks for.
struct Stream(Box<dyn Transport>);

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("modbus transport")
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A connected Modbus client.
pub struct Client {
    ctx: Context,
    endpoint: String,
    timeout: Duration,
}

impl Client {
    /// Connect to `endpoint` and address device `unit`; `timeout` bounds the connect and
    /// every request.
    pub async fn connect(endpoint: &str, unit: u8, timeout: Duration) -> Result<Self, ModbusError> {
        let connect_err = |message: String| ModbusError::Connect {
            endpoint: endpoint.to_string(),
            message,
        };
        let address = Address::parse(endpoint, Some(DEFAULT_TCP_PORT))
            .map_err(|e| connect_err(e.to_string()))?;
        let rtu = address.is_serial();
        let stream = scpi::connect_address(&address, timeout)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let stream = Stream(stream);
        let ctx = if rtu {
            tokio_modbus::client::rtu::attach_slave(stream, Slave(unit))
        } else {
            tokio_modbus::client::tcp::attach_slave(stream, Slave(unit))
        };
        Ok(Self {
            ctx,
            endpoint: endpoint.to_string(),
            timeout,
        })
    }

    /// Read the raw words (bits as 0/1) of `count` registers from `address` with `function`.
    pub async fn read_raw(
        &mut self,
        function: Function,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, ModbusError> {
        let what = format!(
            "{} {address:#06X} x {count} (function {:#04X})",
            match function {
                Function::Coil => "read coils",
                Function::DiscreteInput => "read discrete inputs",
                Function::Holding => "read holding registers",
                Function::Input => "read input registers",
            },
            function.code()
        );
        let bits = |v: Vec<bool>| v.into_iter().map(u16::from).collect::<Vec<_>>();
        let request = async {
            Ok::<_, tokio_modbus::Error>(match function {
                Function::Coil => self.ctx.read_coils(address, count).await?.map(bits),
                Function::DiscreteInput => self
                    .ctx
                    .read_discrete_inputs(address, count)
                    .await?
                    .map(bits),
                Function::Holding => self.ctx.read_holding_registers(address, count).await?,
                Function::Input => self.ctx.read_input_registers(address, count).await?,
            })
        };
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(ModbusError::Timeout {
                endpoint: self.endpoint.clone(),
                what,
                after_ms: self.timeout.as_millis() as u64,
            }),
            Ok(Err(e)) => Err(ModbusError::Transport {
                endpoint: self.endpoint.clone(),
                what,
                message: e.to_string(),
            }),
            Ok(Ok(Err(code))) => {
                let code = u8::from(code);
                Err(ModbusError::Exception {
                    endpoint: self.endpoint.clone(),
                    what,
                    code,
                    words: exception_words(code),
                })
            }
            Ok(Ok(Ok(words))) if words.len() < count as usize => Err(ModbusError::Transport {
                endpoint: self.endpoint.clone(),
                what,
                message: format!("{} values in the answer, {count} asked for", words.len()),
            }),
            Ok(Ok(Ok(words))) => Ok(words),
        }
    }

    /// Read one register of a map as its physical value.
    pub async fn read(&mut self, map: &RegisterMap, r: &Register) -> Result<f64, ModbusError> {
        let words = self
            .read_raw(r.function, r.address, r.value_type.width())
            .await?;
        map.decode(r, &words).ok_or_else(|| ModbusError::Transport {
            endpoint: self.endpoint.clone(),
            what: format!("register {:#06X}", r.address),
            message: "short answer".into(),
        })
    }

    /// Read every register of a map: (logical name, physical value, unit), in name order.
    pub async fn read_map(
        &mut self,
        map: &RegisterMap,
    ) -> Result<Vec<(String, f64, String)>, ModbusError> {
        let mut out = Vec::with_capacity(map.registers.len());
        for (name, r) in &map.registers {
            let v = self.read(map, r).await?;
            out.push((name.clone(), v, r.unit.clone()));
        }
        Ok(out)
    }
}
