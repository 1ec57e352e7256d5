//! The v8 app specification as FluxOS knows it: its limits, its keys, the ports it bans,
//! and the [`FluxApp`] / [`Component`] types the generator fills in.

use serde::Serialize;

/// Ports (and nodes) per component: the v8 limit.
pub const PORTS_PER_COMPONENT: u16 = 5;
/// Components per app allowed by FluxOS.
pub const MAX_COMPONENTS: usize = 10;
/// Most nodes per instance the generator can place (`MAX_COMPONENTS` × 5).
pub const MAX_NODES: u16 = 50;
/// Most instances per app.
pub const MAX_INSTANCES: u32 = 100;
/// Default subscription length in blocks: about one month (22000 blocks before the
/// Proof-of-Node fork, 4 × that after it).
pub const DEFAULT_EXPIRE_BLOCKS: u64 = 88_000;
/// Longest subscription FluxOS accepts, in blocks (about a year).
pub const MAX_EXPIRE_BLOCKS: u64 = 1_056_000;
/// CPU cores, RAM (MB) and disk (GB) per component.
pub const COMPONENT_CPU: f64 = 0.5;
/// See [`COMPONENT_CPU`].
pub const COMPONENT_RAM_MB: u32 = 1000;
/// See [`COMPONENT_CPU`]. 1 GB is FluxOS's minimum; a RAM-only store writes nothing to it.
pub const COMPONENT_HDD_GB: u32 = 1;
/// Top-level keys of a v8 spec (appValidator's `verifyObjectKeysCorrectnessOfApp`), in
/// the order FluxOS's `specificationFormatter` writes them.
pub const TOP_LEVEL_KEYS: [&str; 12] = [
    "version",
    "name",
    "description",
    "owner",
    "compose",
    "instances",
    "contacts",
    "geolocation",
    "expire",
    "nodes",
    "staticip",
    "enterprise",
];
/// Optional top-level key of newer FluxOS releases.
pub const OPTIONAL_TOP_LEVEL_KEYS: [&str; 1] = ["datacenter"];
/// Every top-level key in the order `specificationFormatter` writes it (`datacenter`,
/// when present, just before `enterprise`).
///
/// FluxOS checks the registration signature against `JSON.stringify` of the spec
/// *after* `specificationFormatter` (ZelBack/src/services/utils/appUtilities.js) has
/// rebuilt it key by key, so a spec signed in any other order fails with "signature
/// invalid" when it is registered through the API.
pub const FORMATTER_TOP_LEVEL_ORDER: [&str; 13] = [
    "version",
    "name",
    "description",
    "owner",
    "compose",
    "instances",
    "contacts",
    "geolocation",
    "expire",
    "nodes",
    "staticip",
    "datacenter",
    "enterprise",
];
/// Keys of a v8 component (there is no healthcheck field), in the order FluxOS's
/// `specificationFormatter` writes them (see [`FORMATTER_TOP_LEVEL_ORDER`]).
pub const COMPONENT_KEYS: [&str; 13] = [
    "name",
    "description",
    "repotag",
    "ports",
    "domains",
    "environmentParameters",
    "commands",
    "containerPorts",
    "containerData",
    "cpu",
    "ram",
    "hdd",
    "repoauth",
];
/// Host ports FluxOS refuses for apps (`config.fluxapps.bannedPorts`).
pub const BANNED_PORTS: [(u16, u16); 19] = [
    (16100, 16299),
    (26100, 26299),
    (30000, 30099),
    (8384, 8384),
    (27017, 27017),
    (22, 22),
    (23, 23),
    (25, 25),
    (3389, 3389),
    (5900, 5900),
    (5800, 5800),
    (161, 161),
    (512, 512),
    (513, 513),
    (5901, 5901),
    (3388, 3388),
    (4444, 4444),
    (123, 123),
    (53, 53),
];

/// True if FluxOS refuses `port` as an app port.
pub fn is_banned_port(port: u16) -> bool {
    BANNED_PORTS
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&port))
}

/// A v8 app specification. Fields in the order of FluxOS's `specificationFormatter`
/// ([`FORMATTER_TOP_LEVEL_ORDER`]): serde writes them as declared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FluxApp {
    /// Always 8.
    pub version: u8,
    /// App name: domains are `<name>_<port>.app.runonflux.io`.
    pub name: String,
    /// Shown in the Flux marketplace, at most 256 characters.
    pub description: String,
    /// The owner's Flux ID (ZelID).
    pub owner: String,
    /// Containers of every instance.
    pub compose: Vec<Component>,
    /// Instances, each on a different Flux node.
    pub instances: u32,
    /// Contact e-mails (none).
    pub contacts: Vec<String>,
    /// Placement restrictions (none).
    pub geolocation: Vec<String>,
    /// Subscription length in blocks.
    pub expire: u64,
    /// Enterprise node selection (none).
    pub nodes: Vec<String>,
    /// Static-IP nodes only.
    pub staticip: bool,
    /// Empty for a non-enterprise app.
    pub enterprise: String,
}

/// One container of a v8 app. Fields in the order of FluxOS's `specificationFormatter`
/// ([`COMPONENT_KEYS`]): serde writes them as declared.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Letters and digits only.
    pub name: String,
    /// At most 256 characters.
    pub description: String,
    /// Image with an explicit tag.
    pub repotag: String,
    /// Public ports on the Flux node.
    pub ports: Vec<u16>,
    /// Custom domain per port (empty for none).
    pub domains: Vec<String>,
    /// `KEY=value` strings.
    pub environment_parameters: Vec<String>,
    /// Arguments for the image's entrypoint (none).
    pub commands: Vec<String>,
    /// Container ports, one per public port.
    pub container_ports: Vec<u16>,
    /// Mount point of the app's volume; `/tmp` since data lives in RAM only.
    pub container_data: String,
    /// CPU cores.
    pub cpu: f64,
    /// RAM, MB.
    pub ram: u32,
    /// Disk, GB: the volume FluxOS allocates (and bills) at `containerData`.
    pub hdd: u32,
    /// Registry credentials (none: public image).
    pub repoauth: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn banned_ports() {
        for p in [22, 53, 8384, 16100, 16200, 16299, 27017, 30050] {
            assert!(is_banned_port(p), "{p}");
        }
        for p in [8081, 8090, 16099, 16300, 31000, 65535] {
            assert!(!is_banned_port(p), "{p}");
        }
    }
}
