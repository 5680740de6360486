//! `hilrig modbus read`: read a device's register map over Modbus TCP or RTU.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::exit::{Failure, EXIT_ABORT};
use crate::modbus::{Client, RegisterMap};

/// Arguments of `hilrig modbus`.
#[derive(Debug, Args)]
pub struct ModbusArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModbusCommand,
}

/// `hilrig modbus` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModbusCommand {
    /// Read every register of a map: one `NAME VALUE UNIT` line each (or JSON).
    Read(ReadArgs),
}

/// Arguments of `hilrig modbus read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Endpoint: `tcp://HOST[:PORT]` (Modbus TCP, default port 502) or
    /// `serial:///dev/ttyUSB0?baud=9600` (Modbus RTU).
    pub endpoint: String,
    /// Register map file (`fixtures/modbus/*.yaml`).
    #[arg(long)]
    pub map: PathBuf,
    /// Unit (slave) id; default: the map's.
    #[arg(long)]
    pub unit: Option<u8>,
    /// Timeout of the connect and of each request.
    #[arg(long, default_value = "1 s")]
    pub timeout: String,
    /// One JSON object `{name: value}` instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Run `hilrig modbus`.
pub async fn modbus(a: ModbusArgs) -> Result<i32, Failure> {
    let ModbusCommand::Read(a) = a.command;
    let timeout = crate::units::parse_duration(&a.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::abort(format!(
                "--timeout `{}` is not a duration above 0 s",
                a.timeout
            ))
        })?;
    let map = RegisterMap::load(&a.map).map_err(Failure::abort)?;
    let mut client = Client::connect(&a.endpoint, a.unit.unwrap_or(map.unit), timeout)
        .await
        .map_err(Failure::abort)?;
    let values = client.read_map(&map).await.map_err(Failure::abort)?;
    let text = if a.json {
        let doc: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(n, v, _)| (n.clone(), serde_json::json!(v)))
            .collect();
        serde_json::Value::Object(doc).to_string()
    } else {
        values
            .iter()
            .map(|(n, v, u)| format!("{n} {v} {u}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // A closed or full stdout is an error, not a pass.
    Ok(if crate::stdio::print(&text) {
        0
    } else {
        EXIT_ABORT
    })
}
