//! `hilrig keygen [--out PATH] [--force]`

use std::path::PathBuf;

use clap::Args;

use super::EXIT_ABORT;
use crate::report::keys;

/// Arguments of `hilrig keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (default: $HILRIG_KEY, else $XDG_CONFIG_HOME/hilrig/station.key,
    /// else ~/.config/hilrig/station.key). The public key goes beside it as PATH.pub.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing key (bundles signed with the old key stay verifiable with its
    /// public key only).
    #[arg(long)]
    pub force: bool,
}

/// Make a station key and return the exit code.
pub fn keygen(a: KeygenArgs) -> i32 {
    let explicit = a.out.is_some();
    let Some(path) = a.out.or_else(keys::default_key_path) else {
        eprintln!("error: no home directory to put the key in; pass --out PATH or set $HILRIG_KEY");
        return EXIT_ABORT;
    };
    match keys::generate(&path, a.force) {
        Ok(k) => {
            println!("station key: {}", path.display());
            println!(
                "public key:  {} (fingerprint {})",
                keys::public_key_path(&path).display(),
                keys::fingerprint(&k.verifying_key())
            );
            println!("{}", k.public_hex());
            if explicit && std::env::var_os(keys::KEY_ENV).is_none() {
                println!("runs sign with it when $HILRIG_KEY names it (or it is at the default location)");
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ABORT
        }
    }
}
