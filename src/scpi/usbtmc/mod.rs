//! USBTMC (USB Test and Measurement Class) message layer.
//!
//! Frames SCPI messages into USBTMC 1.0 bulk transfers and parses the device's bulk-in
//! replies; the USB side is behind [`UsbtmcPipe`] so the framing is tested against an
//! in-memory fake device. Header layout (USBTMC 1.0, Table 1-3; USB488 for READ_STATUS_BYTE):
//! byte 0 MsgID, 1 bTag (1..=255, never 0), 2 bTagInverse, 3 reserved 0, 4..8 TransferSize
//! (little-endian, payload bytes without header or padding), 8 bmTransferAttributes (bit 0 EOM;
//! in REQUEST_DEV_DEP_MSG_IN bit 1 TermChar enabled), 9 TermChar, 10..12 reserved; each transfer
//! is padded with zeros to a multiple of 4 bytes. Checked against karlp/discotmc
//! `f4-usbtmc/tmc.h` (bulk header struct, request codes 1..7, status values 0x01/0x02/0x80,
//! class 0xFE subclass 3) and hansiglaser/pas-gpib `usb/usbtmc.pas` (bTag 1..=255, one's
//! complement inverse, TransferSize LSB first excluding header and alignment bytes, EOM in D0,
//! TransferSize of DEV_DEP_MSG_OUT must be > 0, so an empty message sends nothing).
//! No real USB device is exercised by any test here (no USB instrument on this machine).
//!
//! `usbtmc://VID:PID[:SERIAL]` reaches a device through [`NusbPipe`] (the `nusb` crate: no C
//! library; on Linux the user needs write access to the device node, e.g. a udev rule) and
//! [`into_transport`], which turns the message-based session into the byte stream the SCPI
//! client speaks: each line the client writes is one USBTMC message; a message containing `?`
//! is taken as a query and its reply is requested at once (a `?` inside a quoted string
//! argument would be miscounted). A bulk transfer that times out is aborted with
//! INITIATE_ABORT_BULK_IN/OUT and CHECK_ABORT_BULK_*_STATUS (USBTMC 1.0, 4.2.1.2 to 4.2.1.5)
//! so the next message starts clean; the SCPI client then reports its own reply timeout. Any
//! other USB failure ends the stream and the client's next read or write carries its text.

mod bridge;
mod device;

use std::time::Duration;

use thiserror::Error;

pub use bridge::into_transport;
pub use device::{DeviceId, NusbPipe};

/// MsgID of a host-to-device DEV_DEP_MSG_OUT transfer.
pub const DEV_DEP_MSG_OUT: u8 = 1;
/// MsgID of REQUEST_DEV_DEP_MSG_IN (and of the device's DEV_DEP_MSG_IN reply).
pub const REQUEST_DEV_DEP_MSG_IN: u8 = 2;
/// Size of a bulk header in bytes.
pub const HEADER_LEN: usize = 12;
/// USB488 class request READ_STATUS_BYTE.
pub const READ_STATUS_BYTE: u8 = 128;
/// USBTMC class request INITIATE_CLEAR.
pub const INITIATE_CLEAR: u8 = 5;
/// USBTMC class request CHECK_CLEAR_STATUS.
pub const CHECK_CLEAR_STATUS: u8 = 6;
/// USBTMC class request INITIATE_ABORT_BULK_OUT (to the bulk-out endpoint).
pub const INITIATE_ABORT_BULK_OUT: u8 = 1;
/// USBTMC class request CHECK_ABORT_BULK_OUT_STATUS.
pub const CHECK_ABORT_BULK_OUT_STATUS: u8 = 2;
/// USBTMC class request INITIATE_ABORT_BULK_IN (to the bulk-in endpoint).
pub const INITIATE_ABORT_BULK_IN: u8 = 3;
/// USBTMC class request CHECK_ABORT_BULK_IN_STATUS.
pub const CHECK_ABORT_BULK_IN_STATUS: u8 = 4;
/// USBTMC_status STATUS_FAILED (e.g. nothing to abort).
pub const STATUS_FAILED: u8 = 0x80;
/// USBTMC_status STATUS_TRANSFER_NOT_IN_PROGRESS (the bTag is not the transfer in progress).
pub const STATUS_TRANSFER_NOT_IN_PROGRESS: u8 = 0x81;
/// USBTMC_status STATUS_SUCCESS.
pub const STATUS_SUCCESS: u8 = 0x01;
/// USBTMC_status STATUS_PENDING.
pub const STATUS_PENDING: u8 = 0x02;
/// Most bulk-in requests made for one reply before giving up (no EOM ever seen).
pub const MAX_IN_TRANSFERS: usize = 1024;

