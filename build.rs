//! Turns `openapi.yaml`, the one description of the public API, into the JSON that the
//! nodes serve at `GET /openapi.json` (`$OUT_DIR/openapi.json`, included by
//! `src/http/openapi.rs`). A YAML error fails the build.

use std::path::Path;
use std::{env, fs};

fn main() {
    println!("cargo::rerun-if-changed=openapi.yaml");
    let yaml = fs::read_to_string("openapi.yaml")
        .unwrap_or_else(|e| panic!("cannot read openapi.yaml: {e}"));
    let spec: serde_json::Value = serde_norway::from_str(&yaml)
        .unwrap_or_else(|e| panic!("openapi.yaml is not valid YAML for JSON: {e}"));
    let json = serde_json::to_string(&spec)
        .unwrap_or_else(|e| panic!("openapi.yaml cannot be written as JSON: {e}"));
    let out = env::var_os("OUT_DIR").unwrap_or_else(|| panic!("cargo sets OUT_DIR"));
    fs::write(Path::new(&out).join("openapi.json"), json)
        .unwrap_or_else(|e| panic!("cannot write openapi.json: {e}"));
}
