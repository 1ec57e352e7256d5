//! Flux app specifications (version 8): a generator for repram-flux apps and a validator
//! of the rules FluxOS enforces when an app is registered.
//!
//! A v8 component may map at most 5 ports, so `N` nodes per instance become
//! `ceil(N / 5)` components of one container each, every component with its own 5-port
//! range (`8081-8085`, `8086-8090`, …). Components of one instance find each other
//! through the app's Docker network (container `flux<component>_<app>`), instances
//! through the Flux location API.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, HomePage};

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
/// See [`COMPONENT_CPU`].
pub const COMPONENT_HDD_GB: u32 = 2;
/// Share of a component's RAM given to its nodes' value stores, percent.
const STORAGE_SHARE_PERCENT: u64 = 60;

/// Top-level keys of a v8 spec, in the order FluxOS lists them.
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
/// Keys of a v8 component (there is no healthcheck field).
pub const COMPONENT_KEYS: [&str; 13] = [
    "name",
    "description",
    "repotag",
    "ports",
    "containerPorts",
    "environmentParameters",
    "commands",
    "containerData",
    "domains",
    "repoauth",
    "cpu",
    "ram",
    "hdd",
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

/// A v8 app specification (field order as FluxOS lists it).
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

/// One container of a v8 app.
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
    /// Container ports, one per public port.
    pub container_ports: Vec<u16>,
    /// `KEY=value` strings.
    pub environment_parameters: Vec<String>,
    /// Arguments for the image's entrypoint (none).
    pub commands: Vec<String>,
    /// Mount point of the app's volume; `/tmp` since data lives in RAM only.
    pub container_data: String,
    /// Custom domain per port (empty for none).
    pub domains: Vec<String>,
    /// Registry credentials (none: public image).
    pub repoauth: String,
    /// CPU cores.
    pub cpu: f64,
    /// RAM, MB.
    pub ram: u32,
    /// Disk, GB.
    pub hdd: u32,
}

/// What the generator is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecOptions {
    /// `--name`: Flux app name.
    pub name: String,
    /// `--owner`: the owner's Flux ID (ZelID).
    pub owner: String,
    /// `--image`: image with an explicit tag, e.g. `repram/repram-flux:0.1.0`.
    pub image: String,
    /// `--domain`: custom domain routed to the first port (empty: none).
    pub domain: String,
    /// `--nodes`: nodes per instance, 1..=50.
    pub nodes: u16,
    /// `--instances`: instances, 1..=100.
    pub instances: u32,
    /// `--base-port`: first port; components take consecutive 5-port ranges.
    pub base_port: u16,
    /// `--description`: app description.
    pub description: String,
    /// `--expire`: subscription length in blocks.
    pub expire: u64,
    /// `--home-page`: the page every node serves at `/` (`REPRAM_HOME_PAGE`).
    pub home_page: HomePage,
}

/// Default app description.
pub const DEFAULT_DESCRIPTION: &str =
    "REPRAM: a replicated, ephemeral, in-memory key/value store (repram-flux)";

impl SpecOptions {
    /// The options that produce the committed `flux-app.json` (the Fade demo); see
    /// README "Deploying on Flux" for the same command line.
    pub fn fade() -> SpecOptions {
        SpecOptions {
            name: "repram".to_string(),
            owner: "1ReplaceWithYourFluxZelID".to_string(),
            image: "repram/repram-flux:0.1.0".to_string(),
            domain: "fade.repram.io".to_string(),
            nodes: 3,
            instances: 3,
            base_port: 8081,
            description: DEFAULT_DESCRIPTION.to_string(),
            expire: DEFAULT_EXPIRE_BLOCKS,
            home_page: HomePage::Fade,
        }
    }
}

/// Invalid generator input, or a generated spec that would not pass FluxOS. Renders as
/// one line naming the flag, the value and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A flag value is not acceptable.
    #[error("{flag} {value}: expected {expected}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The value given (shortened, control characters escaped).
        value: String,
        /// What the flag accepts.
        expected: String,
    },
    /// Required flags are missing.
    #[error("missing {0}")]
    Missing(String),
    /// A flag is not known.
    #[error("unknown argument {0}")]
    Unknown(String),
    /// A flag was given twice.
    #[error("{0} given twice")]
    Repeated(&'static str),
    /// A flag without its value.
    #[error("{0} needs a value")]
    NoValue(&'static str),
    /// The generated spec breaks a FluxOS rule (a bug, or input beyond what one env
    /// string can hold).
    #[error("the generated spec is not valid: {0}")]
    Generated(String),
}

/// What `repram-flux flux-spec …` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecCommand {
    /// `-h` / `--help`.
    Help,
    /// Print a spec.
    Generate(SpecOptions),
}

/// Usage of `repram-flux flux-spec`.
pub fn usage() -> String {
    format!(
        "usage: repram-flux flux-spec --name NAME --owner ZELID --image REPO:TAG [options]\n\
         \n\
         Prints a Flux app specification (version 8) that runs repram-flux: NODES nodes per\n\
         instance in components of at most {PORTS_PER_COMPONENT} nodes, each component with its own\n\
         {PORTS_PER_COMPONENT}-port range from BASE_PORT. Instances find each other through the Flux\n\
         location API.\n\
         \n\
         \x20 --name NAME         Flux app name: letters, digits, inner hyphens, at most 63\n\
         \x20 --owner ZELID       the owner's Flux ID (ZelID)\n\
         \x20 --image REPO:TAG    image with an explicit tag, e.g. repram/repram-flux:0.1.0\n\
         \x20 --domain DOMAIN     custom domain routed to the first port (default: none)\n\
         \x20 --nodes N           nodes per instance, 1 to {MAX_NODES} (default 3)\n\
         \x20 --instances M       instances, 1 to {MAX_INSTANCES} (default 3)\n\
         \x20 --base-port PORT    first port (default 8081)\n\
         \x20 --description TEXT  app description (at most 256 characters)\n\
         \x20 --expire BLOCKS     subscription in blocks, 1 to {MAX_EXPIRE_BLOCKS} (default {DEFAULT_EXPIRE_BLOCKS}, about a month)\n\
         \x20 --home-page PAGE   page at /: dashboard (default) or fade (the Fade board)\n\
         \x20 -h, --help          print this help\n"
    )
}

