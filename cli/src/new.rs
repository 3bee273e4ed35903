//! `herald new <name>`: a new app crate, ready to build and test — a document with a declared
//! and a Rust command, tests written with the test kit, and a README. The crate depends on
//! Herald's crates by path (the source this binary was built from, or `--herald`), and starts
//! from the `Cargo.lock` Herald is tested with.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use herald_bus::ids::is_name;

/// The template's files: (path in the new crate, text). `APP` in a path is the app's name.
const FILES: [(&str, &str); 8] = [
    ("Cargo.toml", include_str!("../templates/app/Cargo.toml.in")),
    ("Cargo.lock", include_str!("../../Cargo.lock")),
    (".gitignore", include_str!("../templates/app/gitignore")),
    ("README.md", include_str!("../templates/app/README.md")),
    (
        "apps/APP/ticket.yaml",
        include_str!("../templates/app/apps/ticket.yaml"),
    ),
    ("src/lib.rs", include_str!("../templates/app/src/lib.rs")),
    ("src/main.rs", include_str!("../templates/app/src/main.rs")),
    (
        "tests/commands.rs",
        include_str!("../templates/app/tests/commands.rs"),
    ),
];

/// Writes the app `name` into `dir` (`./<name>` when `None`), depending on the Herald source
/// at `herald` (the one this binary was built from when `None`). Returns the crate's folder.
///
/// # Errors
/// A name that cannot name an app, a folder that exists and is not empty, no Herald source,
/// or a file that cannot be written.
pub fn scaffold(
    name: &str,
    dir: Option<PathBuf>,
    herald: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    if !is_name(name) {
        bail!(
            "`{name}` cannot name an app: use lowercase letters, digits and _, starting with a letter"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty", dir.display());
    }
    let herald = herald_source(herald)?;
    let crate_path = |folder: &str| {
        let path = herald.join(folder);
        format!("path = {:?}", path.to_string_lossy())
    };
    for (path, text) in FILES {
        let path = dir.join(path.replace("APP", name));
        let text = text
            .replace("{{name}}", name)
            .replace("{{herald_bus}}", &crate_path("bus"))
            .replace("{{herald_cli}}", &crate_path("cli"))
            .replace("{{herald_testkit}}", &crate_path("testkit"));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}

/// The Herald source the new crate depends on: `given`, else the one this binary was built
/// from when it is still there.
fn herald_source(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = given.unwrap_or(built_from);
    let source = source.canonicalize().with_context(|| {
        format!(
            "no Herald source at {}: name one with --herald",
            source.display()
        )
    })?;
    if !source.join("testkit").join("Cargo.toml").is_file() {
        bail!(
            "{} is not Herald's source (it has no testkit/Cargo.toml): name it with --herald",
            source.display()
        );
    }
    Ok(source)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::scaffold;

    #[test]
    fn a_new_app_is_written_with_its_name_and_herald_paths() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("herald-new-{}-{nanos}", std::process::id()));
        let written = scaffold("desk", Some(dir.clone()), None).unwrap();
        let manifest = std::fs::read_to_string(written.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"desk\""), "{manifest}");
        assert!(
            !manifest.contains("{{"),
            "every placeholder is filled: {manifest}"
        );
        assert!(written.join("apps/desk/ticket.yaml").is_file());
        let test = std::fs::read_to_string(written.join("tests/commands.rs")).unwrap();
        assert!(test.contains("desk::app()"), "{test}");
        let again = scaffold("desk", Some(dir.clone()), None).unwrap_err();
        assert!(again.to_string().contains("is not empty"), "{again}");
        let bad = scaffold("Desk-1", Some(dir.join("x")), None).unwrap_err();
        assert!(bad.to_string().contains("cannot name an app"), "{bad}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
