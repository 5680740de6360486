//! `hilrig schema [results|rejudged|manifest]`

use clap::Args;

use super::EXIT_ABORT;
use crate::report::schema::{schema_for, SCHEMAS};

/// Arguments of `hilrig schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's JSON Schema to print: results (results.json), rejudged
    /// (rejudge-*/results.json) or manifest (manifest.json).
    #[arg(default_value = "results")]
    pub which: String,
}

/// Print a JSON Schema and return the exit code.
pub fn schema(a: SchemaArgs) -> i32 {
    match schema_for(&a.which) {
        Some(s) => {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            0
        }
        None => {
            eprintln!(
                "error: no schema named `{}` (known: {})",
                a.which,
                SCHEMAS.join(", ")
            );
            EXIT_ABORT
        }
    }
}
