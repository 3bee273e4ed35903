//! Herald's own end-to-end tests, written with the test kit apps use ([`herald_testkit`]), with
//! the petstore example as the app under test.

pub use herald_testkit::*;

use std::path::{Path, PathBuf};

/// The example petstore app shipped with Herald.
pub fn petstore_apps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/petstore/apps")
}

/// The example's documents without its tasks: what most tests run, so the example's webhooks
/// and commands do not act on their data (the tasks have tests of their own).
pub fn petstore_documents() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| petstore_with(&[])).clone()
}

/// The example's documents without its tasks, and `extra` sources (`(app, doc, yaml)`), such
/// as a `tasks.yaml` of the test's own.
pub fn petstore_with(extra: &[(&str, &str, &str)]) -> PathBuf {
    let source = petstore_apps().join("petstore");
    let read = |doc: &str| {
        std::fs::read_to_string(source.join(format!("{doc}.yaml")))
            .unwrap_or_else(|e| panic!("cannot read the petstore example {doc}: {e}"))
    };
    let (product, supplier) = (read("product"), read("supplier"));
    let mut sources = vec![
        ("petstore", "product", product.as_str()),
        ("petstore", "supplier", supplier.as_str()),
    ];
    sources.extend_from_slice(extra);
    write_apps(&sources).unwrap_or_else(|e| panic!("cannot copy the petstore example: {e}"))
}

/// The example's documents (without its tasks) and its Rust code, with every role.
pub fn petstore() -> Options {
    Options {
        apps: petstore_documents(),
        ..Options::for_app(herald_petstore::app())
    }
}

/// A Herald running [`petstore`].
pub async fn spawn_petstore() -> TestApp {
    TestApp::spawn_with(petstore()).await
}
