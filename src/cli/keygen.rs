//! `hilrig keygen [--out PATH] [--force]`

use std::path::PathBuf;

use clap::Args;

use crate::exit::Failure;
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

/// Make a station key: the exit code, or the failure that stopped it.
pub fn keygen(a: KeygenArgs) -> Result<i32, Failure> {
    let explicit = a.out.is_some();
    let path = a.out.or_else(keys::default_key_path).ok_or_else(|| {
        Failure::abort("no home directory to put the key in; pass --out PATH or set $HILRIG_KEY")
    })?;
    let k = keys::generate(&path, a.force).map_err(Failure::abort)?;
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
    Ok(0)
}
