//! Byte-stream transports to instruments and the addresses that name them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ScpiError;

/// A byte stream to an instrument (TCP socket, serial port, in-memory pipe, ...).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Schemes that are known but not available in this build, with the advice to give.
const PLANNED_SCHEMES: &[(&str, &str)] = &[
    (
        "vxi11",
        "VXI-11 is not available yet; use the instrument's raw socket port (tcp://host:5025)",
    ),
    (
        "hislip",
        "HiSLIP is not available yet; use the instrument's raw socket port (tcp://host:5025)",
    ),
];

/// Baud rate used when a serial address gives none and the dialect names none.
pub const DEFAULT_BAUD: u32 = 9600;

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Flow control of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// No flow control.
    None,
    /// RTS/CTS.
    Hardware,
    /// XON/XOFF.
    Software,
}

/// Line settings of a serial address (`?baud=115200&parity=none&data_bits=8&stop_bits=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    /// Baud rate; None: the dialect's, else 9600.
    pub baud: Option<u32>,
    /// Data bits (5..8).
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
    /// Flow control.
    pub flow: FlowControl,
}

impl Default for SerialSettings {
    fn default() -> Self {
        Self {
            baud: None,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow: FlowControl::None,
        }
    }
}

/// A parsed instrument address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Raw SCPI socket: `tcp://host:port` (IPv6 hosts in brackets: `tcp://[::1]:5025`).
    Tcp {
        /// Host name or IP address (without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// An instrument inside this process: `mem://NAME` (the simulated bench in virtual time).
    Memory {
        /// The registered name.
        name: String,
    },
    /// A serial port: `serial:///dev/ttyUSB0?baud=115200` (`serial://COM3` on Windows).
    Serial {
        /// Device path or port name.
        path: String,
        /// Line settings.
        settings: SerialSettings,
    },
    /// A USBTMC device: `usbtmc://1AB1:0E11[:SERIAL]` (vendor and product id in hex).
    Usbtmc(super::usbtmc::DeviceId),
}

