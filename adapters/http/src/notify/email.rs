//! Email over SMTP with `lettre`: the host is resolved once through the checked resolver (like the HTTP channels)
//! and the connection goes to that address, while STARTTLS or implicit TLS verify the certificate for the
//! configured name. The password goes to the server only; errors are scrubbed of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use waiaas_core::notifications::{ChannelKind, Message, NotificationChannel, SendOutcome};

use super::scrub;
use crate::{HostResolver, checked_addresses};

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on the same host).
    None,
    /// STARTTLS, required (port 587).
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
}

/// Where and how mail goes.
#[derive(Clone)]
pub struct EmailConfig {
    /// The SMTP server's name.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// AUTH user name, when the server needs it.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// Connection protection.
    pub tls: SmtpTls,
    /// Per-message timeout.
    pub timeout: Duration,
}

/// The email channel.
pub struct Email {
    config: EmailConfig,
    resolver: Arc<dyn HostResolver>,
}

impl Email {
    /// A channel sending through `config`'s server, resolving its host with `resolver`.
    pub fn new(config: EmailConfig, resolver: Arc<dyn HostResolver>) -> Self {
        Email { config, resolver }
    }

    fn secrets(&self) -> Vec<&str> {
        [self.config.password.as_deref(), self.config.username.as_deref()].into_iter().flatten().collect()
    }

    fn send_blocking(&self, message: &Message) -> Result<(), (bool, String)> {
        let c = &self.config;
        let from: Mailbox = c.from.parse().map_err(|e| (false, format!("smtp_from is not an address: {e}")))?;
        let mut builder = lettre::Message::builder().from(from).subject(message.title.clone());
        for to in &c.to {
            let to: Mailbox = to.parse().map_err(|e| (false, format!("smtp_to holds a bad address: {e}")))?;
            builder = builder.to(to);
        }
        let email = builder
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| (false, format!("cannot build the message: {e}")))?;
        let addresses = checked_addresses(self.resolver.as_ref(), &c.host, c.port, false).map_err(|r| match r {
            crate::Refusal::Forbidden(why) => (false, format!("refused: {why}")),
            crate::Refusal::Resolve(why) => (true, format!("cannot resolve the SMTP host: {why}")),
        })?;
        let ip = addresses[0].to_string();
        let tls = |wrap: fn(TlsParameters) -> Tls| {
            TlsParameters::new(c.host.clone()).map(wrap).map_err(|e| (false, format!("TLS setup failed: {e}")))
        };
        let tls = match c.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => tls(Tls::Required)?,
            SmtpTls::Tls => tls(Tls::Wrapper)?,
        };
        let mut transport = SmtpTransport::builder_dangerous(ip).port(c.port).tls(tls).timeout(Some(c.timeout));
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
        }
        transport.build().send(&email).map(|_| ()).map_err(|e| (!e.is_permanent(), e.to_string()))
    }
}

#[async_trait]
impl NotificationChannel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, message: &Message) -> SendOutcome {
        let started = Instant::now();
        let this = Email { config: self.config.clone(), resolver: Arc::clone(&self.resolver) };
        let message = message.clone();
        let result = tokio::task::spawn_blocking(move || {
            let result = this.send_blocking(&message);
            result.map_err(|(retryable, error)| (retryable, scrub(&error, &this.secrets())))
        })
        .await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(Ok(())) => SendOutcome::Sent { elapsed_ms },
            Ok(Err((retryable, error))) => SendOutcome::Failed { retryable, error, elapsed_ms },
            Err(e) => SendOutcome::Failed { retryable: true, error: format!("send task failed: {e}"), elapsed_ms },
        }
    }
}
