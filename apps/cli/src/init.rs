//! `waiaas init`: creates the data dir layout (every directory 0700) and a commented default `config.toml`
//! (0600: it may later hold RPC URLs with API keys). Idempotent: an existing `config.toml` is never touched.

use std::path::{Path, PathBuf};

use anyhow::Context;
use waiaas_fs::{DataDir, write_new_secret_file};

use crate::core_error;
use waiaas_daemon::config::DEFAULT_CONFIG_TOML;

/// What `init` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitOutcome {
    pub root: PathBuf,
    pub config_file: PathBuf,
    /// False when `config.toml` already existed and was left as it was.
    pub config_written: bool,
}

impl InitOutcome {
    /// A few lines for the operator.
    pub fn describe(&self) -> String {
        let config = if self.config_written {
            format!(
                "wrote {} (every key at its default, commented out; [rpc] evm_anvil = \"http://127.0.0.1:8545\" is \
                 enabled so agents can be created on network \"anvil\")",
                self.config_file.display()
            )
        } else {
            format!("{} already exists; left unchanged", self.config_file.display())
        };
        format!("data dir {} is ready\n{config}\nnext: waiaas start", self.root.display())
    }
}

/// Creates (or completes) the data dir at `root` and writes the default config if there is none.
pub fn init(root: &Path) -> anyhow::Result<InitOutcome> {
    let dir = DataDir::create(root).map_err(core_error).context("cannot create the data dir")?;
    let config_file = dir.config_file();
    let config_written = write_new_secret_file(&config_file, DEFAULT_CONFIG_TOML.as_bytes())
        .map_err(core_error)
        .context("cannot write config.toml")?;
    Ok(InitOutcome { root: dir.root().to_path_buf(), config_file, config_written })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_a_private_layout_and_keeps_an_existing_config() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("home/.waiaas");
        let first = init(&root).unwrap();
        assert!(first.config_written);
        assert_eq!(std::fs::read_to_string(root.join("config.toml")).unwrap(), DEFAULT_CONFIG_TOML);
        for dir in ["", "data", "keystore", "backups", "logs"] {
            let mode = std::fs::metadata(root.join(dir)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{dir}");
        }
        let mode = std::fs::metadata(root.join("config.toml")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        std::fs::write(root.join("config.toml"), "[daemon]\nport = 4000\n").unwrap();
        let second = init(&root).unwrap();
        assert!(!second.config_written);
        assert!(second.describe().contains("left unchanged"));
        assert_eq!(std::fs::read_to_string(root.join("config.toml")).unwrap(), "[daemon]\nport = 4000\n");
    }
}
