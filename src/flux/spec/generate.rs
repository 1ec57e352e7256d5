//! The generator: a v8 spec that runs repram-flux, `N` nodes per instance in components
//! of at most 5 ports each.

use super::enterprise::{check_blob, EnterprisePlaintext, Secret};
use super::error::SpecError;
use super::model::*;
use super::names::{check_app_name, check_repotag, is_domain, shown};
use super::validate::{check_repram_env, validate, View, SECRET_VAR};
use crate::config::HomePage;

/// Share of a component's RAM given to the store its nodes share, percent.
const STORAGE_SHARE_PERCENT: u64 = 60;

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

/// The example's owner: a placeholder no signature can match.
pub const EXAMPLE_OWNER: &str = "1ReplaceWithYourFluxZelID";
/// The example's image.
pub const EXAMPLE_IMAGE: &str = "repram/repram-flux:0.1.0";
/// The example's custom domain (the Fade demo's).
pub const EXAMPLE_DOMAIN: &str = "fade.repram.io";

/// Default app description.
pub const DEFAULT_DESCRIPTION: &str =
    "REPRAM: a replicated, ephemeral, in-memory key/value store (repram-flux)";

impl SpecOptions {
    /// The options that produce the committed `flux-app.json` (the Fade demo); see
    /// README "Deploying on Flux" for the same command line.
    pub fn fade() -> SpecOptions {
        SpecOptions {
            name: "repram".to_string(),
            owner: EXAMPLE_OWNER.to_string(),
            image: EXAMPLE_IMAGE.to_string(),
            domain: EXAMPLE_DOMAIN.to_string(),
            nodes: 3,
            instances: 3,
            base_port: 8081,
            description: DEFAULT_DESCRIPTION.to_string(),
            expire: DEFAULT_EXPIRE_BLOCKS,
            home_page: HomePage::Fade,
        }
    }
}

/// The spec for `opts`, checked against every v8 rule ([`validate_v8`]) and against
/// the repram-flux configuration ([`check_repram_env`]).
pub fn generate(opts: &SpecOptions) -> Result<FluxApp, SpecError> {
    let app = build(opts, None)?;
    checked(app, View::Public)
}

/// What the owner of an enterprise app encrypts: the components of [`generate`] with
/// `REPRAM_CLUSTER_SECRET` in every component's environment, as `{contacts, compose}`
/// (see [`super::enterprise`]). Checked as ArcaneOS nodes check it once decrypted.
pub fn generate_enterprise(
    opts: &SpecOptions,
    secret: &Secret,
) -> Result<EnterprisePlaintext, SpecError> {
    let app = checked(build(opts, Some(secret))?, View::Decrypted)?;
    Ok(EnterprisePlaintext {
        contacts: app.contacts,
        compose: app.compose,
    })
}

/// The public spec of an enterprise app whose encrypted `{contacts, compose}` is `blob`:
/// the spec of [`generate`] with `compose: []`, `contacts: []`, `enterprise: blob`. The
/// registration signature covers exactly this.
pub fn enterprise_public(opts: &SpecOptions, blob: &str) -> Result<FluxApp, SpecError> {
    if let Err(why) = check_blob(blob) {
        return Err(SpecError::Invalid {
            flag: "--enterprise-blob",
            value: shown(blob),
            expected: format!("the encrypted enterprise field: {why}"),
        });
    }
    let mut app = generate(opts)?;
    app.compose.clear();
    app.contacts.clear();
    app.enterprise = blob.to_string();
    checked(app, View::Public)
}

/// `app` if it passes every rule of `view` and the repram configuration checks.
fn checked(app: FluxApp, view: View) -> Result<FluxApp, SpecError> {
    let value = serde_json::to_value(&app).map_err(|e| SpecError::Generated(e.to_string()))?;
    let mut problems = validate(&value, view);
    problems.extend(check_repram_env(&value));
    match problems.first() {
        Some(first) => Err(SpecError::Generated(first.to_string())),
        None => Ok(app),
    }
}