/// A USBTMC framing or device-reply error; says what was wrong and where.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UsbtmcError {
    /// The bulk-in transfer is shorter than a header.
    #[error("bulk-in transfer of {0} bytes is shorter than the 12-byte header")]
    ShortHeader(usize),
    /// Wrong MsgID in a bulk-in header.
    #[error("bulk-in header MsgID {got}, expected {expected}")]
    MsgId {
        /// Value found.
        got: u8,
        /// Value expected.
        expected: u8,
    },
    /// bTag does not match the request.
    #[error("bulk-in header bTag {got}, expected {expected}")]
    Tag {
        /// Value found.
        got: u8,
        /// Value expected.
        expected: u8,
    },
    /// bTagInverse is not the complement of bTag.
    #[error("bulk-in header bTagInverse {inverse:#04x} is not the inverse of bTag {tag}")]
    TagInverse {
        /// bTag received.
        tag: u8,
        /// bTagInverse received.
        inverse: u8,
    },
    /// TransferSize claims more payload than the transfer carries.
    #[error("bulk-in header TransferSize {size} but only {available} payload bytes arrived")]
    Truncated {
        /// TransferSize in the header.
        size: u32,
        /// Payload bytes present.
        available: usize,
    },
    /// TransferSize is larger than what was requested.
    #[error("bulk-in header TransferSize {size} exceeds the {requested} bytes requested")]
    Oversize {
        /// TransferSize in the header.
        size: u32,
        /// Bytes requested.
        requested: u32,
    },
    /// No EOM within the bound.
    #[error("no EOM after {transfers} bulk-in transfers ({bytes} bytes)")]
    NoEom {
        /// Transfers made.
        transfers: usize,
        /// Payload bytes gathered.
        bytes: usize,
    },
    /// A class control request returned a non-success status.
    #[error("control request {request} returned USBTMC status {status:#04x}")]
    Status {
        /// Request code.
        request: u8,
        /// USBTMC status returned.
        status: u8,
    },
    /// A control reply was too short.
    #[error("control request {request} returned {len} bytes, expected {expected}")]
    ShortControl {
        /// Request code.
        request: u8,
        /// Bytes returned.
        len: usize,
        /// Value expected.
        expected: usize,
    },
    /// A bulk transfer did not complete within the timeout (it was aborted).
    #[error("USB bulk-{direction} transfer did not complete within {timeout:?}")]
    Timeout {
        /// `in` or `out`.
        direction: &'static str,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The USB layer failed.
    #[error("{0}")]
    Usb(String),
}

/// Rolling bTag: 1..=255, wraps to 1, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag(u8);

impl Default for Tag {
    fn default() -> Self {
        Tag(1)
    }
}

impl Tag {
    /// Returns the current tag and advances (255 wraps to 1).
    pub fn advance(&mut self) -> u8 {
        let t = self.0;
        self.0 = if t == 255 { 1 } else { t + 1 };
        t
    }
}

fn header(msg_id: u8, tag: u8, size: u32, attrs: u8, term: u8) -> [u8; HEADER_LEN] {
    let s = size.to_le_bytes();
    [
        msg_id, tag, !tag, 0, s[0], s[1], s[2], s[3], attrs, term, 0, 0,
    ]
}