/// Parses the arguments after `flux-spec` (`--flag value` or `--flag=value`).
pub fn parse_args<I, S>(args: I) -> Result<SpecCommand, SpecError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    const FLAGS: [&str; 10] = [
        "--name",
        "--owner",
        "--image",
        "--domain",
        "--nodes",
        "--instances",
        "--base-port",
        "--description",
        "--expire",
        "--home-page",
    ];
    let mut values: [Option<String>; 10] = Default::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(SpecCommand::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let Some(i) = FLAGS.iter().position(|f| *f == flag) else {
            return Err(SpecError::Unknown(shown(&arg)));
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(SpecError::NoValue(FLAGS[i]))?,
        };
        if values[i].replace(value).is_some() {
            return Err(SpecError::Repeated(FLAGS[i]));
        }
    }
    let [name, owner, image, domain, nodes, instances, base_port, description, expire, home_page] =
        values;
    let missing: Vec<&str> = [(&name, "--name"), (&owner, "--owner"), (&image, "--image")]
        .iter()
        .filter(|(v, _)| v.is_none())
        .map(|(_, f)| *f)
        .collect();
    if !missing.is_empty() {
        return Err(SpecError::Missing(missing.join(", ")));
    }
    let defaults = SpecOptions::fade();
    Ok(SpecCommand::Generate(SpecOptions {
        name: name.unwrap_or_default(),
        owner: owner.unwrap_or_default(),
        image: image.unwrap_or_default(),
        domain: domain.unwrap_or_default(),
        nodes: number("--nodes", nodes, 3, 1, u64::from(MAX_NODES))?,
        instances: number("--instances", instances, 3, 1, u64::from(MAX_INSTANCES))?,
        base_port: number("--base-port", base_port, defaults.base_port, 1, 65535)?,
        description: description.unwrap_or(defaults.description),
        expire: number("--expire", expire, defaults.expire, 1, MAX_EXPIRE_BLOCKS)?,
        home_page: match home_page.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("dashboard") => HomePage::Dashboard,
            Some("fade") => HomePage::Fade,
            Some(_) => {
                return Err(SpecError::Invalid {
                    flag: "--home-page",
                    value: shown(&home_page.unwrap_or_default()),
                    expected: "dashboard or fade".to_string(),
                })
            }
        },
    }))
}

fn number<T: TryFrom<u64>>(
    flag: &'static str,
    raw: Option<String>,
    default: T,
    min: u64,
    max: u64,
) -> Result<T, SpecError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let s = raw.trim();
    let n = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok()
    } else {
        None
    };
    n.filter(|n| (min..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| SpecError::Invalid {
            flag,
            value: shown(&raw),
            expected: format!("a whole number from {min} to {max}"),
        })
}

