//! Linux SocketCAN interfaces (`can0`, `vcan0`, PEAK, Kvaser, candleLight, ...).
//!
//! The socket is opened in CAN FD mode (it receives classic and FD frames), with kernel
//! receive timestamps on and every error class subscribed. Error frames are not passed on
//! as frames; they update the bus state (error-warning, error-passive, bus-off, restarted).
//! The kernel timestamp (wall clock) is mapped onto the monotonic clock by its age, so a
//! frame that waited in the socket buffer keeps the time it arrived.
//!
//! Frames this process sends are not echoed back to its own receivers (the kernel's default,
//! and what a hardware adapter does); other sockets on the same interface see them.
//!
//! Opening needs a tokio runtime (the socket is registered with its reactor). On systems
//! other than Linux, opening says that socketcan is Linux-only.

pub use imp::SocketCanBus;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use socketcan::{
        tokio::CanFdSocket, CanAnyFrame, CanDataFrame, CanFdFrame, EmbeddedFrame, ExtendedId, Id,
        SocketOptions, StandardId,
    };
    use tokio::sync::broadcast;
    use tokio::time::Instant;

    use crate::can::{Bus, BusFuture, BusState, CanError, Frame, Received, StateCell};

    const CAPACITY: usize = 4096;

    struct Shared {
        state: StateCell,
        closed: AtomicBool,
    }

    /// A SocketCAN interface behind the [`Bus`] trait.
    pub struct SocketCanBus {
        name: String,
        socket: Arc<CanFdSocket>,
        frames: broadcast::Sender<Received>,
        shared: Arc<Shared>,
        task: tokio::task::JoinHandle<()>,
    }

    impl SocketCanBus {
        /// Open an interface such as `can0`; must be called inside a tokio runtime.
        pub fn open(iface: &str) -> Result<Self, CanError> {
            let name = format!("socketcan:{iface}");
            let handle =
                tokio::runtime::Handle::try_current().map_err(|_| CanError::Unavailable {
                    bus: name.clone(),
                    reason: "the socketcan backend must be opened inside the tokio runtime".into(),
                })?;
            let _entered = handle.enter();
            let socket = CanFdSocket::open(iface).map_err(|e| open_error(iface, e))?;
            let option_err = |what: &str, source: io::Error| CanError::Io {
                bus: name.clone(),
                context: format!("cannot {what}"),
                source,
            };
            socket
                .set_error_filter_accept_all()
                .map_err(|e| option_err("subscribe to error frames", e))?;
            socket
                .set_recv_timestamp(true)
                .map_err(|e| option_err("switch on receive timestamps", e))?;

            let socket = Arc::new(socket);
            let (frames, _) = broadcast::channel(CAPACITY);
            let shared = Arc::new(Shared {
                state: StateCell::default(),
                closed: AtomicBool::new(false),
            });
            let task = handle.spawn(receive(
                name.clone(),
                Arc::clone(&socket),
                frames.clone(),
                Arc::clone(&shared),
            ));
            Ok(Self {
                name,
                socket,
                frames,
                shared,
                task,
            })
        }
    }

    impl Drop for SocketCanBus {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Explain a failure to open an interface, naming the likely cause.
    fn open_error(iface: &str, e: io::Error) -> CanError {
        let bus = format!("socketcan:{iface}");
        let no_af_can = || {
            // SAFETY: plain socket(2) call; the descriptor is closed right away.
            let fd = unsafe { libc::socket(libc::AF_CAN, libc::SOCK_RAW, libc::CAN_RAW) };
            if fd >= 0 {
                // SAFETY: fd is a descriptor this function just opened.
                unsafe { libc::close(fd) };
                false
            } else {
                io::Error::last_os_error().raw_os_error() == Some(libc::EAFNOSUPPORT)
            }
        };
        let reason = match e.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => Some(kernel_lacks_can(iface)),
            Some(libc::ENODEV) if no_af_can() => Some(kernel_lacks_can(iface)),
            Some(libc::ENODEV) => Some(format!(
                "no network interface `{iface}`: check `ip link show`; for a virtual one: \
                 `sudo ip link add dev {iface} type vcan && sudo ip link set up {iface}`"
            )),
            Some(libc::ENETDOWN) => Some(format!(
                "interface `{iface}` is down: `sudo ip link set {iface} up type can bitrate N`"
            )),
            _ => None,
        };
        match reason {
            Some(reason) => CanError::Unavailable { bus, reason },
            None => CanError::Io {
                bus,
                context: format!("cannot open interface {iface}"),
                source: e,
            },
        }
    }

    fn kernel_lacks_can(iface: &str) -> String {
        format!(
            "cannot open `{iface}`: this kernel lacks CAN support (no AF_CAN sockets): load \
             the `can` and `can_raw` modules (`sudo modprobe can_raw`), or use an SLCAN \
             adapter (`slcan:/dev/ttyACM0?bitrate=N`)"
        )
    }

    /// The receive timestamp as a monotonic instant: now, less the frame's age.
    fn to_instant(stamp: SystemTime) -> Instant {
        let now = Instant::now();
        match SystemTime::now().duration_since(stamp) {
            // An age of more than a minute means the wall clock was stepped: use now.
            Ok(age) if age < Duration::from_secs(60) => now.checked_sub(age).unwrap_or(now),
            _ => now,
        }
    }

    fn to_frame(id: Id, data: &[u8]) -> Frame {
        match id {
            Id::Standard(s) => Frame {
                id: u32::from(s.as_raw()),
                extended: false,
                data: data.to_vec(),
            },
            Id::Extended(e) => Frame {
                id: e.as_raw(),
                extended: true,
                data: data.to_vec(),
            },
        }
    }

    async fn receive(
        name: String,
        socket: Arc<CanFdSocket>,
        frames: broadcast::Sender<Received>,
        shared: Arc<Shared>,
    ) {
        loop {
            let (frame, stamp) = match socket.read_frame_with_timestamp().await {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(bus = %name, "reading the socket failed: {e}");
                    shared.closed.store(true, Ordering::Relaxed);
                    return;
                }
            };
            let at = to_instant(stamp);
            let frame = match frame {
                CanAnyFrame::Normal(f) => to_frame(f.id(), f.data()),
                CanAnyFrame::Fd(f) => to_frame(f.id(), f.data()),
                CanAnyFrame::Remote(_) => continue,
                CanAnyFrame::Error(e) => {
                    if let Some(state) = BusState::from_error_frame(e.error_bits(), e.data()) {
                        let before = shared.state.set(state);
                        if before != state {
                            tracing::warn!(bus = %name, "bus state {before} -> {state}");
                        }
                    }
                    continue;
                }
            };
            let _ = frames.send(Received { frame, at });
        }
    }

    fn to_socket_frame(frame: &Frame) -> Result<CanAnyFrame, CanError> {
        let bad = || CanError::InvalidFrame(format!("{frame:?}"));
        let id: Id = if frame.extended {
            ExtendedId::new(frame.id).ok_or_else(bad)?.into()
        } else {
            u16::try_from(frame.id)
                .ok()
                .and_then(StandardId::new)
                .ok_or_else(bad)?
                .into()
        };
        const FD_LENGTHS: [usize; 7] = [12, 16, 20, 24, 32, 48, 64];
        if frame.data.len() <= 8 {
            Ok(CanAnyFrame::Normal(
                CanDataFrame::new(id, &frame.data).ok_or_else(bad)?,
            ))
        } else if FD_LENGTHS.contains(&frame.data.len()) {
            Ok(CanAnyFrame::Fd(
                CanFdFrame::new(id, &frame.data).ok_or_else(bad)?,
            ))
        } else {
            Err(CanError::InvalidFrame(format!(
                "{} data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64",
                frame.data.len()
            )))
        }
    }

    impl Bus for SocketCanBus {
        fn name(&self) -> &str {
            &self.name
        }

        fn send(&self, frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
            Box::pin(async move {
                if self.shared.closed.load(Ordering::Relaxed) {
                    return Err(CanError::Closed(self.name.clone()));
                }
                let out = to_socket_frame(&frame)?;
                self.socket
                    .write_frame(&out)
                    .await
                    .map_err(|source| CanError::Io {
                        bus: self.name.clone(),
                        context: match source.raw_os_error() {
                            Some(libc::ENOBUFS) => {
                                "transmit queue full (bus-off, or no other node acknowledging?)"
                                    .into()
                            }
                            _ => "cannot send".into(),
                        },
                        source,
                    })
            })
        }

        fn subscribe(&self) -> broadcast::Receiver<Received> {
            self.frames.subscribe()
        }

        fn state(&self) -> BusState {
            self.shared.state.get()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn opening_outside_a_runtime_is_an_error() {
            let err = SocketCanBus::open("vcan0").err().unwrap();
            assert!(err.to_string().contains("tokio runtime"), "{err}");
        }

        #[tokio::test]
        async fn opening_a_missing_interface_names_the_cause() {
            let err = SocketCanBus::open("hilrig-nocan9")
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("lacks CAN support") || err.contains("no network interface"),
                "{err}"
            );
            assert!(err.contains("hilrig-nocan9"), "{err}");
        }

        #[test]
        fn frames_convert_for_the_socket() {
            let f = Frame::new(0x123, false, &[1, 2]).unwrap();
            assert!(matches!(to_socket_frame(&f), Ok(CanAnyFrame::Normal(_))));
            let f = Frame::new(0x1F33_4455, true, &[0; 12]).unwrap();
            assert!(matches!(to_socket_frame(&f), Ok(CanAnyFrame::Fd(_))));
            let f = Frame::new(0x1, false, &[0; 9]).unwrap();
            assert!(to_socket_frame(&f).is_err(), "9 bytes is no FD length");
            let back = to_frame(Id::Extended(ExtendedId::new(0x1F33_4455).unwrap()), &[7]);
            assert_eq!(back, Frame::new(0x1F33_4455, true, &[7]).unwrap());
        }

        #[test]
        fn kernel_stamps_become_instants_in_the_past() {
            let now = Instant::now();
            let t = to_instant(SystemTime::now() - Duration::from_millis(5));
            assert!(t <= Instant::now());
            assert!(now.saturating_duration_since(t) <= Duration::from_millis(5));
            // A stamp from the future (clock stepped) is read as now.
            let t = to_instant(SystemTime::now() + Duration::from_secs(10));
            assert!(t >= now);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::convert::Infallible;

    use tokio::sync::broadcast;

    use crate::can::{Bus, BusFuture, CanError, Frame, Received};

    /// SocketCAN exists on Linux only; on other systems opening explains that.
    pub struct SocketCanBus {
        never: Infallible,
    }

    impl SocketCanBus {
        /// Always fails: SocketCAN is Linux-only.
        pub fn open(iface: &str) -> Result<Self, CanError> {
            Err(CanError::Unavailable {
                bus: format!("socketcan:{iface}"),
                reason: "SocketCAN exists on Linux only: use an SLCAN adapter \
                         (`slcan:PORT?bitrate=N`)"
                    .into(),
            })
        }
    }

    impl Bus for SocketCanBus {
        fn name(&self) -> &str {
            match self.never {}
        }

        fn send(&self, _frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
            match self.never {}
        }

        fn subscribe(&self) -> broadcast::Receiver<Received> {
            match self.never {}
        }
    }
}
