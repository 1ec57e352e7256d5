//! Running on Flux: instance discovery through the Flux location API ([`location`]),
//! the v8 app specification generator and validator ([`spec`]), and the container
//! health check ([`health`]); what FluxOS told this container is logged at start
//! ([`environment`]).

pub mod environment;
pub mod health;
pub mod location;
pub mod spec;

pub use location::{instance_ips, FluxError};
