//! The `repram-flux flux-spec` command line: generate a spec (normal or enterprise), or
//! check one. [`run`] does it all and hands back what to print and the exit status, so
//! `main` only passes the arguments and the environment's secret in.

use super::args::{parse_args, SpecCommand};
use super::enterprise::Secret;
use super::error::SpecError;
use super::generate::{enterprise_public, generate, generate_enterprise, to_json};
use super::model::*;
use super::names::shown;
use super::order::key_order_violations;
use super::placeholders::placeholder_warnings;
use super::validate::{check_repram_env, validate_v8, Violation, SECRET_VAR};

/// Exit status: printed, or the checked spec is valid without warnings.
pub const EXIT_OK: u8 = 0;
/// Exit status of `--check`: the spec breaks a rule FluxOS (or repram) enforces.
pub const EXIT_INVALID: u8 = 1;
/// Exit status: bad command line, generator input refused, or the file unreadable.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `--check`: valid, with warnings (placeholders left, keys out of order).
pub const EXIT_WARNINGS: u8 = 3;

/// Usage of `repram-flux flux-spec`.
pub fn usage() -> String {
    format!(
        "usage: repram-flux flux-spec --name NAME --owner ZELID --image REPO:TAG [options]\n\
         \x20      repram-flux flux-spec --enterprise --name NAME --owner ZELID --image REPO:TAG [options]\n\
         \x20      repram-flux flux-spec --enterprise-blob BLOB --name NAME --owner ZELID --image REPO:TAG [options]\n\
         \x20      repram-flux flux-spec --check FILE\n\
         \n\
         Prints a Flux app specification (version 8) that runs repram-flux: NODES nodes per\n\
         instance in components of at most {PORTS_PER_COMPONENT} nodes, each component with its own\n\
         {PORTS_PER_COMPONENT}-port range from BASE_PORT. Instances find each other through the Flux\n\
         location API. Keys are written in the order FluxOS signs them.\n\
         \n\
         \x20 --name NAME         Flux app name: letters, digits, inner hyphens, at most 63\n\
         \x20 --owner ZELID       the owner's Flux ID (ZelID)\n\
         \x20 --image REPO:TAG    image with an explicit tag, e.g. you/repram-flux:0.1.0\n\
         \x20 --domain DOMAIN     custom domain routed to the first port (default: none)\n\
         \x20 --nodes N           nodes per instance, 1 to {MAX_NODES} (default 3)\n\
         \x20 --instances M       instances, 1 to {MAX_INSTANCES} (default 3)\n\
         \x20 --base-port PORT    first port (default 8081)\n\
         \x20 --description TEXT  app description (at most 256 characters)\n\
         \x20 --expire BLOCKS     subscription in blocks, 1 to {MAX_EXPIRE_BLOCKS} (default {DEFAULT_EXPIRE_BLOCKS}, about a month)\n\
         \x20 --home-page PAGE   page at /: dashboard (default) or fade (the Fade board)\n\
         \x20 -h, --help          print this help\n\
         \n\
         A normal app's spec, environment included, is public: it never carries a secret, and\n\
         its node routes are closed to every address outside the app. An enterprise app keeps\n\
         its components encrypted, so they can carry {SECRET_VAR}:\n\
         \n\
         \x20 --enterprise           print the plaintext {{contacts, compose}} to encrypt with\n\
         \x20                        Flux's enterprise flow, {SECRET_VAR} in every component\n\
         \x20 --cluster-secret S     the secret for --enterprise (else from {SECRET_VAR};\n\
         \x20                        there is no default; openssl rand -hex 32 makes one)\n\
         \x20 --enterprise-blob B    print the public spec of the enterprise app whose encrypted\n\
         \x20                        {{contacts, compose}} is B: compose [], contacts [], enterprise B\n\
         \n\
         \x20 --check FILE           check a spec (FILE, or - for standard input) against FluxOS's\n\
         \x20                        rules; warns about placeholders (an owner that is no address,\n\
         \x20                        the example image or domain) and keys out of FluxOS's order\n\
         \n\
         Exit status: {EXIT_OK} printed, or the checked spec is valid; {EXIT_INVALID} the checked spec breaks a\n\
         rule; {EXIT_USAGE} bad arguments, input the generator refuses, or an unreadable file; {EXIT_WARNINGS} the\n\
         checked spec is valid but has warnings. Generating prints warnings on stderr and exits {EXIT_OK}.\n"
    )
}

