//! The config loader: any text gives a config or a list of problems, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use offboard::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Secret files are looked up next to this path, which does not exist.
    match Config::from_toml_str(text, Path::new("/nonexistent/offboard-fuzz/offboard.toml")) {
        Ok(config) => {
            let mut names: Vec<&str> = config.connectors.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "connector names are unique");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