/// Encodes one DEV_DEP_MSG_OUT transfer: header, payload, zero padding to 4 bytes.
pub fn encode_out(tag: u8, payload: &[u8], eom: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len() + 3);
    v.extend_from_slice(&header(
        DEV_DEP_MSG_OUT,
        tag,
        payload.len() as u32,
        u8::from(eom),
        0,
    ));
    v.extend_from_slice(payload);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

/// Encodes a REQUEST_DEV_DEP_MSG_IN for at most `max` bytes, optionally ending at `term`.
pub fn encode_request_in(tag: u8, max: u32, term: Option<u8>) -> [u8; HEADER_LEN] {
    match term {
        Some(t) => header(REQUEST_DEV_DEP_MSG_IN, tag, max, 0b10, t),
        None => header(REQUEST_DEV_DEP_MSG_IN, tag, max, 0, 0),
    }
}

/// Parses a DEV_DEP_MSG_IN transfer answering a request with `tag` for at most `requested`
/// bytes; returns the payload (alignment padding dropped) and the EOM bit.
pub fn decode_in(buf: &[u8], tag: u8, requested: u32) -> Result<(&[u8], bool), UsbtmcError> {
    if buf.len() < HEADER_LEN {
        return Err(UsbtmcError::ShortHeader(buf.len()));
    }
    if buf[0] != REQUEST_DEV_DEP_MSG_IN {
        return Err(UsbtmcError::MsgId {
            got: buf[0],
            expected: REQUEST_DEV_DEP_MSG_IN,
        });
    }
    if buf[1] != tag {
        return Err(UsbtmcError::Tag {
            got: buf[1],
            expected: tag,
        });
    }
    if buf[2] != !buf[1] {
        return Err(UsbtmcError::TagInverse {
            tag: buf[1],
            inverse: buf[2],
        });
    }
    let size = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if size > requested {
        return Err(UsbtmcError::Oversize { size, requested });
    }
    let available = buf.len() - HEADER_LEN;
    if size as usize > available {
        return Err(UsbtmcError::Truncated { size, available });
    }
    Ok((
        &buf[HEADER_LEN..HEADER_LEN + size as usize],
        buf[8] & 1 == 1,
    ))
}

/// The USB side of a USBTMC interface: bulk endpoints and class control requests.
pub trait UsbtmcPipe {
    /// Writes one bulk-out transfer.
    fn bulk_out(&mut self, data: &[u8]) -> Result<(), UsbtmcError>;
    /// Reads one bulk-in transfer of at most `max` bytes.
    fn bulk_in(&mut self, max: usize) -> Result<Vec<u8>, UsbtmcError>;
    /// Class control-in request to the interface; returns the reply bytes.
    fn control_in(&mut self, request: u8, value: u16, len: u16) -> Result<Vec<u8>, UsbtmcError>;
}

/// A USBTMC session: tag counter and message framing over a [`UsbtmcPipe`].
pub struct Session<P> {
    pipe: P,
    tag: Tag,
    /// Largest payload per bulk transfer (both directions).
    pub chunk: u32,
}

impl<P: UsbtmcPipe> Session<P> {
    /// Wraps a pipe; transfers carry at most `chunk` payload bytes.
    pub fn new(pipe: P, chunk: u32) -> Self {
        Session {
            pipe,
            tag: Tag::default(),
            chunk: chunk.max(4),
        }
    }

    /// Sends one message, split over transfers; the last carries EOM.
    pub fn write_message(&mut self, msg: &[u8]) -> Result<(), UsbtmcError> {
        let mut chunks = msg.chunks(self.chunk as usize).peekable();
        while let Some(c) = chunks.next() {
            let t = self.tag.advance();
            self.send(t, &encode_out(t, c, chunks.peek().is_none()))?;
        }
        Ok(())
    }