/// The spec for `opts`, checked against every v8 rule ([`validate_v8`]) and against
/// the repram-flux configuration ([`check_repram_env`]).
pub fn generate(opts: &SpecOptions) -> Result<FluxApp, SpecError> {
    let invalid = |flag, value: &str, expected: &str| SpecError::Invalid {
        flag,
        value: shown(value),
        expected: expected.to_string(),
    };
    if let Err(why) = check_app_name(&opts.name) {
        return Err(invalid("--name", &opts.name, &why));
    }
    if opts.owner.is_empty()
        || opts.owner.len() > 100
        || !opts.owner.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(invalid(
            "--owner",
            &opts.owner,
            "a Flux ID (ZelID): 1 to 100 letters and digits",
        ));
    }
    if let Err(why) = check_repotag(&opts.image) {
        return Err(invalid("--image", &opts.image, &why));
    }
    let domain = opts.domain.trim().to_ascii_lowercase();
    if !domain.is_empty() && !is_domain(&domain) {
        return Err(invalid(
            "--domain",
            &opts.domain,
            "a domain name such as fade.example.com (no scheme, port or path)",
        ));
    }
    if !(1..=MAX_NODES).contains(&opts.nodes) {
        return Err(invalid(
            "--nodes",
            &opts.nodes.to_string(),
            &format!("a whole number from 1 to {MAX_NODES}"),
        ));
    }
    if !(1..=MAX_INSTANCES).contains(&opts.instances) {
        return Err(invalid(
            "--instances",
            &opts.instances.to_string(),
            &format!("a whole number from 1 to {MAX_INSTANCES}"),
        ));
    }
    if !(1..=MAX_EXPIRE_BLOCKS).contains(&opts.expire) {
        return Err(invalid(
            "--expire",
            &opts.expire.to_string(),
            &format!("a whole number from 1 to {MAX_EXPIRE_BLOCKS}"),
        ));
    }
    if opts.description.trim().is_empty() || opts.description.chars().count() > 256 {
        return Err(invalid(
            "--description",
            &opts.description,
            "1 to 256 characters",
        ));
    }
    let components = usize::from(opts.nodes.div_ceil(PORTS_PER_COMPONENT));
    let last_port = u32::from(opts.base_port) + components as u32 * 5 - 1;
    if last_port > 65535 {
        return Err(invalid(
            "--base-port",
            &opts.base_port.to_string(),
            &format!("a port whose {components} range(s) of 5 end by 65535 (ends at {last_port})"),
        ));
    }
    if let Some(p) = (u32::from(opts.base_port)..=last_port).find(|p| is_banned_port(*p as u16)) {
        return Err(invalid(
            "--base-port",
            &opts.base_port.to_string(),
            &format!("a range without ports Flux bans for apps (port {p} is banned)"),
        ));
    }

    let names: Vec<String> = (0..components)
        .map(|i| {
            if i == 0 {
                "repram".to_string()
            } else {
                format!("repram{}", i + 1)
            }
        })
        .collect();
    let mut compose = Vec::with_capacity(components);
    let mut remaining = opts.nodes;
    for (i, cname) in names.iter().enumerate() {
        let count = remaining.min(PORTS_PER_COMPONENT);
        remaining -= count;
        let base = opts.base_port + (i as u16) * PORTS_PER_COMPONENT;
        let ports: Vec<u16> = (base..base + PORTS_PER_COMPONENT).collect();
        let storage = u64::from(COMPONENT_RAM_MB) * 1024 * 1024 * STORAGE_SHARE_PERCENT
            / 100
            / u64::from(count);
        let mut env = vec![
            "DISCOVERY_DOMAIN=localhost".to_string(),
            format!("BASE_PORT={base}"),
            format!("MAX_PORTS={PORTS_PER_COMPONENT}"),
            format!("NODE_COUNT={count}"),
            "REPLICATION_FACTOR=3".to_string(),
            "REPRAM_CLEANUP_INTERVAL=30".to_string(),
            "REPRAM_RATE_LIMIT=100".to_string(),
            "REPRAM_TRUST_PROXY=true".to_string(),
            format!("REPRAM_MAX_STORAGE_BYTES={storage}"),
        ];
        if opts.home_page != HomePage::Dashboard {
            env.push(format!("REPRAM_HOME_PAGE={}", opts.home_page.as_str()));
        }
        if components > 1 {
            env.push(format!(
                "DISCOVERY_PEERS={}",
                component_seeds(&opts.name, &names, i, opts.base_port)
            ));
        }
        let mut domains = vec![String::new(); ports.len()];
        if i == 0 {
            domains[0] = domain.clone();
        }
        compose.push(Component {
            name: cname.clone(),
            description: format!(
                "{count} repram-flux node{} on ports {}-{}",
                if count == 1 { "" } else { "s" },
                base,
                base + PORTS_PER_COMPONENT - 1
            ),
            repotag: opts.image.clone(),
            container_ports: ports.clone(),
            ports,
            environment_parameters: env,
            commands: Vec::new(),
            container_data: "/tmp".to_string(),
            domains,
            repoauth: String::new(),
            cpu: COMPONENT_CPU,
            ram: COMPONENT_RAM_MB,
            hdd: COMPONENT_HDD_GB,
        });
    }
    let app = FluxApp {
        version: 8,
        name: opts.name.clone(),
        description: opts.description.clone(),
        owner: opts.owner.clone(),
        compose,
        instances: opts.instances,
        contacts: Vec::new(),
        geolocation: Vec::new(),
        expire: opts.expire,
        nodes: Vec::new(),
        staticip: false,
        enterprise: String::new(),
    };
    let value = serde_json::to_value(&app).map_err(|e| SpecError::Generated(e.to_string()))?;
    let mut problems = validate_v8(&value);
    problems.extend(check_repram_env(&value));
    if let Some(first) = problems.first() {
        return Err(SpecError::Generated(first.to_string()));
    }
    Ok(app)
}

/// `DISCOVERY_PEERS` of component `me`: the first port of every other component, by its
/// container name on the app's Docker network; only the neighbours (ring order) when
/// all of them would not fit in one 400-character environment string. Membership
/// gossip spreads the rest.
fn component_seeds(app: &str, names: &[String], me: usize, base_port: u16) -> String {
    let seed = |i: usize| format!("flux{}_{app}:{}", names[i], base_port + i as u16 * 5);
    let all: Vec<String> = (0..names.len()).filter(|i| *i != me).map(seed).collect();
    let joined = all.join(",");
    if "DISCOVERY_PEERS=".len() + joined.len() <= 400 {
        return joined;
    }
    let n = names.len();
    let mut ring = vec![(me + 1) % n, (me + n - 1) % n];
    ring.dedup();
    ring.into_iter().map(seed).collect::<Vec<_>>().join(",")
}

/// The spec as pretty JSON with a final newline: the format of `flux-app.json`.
pub fn to_json(app: &FluxApp) -> String {
    let mut s = serde_json::to_string_pretty(app).unwrap_or_default();
    s.push('\n');
    s
}

