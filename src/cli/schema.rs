//! `hilrig schema [results|rejudged|manifest]`

use clap::Args;

use crate::exit::Failure;
use crate::report::schema::{schema_for, SCHEMAS};

/// Arguments of `hilrig schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's JSON Schema to print: results (results.json), rejudged
    /// (rejudge-*/results.json) or manifest (manifest.json).
    #[arg(default_value = "results")]
    pub which: String,
}

/// Print a JSON Schema: exit 0, or the failure for an unknown name.
pub fn schema(a: SchemaArgs) -> Result<i32, Failure> {
    let s = schema_for(&a.which).ok_or_else(|| {
        let known = SCHEMAS.join(", ");
        Failure::abort(format!("no schema named `{}` (known: {known})", a.which))
    })?;
    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    Ok(0)
}
