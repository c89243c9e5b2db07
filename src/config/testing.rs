//! Test helpers for config tests here and in each connector kind's `config.rs`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use super::{Config, ConfigError, Problem, build};

/// Builds with a fixed environment instead of the process's.
pub(crate) fn parse_with(
    text: &str,
    dir: &Path,
    vars: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    build(text, &dir.join("offboard.toml"), &|name| {
        vars.get(name).map(OsString::from)
    })
}

/// Builds as if read from `/etc/offboard/offboard.toml`, with an empty environment.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, Path::new("/etc/offboard"), &[])
}

/// The problems of a config that must be refused.
pub(crate) fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(e) => e.problems,
    }
}

/// The first problem keyed `key`.
pub(crate) fn problem_for<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no problem for key {key}: {problems:#?}"))
}

/// Writes a file with the given mode, creating its directory.
#[cfg(unix)]
pub(crate) fn write_file(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The head of a valid `[feed]` table, without a source.
pub(crate) const FEED_HEAD: &str = "[feed]\nkind = \"csv\"\nschedule = \"0 */5 * * * *\"\n";
