//! The example's binary checks the example: every document and command, its Rust command
//! with the code it was built with.

use std::process::Command;

#[test]
fn check_lists_the_example_with_its_declared_and_rust_commands() {
    let apps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("apps");
    let output = Command::new(env!("CARGO_BIN_EXE_herald-petstore"))
        .args(["check", "--apps"])
        .arg(&apps)
        .env("HERALD_LOG__LEVEL", "warn")
        .output()
        .expect("run the example's binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with("/v1/")))
        .collect();
    assert_eq!(
        listed,
        [
            "/v1/petstore/product",
            "/v1/petstore/product/{id}/publish",
            "/v1/petstore/product/{id}/restock",
            "/v1/petstore/supplier",
            "/v1/petstore/supplier/onboard"
        ]
    );
}