/// What to print and how to exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// For standard output.
    pub stdout: String,
    /// For standard error, whole lines.
    pub stderr: String,
    /// Exit status.
    pub code: u8,
}

/// Runs `repram-flux flux-spec ARGS`: `env_secret` is `REPRAM_CLUSTER_SECRET` from the
/// environment (used only by `--enterprise` without `--cluster-secret`), `read` reads
/// the file of `--check` (`-`: standard input).
pub fn run(
    args: Vec<String>,
    env_secret: Option<String>,
    read: &dyn Fn(&str) -> std::io::Result<String>,
) -> Outcome {
    let usage_error = |e: SpecError| Outcome {
        stdout: String::new(),
        stderr: format!("repram-flux flux-spec: {e} (see repram-flux flux-spec --help)\n"),
        code: EXIT_USAGE,
    };
    let cmd = match parse_args(args) {
        Ok(cmd) => cmd,
        Err(e) => return usage_error(e),
    };
    let generated = match cmd {
        SpecCommand::Help => {
            return Outcome {
                stdout: usage(),
                stderr: String::new(),
                code: EXIT_OK,
            }
        }
        SpecCommand::Check(path) => {
            return match read(&path) {
                Ok(text) => check_text(&path, &text),
                Err(e) => usage_error(SpecError::Unreadable(shown(&path), e.to_string())),
            }
        }
        SpecCommand::Generate(opts) => generate(&opts).map(|app| (to_json(&app), warnings(&app))),
        // The components are encrypted: their placeholders are warned about when the
        // plaintext is generated.
        SpecCommand::EnterprisePublic { opts, blob } => {
            enterprise_public(&opts, &blob).map(|app| (to_json(&app), warnings(&app)))
        }
        SpecCommand::Enterprise { opts, secret } => {
            let secret = match (secret, env_secret.filter(|s| !s.trim().is_empty())) {
                (Some(s), _) => Ok(s),
                (None, Some(raw)) => Secret::new(&raw, SECRET_VAR),
                (None, None) => Err(SpecError::Missing(format!(
                    "the cluster secret for --enterprise: set {SECRET_VAR} or --cluster-secret \
                     (e.g. from openssl rand -hex 32)"
                ))),
            };
            secret
                .and_then(|secret| generate_enterprise(&opts, &secret))
                .and_then(|plain| {
                    let mut text = serde_json::to_string_pretty(&plain)
                        .map_err(|e| SpecError::Generated(e.to_string()))?;
                    text.push('\n');
                    // The plaintext's components are the public generator's plus the
                    // secret: their placeholders are the same.
                    Ok((text, warnings(&generate(&opts)?)))
                })
        }
    };
    match generated {
        Ok((stdout, warnings)) => Outcome {
            stdout,
            stderr: warnings
                .iter()
                .map(|w| format!("repram-flux flux-spec: warning: {w}\n"))
                .collect(),
            code: EXIT_OK,
        },
        Err(e) => usage_error(e),
    }
}

/// Placeholder warnings for a generated spec.
fn warnings(app: &FluxApp) -> Vec<Violation> {
    serde_json::to_value(app)
        .map(|v| placeholder_warnings(&v))
        .unwrap_or_default()
}

