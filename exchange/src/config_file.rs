//! Configuration files (`hub.toml`, `node.toml`) and their paths: one rule for both daemons —
//! a relative path names a file beside the configuration file, never one relative to the
//! directory the daemon happened to be started in.

use std::path::{Path, PathBuf};

/// The folder relative paths of the configuration file `config` are resolved against.
pub fn base_of(config: &Path) -> &Path {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes each relative path of `paths` relative to `base`; absolute paths stay as they are.
pub fn resolve<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for p in paths {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_configuration_file() {
        assert_eq!(base_of(Path::new("hub.toml")), Path::new("."));
        assert_eq!(
            base_of(Path::new("/etc/docaxis/hub.toml")),
            Path::new("/etc/docaxis")
        );
        let mut a = PathBuf::from("certs/ca.pem");
        let mut b = PathBuf::from("/abs/key.pem");
        resolve(Path::new("/etc/docaxis"), [&mut a, &mut b]);
        assert_eq!(a, Path::new("/etc/docaxis/certs/ca.pem"));
        assert_eq!(b, Path::new("/abs/key.pem"));
    }
}
