//! Where the MCP server finds its daemon and its credential: `WAIAAS_MCP_URL` (default
//! `http://127.0.0.1:3100`) and the agent's session token from `WAIAAS_SESSION_TOKEN` >
//! `WAIAAS_SESSION_TOKEN_FILE` (the file's contents, surrounding whitespace trimmed).
//!
//! The token is never logged or shown: `Debug` redacts it and error messages name its source, not its value.

use std::path::PathBuf;

use crate::McpError;

pub const URL_ENV: &str = "WAIAAS_MCP_URL";
pub const TOKEN_ENV: &str = "WAIAAS_SESSION_TOKEN";
pub const TOKEN_FILE_ENV: &str = "WAIAAS_SESSION_TOKEN_FILE";
/// The daemon's default listener (SPEC §2).
pub const DEFAULT_URL: &str = "http://127.0.0.1:3100";

/// The daemon to talk to and the session token to talk to it with.
#[derive(Clone)]
pub struct McpConfig {
    url: String,
    session_token: String,
}

impl std::fmt::Debug for McpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConfig").field("url", &self.url).field("session_token", &"<redacted>").finish()
    }
}

impl McpConfig {
    /// A configuration given explicitly; `url` must be `http://` or `https://`, `session_token` not empty.
    pub fn new(url: impl Into<String>, session_token: impl Into<String>) -> Result<Self, McpError> {
        let url = url.into();
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(char::is_whitespace) {
            return Err(McpError::InvalidUrl(url.to_owned()));
        }
        let session_token = session_token.into().trim().to_owned();
        if session_token.is_empty() {
            return Err(McpError::EmptyToken(TOKEN_ENV));
        }
        Ok(McpConfig { url: url.to_owned(), session_token })
    }

    /// Reads the process environment (see the module docs).
    pub fn from_env() -> Result<Self, McpError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`McpConfig::from_env`] with the variables looked up through `env`.
    pub fn from_vars(env: impl Fn(&str) -> Option<String>) -> Result<Self, McpError> {
        let url = env(URL_ENV).filter(|u| !u.trim().is_empty()).unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = if let Some(token) = env(TOKEN_ENV) {
            if token.trim().is_empty() {
                return Err(McpError::EmptyToken(TOKEN_ENV));
            }
            token
        } else if let Some(path) = env(TOKEN_FILE_ENV) {
            let path = PathBuf::from(path);
            let contents =
                std::fs::read_to_string(&path).map_err(|source| McpError::TokenFile { path: path.clone(), source })?;
            if contents.trim().is_empty() {
                return Err(McpError::EmptyTokenFile(path));
            }
            contents
        } else {
            return Err(McpError::MissingToken);
        };
        McpConfig::new(url, token)
    }

    /// The daemon's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A blocking SDK client for the daemon, authenticated with the session token.
    pub fn client(&self) -> waiaas_client::Client {
        waiaas_client::Client::new(&self.url).with_session_token(&self.session_token)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[track_caller]
    fn load(vars: &[(&str, &str)]) -> Result<McpConfig, McpError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        McpConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn url_defaults_to_the_local_daemon_and_the_token_wins_over_the_file() {
        let config = load(&[(TOKEN_ENV, " wai_sess_abc\n"), (TOKEN_FILE_ENV, "/nonexistent")]).unwrap();
        assert_eq!(config.url(), DEFAULT_URL);
        assert_eq!(config.session_token, "wai_sess_abc");
        let config = load(&[(URL_ENV, "http://127.0.0.1:9999/"), (TOKEN_ENV, "wai_sess_x")]).unwrap();
        assert_eq!(config.client().base_url(), "http://127.0.0.1:9999");
    }

    #[test]
    fn the_token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "wai_sess_from_file\n").unwrap();
        let config = load(&[(TOKEN_FILE_ENV, path.to_str().unwrap())]).unwrap();
        assert_eq!(config.session_token, "wai_sess_from_file");

        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(load(&[(TOKEN_FILE_ENV, path.to_str().unwrap())]), Err(McpError::EmptyTokenFile(_))));
        let missing = dir.path().join("missing");
        let err = load(&[(TOKEN_FILE_ENV, missing.to_str().unwrap())]).unwrap_err();
        assert!(matches!(err, McpError::TokenFile { .. }), "{err:?}");
        assert!(err.to_string().contains(TOKEN_FILE_ENV), "{err}");
    }

    #[test]
    fn missing_empty_or_malformed_settings_fail() {
        assert!(matches!(load(&[]), Err(McpError::MissingToken)));
        assert!(matches!(load(&[(TOKEN_ENV, "  ")]), Err(McpError::EmptyToken(TOKEN_ENV))));
        for url in ["127.0.0.1:3100", "ftp://h", "http://a b"] {
            let err = load(&[(URL_ENV, url), (TOKEN_ENV, "wai_sess_x")]).unwrap_err();
            assert!(matches!(err, McpError::InvalidUrl(_)), "{url}: {err:?}");
        }
    }

    #[test]
    fn debug_redacts_the_token() {
        let config = McpConfig::new(DEFAULT_URL, "wai_sess_secret").unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }
}