/// One broken rule: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path, e.g. `compose[0].ports`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks `spec` against every rule FluxOS applies to a non-enterprise v8 app
/// (type, restriction, key and port-uniqueness checks of its appValidator, and the
/// resource limits). Returns every violation; empty means valid.
pub fn validate_v8(spec: &Value) -> Vec<Violation> {
    let mut v = Rules::default();
    let Some(top) = spec.as_object() else {
        v.add("$", "a spec is a JSON object");
        return v.0;
    };
    for key in top.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str())
            && !OPTIONAL_TOP_LEVEL_KEYS.contains(&key.as_str())
        {
            v.add(key, "unsupported parameter for v8 app specifications");
        }
    }
    for key in TOP_LEVEL_KEYS {
        if !top.contains_key(key) {
            v.add(key, "missing");
        }
    }
    if let Some(d) = top.get("datacenter") {
        if !d.is_boolean() {
            v.add("datacenter", "must be true or false");
        }
    }
    if top.get("version").and_then(Value::as_u64) != Some(8) {
        v.add("version", "must be the number 8");
    }
    match top.get("name").and_then(Value::as_str) {
        Some(name) => {
            if let Err(why) = check_app_name(name) {
                v.add("name", why);
            }
        }
        None => v.add("name", "must be a string"),
    }
    v.string("description", top.get("description"), 1, 256);
    match top.get("owner").and_then(Value::as_str) {
        Some(o)
            if !o.is_empty() && o.len() <= 100 && o.chars().all(|c| c.is_ascii_alphanumeric()) => {}
        _ => v.add("owner", "must be a Flux ID (ZelID): letters and digits"),
    }
    match top.get("instances").and_then(Value::as_u64) {
        Some(n) if (1..=u64::from(MAX_INSTANCES)).contains(&n) => {}
        _ => v.add(
            "instances",
            format!("must be a whole number from 1 to {MAX_INSTANCES}"),
        ),
    }
    v.string_list("contacts", top.get("contacts"), 5, 0, 75);
    v.string_list("geolocation", top.get("geolocation"), 10, 0, 50);
    match top.get("expire").and_then(Value::as_u64) {
        Some(n) if (1..=MAX_EXPIRE_BLOCKS).contains(&n) => {}
        _ => v.add(
            "expire",
            format!("must be a whole number of blocks from 1 to {MAX_EXPIRE_BLOCKS}"),
        ),
    }
    if top.get("nodes").and_then(Value::as_array).map(Vec::len) != Some(0) {
        v.add(
            "nodes",
            "must be [] (node selection is for enterprise apps only)",
        );
    }
    if top.get("staticip") != Some(&Value::Bool(false)) {
        v.add("staticip", "must be false");
    }
    if top.get("enterprise") != Some(&Value::String(String::new())) {
        v.add("enterprise", "must be \"\" for a non-enterprise app");
    }

    let Some(compose) = top.get("compose").and_then(Value::as_array) else {
        v.add("compose", "must be a list of components");
        return v.0;
    };
    if compose.is_empty() || compose.len() > MAX_COMPONENTS {
        v.add(
            "compose",
            format!(
                "must hold 1 to {MAX_COMPONENTS} components, has {}",
                compose.len()
            ),
        );
    }
    let mut names = BTreeSet::new();
    let mut all_ports: Vec<u64> = Vec::new();
    let (mut cpu_tenths, mut ram, mut hdd) = (0u64, 0u64, 0u64);
    for (i, c) in compose.iter().enumerate() {
        let at = |field: &str| format!("compose[{i}].{field}");
        let Some(c) = c.as_object() else {
            v.add(&format!("compose[{i}]"), "a component is a JSON object");
            continue;
        };
        for key in c.keys() {
            if !COMPONENT_KEYS.contains(&key.as_str()) {
                v.add(&at(key), "unsupported parameter for v8 app components");
            }
        }
        for key in COMPONENT_KEYS {
            if !c.contains_key(key) {
                v.add(&at(key), "missing");
            }
        }
        match c.get("name").and_then(Value::as_str) {
            Some(n) => {
                if n.is_empty() || n.len() > 63 || !n.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                    v.add(&at("name"), "must be 1 to 63 letters and digits");
                } else if has_reserved_prefix(n) {
                    v.add(&at("name"), "must not start with flux or zel");
                } else if !names.insert(n.to_string()) {
                    v.add(&at("name"), format!("{n} is used twice"));
                }
            }
            None => v.add(&at("name"), "must be a string"),
        }
        v.string(&at("description"), c.get("description"), 0, 256);
        match c.get("repotag").and_then(Value::as_str) {
            Some(r) => {
                if let Err(why) = check_repotag(r) {
                    v.add(&at("repotag"), why);
                }
            }
            None => v.add(&at("repotag"), "must be a string"),
        }
        let ports = v.port_list(&at("ports"), c.get("ports"), 1);
        let container_ports = v.port_list(&at("containerPorts"), c.get("containerPorts"), 0);
        for p in &ports {
            if *p <= 65535 && is_banned_port(*p as u16) {
                v.add(&at("ports"), format!("port {p} is banned for Flux apps"));
            }
        }
        let domains = v.string_list(&at("domains"), c.get("domains"), usize::MAX, 0, 253);
        if let (Some(d), Some(p)) = (
            c.get("domains").and_then(Value::as_array),
            c.get("ports").and_then(Value::as_array),
        ) {
            if ports.len() > usize::from(PORTS_PER_COMPONENT) {
                v.add(
                    &at("ports"),
                    format!(
                        "{} ports, at most {PORTS_PER_COMPONENT} per component",
                        p.len()
                    ),
                );
            }
            if d.len() != p.len() {
                v.add(&at("domains"), "must have one entry per port");
            }
        }
        if let Some(cp) = c.get("containerPorts").and_then(Value::as_array) {
            if Some(cp.len()) != c.get("ports").and_then(Value::as_array).map(Vec::len) {
                v.add(&at("containerPorts"), "must have one entry per port");
            }
        }
        for d in domains.iter().filter(|d| !d.is_empty()) {
            if !is_domain(&d.to_ascii_lowercase()) {
                v.add(&at("domains"), format!("{} is not a domain name", shown(d)));
            }
        }
        let _ = container_ports;
        all_ports.extend(ports);
        let env = v.string_list(
            &at("environmentParameters"),
            c.get("environmentParameters"),
            20,
            0,
            400,
        );
        for e in &env {
            let key_ok = e.split_once('=').is_some_and(|(k, _)| {
                let mut chars = k.chars();
                chars
                    .next()
                    .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                    && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            });
            if !key_ok {
                v.add(
                    &at("environmentParameters"),
                    format!("{} is not KEY=value", shown(e)),
                );
            }
        }
        v.string_list(&at("commands"), c.get("commands"), 20, 0, 400);
        v.string(&at("containerData"), c.get("containerData"), 2, 200);
        if c.get("repoauth") != Some(&Value::String(String::new())) {
            v.add(
                &at("repoauth"),
                "must be \"\" (private images are for enterprise apps only)",
            );
        }
        match c.get("cpu").and_then(Value::as_f64) {
            Some(cpu) if cpu >= 0.1 && ((cpu * 10.0).round() - cpu * 10.0).abs() < 1e-9 => {
                cpu_tenths += (cpu * 10.0).round() as u64;
            }
            _ => v.add(&at("cpu"), "must be at least 0.1 cores, in steps of 0.1"),
        }
        match c.get("ram").and_then(Value::as_u64) {
            Some(r) if r >= 100 && r % 100 == 0 => ram += r,
            _ => v.add(&at("ram"), "must be at least 100 MB, in steps of 100"),
        }
        match c.get("hdd").and_then(Value::as_u64) {
            Some(h) if h >= 1 => hdd += h,
            _ => v.add(&at("hdd"), "must be a whole number of GB, at least 1"),
        }
    }
    let mut seen = BTreeSet::new();
    for p in &all_ports {
        if !seen.insert(*p) {
            v.add(
                "compose",
                format!("port {p} is used twice; ports must be unique across the app"),
            );
        }
    }
    // Largest node (stratus) minus what FluxOS keeps for itself.
    if cpu_tenths > 150 {
        v.add(
            "compose",
            format!("{} cores in all, at most 15", cpu_tenths as f64 / 10.0),
        );
    }
    if ram > 59_000 {
        v.add("compose", format!("{ram} MB of RAM in all, at most 59000"));
    }
    if hdd > 820 {
        v.add("compose", format!("{hdd} GB of disk in all, at most 820"));
    }
    v.0
}

