//! The binaries of other packages of the workspace, for a test or a bench that
//! runs them: cargo hands a test `CARGO_BIN_EXE_<name>` only for its own
//! package's binaries, and `cargo bench` builds none as plain binaries.
//!
//! [`workspace_bin`] runs `cargo build -p <package>` in the profile and target
//! directory of the running test or bench, so the binary is the code as it is
//! (never a stale one), and returns its path. When it is up to date the build
//! is a no-op of a fraction of a second; callers that need the path often keep
//! it (in a `OnceLock`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

/// The workspace's manifest: this crate lives in `<workspace>/testkit`.
const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");

/// Builds the binary `package` of package `package` (`proxy`, `handoff`) in the
/// profile of the running executable, and returns its path:
/// `target/<profile>/<package>`, next to the `deps/` folder this test or bench
/// runs from. Without cargo at hand (`CARGO` unset and no `cargo` on `PATH`), a
/// binary already there is used.
///
/// # Errors
/// If this executable is not in a `target/<profile>/deps/` folder, if the build
/// fails, or if it leaves no binary where expected.
pub fn workspace_bin(package: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the path of this test executable")?;
    let deps = exe.parent().context("an executable has a folder")?;
    ensure!(
        deps.file_name() == Some("deps".as_ref()),
        "{} is not in a target/<profile>/deps folder",
        exe.display()
    );
    let profile_dir = deps.parent().context("deps has a parent")?;
    let target_dir = profile_dir
        .parent()
        .context("target/<profile> has a parent")?;
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        // The `dev` profile (of `cargo test`) builds into `debug`; every other
        // profile, `release` included (that of `cargo bench`), into its own name.
        Some("debug") => "dev",
        Some(name) => name,
        None => bail!("no profile folder above {}", deps.display()),
    };
    let bin = profile_dir.join(package);

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--quiet", "--profile", profile, "-p", package])
        .arg("--manifest-path")
        .arg(Path::new(WORKSPACE_MANIFEST))
        .arg("--target-dir")
        .arg(target_dir)
        .status();
    match built {
        Ok(status) => ensure!(
            status.success(),
            "cargo build --profile {profile} -p {package} failed: {status}"
        ),
        // No cargo to run: use the binary if a previous build left one.
        Err(err) if err.kind() == io::ErrorKind::NotFound => ensure!(
            bin.exists(),
            "no cargo to build {package} ({err}) and no {}",
            bin.display()
        ),
        Err(err) => return Err(err).context(format!("run {cargo:?} build -p {package}")),
    }
    ensure!(bin.exists(), "cargo built no {}", bin.display());
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder puts `proxy` in this test's own profile folder, the parent
    /// of its `deps/`.
    #[test]
    fn builds_a_sibling_binary_next_to_deps() {
        let proxy = workspace_bin("proxy").expect("build proxy");
        let exe = std::env::current_exe().expect("this test's path");
        assert_eq!(
            proxy.parent(),
            exe.parent().and_then(Path::parent),
            "{}",
            proxy.display()
        );
        assert!(proxy.is_file(), "{}", proxy.display());
    }
}
