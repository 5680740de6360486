//! `hilrig modbus read`: read a device's register map over Modbus TCP or RTU.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::EXIT_ABORT;
use crate::modbus::{Client, RegisterMap};
use crate::units::Seconds;

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
pub async fn modbus(a: ModbusArgs) -> i32 {
    let ModbusCommand::Read(a) = a.command;
    let timeout = match crate::units::Quantity::parse_as(&a.timeout, crate::units::Dimension::Time)
    {
        Ok(s) if s > 0.0 => Seconds(s).duration(),
        _ => {
            eprintln!(
                "error: --timeout `{}` is not a duration above 0 s",
                a.timeout
            );
            return EXIT_ABORT;
        }
    };
    let map = match RegisterMap::load(&a.map) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let mut client = match Client::connect(&a.endpoint, a.unit.unwrap_or(map.unit), timeout).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    let values = match client.read_map(&map).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ABORT;
        }
    };
    if a.json {
        let doc: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(n, v, _)| (n.clone(), serde_json::json!(v)))
            .collect();
        println!("{}", serde_json::Value::Object(doc));
    } else {
        for (n, v, u) in &values {
            println!("{n} {v} {u}");
        }
    }
    0
}