impl Address {
    /// Parse `address`; `default_port` fills in a missing TCP port (e.g. the dialect's).
    pub fn parse(address: &str, default_port: Option<u16>) -> Result<Self, ScpiError> {
        let bad = |reason: String| ScpiError::BadAddress {
            address: address.to_string(),
            reason,
        };
        let Some((scheme, rest)) = address.split_once("://") else {
            return Err(bad(
                "expected `scheme://...`, for example `tcp://192.0.2.10:5025`".into(),
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Self::parse_tcp(rest, default_port).map_err(bad),
            "mem" => {
                let name = rest.strip_suffix('/').unwrap_or(rest);
                if name.is_empty() || name.contains(['/', '?', '#', '@', ':']) {
                    Err(bad(
                        "expected `mem://NAME` with a plain name, e.g. `mem://supply-1`".into(),
                    ))
                } else {
                    Ok(Address::Memory {
                        name: name.to_string(),
                    })
                }
            }
            "serial" => Self::parse_serial(rest).map_err(bad),
            "usbtmc" => super::usbtmc::DeviceId::parse(rest)
                .map(Address::Usbtmc)
                .map_err(bad),
            other => {
                if let Some((_, advice)) = PLANNED_SCHEMES.iter().find(|(s, _)| *s == other) {
                    Err(bad((*advice).to_string()))
                } else {
                    Err(bad(format!(
                        "unknown scheme `{scheme}`; supported: tcp://host:port, \
                         serial:///dev/ttyUSB0?baud=115200, usbtmc://VID:PID[:SERIAL], mem://NAME"
                    )))
                }
            }
        }
    }

    fn parse_serial(rest: &str) -> Result<Self, String> {
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(
                "missing device; expected serial:///dev/ttyUSB0?baud=115200 (serial://COM3 on \
                 Windows)"
                    .into(),
            );
        }
        let mut settings = SerialSettings::default();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not `name=value`"))?;
            let number = |allowed: &[u32]| -> Result<u32, String> {
                match value.parse::<u32>() {
                    Ok(n) if allowed.is_empty() && n > 0 => Ok(n),
                    Ok(n) if allowed.contains(&n) => Ok(n),
                    _ if allowed.is_empty() => {
                        Err(format!("`{key}={value}` is not a positive whole number"))
                    }
                    _ => Err(format!(
                        "`{key}={value}` is not one of {}",
                        allowed
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            };
            match key {
                "baud" => settings.baud = Some(number(&[])?),
                "data_bits" => settings.data_bits = number(&[5, 6, 7, 8])? as u8,
                "stop_bits" => settings.stop_bits = number(&[1, 2])? as u8,
                "parity" => {
                    settings.parity = match value.to_ascii_lowercase().as_str() {
                        "none" | "n" => Parity::None,
                        "even" | "e" => Parity::Even,
                        "odd" | "o" => Parity::Odd,
                        _ => return Err(format!("`parity={value}`: use none, even or odd")),
                    }
                }
                "flow" => {
                    settings.flow = match value.to_ascii_lowercase().as_str() {
                        "none" => FlowControl::None,
                        "hardware" | "rtscts" => FlowControl::Hardware,
                        "software" | "xonxoff" => FlowControl::Software,
                        _ => {
                            return Err(format!(
                                "`flow={value}`: use none, hardware (RTS/CTS) or software \
                                 (XON/XOFF)"
                            ))
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown option `{key}`; serial addresses take baud, data_bits, parity, \
                         stop_bits and flow"
                    ))
                }
            }
        }
        Ok(Address::Serial {
            path: path.to_string(),
            settings,
        })
    }

    /// Whether this address is a serial port (the dialect's serial terminator applies).
    pub fn is_serial(&self) -> bool {
        matches!(self, Address::Serial { .. })
    }

    fn parse_tcp(rest: &str, default_port: Option<u16>) -> Result<Self, String> {
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err("missing host; expected tcp://host:port".into());
        }
        if authority.contains(['/', '?', '#', '@']) {
            return Err("only host and port are allowed after tcp://, nothing else".into());
        }
        let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err("unclosed `[` around an IPv6 host".into());
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err("expected `:port` after `]`".into()),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err("put an IPv6 host in brackets: tcp://[::1]:5025".into());
                }
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("missing host; expected tcp://host:port".into());
        }
        let port = match port_text {
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(format!("port `{text}` is not a number from 1 to 65535")),
            },
            None => default_port.ok_or("missing port; expected tcp://host:port")?,
        };
        Ok(Address::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Address::Memory { name } => write!(f, "mem://{name}"),
            Address::Usbtmc(id) => write!(f, "{id}"),
            Address::Serial { path, settings } => {
                write!(f, "serial://{path}")?;
                let mut options = Vec::new();
                if let Some(baud) = settings.baud {
                    options.push(format!("baud={baud}"));
                }
                let default = SerialSettings::default();
                if settings.data_bits != default.data_bits {
                    options.push(format!("data_bits={}", settings.data_bits));
                }
                if settings.parity != default.parity {
                    options.push(format!("parity={:?}", settings.parity).to_ascii_lowercase());
                }
                if settings.stop_bits != default.stop_bits {
                    options.push(format!("stop_bits={}", settings.stop_bits));
                }
                if settings.flow != default.flow {
                    options.push(format!("flow={:?}", settings.flow).to_ascii_lowercase());
                }
                if !options.is_empty() {
                    write!(f, "?{}", options.join("&"))?;
                }
                Ok(())
            }
        }
    }
}

/// Take a `channel=N` option out of an instrument address (`tcp://host:5025?channel=2`,
/// `serial:///dev/ttyUSB0?baud=9600&channel=3`): the address without it, and the channel.
pub fn split_channel(address: &str) -> Result<(String, Option<u32>), ScpiError> {
    let Some((base, query)) = address.split_once('?') else {
        return Ok((address.to_string(), None));
    };
    let mut channel = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("channel", value)) => match value.parse::<u32>() {
                Ok(n) if n > 0 => channel = Some(n),
                _ => {
                    return Err(ScpiError::BadAddress {
                        address: address.to_string(),
                        reason: format!("`channel={value}` is not a channel number from 1 up"),
                    })
                }
            },
            _ => rest.push(pair),
        }
    }
    let base = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((base, channel))
}

/// Open a transport to `address` (e.g. `tcp://192.0.2.10:5025`) within `timeout`.
pub async fn connect(address: &str, timeout: Duration) -> Result<Box<dyn Transport>, ScpiError> {
    connect_address(&Address::parse(address, None)?, timeout).await
}

