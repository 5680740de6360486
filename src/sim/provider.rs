//! The simulated bench as a campaign's bench provider: started for a rig with a
//! `simulation:` section, with its instruments on loopback TCP (real time) or in memory
//! (virtual time). Every command that may start the simulated bench starts it here.

use std::path::Path;

use super::{Bench, BenchOptions, ScpiExposure};
use crate::campaign::{BenchProvider, ProvidedBench};
use crate::report::FirmwareInfo;
use crate::rig::Rig;

/// Starts the simulated bench for rigs that describe one.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimBenchProvider;

impl SimBenchProvider {
    /// Start the bench `rig` describes; None for a rig of real instruments.
    pub async fn start_bench(
        rig: &Rig,
        rig_path: &Path,
        in_memory: bool,
    ) -> Result<Option<Bench>, super::bench::SimError> {
        if rig.simulation.is_none() {
            return Ok(None);
        }
        let options = BenchOptions {
            scpi: if in_memory {
                ScpiExposure::InMemory
            } else {
                ScpiExposure::Tcp
            },
            ..Default::default()
        };
        Bench::start_with(rig, rig_path, &options).await.map(Some)
    }
}

#[async_trait::async_trait]
impl BenchProvider for SimBenchProvider {
    async fn start(
        &self,
        rig: &Rig,
        rig_path: &Path,
        in_memory: bool,
    ) -> Result<Option<Box<dyn ProvidedBench>>, String> {
        match Self::start_bench(rig, rig_path, in_memory).await {
            Ok(b) => Ok(b.map(|b| Box::new(b) as Box<dyn ProvidedBench>)),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl ProvidedBench for Bench {
    fn resolve(&self, rig: &Rig) -> Rig {
        Bench::resolve(self, rig)
    }

    fn firmware(&self) -> FirmwareInfo {
        FirmwareInfo {
            id: self.image.id.clone(),
            version: self.image.version.clone(),
            sha256: self.image.sha256.clone(),
        }
    }

    fn truth_json(&self, origin: tokio::time::Instant) -> Option<String> {
        serde_json::to_string_pretty(&self.truth.events(origin)).ok()
    }

    fn flasher(&mut self) -> Box<dyn crate::flash::Flasher + '_> {
        Bench::flasher(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rig_of_real_instruments_gets_no_bench() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("rig/sim.yaml");
        let mut rig = crate::plan::load_rig(&path).unwrap().value;
        rig.simulation = None;
        let started = SimBenchProvider.start(&rig, &path, true).await.unwrap();
        assert!(started.is_none());
    }

    #[tokio::test]
    async fn a_simulated_rig_gets_its_bench_with_endpoints_resolved() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("rig/sim.yaml");
        let rig = crate::plan::load_rig(&path).unwrap().value;
        let bench = SimBenchProvider
            .start(&rig, &path, true)
            .await
            .unwrap()
            .expect("a bench for a simulated rig");
        let resolved = bench.resolve(&rig);
        assert_ne!(
            format!("{:?}", resolved.instruments),
            format!("{:?}", rig.instruments),
            "the endpoints point at the started bench"
        );
        assert!(!bench.firmware().sha256.is_empty());
    }
}
