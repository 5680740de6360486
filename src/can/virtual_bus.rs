//! The in-process virtual CAN bus: every port sees every frame, like a real wire.
//!
//! Buses live in a process-wide registry by name so that a rig endpoint `virtual:NAME`
//! can reach a bus created by the simulated bench. Like socketcan's default loopback,
//! a sender also sees its own frames; receivers filter by id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{Bus, BusFuture, CanError, Frame, Received};

const CAPACITY: usize = 4096;

fn registry() -> &'static Mutex<HashMap<String, broadcast::Sender<Received>>> {
    static REG: OnceLock<Mutex<HashMap<String, broadcast::Sender<Received>>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A port on a named in-process bus.
#[derive(Clone)]
pub struct VirtualBus {
    name: String,
    tx: broadcast::Sender<Received>,
    _owner: Option<Arc<Owner>>,
}

struct Owner(String);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Ok(mut reg) = registry().lock() {
            reg.remove(&self.0);
        }
    }
}

impl VirtualBus {
    /// Create a bus; it is removed from the registry when this port and its clones drop.
    pub fn create(name: &str) -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        registry()
            .lock()
            .expect("virtual bus registry poisoned")
            .insert(name.to_string(), tx.clone());
        Self {
            name: name.to_string(),
            tx,
            _owner: Some(Arc::new(Owner(name.to_string()))),
        }
    }

    /// Open a port on an existing bus.
    pub fn open(name: &str) -> Result<Self, CanError> {
        let reg = registry().lock().expect("virtual bus registry poisoned");
        let tx = reg
            .get(name)
            .cloned()
            .ok_or_else(|| CanError::NoSuchBus(name.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            tx,
            _owner: None,
        })
    }

    /// Send without awaiting (the virtual bus never blocks).
    pub fn send_now(&self, frame: Frame) -> Result<(), CanError> {
        // A bus with no listener is not an error: frames on a wire with no node are lost too.
        let _ = self.tx.send(Received {
            frame,
            at: Instant::now(),
        });
        Ok(())
    }
}

impl Bus for VirtualBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
        Box::pin(async move { self.send_now(frame) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Received> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_every_port_with_a_timestamp() {
        let a = VirtualBus::create("vb-test-1");
        let b = VirtualBus::open("vb-test-1").unwrap();
        let mut rx = b.subscribe();
        let before = Instant::now();
        a.send(Frame::new(0x123, false, &[1, 2, 3]).unwrap())
            .await
            .unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got.frame.id, 0x123);
        assert_eq!(got.frame.data, vec![1, 2, 3]);
        assert!(got.at >= before);
    }

    #[test]
    fn opening_a_missing_bus_names_it() {
        let err = VirtualBus::open("no-such-bus").err().unwrap();
        assert!(err.to_string().contains("no-such-bus"));
    }

    #[test]
    fn bus_is_unregistered_when_the_creator_drops() {
        drop(VirtualBus::create("vb-test-2"));
        assert!(VirtualBus::open("vb-test-2").is_err());
    }
}