/// Open a transport to an already parsed address within `timeout`.
pub async fn connect_address(
    address: &Address,
    timeout: Duration,
) -> Result<Box<dyn Transport>, ScpiError> {
    match address {
        Address::Tcp { host, port } => {
            let attempt = TcpStream::connect((host.as_str(), *port));
            let stream = match tokio::time::timeout(timeout, attempt).await {
                Err(_) => {
                    return Err(ScpiError::ConnectTimeout {
                        address: address.to_string(),
                        timeout,
                    })
                }
                Ok(Err(error)) => {
                    return Err(ScpiError::Connect {
                        address: address.to_string(),
                        error,
                    })
                }
                Ok(Ok(stream)) => stream,
            };
            stream
                .set_nodelay(true)
                .map_err(|error| ScpiError::Connect {
                    address: address.to_string(),
                    error,
                })?;
            Ok(Box::new(stream))
        }
        Address::Serial { path, settings } => {
            super::serial::open(address, path, settings, timeout).await
        }
        Address::Usbtmc(id) => {
            use super::usbtmc::{into_transport, NusbPipe, Session, HEADER_LEN};
            let usb = |reason: String| ScpiError::Usb {
                address: address.to_string(),
                reason,
            };
            let id = id.clone();
            let open = tokio::task::spawn_blocking(move || NusbPipe::open(&id, timeout));
            let pipe = match tokio::time::timeout(timeout, open).await {
                Err(_) => {
                    return Err(ScpiError::ConnectTimeout {
                        address: address.to_string(),
                        timeout,
                    })
                }
                Ok(Err(e)) => return Err(usb(e.to_string())),
                Ok(Ok(pipe)) => pipe.map_err(|e| usb(e.to_string()))?,
            };
            into_transport(Session::new(pipe, (4096 - HEADER_LEN) as u32))
                .map_err(|e| usb(e.to_string()))
        }
        Address::Memory { name } => {
            let connector = memory_registry()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned();
            match connector {
                Some(connect) => Ok(connect()),
                None => Err(ScpiError::BadAddress {
                    address: address.to_string(),
                    reason: format!(
                        "no in-memory instrument `{name}` is running in this process; mem:// \
                         addresses exist only while a simulated bench serves them \
                         (hilrig run --virtual-time)"
                    ),
                }),
            }
        }
    }
}

/// Opens a new in-memory connection to a registered instrument.
pub type MemoryConnector = Arc<dyn Fn() -> Box<dyn Transport> + Send + Sync>;

fn memory_registry() -> &'static Mutex<HashMap<String, MemoryConnector>> {
    static REG: OnceLock<Mutex<HashMap<String, MemoryConnector>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A registered `mem://NAME` endpoint; the name is released when this handle drops.
#[derive(Debug)]
pub struct MemoryEndpoint {
    name: String,
}

impl MemoryEndpoint {
    /// The address that reaches it: `mem://NAME`.
    pub fn address(&self) -> String {
        format!("mem://{}", self.name)
    }
}

