//! `waiaas-http`: outbound HTTP. The [`WebhookSender`] port over ureq (OPS-04), the notification channels for
//! people ([`notify`]: ntfy, Slack, Discord, Telegram over the same HTTP machinery, email over SMTP), and the
//! JSON-RPC client the chain adapters speak to their nodes with ([`jsonrpc`]).
//!
//! Each POST resolves the receiver's host once, through a [`HostResolver`] (the system's by default), checks every
//! address with the core's [`check_address`] and hands ureq only those: ureq's own resolver is replaced
//! ([`CheckedResolver`]), so the connection goes to a checked address while the `Host` header and TLS SNI keep
//! the original name, and a name that starts resolving to a forbidden address after registration is refused at
//! delivery (no DNS rebinding window). No proxy from the environment is used (it would resolve the name itself).
//!
//! Redirects are never followed, each attempt has one overall timeout, the response body is read up to
//! [`BODY_CAP`] bytes and dropped. ureq is blocking: each send runs on tokio's blocking pool, so a receiver that
//! hangs holds one blocking thread for at most the timeout and delays nothing else.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use waiaas_core::ports::{WebhookRequest, WebhookResponse, WebhookSender};
use waiaas_core::webhooks::target::check_address;

pub mod jsonrpc;
pub mod notify;

/// Response body bytes read at most (then the connection is dropped).
pub const BODY_CAP: u64 = 64 * 1024;

/// Resolves host names to addresses (blocking). The daemon uses the system resolver; tests inject a table.
pub trait HostResolver: Send + Sync + 'static {
    /// The addresses of `host` (never called with an IP literal).
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// A fixed table of names (tests: a name that changes what it resolves to while the daemon runs).
#[derive(Debug, Default)]
pub struct StaticResolver(Mutex<Vec<(String, Vec<IpAddr>)>>);

impl StaticResolver {
    /// Makes `host` resolve to `addresses` from now on.
    pub fn set(&self, host: &str, addresses: Vec<IpAddr>) {
        let mut table = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.retain(|(h, _)| h != host);
        table.push((host.to_owned(), addresses));
    }
}

impl HostResolver for StaticResolver {
    fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        let table = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.iter().find(|(h, _)| h == host).map(|(_, a)| a.clone()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} is not in the static table"))
        })
    }
}

/// Resolves a URL's host (an IP literal is itself), refusing unless every address passes [`check_address`].
pub(crate) fn checked_addresses(
    resolver: &dyn HostResolver,
    host: &str,
    port: u16,
    block_private: bool,
) -> Result<Vec<IpAddr>, Refusal> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolver.resolve(bare, port).map_err(|e| Refusal::Resolve(e.to_string()))?,
    };
    if addresses.is_empty() {
        return Err(Refusal::Resolve(format!("{bare} has no address")));
    }
    for ip in &addresses {
        check_address(*ip, block_private).map_err(|e| Refusal::Forbidden(e.message))?;
    }
    Ok(addresses)
}

#[derive(Debug)]
pub(crate) enum Refusal {
    Resolve(String),
    Forbidden(String),
}

/// ureq's resolver for webhook requests: [`checked_addresses`], and what it refused remembered for the answer.
struct CheckedResolver {
    resolver: Arc<dyn HostResolver>,
    block_private: bool,
    refused: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for CheckedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedResolver").field("block_private", &self.block_private).finish()
    }
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        match checked_addresses(self.resolver.as_ref(), host, port, self.block_private) {
            Ok(addresses) => {
                let mut out = self.empty();
                for ip in addresses.into_iter().take(16) {
                    out.push(SocketAddr::new(ip, port));
                }
                Ok(out)
            }
            Err(Refusal::Forbidden(why)) => {
                *self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why.clone());
                Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)))
            }
            Err(Refusal::Resolve(why)) => Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, why))),
        }
    }
}

/// The webhook sender.
#[derive(Clone)]
pub struct HttpWebhookSender {
    resolver: Arc<dyn HostResolver>,
    timeout: Duration,
    block_private: bool,
}

impl fmt::Debug for HttpWebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpWebhookSender").field("timeout", &self.timeout).finish()
    }
}

impl HttpWebhookSender {
    /// A sender with a per-attempt `timeout`, refusing private targets too when `block_private`.
    pub fn new(timeout: Duration, block_private: bool, resolver: Arc<dyn HostResolver>) -> Self {
        HttpWebhookSender { resolver, timeout, block_private }
    }

    fn send_blocking(&self, request: &WebhookRequest) -> WebhookResponse {
        let refused = Arc::new(Mutex::new(None));
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(self.timeout))
            .proxy(None)
            .build();
        let resolver = CheckedResolver {
            resolver: Arc::clone(&self.resolver),
            block_private: self.block_private,
            refused: Arc::clone(&refused),
        };
        let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), resolver);
        let started = Instant::now();
        let elapsed = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut call = agent.post(&request.url);
        for (name, value) in &request.headers {
            call = call.header(name, value);
        }
        match call.send(&request.body[..]) {
            Ok(mut response) => {
                let code = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
                let mut sink = Vec::new();
                let _ = response.body_mut().as_reader().take(BODY_CAP).read_to_end(&mut sink);
                WebhookResponse::Status { code, elapsed_ms: elapsed(), retry_after_seconds: retry_after }
            }
            Err(error) => {
                if let Some(why) = refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                    return WebhookResponse::Refused { message: why };
                }
                WebhookResponse::TransportError { message: error.to_string(), elapsed_ms: elapsed() }
            }
        }
    }
}

/// `Retry-After`: delta-seconds, or an HTTP date made relative to now (a past date is 0).
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    #[allow(clippy::disallowed_methods, reason = "an HTTP date is wall-clock time; the adapter reads the system clock")]
    let now = SystemTime::now();
    Some(at.duration_since(now).map(|d| d.as_secs()).unwrap_or(0))
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, request: &WebhookRequest) -> WebhookResponse {
        let sender = self.clone();
        let request = request.clone();
        match tokio::task::spawn_blocking(move || sender.send_blocking(&request)).await {
            Ok(response) => response,
            Err(e) => WebhookResponse::TransportError { message: format!("send task failed: {e}"), elapsed_ms: 0 },
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
        let resolver = Arc::clone(&self.resolver);
        let host = host.to_owned();
        tokio::task::spawn_blocking(move || resolver.resolve(&host, port).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests;
