//! Test plans, DUT fixtures and limit profiles: models, loading and validation.
//!
//! Files are read as raw serde models (with source locations kept where later checks need
//! them) and then validated against each other: every signal a condition names must be in
//! the fixture's signal map or be an instrument reading, every enum name must be in the
//! DBC value table, every criterion judged must exist in the limit profile and fit the
//! protection, and every setpoint must lie in the rig's envelope. Errors carry
//! file:line:column.

pub mod condition;
pub mod dry_run;
pub mod error;
pub mod fixture;
pub mod inverter;
pub mod limits;
pub mod load;
pub mod model;
pub mod outline;
pub mod preflight;
pub mod select;
pub mod signal_map;
pub mod validate;
pub mod warnings;

pub use condition::Condition;
pub use error::InputError;
pub use fixture::Fixture;
pub use limits::{Check, Criterion, DecisionRule, LimitProfile};
pub use load::{
    is_suite, load_plan, load_plan_with, load_plans, load_rig, load_suite, LoadedPlan, PlanSet,
    SignalSource, Source,
};
pub use model::{Plan, Step, Stimulus, Suite, Target};