/// repram-specific checks of a spec: in every component the environment is a valid
/// repram-flux configuration, the ports are exactly `BASE_PORT..BASE_PORT+MAX_PORTS-1`
/// (container port = public port, since nodes advertise the port they listen on), and
/// `NODE_COUNT` fits.
pub fn check_repram_env(spec: &Value) -> Vec<Violation> {
    let mut v = Rules::default();
    let Some(compose) = spec.get("compose").and_then(Value::as_array) else {
        return v.0;
    };
    for (i, c) in compose.iter().enumerate() {
        let at = |field: &str| format!("compose[{i}].{field}");
        let pairs: Vec<(String, String)> = c
            .get("environmentParameters")
            .and_then(Value::as_array)
            .map(|env| {
                env.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|e| e.split_once('='))
                    .map(|(k, val)| (k.to_string(), val.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let config = match Config::from_iter(pairs) {
            Ok(c) => c,
            Err(e) => {
                v.add(
                    &at("environmentParameters"),
                    format!("not a valid configuration: {e}"),
                );
                continue;
            }
        };
        let want: Vec<u64> = config.port_range().map(u64::from).collect();
        let list = |key: &str| -> Vec<u64> {
            c.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        if list("ports") != want {
            v.add(
                &at("ports"),
                format!(
                    "must be BASE_PORT..=BASE_PORT+MAX_PORTS-1 ({}-{})",
                    config.port_range().start(),
                    config.port_range().end()
                ),
            );
        }
        if list("containerPorts") != want {
            v.add(&at("containerPorts"), "must equal ports");
        }
    }
    v.0
}

#[derive(Default)]
struct Rules(Vec<Violation>);

impl Rules {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Violation {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn string(&mut self, path: &str, value: Option<&Value>, min: usize, max: usize) {
        match value.and_then(Value::as_str) {
            Some(s) if (min..=max).contains(&s.chars().count()) => {}
            _ => self.add(
                path,
                format!("must be a string of {min} to {max} characters"),
            ),
        }
    }

    /// A list of strings: at most `max_items`, each `min..=max` characters.
    fn string_list(
        &mut self,
        path: &str,
        value: Option<&Value>,
        max_items: usize,
        min: usize,
        max: usize,
    ) -> Vec<String> {
        let Some(items) = value.and_then(Value::as_array) else {
            self.add(path, "must be a list of strings");
            return Vec::new();
        };
        if items.len() > max_items {
            self.add(
                path,
                format!("{} entries, at most {max_items}", items.len()),
            );
        }
        let mut out = Vec::new();
        for item in items {
            match item.as_str() {
                Some(s) if (min..=max).contains(&s.chars().count()) => out.push(s.to_string()),
                Some(s) => self.add(
                    path,
                    format!("{} must have {min} to {max} characters", shown(s)),
                ),
                None => self.add(path, "must hold strings only"),
            }
        }
        out
    }

    /// A list of whole numbers in `min..=65535`.
    fn port_list(&mut self, path: &str, value: Option<&Value>, min: u64) -> Vec<u64> {
        let Some(items) = value.and_then(Value::as_array) else {
            self.add(path, "must be a list of port numbers");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_u64() {
                Some(p) if (min..=65535).contains(&p) => out.push(p),
                _ => self.add(
                    path,
                    format!("{item} is not a port number from {min} to 65535"),
                ),
            }
        }
        out
    }
}

/// A v8 app name: `^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$`, at most 63 characters,
/// not starting with `flux` or `zel`, not `watchtower`.
pub fn check_app_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(
            "1 to 63 letters, digits and hyphens, not starting or ending with a hyphen".into(),
        );
    }
    if has_reserved_prefix(name) {
        return Err("a name that does not start with flux or zel".into());
    }
    if name.eq_ignore_ascii_case("watchtower") {
        return Err("a name other than watchtower".into());
    }
    Ok(())
}

fn has_reserved_prefix(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("flux") || lower.starts_with("zel")
}

/// An image reference with an explicit tag: `[registry[:port]/]path:tag`, at most 200
/// characters, lower-case path, no digest.
pub fn check_repotag(repotag: &str) -> Result<(), String> {
    const EXPECTED: &str = "an image with an explicit tag, such as repram/repram-flux:0.1.0 \
                            (lower-case path, at most 200 characters)";
    if repotag.is_empty() || repotag.len() > 200 || repotag.contains('@') {
        return Err(EXPECTED.into());
    }
    let last_slash = repotag.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = repotag[last_slash..].rfind(':').map(|i| i + last_slash) else {
        return Err(EXPECTED.into());
    };
    let (path, tag) = (&repotag[..colon], &repotag[colon + 1..]);
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let path_ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains("//")
        && path.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | ':')
        });
    if tag_ok && path_ok {
        Ok(())
    } else {
        Err(EXPECTED.into())
    }
}

