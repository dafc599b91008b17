//! Runs `tests/openapi/run.sh` (schemathesis against a running server and docs/openapi.yaml)
//! as part of `cargo test`, with the binary cargo just built. The script skips loudly without
//! schemathesis, or fails under `CASTBRICK_REQUIRE_ALL=1` (set by `.ci/run`).

use std::process::Command;

#[test]
fn running_server_conforms_to_docs_openapi_yaml() {
    let status = Command::new("bash")
        .arg("tests/openapi/run.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CASTBRICK_BIN", env!("CARGO_BIN_EXE_castbrick-push"))
        .status()
        .expect("run bash tests/openapi/run.sh");
    assert!(
        status.success(),
        "OpenAPI conformance failed (schemathesis output above)"
    );
}