/// The spec for `opts`, unchecked; with `secret`, every component's environment
/// carries it.
fn build(opts: &SpecOptions, secret: Option<&Secret>) -> Result<FluxApp, SpecError> {
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
        let storage = u64::from(COMPONENT_RAM_MB) * 1024 * 1024 * STORAGE_SHARE_PERCENT / 100;
        let mut env = vec![
            "DISCOVERY_DOMAIN=localhost".to_string(),
            format!("BASE_PORT={base}"),
            format!("MAX_PORTS={PORTS_PER_COMPONENT}"),
            format!("NODE_COUNT={count}"),
            "REPLICATION_FACTOR=3".to_string(),
            "REPRAM_CLEANUP_INTERVAL=30".to_string(),
            "REPRAM_RATE_LIMIT=100".to_string(),
            format!("REPRAM_MAX_STORAGE_BYTES={storage}"),
        ];
        if opts.home_page != HomePage::Dashboard {
            env.push(format!("REPRAM_HOME_PAGE={}", opts.home_page.as_str()));
        }
        if let Some(secret) = secret {
            env.push(format!("{SECRET_VAR}={}", secret.expose()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::spec::validate_v8;
    use serde_json::Value;

    fn fade_value() -> Value {
        serde_json::to_value(generate(&SpecOptions::fade()).unwrap()).unwrap()
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
            .iter()
            .all(|e| !e.starts_with("REPRAM_TRUST_PROXY=")));
        assert_eq!(c.hdd, 1);
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
    fn enterprise_plaintext_carries_the_secret_in_every_component() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef", "test").unwrap();
        let opts = SpecOptions {
            nodes: 12,
            ..SpecOptions::fade()
        };
        let plain = generate_enterprise(&opts, &secret).unwrap();
        assert_eq!(plain.contacts, Vec::<String>::new());
        assert_eq!(plain.compose.len(), 3);
        for c in &plain.compose {
            let with = format!("{SECRET_VAR}={}", secret.expose());
            assert!(c.environment_parameters.contains(&with), "{c:?}");
        }
        // Apart from the secret, the components are the public generator's.
        let public = generate(&opts).unwrap();
        for (p, c) in public.compose.iter().zip(&plain.compose) {
            let mut c = c.clone();
            c.environment_parameters
                .retain(|e| !e.starts_with("REPRAM_CLUSTER_SECRET="));
            assert_eq!(p, &c);
        }
        let text = serde_json::to_string(&plain).unwrap();
        assert!(text.starts_with(r#"{"contacts":[],"compose":[{"name":"repram""#));
        // The same components in a public spec are refused.
        let mut leaked = serde_json::to_value(&public).unwrap();
        leaked["compose"] = serde_json::to_value(&plain.compose).unwrap();
        let found = validate_v8(&leaked);
        assert!(
            found
                .iter()
                .any(|v| v.path == "compose[0].environmentParameters"
                    && v.message.contains("REPRAM_CLUSTER_SECRET in a public spec")),
            "{found:?}"
        );
    }

    #[test]
    fn enterprise_public_spec_is_the_envelope() {
        let blob = format!("{}QQ==", "QUJD".repeat(99)); // 298 bytes decoded
        let app = enterprise_public(&SpecOptions::fade(), &blob).unwrap();
        assert!(app.compose.is_empty() && app.contacts.is_empty());
        assert_eq!(app.enterprise, blob);
        let value = serde_json::to_value(&app).unwrap();
        assert_eq!(validate_v8(&value), []);
        let text = to_json(&app);
        assert_eq!(crate::flux::spec::key_order_violations(&text).unwrap(), []);
        let e = enterprise_public(&SpecOptions::fade(), "AAAA").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("--enterprise-blob AAAA: expected the encrypted"));
    }
}