/// The `--check` report for the spec `text` read from `name`.
pub fn check_text(name: &str, text: &str) -> Outcome {
    let spec: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Outcome {
                stdout: format!("error: $: not JSON: {e}\n{}: not a spec\n", shown(name)),
                stderr: String::new(),
                code: EXIT_INVALID,
            }
        }
    };
    let mut errors = validate_v8(&spec);
    errors.extend(check_repram_env(&spec));
    let mut warnings = placeholder_warnings(&spec);
    warnings.extend(key_order_violations(text).unwrap_or_default());
    let line = |kind: &str, v: &Violation| format!("{kind}: {v}\n");
    let mut stdout: String = errors.iter().map(|v| line("error", v)).collect();
    stdout.extend(warnings.iter().map(|v| line("warning", v)));
    let enterprise = spec
        .get("enterprise")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|e| !e.is_empty());
    let kind = if enterprise {
        "enterprise app (components encrypted, checked when generated)"
    } else {
        "app"
    };
    let (verdict, code) = match (errors.len(), warnings.len()) {
        (0, 0) => (format!("valid v8 {kind}"), EXIT_OK),
        (0, w) => (format!("valid v8 {kind}, {w} warning(s)"), EXIT_WARNINGS),
        (e, w) => (
            format!("{e} error(s), {w} warning(s): FluxOS would refuse it"),
            EXIT_INVALID,
        ),
    };
    stdout.push_str(&format!("{}: {verdict}\n", shown(name)));
    Outcome {
        stdout,
        stderr: String::new(),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const GENESIS: &str = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa";

    fn no_file(_: &str) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ))
    }

    fn go<S: AsRef<str>>(args: &[S], env: Option<&str>) -> Outcome {
        run(
            args.iter().map(|a| a.as_ref().to_string()).collect(),
            env.map(str::to_string),
            &no_file,
        )
    }

    /// A spec of the owner's own values (no placeholder) plus `extra`.
    fn own(extra: &[&str]) -> Vec<String> {
        [
            "--name",
            "kv",
            "--owner",
            GENESIS,
            "--image",
            "me/repram-flux:1.0.0",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn enterprise_needs_a_secret_and_never_echoes_it() {
        let out = go(&own(&["--enterprise"]), None);
        assert_eq!(out.code, EXIT_USAGE);
        assert!(out.stderr.contains("missing the cluster secret for --enterprise: set REPRAM_CLUSTER_SECRET or --cluster-secret"), "{}", out.stderr);
        assert!(out.stdout.is_empty());
        let out = go(&own(&["--enterprise"]), Some("   "));
        assert_eq!(out.code, EXIT_USAGE, "a blank variable is no secret");

        let out = go(&own(&["--enterprise"]), Some(SECRET));
        assert_eq!((out.code, out.stderr.as_str()), (EXIT_OK, ""));
        // Components in FluxOS's order; the object itself as FluxOS writes it
        // ({contacts, compose}, enterpriseHelper.js), which no signature covers.
        let found = super::key_order_violations(&out.stdout).unwrap();
        assert!(found.iter().all(|v| v.path == "$"), "{found:?}");
        assert!(out
            .stdout
            .starts_with("{\n  \"contacts\": [],\n  \"compose\": [\n"));
        let plain: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(plain["contacts"], serde_json::json!([]));
        let env = plain["compose"][0]["environmentParameters"].to_string();
        assert!(
            env.contains(&format!("REPRAM_CLUSTER_SECRET={SECRET}")),
            "{env}"
        );

        let flag = "--cluster-secret=fedcba9876543210fedcba9876543210";
        let out = go(&own(&["--enterprise", flag]), Some(SECRET));
        assert!(out.stdout.contains("fedcba9876543210fedcba9876543210"));
        assert!(
            !out.stdout.contains(SECRET),
            "the flag wins over the variable"
        );

        for (args, env, want) in [
            (
                own(&["--cluster-secret", SECRET]),
                None,
                "--cluster-secret goes only with --enterprise",
            ),
            (
                own(&["--enterprise", "--cluster-secret", "short-secret"]),
                None,
                "--cluster-secret (12 characters): expected 16 to",
            ),
            (
                own(&["--enterprise"]),
                Some("short-secret"),
                "REPRAM_CLUSTER_SECRET (12 characters)",
            ),
            (
                own(&["--enterprise", "--enterprise-blob", "AAAA"]),
                None,
                "one at a time",
            ),
            (
                own(&["--cluster-secrt", SECRET]),
                None,
                "unknown argument --cluster-secrt",
            ),
        ] {
            let out = go(&args, env);
            assert_eq!(out.code, EXIT_USAGE, "{args:?}");
            assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
            assert!(
                !out.stderr.contains(SECRET) && !out.stderr.contains("short-secret"),
                "{}",
                out.stderr
            );
        }
    }

    #[test]
    fn generating_warns_about_placeholders_but_succeeds() {
        let out = go(
            &[
                "--name",
                "repram",
                "--owner",
                "1ReplaceWithYourFluxZelID",
                "--image",
                "repram/repram-flux:0.1.0",
                "--domain",
                "fade.repram.io",
            ],
            None,
        );
        assert_eq!(out.code, EXIT_OK);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{}", out.stderr);
        assert!(lines[0].starts_with(
            "repram-flux flux-spec: warning: owner: 1ReplaceWithYourFluxZelID is not an address"
        ));
        assert!(
            lines[1].contains("compose[0].repotag: repram/repram-flux:0.1.0 is the example image")
        );
        assert!(lines[2].contains("compose[0].domains: fade.repram.io is the example domain"));
        let out = go(&own(&[]), None);
        assert_eq!((out.code, out.stderr.as_str()), (EXIT_OK, ""));
    }

    #[test]
    fn check_exit_statuses() {
        let own_spec = go(&own(&[]), None).stdout;
        let out = check_text("own.json", &own_spec);
        assert_eq!(out.code, EXIT_OK, "{}", out.stdout);
        assert_eq!(out.stdout, "own.json: valid v8 app\n");

        let fade = go(
            &[
                "--name",
                "repram",
                "--owner",
                "1ReplaceWithYourFluxZelID",
                "--image",
                "repram/repram-flux:0.1.0",
                "--domain",
                "fade.repram.io",
            ],
            None,
        )
        .stdout;
        let out = check_text("flux-app.json", &fade);
        assert_eq!(out.code, EXIT_WARNINGS, "{}", out.stdout);
        assert!(
            out.stdout
                .ends_with("flux-app.json: valid v8 app, 3 warning(s)\n"),
            "{}",
            out.stdout
        );
        assert_eq!(
            out.stdout
                .lines()
                .filter(|l| l.starts_with("warning: "))
                .count(),
            3
        );

        // Keys out of FluxOS's order (serde_json::Value sorts them): valid, but not
        // signable as written.
        let v: serde_json::Value = serde_json::from_str(&own_spec).unwrap();
        let text = serde_json::to_string(&v).unwrap();
        let out = check_text("sorted.json", &text);
        assert_eq!(out.code, EXIT_WARNINGS, "{}", out.stdout);
        assert!(
            out.stdout.contains("warning: $: keys in the order"),
            "{}",
            out.stdout
        );

        let mut bad: serde_json::Value = serde_json::from_str(&own_spec).unwrap();
        bad["compose"][0]["environmentParameters"]
            .as_array_mut()
            .unwrap()
            .push(format!("REPRAM_CLUSTER_SECRET={SECRET}").into());
        let out = check_text("leak.json", &serde_json::to_string_pretty(&bad).unwrap());
        assert_eq!(out.code, EXIT_INVALID, "{}", out.stdout);
        assert!(out.stdout.contains(
            "error: compose[0].environmentParameters: REPRAM_CLUSTER_SECRET in a public spec"
        ));
        assert!(
            out.stdout
                .ends_with("leak.json: 1 error(s), 2 warning(s): FluxOS would refuse it\n"),
            "{}",
            out.stdout
        );

        let out = check_text("x", "{not json");
        assert_eq!(out.code, EXIT_INVALID);
        assert!(out.stdout.starts_with("error: $: not JSON"));

        let out = go(&["--check", "missing.json"], None);
        assert_eq!(out.code, EXIT_USAGE);
        assert!(
            out.stderr
                .contains("cannot read missing.json: no such file"),
            "{}",
            out.stderr
        );
        let out = go(&["--check", "a.json", "--nodes", "3"], None);
        assert_eq!(out.code, EXIT_USAGE);
        assert!(out.stderr.contains("--check takes no other flag"));
    }

    #[test]
    fn check_accepts_the_enterprise_public_shape_and_refuses_leaks() {
        let blob = format!("{}QQ==", "QUJD".repeat(99));
        let out = go(&own(&["--enterprise-blob", &blob]), None);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (EXIT_OK, ""),
            "{}",
            out.stderr
        );
        let report = check_text("public.json", &out.stdout);
        assert_eq!(report.code, EXIT_OK, "{}", report.stdout);
        assert!(report.stdout.contains("valid v8 enterprise app"));
        // Components in the clear next to the blob would be public.
        let mut v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let plain = go(&own(&["--enterprise"]), Some(SECRET)).stdout;
        let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
        v["compose"] = plain["compose"].clone();
        let report = check_text("leak.json", &serde_json::to_string_pretty(&v).unwrap());
        assert_eq!(report.code, EXIT_INVALID);
        assert!(
            report
                .stdout
                .contains("error: compose: must be [] in an enterprise app's public spec"),
            "{}",
            report.stdout
        );
        v["compose"] = serde_json::json!([]);
        v["enterprise"] = "bm90IGEgYmxvYg==".into();
        let report = check_text("short.json", &serde_json::to_string_pretty(&v).unwrap());
        assert_eq!(report.code, EXIT_INVALID);
        assert!(
            report
                .stdout
                .contains("error: enterprise: decodes to 10 bytes"),
            "{}",
            report.stdout
        );
    }
}
