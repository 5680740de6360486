//! A USBTMC device named by `usbtmc://VID:PID[:SERIAL]`, reached over `nusb`.

use std::time::Duration;

use super::{
    UsbtmcError, UsbtmcPipe, CHECK_ABORT_BULK_IN_STATUS, CHECK_ABORT_BULK_OUT_STATUS,
    INITIATE_ABORT_BULK_IN, INITIATE_ABORT_BULK_OUT,
};

/// A device named by `usbtmc://VID:PID[:SERIAL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    /// USB vendor id.
    pub vid: u16,
    /// USB product id.
    pub pid: u16,
    /// Serial number string, when several devices share VID:PID.
    pub serial: Option<String>,
}

impl DeviceId {
    /// Parses the part after `usbtmc://`: `VID:PID[:SERIAL]`, ids in hexadecimal (`0x`
    /// optional), e.g. `1AB1:0E11:DP8C123456789`.
    pub fn parse(rest: &str) -> Result<Self, String> {
        const FORM: &str = "expected usbtmc://VID:PID[:SERIAL] with hexadecimal ids, e.g. \
                            usbtmc://1AB1:0E11:DP8C123456789";
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = rest.splitn(3, ':');
        let id = |p: Option<&str>, what: &str| -> Result<u16, String> {
            let p = p
                .filter(|p| !p.is_empty())
                .ok_or(format!("missing {what}; {FORM}"))?;
            let digits = p
                .strip_prefix("0x")
                .or_else(|| p.strip_prefix("0X"))
                .unwrap_or(p);
            if digits.is_empty() || digits.len() > 4 {
                return Err(format!(
                    "{what} `{p}` is not 1 to 4 hexadecimal digits; {FORM}"
                ));
            }
            u16::from_str_radix(digits, 16)
                .map_err(|_| format!("{what} `{p}` is not 1 to 4 hexadecimal digits; {FORM}"))
        };
        let vid = id(parts.next(), "vendor id")?;
        let pid = id(parts.next(), "product id")?;
        let serial = match parts.next() {
            None => None,
            Some("") => return Err(format!("empty serial number; {FORM}")),
            Some(s) if s.contains(['/', '?', '#']) => {
                return Err(format!(
                    "serial number `{s}` contains `/`, `?` or `#`; {FORM}"
                ))
            }
            Some(s) => Some(s.to_string()),
        };
        Ok(DeviceId { vid, pid, serial })
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "usbtmc://{:04X}:{:04X}", self.vid, self.pid)?;
        match &self.serial {
            Some(s) => write!(f, ":{s}"),
            None => Ok(()),
        }
    }
}

/// USB interface class and subclass of a USBTMC interface (application-specific, TMC).
const TMC_CLASS: (u8, u8) = (0xFE, 0x03);

/// The real USB side over `nusb`: the claimed USBTMC interface and its two bulk endpoints.
pub struct NusbPipe {
    interface: nusb::Interface,
    bulk_out: nusb::Endpoint<nusb::transfer::Bulk, nusb::transfer::Out>,
    bulk_in: nusb::Endpoint<nusb::transfer::Bulk, nusb::transfer::In>,
    timeout: Duration,
}

