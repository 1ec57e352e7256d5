//! Flux app specifications (version 8): a generator for repram-flux apps and a validator
//! of the rules FluxOS enforces when an app is registered.
//!
//! A v8 component may map at most 5 ports, so `N` nodes per instance become
//! `ceil(N / 5)` components of one container each, every component with its own 5-port
//! range (`8081-8085`, `8086-8090`, …). Components of one instance find each other
//! through the app's Docker network (container `flux<component>_<app>`), instances
//! through the Flux location API.
//!
//! - `model`: limits, keys and types of a v8 spec;
//! - `names`: app, component, image and domain name rules;
//! - `generate`: the spec for a repram-flux cluster;
//! - `validate`: FluxOS's registration rules and repram's own; `order`: the key order
//!   its signature check needs;
//! - `args`: the `flux-spec` arguments and their walk; `cli`: what the command does
//!   with them; `error`: what it reports.

mod args;
mod cli;
mod enterprise;
mod error;
mod generate;
mod model;
mod names;
mod order;
mod placeholders;
mod validate;

pub use args::{parse_args, SpecCommand};
pub use cli::{check_text, run, usage, Outcome, EXIT_INVALID, EXIT_OK, EXIT_USAGE, EXIT_WARNINGS};
pub use enterprise::{check_blob, EnterprisePlaintext, Secret};
pub use error::SpecError;
pub use generate::{
    enterprise_public, generate, generate_enterprise, to_json, SpecOptions, DEFAULT_DESCRIPTION,
    EXAMPLE_DOMAIN, EXAMPLE_IMAGE, EXAMPLE_OWNER,
};
pub use model::*;
pub use names::{check_app_name, check_repotag};
pub use order::key_order_violations;
pub use placeholders::{is_owner_address, placeholder_warnings};
pub use validate::{check_repram_env, validate_v8, Violation, SECRET_VAR};