    /// One bulk-out transfer with tag `t`; a timeout aborts it before it is reported.
    fn send(&mut self, t: u8, data: &[u8]) -> Result<(), UsbtmcError> {
        match self.pipe.bulk_out(data) {
            Err(e @ UsbtmcError::Timeout { .. }) => {
                self.abort(INITIATE_ABORT_BULK_OUT, CHECK_ABORT_BULK_OUT_STATUS, t)?;
                Err(e)
            }
            other => other,
        }
    }

    /// A class control-in request: its USBTMC status (the reply's first byte) and the
    /// whole reply; an empty reply is an error.
    fn control(&mut self, request: u8, value: u16, len: u16) -> Result<(u8, Vec<u8>), UsbtmcError> {
        let r = self.pipe.control_in(request, value, len)?;
        match r.first() {
            Some(&status) => Ok((status, r)),
            None => Err(UsbtmcError::ShortControl {
                request,
                len: 0,
                expected: usize::from(len),
            }),
        }
    }

    /// Aborts the bulk transfer with tag `t` (USBTMC 4.2.1.2 to 4.2.1.5): `initiate` then
    /// `check` while the device says pending; for bulk-in, data the device still holds
    /// (bmAbortBulkIn bit 0) is read and dropped. Nothing to abort is not an error.
    fn abort(&mut self, initiate: u8, check: u8, t: u8) -> Result<(), UsbtmcError> {
        match self.control(initiate, u16::from(t), 2)?.0 {
            STATUS_SUCCESS => {}
            STATUS_FAILED | STATUS_TRANSFER_NOT_IN_PROGRESS => return Ok(()),
            status => {
                return Err(UsbtmcError::Status {
                    request: initiate,
                    status,
                })
            }
        }
        for _ in 0..MAX_IN_TRANSFERS {
            match self.control(check, 0, 8)? {
                (STATUS_SUCCESS, _) => return Ok(()),
                (STATUS_PENDING, r) => {
                    if check == CHECK_ABORT_BULK_IN_STATUS && r.get(1).is_some_and(|b| b & 1 == 1) {
                        // The device still holds data for the aborted transfer: drain it.
                        match self.pipe.bulk_in(HEADER_LEN + self.chunk as usize + 3) {
                            Ok(_) | Err(UsbtmcError::Timeout { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                (status, _) => {
                    return Err(UsbtmcError::Status {
                        request: check,
                        status,
                    })
                }
            }
        }
        Err(UsbtmcError::Status {
            request: check,
            status: STATUS_PENDING,
        })
    }

    /// Reads one message, requesting transfers until EOM (bounded by [`MAX_IN_TRANSFERS`]).
    pub fn read_message(&mut self) -> Result<Vec<u8>, UsbtmcError> {
        let mut out = Vec::new();
        for _ in 0..MAX_IN_TRANSFERS {
            let t = self.tag.advance();
            self.send(t, &encode_request_in(t, self.chunk, None))?;
            let buf = match self.pipe.bulk_in(HEADER_LEN + self.chunk as usize + 3) {
                Err(e @ UsbtmcError::Timeout { .. }) => {
                    self.abort(INITIATE_ABORT_BULK_IN, CHECK_ABORT_BULK_IN_STATUS, t)?;
                    return Err(e);
                }
                other => other?,
            };
            let (payload, eom) = decode_in(&buf, t, self.chunk)?;
            out.extend_from_slice(payload);
            if eom {
                return Ok(out);
            }
        }
        Err(UsbtmcError::NoEom {
            transfers: MAX_IN_TRANSFERS,
            bytes: out.len(),
        })
    }

    /// USB488 READ_STATUS_BYTE: returns the status byte.
    pub fn read_status_byte(&mut self) -> Result<u8, UsbtmcError> {
        let t = self.tag.advance();
        let r = self.pipe.control_in(READ_STATUS_BYTE, u16::from(t), 3)?;
        if r.len() < 3 {
            return Err(UsbtmcError::ShortControl {
                request: READ_STATUS_BYTE,
                len: r.len(),
                expected: 3,
            });
        }
        if r[0] != STATUS_SUCCESS {
            return Err(UsbtmcError::Status {
                request: READ_STATUS_BYTE,
                status: r[0],
            });
        }
        Ok(r[2])
    }

    /// Device clear: INITIATE_CLEAR then CHECK_CLEAR_STATUS while pending (bounded).
    pub fn clear(&mut self) -> Result<(), UsbtmcError> {
        match self.control(INITIATE_CLEAR, 0, 1)?.0 {
            STATUS_SUCCESS => {}
            status => {
                return Err(UsbtmcError::Status {
                    request: INITIATE_CLEAR,
                    status,
                })
            }
        }
        for _ in 0..MAX_IN_TRANSFERS {
            match self.control(CHECK_CLEAR_STATUS, 0, 2)?.0 {
                STATUS_PENDING => continue,
                STATUS_SUCCESS => return Ok(()),
                status => {
                    return Err(UsbtmcError::Status {
                        request: CHECK_CLEAR_STATUS,
                        status,
                    })
                }
            }
        }
        Err(UsbtmcError::Status {
            request: CHECK_CLEAR_STATUS,
            status: STATUS_PENDING,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::collections::VecDeque;

    /// Fake USBTMC device that checks every header the host sends.
    #[derive(Default)]
    struct Fake {
        received: Vec<u8>,
        expected_tag: u8,
        replies: VecDeque<Vec<u8>>,
        /// Bulk-in transfers to hand out (raw), used for hostile replies.
        raw_in: VecDeque<Vec<u8>>,
        pending_req: Option<(u8, u32)>,
        chunk_reply: usize,
        /// Every message received whole (EOM seen).
        messages: Vec<String>,
        /// Bulk-in transfers still to time out (the device holds its reply).
        time_out_in: usize,
        /// Bulk-out transfers after which the pipe fails with a USB error.
        fail_after_out: Option<usize>,
        /// Class requests received: (request, wValue).
        controls: Vec<(u8, u16)>,
        /// Replies to CHECK_ABORT_BULK_IN_STATUS still to give before success.
        abort_pending: VecDeque<Vec<u8>>,
    }

    impl Fake {
        fn next_tag(&mut self) -> u8 {
            let t = if self.expected_tag == 0 {
                1
            } else {
                self.expected_tag
            };
            self.expected_tag = if t == 255 { 1 } else { t + 1 };
            t
        }
    }

    impl UsbtmcPipe for Fake {
        fn bulk_out(&mut self, d: &[u8]) -> Result<(), UsbtmcError> {
            if let Some(n) = self.fail_after_out.as_mut() {
                if *n == 0 {
                    return Err(UsbtmcError::Usb("bulk-out transfer failed: stall".into()));
                }
                *n -= 1;
            }
            assert!(
                d.len() >= HEADER_LEN && d.len().is_multiple_of(4),
                "padding: {d:?}"
            );
            let tag = self.next_tag();
            assert_eq!(d[1], tag, "bTag");
            assert_eq!(d[2], !tag, "bTagInverse");
            assert_eq!(d[3], 0);
            let size = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            match d[0] {
                DEV_DEP_MSG_OUT => {
                    assert_eq!(d.len(), (HEADER_LEN + size as usize).div_ceil(4) * 4);
                    assert!(d[HEADER_LEN + size as usize..].iter().all(|&b| b == 0));
                    self.received
                        .extend_from_slice(&d[HEADER_LEN..HEADER_LEN + size as usize]);
                    if d[8] & 1 == 1 {
                        let msg = std::mem::take(&mut self.received);
                        if msg == b"*IDN?\n" {
                            self.replies.push_back(b"ACME,PSU-1,SN42,1.0\n".to_vec());
                        } else if msg.contains(&b'?') {
                            self.replies.push_back([b"re:", msg.as_slice()].concat());
                        }
                        self.messages
                            .push(String::from_utf8_lossy(&msg).into_owned());
                    }
                }
                REQUEST_DEV_DEP_MSG_IN => {
                    assert_eq!(d.len(), HEADER_LEN);
                    self.pending_req = Some((tag, size));
                }
                m => panic!("unexpected MsgID {m}"),
            }
            Ok(())
        }

        fn bulk_in(&mut self, _max: usize) -> Result<Vec<u8>, UsbtmcError> {
            if self.time_out_in > 0 {
                self.time_out_in -= 1;
                return Err(UsbtmcError::Timeout {
                    direction: "in",
                    timeout: Duration::from_millis(5),
                });
            }
            if let Some(r) = self.raw_in.pop_front() {
                return Ok(r);
            }
            let (tag, max) = self.pending_req.take().expect("bulk-in without request");
            let n = (max as usize).min(self.chunk_reply.max(1));
            let front = self.replies.front_mut().expect("no reply queued");
            let part: Vec<u8> = front.drain(..n.min(front.len())).collect();
            let eom = front.is_empty();
            if eom {
                self.replies.pop_front();
            }
            let mut v = header(
                REQUEST_DEV_DEP_MSG_IN,
                tag,
                part.len() as u32,
                u8::from(eom),
                0,
            )
            .to_vec();
            v.extend_from_slice(&part);
            while !v.len().is_multiple_of(4) {
                v.push(0xAA);
            }
            Ok(v)
        }

        fn control_in(&mut self, req: u8, value: u16, _len: u16) -> Result<Vec<u8>, UsbtmcError> {
            self.controls.push((req, value));
            match req {
                INITIATE_ABORT_BULK_IN => {
                    // The aborted request's reply is dropped by the device.
                    self.pending_req = None;
                    self.replies.pop_front();
                    Ok(vec![STATUS_SUCCESS, value as u8])
                }
                CHECK_ABORT_BULK_IN_STATUS => Ok(self.abort_pending.pop_front().unwrap_or(vec![
                    STATUS_SUCCESS,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ])),
                READ_STATUS_BYTE => Ok(vec![STATUS_SUCCESS, value as u8, 0x10]),
                INITIATE_CLEAR => Ok(vec![STATUS_SUCCESS]),
                CHECK_CLEAR_STATUS => Ok(vec![STATUS_SUCCESS, 0]),
                _ => Ok(vec![0x80]),
            }
        }
    }

    #[test]
    fn tag_wraps_to_one_never_zero() {
        let mut t = Tag(254);
        assert_eq!((t.advance(), t.advance(), t.advance()), (254, 255, 1));
    }

    #[rstest]
    #[case(1, b"*IDN?\n".as_slice(), true, vec![1, 1, 0xFE, 0, 6, 0, 0, 0, 1, 0, 0, 0, b'*', b'I', b'D', b'N', b'?', b'\n', 0, 0])]
    #[case(255, b"AB".as_slice(), false, vec![1, 255, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'A', b'B', 0, 0])]
    #[case(7, b"".as_slice(), true, vec![1, 7, 0xF8, 0, 0, 0, 0, 0, 1, 0, 0, 0])]
    fn encode_out_table(
        #[case] tag: u8,
        #[case] p: &[u8],
        #[case] eom: bool,
        #[case] want: Vec<u8>,
    ) {
        assert_eq!(encode_out(tag, p, eom), want);
    }

    #[test]
    fn request_in_layout() {
        assert_eq!(
            encode_request_in(3, 0x0102_0304, Some(b'\n')),
            [2, 3, 0xFC, 0, 4, 3, 2, 1, 2, b'\n', 0, 0]
        );
        assert_eq!(encode_request_in(3, 16, None)[8..10], [0, 0]);
    }

    fn hdr(m: u8, t: u8, inv: u8, size: u32, attr: u8) -> Vec<u8> {
        let mut v = header(m, t, size, attr, 0).to_vec();
        v[2] = inv;
        v
    }

    #[rstest]
    #[case(vec![2, 4, 0xFB], UsbtmcError::ShortHeader(3))]
    #[case(vec![], UsbtmcError::ShortHeader(0))]
    #[case(hdr(1, 4, 0xFB, 0, 1), UsbtmcError::MsgId { got: 1, expected: 2 })]
    #[case(hdr(2, 5, 0xFA, 0, 1), UsbtmcError::Tag { got: 5, expected: 4 })]
    #[case(hdr(2, 4, 0x00, 0, 1), UsbtmcError::TagInverse { tag: 4, inverse: 0 })]
    #[case([hdr(2, 4, 0xFB, 8, 1), b"abcd".to_vec()].concat(), UsbtmcError::Truncated { size: 8, available: 4 })]
    #[case(hdr(2, 4, 0xFB, 100, 1), UsbtmcError::Oversize { size: 100, requested: 64 })]
    fn hostile_replies(#[case] buf: Vec<u8>, #[case] want: UsbtmcError) {
        assert_eq!(decode_in(&buf, 4, 64).unwrap_err(), want);
    }

    #[test]
    fn decode_drops_padding() {
        let buf = [hdr(2, 4, 0xFB, 2, 1), b"ok\0\0".to_vec()].concat();
        assert_eq!(decode_in(&buf, 4, 64).unwrap(), (b"ok".as_slice(), true));
    }

    #[test]
    fn idn_split_over_transfers_both_ways() {
        let fake = Fake {
            chunk_reply: 5,
            ..Fake::default()
        };
        let mut s = Session::new(fake, 4);
        s.write_message(b"*IDN?\n").unwrap();
        assert_eq!(s.read_message().unwrap(), b"ACME,PSU-1,SN42,1.0\n");
        assert_eq!(s.read_status_byte().unwrap(), 0x10);
        s.clear().unwrap();
    }

    #[test]
    fn no_eom_ever_is_bounded() {
        let mut fake = Fake::default();
        for i in 0..MAX_IN_TRANSFERS {
            let t = (i % 255 + 1) as u8;
            fake.raw_in.push_back([hdr(2, t, !t, 0, 0)].concat());
        }
        let mut s = Session::new(fake, 64);
        assert_eq!(
            s.read_message().unwrap_err(),
            UsbtmcError::NoEom {
                transfers: MAX_IN_TRANSFERS,
                bytes: 0
            }
        );
    }

    #[rstest]
    #[case("1AB1:0E11", 0x1AB1, 0x0E11, None)]
    #[case("0x2A8D:0x1202:MY5912345", 0x2A8D, 0x1202, Some("MY5912345"))]
    #[case("1ab1:e11:DP8C1/", 0x1AB1, 0x0E11, Some("DP8C1"))]
    fn device_ids_parse(
        #[case] text: &str,
        #[case] vid: u16,
        #[case] pid: u16,
        #[case] serial: Option<&str>,
    ) {
        let id = DeviceId::parse(text).unwrap();
        assert_eq!((id.vid, id.pid, id.serial.as_deref()), (vid, pid, serial));
        assert_eq!(DeviceId::parse(&id.to_string()[9..]).unwrap(), id);
    }

    #[rstest]
    #[case("", "missing vendor id")]
    #[case("1AB1", "missing product id")]
    #[case("1AB1:", "missing product id")]
    #[case("GGGG:0E11", "vendor id `GGGG`")]
    #[case("1AB1:10E11", "product id `10E11`")]
    #[case("-1:0E11", "vendor id `-1`")]
    #[case("1AB1:0E11:", "empty serial")]
    #[case("1AB1:0E11:SN?x=1", "contains")]
    fn bad_device_ids_say_what(#[case] text: &str, #[case] want: &str) {
        let e = DeviceId::parse(text).unwrap_err();
        assert!(e.contains(want) && e.contains("usbtmc://VID:PID"), "{e}");
    }

    #[test]
    fn a_timed_out_reply_is_aborted_and_the_next_query_starts_clean() {
        let fake = Fake {
            time_out_in: 1,
            abort_pending: VecDeque::from([vec![STATUS_PENDING, 1, 0, 0, 0, 0, 0, 0]]),
            // What the device still held for the aborted request, read and dropped.
            raw_in: VecDeque::from([b"5.0".to_vec()]),
            ..Fake::default()
        };
        let mut s = Session::new(fake, 64);
        s.write_message(b"VOLT?\n").unwrap();
        let e = s.read_message().unwrap_err();
        assert!(
            matches!(
                e,
                UsbtmcError::Timeout {
                    direction: "in",
                    ..
                }
            ),
            "{e}"
        );
        // INITIATE_ABORT_BULK_IN names the request's tag (2: the message took tag 1).
        assert_eq!(s.pipe.controls[0], (INITIATE_ABORT_BULK_IN, 2));
        assert_eq!(
            s.pipe.controls[1..],
            [
                (CHECK_ABORT_BULK_IN_STATUS, 0),
                (CHECK_ABORT_BULK_IN_STATUS, 0)
            ]
        );
        assert!(s.pipe.raw_in.is_empty(), "the held data was drained");
        s.write_message(b"*IDN?\n").unwrap();
        assert_eq!(s.read_message().unwrap(), b"ACME,PSU-1,SN42,1.0\n");
    }

    #[rstest]
    #[case(vec![STATUS_FAILED], true)]
    #[case(vec![STATUS_TRANSFER_NOT_IN_PROGRESS], true)]
    #[case(vec![0x86], false)]
    #[case(vec![], false)]
    fn abort_of_nothing_is_not_an_error(#[case] reply: Vec<u8>, #[case] ok: bool) {
        struct Once(Vec<u8>);
        impl UsbtmcPipe for Once {
            fn bulk_out(&mut self, _: &[u8]) -> Result<(), UsbtmcError> {
                Ok(())
            }
            fn bulk_in(&mut self, _: usize) -> Result<Vec<u8>, UsbtmcError> {
                Err(UsbtmcError::Timeout {
                    direction: "in",
                    timeout: Duration::ZERO,
                })
            }
            fn control_in(&mut self, _: u8, _: u16, _: u16) -> Result<Vec<u8>, UsbtmcError> {
                Ok(self.0.clone())
            }
        }
        let mut s = Session::new(Once(reply), 64);
        let e = s.read_message().unwrap_err();
        assert_eq!(matches!(e, UsbtmcError::Timeout { .. }), ok, "{e}");
    }

    #[tokio::test]
    async fn the_scpi_client_talks_through_the_bridge() {
        use crate::scpi::{Client, ClientOptions};
        let fake = Fake {
            chunk_reply: 7,
            ..Fake::default()
        };
        let mut client = Client::new(
            into_transport(Session::new(fake, 8)).unwrap(),
            ClientOptions::default(),
        );
        assert_eq!(client.query("*IDN?").await.unwrap(), "ACME,PSU-1,SN42,1.0");
        client.write(":SOUR:VOLT 3.25").await.unwrap();
        assert_eq!(client.query("MEAS:VOLT?").await.unwrap(), "re:MEAS:VOLT?");
    }

    #[tokio::test]
    async fn a_usb_failure_reaches_the_client_with_its_text() {
        use crate::scpi::{Client, ClientOptions};
        let fake = Fake {
            fail_after_out: Some(1),
            ..Fake::default()
        };
        let mut client = Client::new(
            into_transport(Session::new(fake, 64)).unwrap(),
            ClientOptions::default(),
        );
        let e = client.query("*IDN?").await.unwrap_err().to_string();
        assert!(e.contains("bulk-out transfer failed: stall"), "{e}");
    }

    #[tokio::test]
    async fn no_device_is_a_clear_error_naming_the_address() {
        let e = crate::scpi::connect("usbtmc://F00D:0001:NOPE", Duration::from_secs(2))
            .await
            .err()
            .expect("no such device here")
            .to_string();
        assert!(e.contains("usbtmc://F00D:0001:NOPE"), "{e}");
    }
}
