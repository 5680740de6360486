//! The socketcan backend. Machines without kernel CAN (no AF_CAN, no vcan0) can only check
//! the error for a missing interface; the frame tests run on `vcan0` when HILRIG_VCAN=1
//! (`scripts/vcan-vm` runs them in a Linux VM at mtu 16 and 72, 50 times each):
//!
//! ```sh
//! sudo modprobe vcan && sudo ip link add dev vcan0 type vcan && sudo ip link set up vcan0
//! HILRIG_VCAN=1 cargo test --test it can_socketcan::
//! ```
//!
//! The tests share `vcan0` and run in parallel, so each uses ids of its own and ignores every
//! other frame it receives. Whether vcan0 takes CAN FD frames is read from its MTU (16:
//! classic only, 72: CAN FD), and the test checks the behaviour that MTU must give.

use std::time::Duration;

use hilrig::can::{self, BusState, Frame, FrameKind, Received};
use tokio::sync::broadcast;

fn vcan_enabled(test: &str) -> bool {
    if std::env::var("HILRIG_VCAN").as_deref() == Ok("1") {
        true
    } else {
        println!("{test}: not run: set HILRIG_VCAN=1 (needs a vcan0 interface)");
        false
    }
}

#[tokio::test]
async fn a_missing_interface_says_why() {
    let err = can::open("socketcan:hilrig-nocan7")
        .err()
        .unwrap()
        .to_string();
    if cfg!(target_os = "linux") {
        assert!(
            err.contains("lacks CAN support") || err.contains("no network interface"),
            "{err}"
        );
    } else {
        assert!(err.contains("Linux only"), "{err}");
    }
    assert!(err.contains("hilrig-nocan7"), "{err}");
}

/// The next frame whose id is in `ids` (frames of other tests on vcan0 are skipped).
async fn next_of(rx: &mut broadcast::Receiver<Received>, ids: &[u32]) -> Received {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(r) if ids.contains(&r.frame.id) => return r,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("receiver closed: {e}"),
            }
        }
    })
    .await
    .expect("frame within 10 s")
}

/// vcan0's MTU: 16 (classic CAN only) or 72 (CAN FD).
fn vcan_mtu() -> u32 {
    std::fs::read_to_string("/sys/class/net/vcan0/mtu")
        .expect("vcan0 exists")
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn vcan_frames_cross_between_two_sockets_with_timestamps() {
    if !vcan_enabled("vcan_frames_cross_between_two_sockets_with_timestamps") {
        return;
    }
    let a = can::open("socketcan:vcan0").unwrap();
    let b = can::open("socketcan:vcan0").unwrap();
    let mut rx = b.subscribe();
    let mut own = a.subscribe();
    let before = tokio::time::Instant::now();
    let frames = [
        Frame::new(0x123, false, &[1, 2, 3]).unwrap(),
        Frame::new(0x1F33_4455, true, &[]).unwrap(),
        Frame::new(0x7FF, false, &[0xFF; 8]).unwrap(),
        Frame::with_kind(0x124, false, vec![0; 4], FrameKind::Remote).unwrap(),
        Frame::with_kind(0x1F33_4456, true, vec![], FrameKind::Remote).unwrap(),
    ];
    let ids: Vec<u32> = frames.iter().map(|f| f.id).collect();
    for f in &frames {
        a.send(f.clone()).await.unwrap();
    }
    for f in &frames {
        let got = next_of(&mut rx, &ids).await;
        assert_eq!(&got.frame, f);
        assert!(got.at >= before && got.at <= tokio::time::Instant::now());
    }
    // The sender's own receivers do not see its frames (kernel default, like hardware).
    while let Ok(r) = own.try_recv() {
        assert!(!ids.contains(&r.frame.id), "own frame echoed: {r:?}");
    }
    assert_eq!(b.state(), BusState::ErrorActive);
}

#[tokio::test]
async fn vcan_carries_fd_frames_exactly_when_its_mtu_allows() {
    if !vcan_enabled("vcan_carries_fd_frames_exactly_when_its_mtu_allows") {
        return;
    }
    let a = can::open("socketcan:vcan0").unwrap();
    let b = can::open("socketcan:vcan0").unwrap();
    let mut rx = b.subscribe();
    let data: Vec<u8> = (0..64).collect();
    let fd = Frame::new(0x100, false, &data).unwrap();
    let short_fd = Frame::new(0x1AB_CDEF, true, &[0xA5; 12]).unwrap();
    let classic = Frame::new(0x101, false, &[9; 8]).unwrap();
    // CAN FD of 8 bytes or fewer stays CAN FD, and its flags cross the kernel.
    let brs = FrameKind::Fd {
        brs: true,
        esi: false,
    };
    let esi = FrameKind::Fd {
        brs: false,
        esi: true,
    };
    let tiny_brs = Frame::with_kind(0x102, false, vec![1, 2, 3], brs).unwrap();
    let esi_16 = Frame::with_kind(0x103, false, vec![0x5A; 16], esi).unwrap();
    let ids = [0x100, 0x1AB_CDEF, 0x101, 0x102, 0x103];
    match vcan_mtu() {
        72 => {
            let all = [&fd, &short_fd, &classic, &tiny_brs, &esi_16];
            for f in all {
                a.send(f.clone()).await.unwrap();
            }
            for f in all {
                assert_eq!(&next_of(&mut rx, &ids).await.frame, f);
            }
        }
        16 => {
            // A classic-only interface refuses FD frames with an error, and still carries
            // classic ones.
            for f in [fd, tiny_brs] {
                let err = a.send(f).await.unwrap_err().to_string();
                assert!(err.contains("vcan0"), "{err}");
            }
            a.send(classic.clone()).await.unwrap();
            assert_eq!(next_of(&mut rx, &ids).await.frame, classic);
        }
        other => panic!("vcan0 has mtu {other}; set 16 or 72"),
    }
}