impl Drop for MemoryEndpoint {
    fn drop(&mut self) {
        memory_registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}

/// Make `mem://NAME` reach an instrument in this process: every connect calls `connector`
/// for a fresh byte stream. A name registered again replaces the earlier registration.
pub fn register_memory(name: &str, connector: MemoryConnector) -> MemoryEndpoint {
    memory_registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), connector);
    MemoryEndpoint {
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("tcp://10.0.0.5:5025", None, "10.0.0.5", 5025)]
    #[case("TCP://bench-psu.lab:5555/", None, "bench-psu.lab", 5555)]
    #[case("tcp://[::1]:5025", None, "::1", 5025)]
    #[case("tcp://10.0.0.5", Some(5555), "10.0.0.5", 5555)]
    #[case("tcp://[fe80::1]", Some(5025), "fe80::1", 5025)]
    fn parses_tcp_addresses(
        #[case] text: &str,
        #[case] default_port: Option<u16>,
        #[case] host: &str,
        #[case] port: u16,
    ) {
        let parsed = Address::parse(text, default_port).unwrap();
        assert_eq!(
            parsed,
            Address::Tcp {
                host: host.into(),
                port
            }
        );
    }

    #[rstest]
    #[case("10.0.0.5:5025", "scheme://")]
    #[case("tcp://10.0.0.5", "missing port")]
    #[case("tcp://10.0.0.5:0", "1 to 65535")]
    #[case("tcp://10.0.0.5:http", "1 to 65535")]
    #[case("tcp://::1:5025", "brackets")]
    #[case("tcp://:5025", "missing host")]
    #[case("tcp://host:5025/path", "nothing else")]
    #[case("serial://?baud=9600", "missing device")]
    #[case("serial:///dev/ttyUSB0?baud=fast", "positive whole number")]
    #[case("serial:///dev/ttyUSB0?baud=0", "positive whole number")]
    #[case("serial:///dev/ttyUSB0?parity=mark", "none, even or odd")]
    #[case("serial:///dev/ttyUSB0?stop_bits=3", "one of 1, 2")]
    #[case("serial:///dev/ttyUSB0?speed=9600", "unknown option `speed`")]
    #[case("serial:///dev/ttyUSB0?baud", "not `name=value`")]
    #[case("vxi11://10.0.0.5", "raw socket port")]
    #[case("usbtmc://1AB1", "missing product id")]
    #[case("usbtmc://1AB1:XYZ", "product id `XYZ`")]
    #[case("gpib://0::5", "unknown scheme `gpib`")]
    fn rejects_bad_addresses_with_a_reason(#[case] text: &str, #[case] expected: &str) {
        let error = Address::parse(text, None).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ScpiError::BadAddress { .. }), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(text), "{message}");
    }

    #[rstest]
    #[case(
        "serial:///dev/ttyUSB0?baud=115200",
        "/dev/ttyUSB0",
        Some(115200),
        8,
        Parity::None,
        1
    )]
    #[case("serial://COM3", "COM3", None, 8, Parity::None, 1)]
    #[case(
        "SERIAL:///dev/ttyS1?baud=9600&parity=even&data_bits=7&stop_bits=2&flow=hardware",
        "/dev/ttyS1",
        Some(9600),
        7,
        Parity::Even,
        2
    )]
    fn parses_serial_addresses(
        #[case] text: &str,
        #[case] path: &str,
        #[case] baud: Option<u32>,
        #[case] data_bits: u8,
        #[case] parity: Parity,
        #[case] stop_bits: u8,
    ) {
        match Address::parse(text, Some(5025)).unwrap() {
            Address::Serial { path: p, settings } => {
                assert_eq!(p, path);
                assert_eq!(
                    (
                        settings.baud,
                        settings.data_bits,
                        settings.parity,
                        settings.stop_bits
                    ),
                    (baud, data_bits, parity, stop_bits)
                );
            }
            other => panic!("not a serial address: {other:?}"),
        }
    }

    #[rstest]
    #[case("tcp://10.0.0.5:5025", "tcp://10.0.0.5:5025", None)]
    #[case("tcp://10.0.0.5:5025?channel=2", "tcp://10.0.0.5:5025", Some(2))]
    #[case(
        "serial:///dev/ttyUSB0?baud=9600&channel=3",
        "serial:///dev/ttyUSB0?baud=9600",
        Some(3)
    )]
    #[case("mem://psu?channel=1", "mem://psu", Some(1))]
    fn splits_the_channel_option(
        #[case] text: &str,
        #[case] base: &str,
        #[case] channel: Option<u32>,
    ) {
        assert_eq!(split_channel(text).unwrap(), (base.to_string(), channel));
    }

    #[test]
    fn a_bad_channel_is_refused() {
        assert!(split_channel("tcp://h:1?channel=0").is_err());
        assert!(split_channel("tcp://h:1?channel=two").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "tcp://10.0.0.5:5025",
            "tcp://[::1]:5025",
            "serial:///dev/ttyUSB0?baud=115200",
            "serial:///dev/ttyS1?baud=9600&data_bits=7&parity=odd&stop_bits=2&flow=software",
            "usbtmc://1AB1:0E11:DP8C123456789",
            "usbtmc://2A8D:1202",
        ] {
            assert_eq!(Address::parse(text, None).unwrap().to_string(), text);
        }
    }

    #[tokio::test]
    async fn memory_endpoints_connect_while_registered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let endpoint = register_memory(
            "transport-test-1",
            Arc::new(|| {
                let (near, mut far) = tokio::io::duplex(64);
                tokio::spawn(async move {
                    let mut b = [0u8; 5];
                    if far.read_exact(&mut b).await.is_ok() {
                        let _ = far.write_all(b"pong\n").await;
                    }
                });
                Box::new(near) as Box<dyn Transport>
            }),
        );
        assert_eq!(endpoint.address(), "mem://transport-test-1");
        let mut t = connect("mem://transport-test-1", Duration::from_millis(50))
            .await
            .unwrap();
        t.write_all(b"ping\n").await.unwrap();
        let mut reply = [0u8; 5];
        t.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong\n");
        drop(endpoint);
        let err = connect("mem://transport-test-1", Duration::from_millis(50))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("transport-test-1") && err.contains("--virtual-time"),
            "{err}"
        );
        assert!(Address::parse("mem://", None).is_err());
    }

    #[tokio::test]
    async fn unknown_scheme_fails_before_any_io() {
        let result = connect("ftp://10.0.0.5:21", Duration::from_millis(50)).await;
        assert!(matches!(result, Err(ScpiError::BadAddress { .. })));
    }
}
