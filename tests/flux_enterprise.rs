//! The enterprise flow end to end, as far as it runs without Flux: the owner's side
//! (`flux-spec --enterprise`, encrypt as the Flux web app does, `flux-spec
//! --enterprise-blob`, `flux-spec --check`) and Flux's side (decrypt the blob as
//! FluxOS's enterpriseHelper.js does). An RSA-2048 key made here stands in for the one
//! `POST /apps/getpublickey` hands out; the RSA steps use the `openssl` command, AES-GCM
//! uses `ring`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::binary;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde_json::Value;

const SECRET: &str = "4f1c2a9e7b3d5f60a1b2c3d4e5f60718";
/// A valid P2PKH address (the Bitcoin genesis block's), so no placeholder warning.
const OWNER: &str = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa";
const APP: [&str; 10] = [
    "--name",
    "kv",
    "--owner",
    OWNER,
    "--image",
    "me/repram-flux:1.0.0",
    "--nodes",
    "7",
    "--instances",
    "3",
];

#[test]
fn enterprise_spec_round_trips_through_flux_encryption() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is needed for this test (apt-get install openssl)"
        );
        eprintln!("skipped: no openssl command");
        return;
    }
    let dir = TempDir::new();
    let key = dir.path("app.pem");
    let public_der = dir.path("app-public.der");
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ],
        &key,
        None,
    );
    openssl(
        &[
            "pkey",
            "-pubout",
            "-outform",
            "DER",
            "-in",
            path(&key),
            "-out",
        ],
        &public_der,
        None,
    );

    // Owner, step 1: the plaintext, with the secret from the environment.
    let out = binary()
        .arg("flux-spec")
        .arg("--enterprise")
        .args(APP)
        .env("REPRAM_CLUSTER_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plaintext = out.stdout;
    let plain: Value = serde_json::from_slice(&plaintext).unwrap();
    assert_eq!(plain["compose"].as_array().unwrap().len(), 2);
    for c in plain["compose"].as_array().unwrap() {
        let env = c["environmentParameters"].to_string();
        assert!(
            env.contains(&format!("REPRAM_CLUSTER_SECRET={SECRET}")),
            "{env}"
        );
    }

    // Owner, step 2, as the Flux web app's enterpriseCrypto.js does it: a fresh AES-256
    // key, RSA-OAEP-SHA256 over its base64, AES-GCM over the plaintext.
    let aes_key: [u8; 32] = rand::random();
    let nonce: [u8; 12] = rand::random();
    let mut sealed = plaintext.clone();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &aes_key).unwrap())
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .unwrap();
    let wrapped = dir.path("wrapped.bin");
    openssl(
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            path(&public_der),
        ]
        .iter()
        .chain(OAEP.iter())
        .chain(["-out"].iter())
        .copied()
        .collect::<Vec<_>>(),
        &wrapped,
        Some(base64(&aes_key).as_bytes()),
    );
    let wrapped = std::fs::read(&wrapped).unwrap();
    assert_eq!(wrapped.len(), 256);
    let blob = base64(&[wrapped.as_slice(), &nonce, &sealed].concat());

    // Owner, step 3: the public spec around the blob, then the check.
    let out = binary()
        .arg("flux-spec")
        .args(["--enterprise-blob", &blob])
        .args(APP)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public_text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !public_text.contains(SECRET),
        "the secret leaked into the public spec"
    );
    let public: Value = serde_json::from_str(&public_text).unwrap();
    assert_eq!(public["compose"], serde_json::json!([]));
    assert_eq!(public["contacts"], serde_json::json!([]));
    assert_eq!(public["enterprise"], blob.as_str());
    let public_file = dir.path("public.json");
    std::fs::write(&public_file, &public_text).unwrap();
    let out = binary()
        .args(["flux-spec", "--check", path(&public_file)])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("valid v8 enterprise app"), "{report}");

    // Flux's side (enterpriseHelper.js decryptEnterpriseFromSession): the first 256 bytes
    // unwrap to the base64 AES key, the rest is nonce || ciphertext || tag.
    let raw = unbase64(public["enterprise"].as_str().unwrap());
    let block = dir.path("block.bin");
    std::fs::write(&block, &raw[..256]).unwrap();
    let unwrapped = dir.path("unwrapped.txt");
    openssl(
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            path(&key),
            "-in",
            path(&block),
        ]
        .iter()
        .chain(OAEP.iter())
        .chain(["-out"].iter())
        .copied()
        .collect::<Vec<_>>(),
        &unwrapped,
        None,
    );
    let key_text = std::fs::read_to_string(&unwrapped).unwrap();
    let recovered_key = unbase64(&key_text);
    let mut body = raw[256 + 12..].to_vec();
    let opened = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &recovered_key).unwrap())
        .open_in_place(
            Nonce::try_assume_unique_for_key(&raw[256..268]).unwrap(),
            Aad::empty(),
            &mut body,
        )
        .unwrap();
    let decrypted: Value = serde_json::from_slice(opened).unwrap();
    assert_eq!(decrypted, plain);
    // FluxOS then validates the decrypted components with the ordinary rules.
    let mut as_flux_sees_it = public.clone();
    as_flux_sees_it["compose"] = decrypted["compose"].clone();
    as_flux_sees_it["enterprise"] = Value::String(String::new());
    let problems = repram_flux::flux::spec::validate_v8(&as_flux_sees_it);
    assert!(
        problems
            .iter()
            .all(|p| p.message.contains("REPRAM_CLUSTER_SECRET in a public spec")),
        "only the secret (allowed once decrypted) may be flagged: {problems:?}"
    );
    assert!(repram_flux::flux::spec::check_repram_env(&as_flux_sees_it).is_empty());
}

/// RSA-OAEP with SHA-256 for both the digest and MGF1, as WebCrypto's
/// `{name: "RSA-OAEP", hash: "SHA-256"}`.
const OAEP: [&str; 6] = [
    "-pkeyopt",
    "rsa_padding_mode:oaep",
    "-pkeyopt",
    "rsa_oaep_md:sha256",
    "-pkeyopt",
    "rsa_mgf1_md:sha256",
];

/// Runs `openssl ARGS OUT` (OUT appended), feeding `stdin`; panics with its stderr.
fn openssl(args: &[&str], out: &Path, stdin: Option<&[u8]>) {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Vec<u8> {
    let digits: Vec<u32> = text
        .trim()
        .bytes()
        .filter(|b| *b != b'=')
        .map(|b| B64.iter().position(|c| *c == b).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk.iter().fold(0u32, |n, d| n << 6 | d) << (6 * (4 - chunk.len()));
        out.extend(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("repram-enterprise-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn base64_helpers_round_trip() {
    for n in 0..10 {
        let bytes: Vec<u8> = (0..n).map(|i: u32| (i * 37 + 1) as u8).collect();
        assert_eq!(unbase64(&base64(&bytes)), bytes);
    }
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
}