impl NusbPipe {
    /// Opens the one device matching `id`, claims its USBTMC interface (detaching a kernel
    /// driver such as Linux `usbtmc`) and opens its bulk endpoints; transfers time out after
    /// `timeout`.
    pub fn open(id: &DeviceId, timeout: Duration) -> Result<Self, UsbtmcError> {
        use nusb::MaybeFuture;
        let usb = |what: &str, e: &dyn std::fmt::Display| UsbtmcError::Usb(format!("{what}: {e}"));
        let devices: Vec<nusb::DeviceInfo> = nusb::list_devices()
            .wait()
            .map_err(|e| usb("cannot list USB devices", &e))?
            .filter(|d| {
                d.interfaces()
                    .any(|i| (i.class(), i.subclass()) == TMC_CLASS)
            })
            .collect();
        let matching: Vec<&nusb::DeviceInfo> = devices
            .iter()
            .filter(|d| d.vendor_id() == id.vid && d.product_id() == id.pid)
            .filter(|d| id.serial.is_none() || d.serial_number() == id.serial.as_deref())
            .collect();
        let found = || {
            let names: Vec<String> = devices
                .iter()
                .map(|d| {
                    DeviceId {
                        vid: d.vendor_id(),
                        pid: d.product_id(),
                        serial: d.serial_number().map(str::to_string),
                    }
                    .to_string()
                })
                .collect();
            if names.is_empty() {
                "no USBTMC device is attached".to_string()
            } else {
                format!("USBTMC devices attached: {}", names.join(", "))
            }
        };
        let info = match matching.as_slice() {
            [one] => *one,
            [] => {
                return Err(UsbtmcError::Usb(format!(
                    "no USBTMC device {id}; {}",
                    found()
                )))
            }
            _ => {
                return Err(UsbtmcError::Usb(format!(
                    "{} USBTMC devices match {id}; add the serial number ({})",
                    matching.len(),
                    found()
                )))
            }
        };
        let number = info
            .interfaces()
            .find(|i| (i.class(), i.subclass()) == TMC_CLASS)
            .map(|i| i.interface_number())
            .ok_or_else(|| UsbtmcError::Usb(format!("{id} has no USBTMC interface")))?;
        let device = info.open().wait().map_err(|e| {
            usb(
                &format!("cannot open {id} (on Linux, check the device node's permissions)"),
                &e,
            )
        })?;
        let interface = device
            .detach_and_claim_interface(number)
            .wait()
            .map_err(|e| usb(&format!("cannot claim interface {number} of {id}"), &e))?;
        let (mut out_ep, mut in_ep) = (None, None);
        if let Some(desc) = interface.descriptor() {
            for ep in desc.endpoints() {
                if ep.transfer_type() != nusb::descriptors::TransferType::Bulk {
                    continue;
                }
                match ep.direction() {
                    nusb::transfer::Direction::Out => out_ep = out_ep.or(Some(ep.address())),
                    nusb::transfer::Direction::In => in_ep = in_ep.or(Some(ep.address())),
                }
            }
        }
        let (Some(out_ep), Some(in_ep)) = (out_ep, in_ep) else {
            return Err(UsbtmcError::Usb(format!(
                "interface {number} of {id} lacks a bulk-in or bulk-out endpoint"
            )));
        };
        let bulk_out = interface
            .endpoint(out_ep)
            .map_err(|e| usb(&format!("cannot open bulk-out endpoint {out_ep:#04x}"), &e))?;
        let bulk_in = interface
            .endpoint(in_ep)
            .map_err(|e| usb(&format!("cannot open bulk-in endpoint {in_ep:#04x}"), &e))?;
        Ok(NusbPipe {
            interface,
            bulk_out,
            bulk_in,
            timeout,
        })
    }

    fn transfer_error(
        &self,
        direction: &'static str,
        e: nusb::transfer::TransferError,
    ) -> UsbtmcError {
        match e {
            nusb::transfer::TransferError::Cancelled => UsbtmcError::Timeout {
                direction,
                timeout: self.timeout,
            },
            e => UsbtmcError::Usb(format!("bulk-{direction} transfer failed: {e}")),
        }
    }
}

impl UsbtmcPipe for NusbPipe {
    fn bulk_out(&mut self, data: &[u8]) -> Result<(), UsbtmcError> {
        let done = self
            .bulk_out
            .transfer_blocking(nusb::transfer::Buffer::from(data), self.timeout);
        done.status.map_err(|e| self.transfer_error("out", e))
    }

    fn bulk_in(&mut self, max: usize) -> Result<Vec<u8>, UsbtmcError> {
        // An IN request must be a whole number of packets.
        let packet = self.bulk_in.max_packet_size().max(1);
        let len = max.div_ceil(packet) * packet;
        let done = self
            .bulk_in
            .transfer_blocking(nusb::transfer::Buffer::new(len), self.timeout);
        done.status.map_err(|e| self.transfer_error("in", e))?;
        let mut data = done.buffer.into_vec();
        data.truncate(done.actual_len);
        Ok(data)
    }

    fn control_in(&mut self, request: u8, value: u16, len: u16) -> Result<Vec<u8>, UsbtmcError> {
        use nusb::transfer::{ControlIn, ControlType, Recipient};
        use nusb::MaybeFuture;
        // Abort requests go to the endpoint, the others to the interface (USBTMC Table 15).
        let (recipient, index) = match request {
            INITIATE_ABORT_BULK_OUT | CHECK_ABORT_BULK_OUT_STATUS => (
                Recipient::Endpoint,
                u16::from(self.bulk_out.endpoint_address()),
            ),
            INITIATE_ABORT_BULK_IN | CHECK_ABORT_BULK_IN_STATUS => (
                Recipient::Endpoint,
                u16::from(self.bulk_in.endpoint_address()),
            ),
            _ => (
                Recipient::Interface,
                u16::from(self.interface.interface_number()),
            ),
        };
        self.interface
            .control_in(
                ControlIn {
                    control_type: ControlType::Class,
                    recipient,
                    request,
                    value,
                    index,
                    length: len,
                },
                self.timeout,
            )
            .wait()
            .map_err(|e| UsbtmcError::Usb(format!("class request {request} failed: {e}")))
    }
}
