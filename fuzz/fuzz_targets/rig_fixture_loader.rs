//! Fuzz target: see `hilrig_fuzz::rig_fixture_loader`. The input is written to a scratch
//! `test-plans/fuzz.yaml` whose `fixtures/` and `rig/` link to the repository's.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use hilrig_fuzz::Workdir;
use libfuzzer_sys::fuzz_target;

static WORK: OnceLock<Workdir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let work = WORK.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        Workdir::new(repo, "rig-fixture")
    });
    hilrig_fuzz::rig_fixture_loader(work, data);
});