/// A lower-case domain name with at least two labels.
fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// `s` on one line, at most 80 characters.
fn shown(s: &str) -> String {
    crate::error::one_line(s, 80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fade_value() -> Value {
        serde_json::to_value(generate(&SpecOptions::fade()).unwrap()).unwrap()
    }

    fn paths(spec: &Value) -> Vec<String> {
        validate_v8(spec).into_iter().map(|v| v.path).collect()
    }

    #[test]
    fn fade_spec_shape() {
        let app = generate(&SpecOptions::fade()).unwrap();
        assert_eq!(app.compose.len(), 1);
        let c = &app.compose[0];
        assert_eq!(c.ports, [8081, 8082, 8083, 8084, 8085]);
        assert_eq!(c.container_ports, c.ports);
        assert_eq!(c.domains, ["fade.repram.io", "", "", "", ""]);
        assert!(c
            .environment_parameters
            .contains(&"NODE_COUNT=3".to_string()));
        assert!(c
            .environment_parameters
            .contains(&"MAX_PORTS=5".to_string()));
        assert!(c
            .environment_parameters
            .contains(&"REPRAM_TRUST_PROXY=true".to_string()));
        assert_eq!(c.container_data, "/tmp");
        assert_eq!(app.instances, 3);
        assert!(validate_v8(&fade_value()).is_empty());
        let text = to_json(&app);
        assert!(text.ends_with("}\n"));
        assert!(text.contains("\"containerPorts\""));
        assert!(text.contains("\"environmentParameters\""));
    }

    #[test]
    fn every_node_count_makes_valid_specs() {
        for nodes in 1..=MAX_NODES {
            let opts = SpecOptions {
                nodes,
                ..SpecOptions::fade()
            };
            let app = generate(&opts).unwrap_or_else(|e| panic!("nodes={nodes}: {e}"));
            let value = serde_json::to_value(&app).unwrap();
            assert!(validate_v8(&value).is_empty(), "nodes={nodes}");
            assert!(check_repram_env(&value).is_empty(), "nodes={nodes}");
            assert_eq!(app.compose.len(), usize::from(nodes.div_ceil(5)));
            let total: u32 = app
                .compose
                .iter()
                .flat_map(|c| &c.environment_parameters)
                .filter_map(|e| e.strip_prefix("NODE_COUNT="))
                .map(|n| n.parse::<u32>().unwrap())
                .sum();
            assert_eq!(total, u32::from(nodes));
        }
    }

    #[test]
    fn long_names_with_many_components_seed_neighbours_only() {
        let opts = SpecOptions {
            name: "a".repeat(63),
            nodes: 50,
            ..SpecOptions::fade()
        };
        let app = generate(&opts).unwrap();
        let peers = app.compose[3]
            .environment_parameters
            .iter()
            .find_map(|e| e.strip_prefix("DISCOVERY_PEERS="))
            .unwrap();
        assert_eq!(peers.split(',').count(), 2);
        assert!(peers.contains(&format!("fluxrepram5_{}:8101", opts.name)));
        assert!(peers.contains(&format!("fluxrepram3_{}:8091", opts.name)));
        let short = generate(&SpecOptions {
            nodes: 12,
            ..SpecOptions::fade()
        })
        .unwrap();
        let peers = short.compose[0]
            .environment_parameters
            .iter()
            .find_map(|e| e.strip_prefix("DISCOVERY_PEERS="))
            .unwrap();
        assert_eq!(peers, "fluxrepram2_repram:8086,fluxrepram3_repram:8091");
    }

    #[test]
    fn generator_rejects_bad_input_with_the_flag_name() {
        let base = SpecOptions::fade;
        let cases = [
            (SpecOptions { name: "-x".into(), ..base() }, "--name -x: expected"),
            (SpecOptions { name: "a_b".into(), ..base() }, "--name a_b: expected"),
            (SpecOptions { name: "fluxy".into(), ..base() }, "--name fluxy: expected a name that does not start with flux"),
            (SpecOptions { name: "a".repeat(64), ..base() }, "--name aaaa"),
            (SpecOptions { owner: String::new(), ..base() }, "--owner : expected a Flux ID"),
            (SpecOptions { owner: "a b".into(), ..base() }, "--owner a b: expected"),
            (SpecOptions { image: "repram/repram-flux".into(), ..base() }, "--image repram/repram-flux: expected an image with an explicit tag"),
            (SpecOptions { image: "Repram/x:1".into(), ..base() }, "--image Repram/x:1: expected"),
            (SpecOptions { image: "x:".into(), ..base() }, "--image x:: expected"),
            (SpecOptions { image: "localhost:5000/x".into(), ..base() }, "--image localhost:5000/x: expected"),
            (SpecOptions { domain: "https://fade.repram.io".into(), ..base() }, "--domain https://fade.repram.io: expected a domain"),
            (SpecOptions { domain: "fade.repram.io:8081".into(), ..base() }, "--domain fade.repram.io:8081: expected"),
            (SpecOptions { nodes: 0, ..base() }, "--nodes 0: expected a whole number from 1 to 50"),
            (SpecOptions { nodes: 51, ..base() }, "--nodes 51: expected a whole number from 1 to 50"),
            (SpecOptions { instances: 0, ..base() }, "--instances 0: expected a whole number from 1 to 100"),
            (SpecOptions { instances: 101, ..base() }, "--instances 101"),
            (SpecOptions { base_port: 65533, ..base() }, "--base-port 65533: expected a port whose 1 range(s) of 5 end by 65535 (ends at 65537)"),
            (SpecOptions { base_port: 16098, ..base() }, "--base-port 16098: expected a range without ports Flux bans for apps (port 16100 is banned)"),
            (SpecOptions { expire: 0, ..base() }, "--expire 0"),
            (SpecOptions { description: "x".repeat(257), ..base() }, "--description xxx"),
        ];
        for (opts, want) in cases {
            let msg = generate(&opts).unwrap_err().to_string();
            assert!(
                msg.starts_with(want),
                "{opts:?}\n gave {msg:?}\n want {want:?}"
            );
            assert!(!msg.contains('\n'));
        }
        assert!(generate(&SpecOptions {
            image: "localhost:5000/team/x:1.2-rc_1".into(),
            ..base()
        })
        .is_ok());
        assert!(generate(&SpecOptions {
            domain: String::new(),
            ..base()
        })
        .is_ok());
        assert!(generate(&SpecOptions {
            domain: " Fade.Repram.IO ".into(),
            ..base()
        })
        .is_ok());
    }

    #[test]
    fn argument_parsing() {
        let cmd = parse_args([
            "--name",
            "demo",
            "--owner=1abc",
            "--image",
            "me/img:1",
            "--domain",
            "d.example.com",
            "--nodes",
            "7",
            "--instances=5",
            "--base-port",
            "9001",
        ])
        .unwrap();
        let SpecCommand::Generate(o) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(
            (o.name.as_str(), o.owner.as_str(), o.image.as_str()),
            ("demo", "1abc", "me/img:1")
        );
        assert_eq!((o.nodes, o.instances, o.base_port), (7, 5, 9001));
        assert_eq!(o.domain, "d.example.com");
        assert_eq!(o.expire, DEFAULT_EXPIRE_BLOCKS);
        let SpecCommand::Generate(o) =
            parse_args(["--name", "a", "--owner", "b", "--image", "c:1"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((o.nodes, o.instances, o.domain.as_str()), (3, 3, ""));
        assert_eq!(o.home_page, HomePage::Dashboard);
        let SpecCommand::Generate(o) = parse_args([
            "--name",
            "a",
            "--owner",
            "b",
            "--image",
            "c:1",
            "--home-page=Fade",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.home_page, HomePage::Fade);
        let env = &generate(&o).unwrap().compose[0].environment_parameters;
        assert!(
            env.contains(&"REPRAM_HOME_PAGE=fade".to_string()),
            "{env:?}"
        );
        assert_eq!(parse_args(["--help"]).unwrap(), SpecCommand::Help);
        assert_eq!(
            parse_args(["--nodes", "1", "-h"]).unwrap(),
            SpecCommand::Help
        );
        let err = |args: &[&str]| parse_args(args.iter().copied()).unwrap_err().to_string();
        assert_eq!(err(&[]), "missing --name, --owner, --image");
        assert_eq!(err(&["--name", "a", "--owner", "b"]), "missing --image");
        assert_eq!(err(&["--bogus"]), "unknown argument --bogus");
        assert_eq!(err(&["positional"]), "unknown argument positional");
        assert_eq!(err(&["--name"]), "--name needs a value");
        assert_eq!(err(&["--name", "a", "--name", "b"]), "--name given twice");
        let base = ["--name", "a", "--owner", "b", "--image", "c:1"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            parse_args(v).unwrap_err().to_string()
        };
        assert_eq!(
            with(&["--nodes", "abc"]),
            "--nodes abc: expected a whole number from 1 to 50"
        );
        assert_eq!(
            with(&["--nodes", "-1"]),
            "--nodes -1: expected a whole number from 1 to 50"
        );
        assert_eq!(
            with(&["--nodes", "99999999999999999999999"]),
            "--nodes 99999999999999999999999: expected a whole number from 1 to 50"
        );
        assert_eq!(
            with(&["--instances", "0"]),
            "--instances 0: expected a whole number from 1 to 100"
        );
        assert_eq!(
            with(&["--base-port", "70000"]),
            "--base-port 70000: expected a whole number from 1 to 65535"
        );
        assert_eq!(
            with(&["--home-page", "blog"]),
            "--home-page blog: expected dashboard or fade"
        );
        assert!(usage().contains("--instances"));
    }

    #[test]
    fn validator_catches_each_rule() {
        let good = fade_value();
        assert!(validate_v8(&good).is_empty());
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            paths(&v)
        };
        fn c0(v: &mut Value) -> &mut serde_json::Map<String, Value> {
            v["compose"][0].as_object_mut().unwrap()
        }
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                broken(&|v| {
                    v["healthcheck"] = json!({});
                }),
                "healthcheck",
            ),
            (
                broken(&|v| {
                    v.as_object_mut().unwrap().remove("expire");
                }),
                "expire",
            ),
            (
                broken(&|v| {
                    v["version"] = json!(7);
                }),
                "version",
            ),
            (
                broken(&|v| {
                    v["version"] = json!("8");
                }),
                "version",
            ),
            (
                broken(&|v| {
                    v["name"] = json!("has_underscore");
                }),
                "name",
            ),
            (
                broken(&|v| {
                    v["name"] = json!("zelapp");
                }),
                "name",
            ),
            (
                broken(&|v| {
                    v["name"] = json!("a".repeat(64));
                }),
                "name",
            ),
            (
                broken(&|v| {
                    v["description"] = json!("x".repeat(257));
                }),
                "description",
            ),
            (
                broken(&|v| {
                    v["owner"] = json!("");
                }),
                "owner",
            ),
            (
                broken(&|v| {
                    v["instances"] = json!(0);
                }),
                "instances",
            ),
            (
                broken(&|v| {
                    v["instances"] = json!(101);
                }),
                "instances",
            ),
            (
                broken(&|v| {
                    v["instances"] = json!(2.5);
                }),
                "instances",
            ),
            (
                broken(&|v| {
                    v["contacts"] = json!(["a", "b", "c", "d", "e", "f"]);
                }),
                "contacts",
            ),
            (
                broken(&|v| {
                    v["geolocation"] = json!("EU");
                }),
                "geolocation",
            ),
            (
                broken(&|v| {
                    v["expire"] = json!(0);
                }),
                "expire",
            ),
            (
                broken(&|v| {
                    v["expire"] = json!(2_000_000);
                }),
                "expire",
            ),
            (
                broken(&|v| {
                    v["nodes"] = json!(["abc:0"]);
                }),
                "nodes",
            ),
            (
                broken(&|v| {
                    v["staticip"] = json!("false");
                }),
                "staticip",
            ),
            (
                broken(&|v| {
                    v["enterprise"] = json!(false);
                }),
                "enterprise",
            ),
            (
                broken(&|v| {
                    v["datacenter"] = json!("yes");
                }),
                "datacenter",
            ),
            (
                broken(&|v| {
                    v["compose"] = json!([]);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v).insert("healthcheck".into(), json!({"test": "x"}));
                }),
                "compose[0].healthcheck",
            ),
            (
                broken(&|v| {
                    c0(v).insert("tiered".into(), json!(false));
                }),
                "compose[0].tiered",
            ),
            (
                broken(&|v| {
                    c0(v).remove("repoauth");
                }),
                "compose[0].repoauth",
            ),
            (
                broken(&|v| {
                    c0(v)["name"] = json!("re-pram");
                }),
                "compose[0].name",
            ),
            (
                broken(&|v| {
                    c0(v)["name"] = json!("fluxnode");
                }),
                "compose[0].name",
            ),
            (
                broken(&|v| {
                    c0(v)["repotag"] = json!("repram/repram-flux");
                }),
                "compose[0].repotag",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([8081, 8082, 8083, 8084, 8085, 8086]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!(["8081", 8082, 8083, 8084, 8085]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([22, 8082, 8083, 8084, 8085]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([8081, 8082, 8083, 8084, 70000]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([8081, 8081, 8083, 8084, 8085]);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v)["containerPorts"] = json!([8081]);
                }),
                "compose[0].containerPorts",
            ),
            (
                broken(&|v| {
                    c0(v)["domains"] = json!(["fade.repram.io"]);
                }),
                "compose[0].domains",
            ),
            (
                broken(&|v| {
                    c0(v)["domains"] = json!(["http://x.io", "", "", "", ""]);
                }),
                "compose[0].domains",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] = json!({"A": "1"});
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] = json!(["NO_EQUALS_SIGN"]);
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] = json!([format!("A={}", "x".repeat(400))]);
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] =
                        json!((0..21).map(|i| format!("V{i}=1")).collect::<Vec<_>>());
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["commands"] = json!([1]);
                }),
                "compose[0].commands",
            ),
            (
                broken(&|v| {
                    c0(v)["containerData"] = json!("/");
                }),
                "compose[0].containerData",
            ),
            (
                broken(&|v| {
                    c0(v)["repoauth"] = json!("user:pass");
                }),
                "compose[0].repoauth",
            ),
            (
                broken(&|v| {
                    c0(v)["cpu"] = json!(0.05);
                }),
                "compose[0].cpu",
            ),
            (
                broken(&|v| {
                    c0(v)["cpu"] = json!(0.55);
                }),
                "compose[0].cpu",
            ),
            (
                broken(&|v| {
                    c0(v)["cpu"] = json!(16);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v)["ram"] = json!(150);
                }),
                "compose[0].ram",
            ),
            (
                broken(&|v| {
                    c0(v)["ram"] = json!(60000);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v)["hdd"] = json!(0);
                }),
                "compose[0].hdd",
            ),
            (
                broken(&|v| {
                    c0(v)["hdd"] = json!(1.5);
                }),
                "compose[0].hdd",
            ),
        ];
        for (found, want) in cases {
            assert!(
                found.iter().any(|p| p == want),
                "expected a violation at {want}, got {found:?}"
            );
        }
        assert_eq!(paths(&json!([])), ["$"]);
        assert_eq!(paths(&json!(null)), ["$"]);
        assert!(!paths(&json!({})).is_empty());
    }

    #[test]
    fn repram_env_consistency() {
        let good = fade_value();
        assert!(check_repram_env(&good).is_empty());
        let mut v = good.clone();
        v["compose"][0]["environmentParameters"] = json!(["NODE_COUNT=abc"]);
        let found = check_repram_env(&v);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("NODE_COUNT=abc: expected a whole number"),
            "{found:?}"
        );
        let mut v = good.clone();
        v["compose"][0]["containerPorts"] = json!([81, 82, 83, 84, 85]);
        assert_eq!(check_repram_env(&v)[0].path, "compose[0].containerPorts");
        let mut v = good;
        v["compose"][0]["environmentParameters"] = json!(["BASE_PORT=9000", "MAX_PORTS=5"]);
        assert_eq!(check_repram_env(&v)[0].path, "compose[0].ports");
    }

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
