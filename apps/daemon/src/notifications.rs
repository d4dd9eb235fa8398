//! The notifier task (notifications for people): routes the audit rows after its cursor into its queue, sends due
//! entries through the channels (at most [`CONCURRENCY`] at once, one round per entry at a time), and sends
//! digests of what the rate limit held back. It wakes on events (the sink's `Notify`; a burst of events is one
//! wake-up, [`crate::wake::COALESCE`], so routing and its cursor write do not follow every event), when a round
//! ends, when the next retry falls due, and at least every [`POLL`] (rows written by the offline CLI). At stop,
//! rounds in flight are abandoned: their entries stay queued and are sent after the next start (at least once).
//!
//! [`hub`] builds the channels from `[notifications]`: credentials are read here (files included) and handed to the
//! adapters; nothing logs them (the daemon logs channel names only).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use waiaas_core::notifications::rate::RateLimit;
use waiaas_core::notifications::routing::{ChannelRoute, Routing};
use waiaas_core::notifications::{ChannelKind, NotificationChannel};
use waiaas_core::ports::NotificationRepo;
use waiaas_core::services::{NotificationHub, NotificationSettings, Waiaas};
use waiaas_core::webhooks::retry::RetryPolicy;
use waiaas_http::notify::{Discord, Email, EmailConfig, HttpPoster, Ntfy, Slack, SmtpTls, Telegram};

use crate::config::Config;
use crate::config::notifications::SmtpTlsMode;

/// The longest the task sleeps without a wake-up.
const POLL: Duration = Duration::from_secs(1);
/// Rounds in flight at most.
pub const CONCURRENCY: u32 = 4;
/// Digests are looked for at most this often.
const DIGEST_EVERY: Duration = Duration::from_millis(250);

/// The hub from the configuration: the channels (credentials read now; a file that cannot be read stops the
/// start naming its key), the routing in priority order, locale, retries, rate limit and explorers.
pub fn hub(
    config: &Config,
    repo: Arc<dyn NotificationRepo>,
    resolver: Arc<dyn waiaas_http::HostResolver>,
) -> anyhow::Result<NotificationHub> {
    let n = &config.notifications;
    let secrets = n.resolve().map_err(anyhow::Error::msg).context("cannot read a [notifications] credential")?;
    let timeout = Duration::from_millis(n.timeout_ms);
    let http = HttpPoster::new(timeout, Arc::clone(&resolver));
    let mut channels: Vec<Arc<dyn NotificationChannel>> = Vec::new();
    for kind in n.order() {
        let channel: Arc<dyn NotificationChannel> = match kind {
            ChannelKind::Ntfy => Arc::new(Ntfy::new(
                http.clone(),
                secrets.ntfy_url.clone().context("ntfy_url")?,
                secrets.ntfy_token.clone(),
            )),
            ChannelKind::Slack => {
                Arc::new(Slack::new(http.clone(), secrets.slack_webhook_url.clone().context("slack_webhook_url")?))
            }
            ChannelKind::Discord => Arc::new(Discord::new(
                http.clone(),
                secrets.discord_webhook_url.clone().context("discord_webhook_url")?,
            )),
            ChannelKind::Telegram => Arc::new(Telegram::new(
                http.clone(),
                n.telegram_api_url.clone(),
                secrets.telegram_bot_token.clone().context("telegram_bot_token")?,
                n.telegram_chat_id.clone().context("telegram_chat_id")?,
            )),
            ChannelKind::Email => Arc::new(Email::new(
                EmailConfig {
                    host: n.smtp_host.clone().context("smtp_host")?,
                    port: n.smtp_port,
                    username: n.smtp_username.clone(),
                    password: secrets.smtp_password.clone(),
                    from: n.smtp_from.clone().context("smtp_from")?,
                    to: n.smtp_to.clone(),
                    tls: match n.smtp_tls {
                        SmtpTlsMode::None => SmtpTls::None,
                        SmtpTlsMode::StartTls => SmtpTls::StartTls,
                        SmtpTlsMode::Tls => SmtpTls::Tls,
                    },
                    timeout,
                },
                Arc::clone(&resolver),
            )),
        };
        channels.push(channel);
    }
    let routing = Routing {
        channels: n
            .order()
            .into_iter()
            .map(|kind| ChannelRoute {
                kind,
                events: n.events.iter().find(|(c, _)| *c == kind).map(|(_, events)| events.clone()),
            })
            .collect(),
    };
    let settings = NotificationSettings {
        locale: n.locale,
        routing,
        retry: RetryPolicy { schedule_ms: n.retry_schedule.clone(), ..RetryPolicy::default() },
        rate: RateLimit { max: n.rate_limit, window_ms: n.rate_limit_window_seconds.saturating_mul(1_000) },
        explorers: config.rpc.explorers.clone().into_iter().collect(),
    };
    Ok(NotificationHub { repo, channels, settings })
}

/// Routes every audit row written since the last pass (in batches).
async fn route_all(core: &Waiaas) {
    loop {
        match core.route_notifications().await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(code = %e.code, cause = ?e.internal, "cannot route notifications");
                return;
            }
        }
    }
}

/// Runs until `stop` turns true.
pub async fn run(core: Arc<Waiaas>, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut tasks: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut busy: HashSet<i64> = HashSet::new();
    let mut digests_at = Instant::now() - DIGEST_EVERY;
    loop {
        route_all(&core).await;
        let free = CONCURRENCY.saturating_sub(running.len() as u32);
        if free > 0 {
            match core.due_notifications(busy.iter().copied().collect(), free).await {
                Ok(due) => {
                    for entry in due {
                        let id = entry.id;
                        busy.insert(id);
                        let core = Arc::clone(&core);
                        let task = running.spawn(async move {
                            let event_type = entry.event.event_type.as_str();
                            match core.deliver_notification(entry).await {
                                Ok(result) => tracing::debug!(event_type, ?result, "notification round"),
                                Err(e) => {
                                    tracing::warn!(code = %e.code, cause = ?e.internal, event_type, "notification round not recorded")
                                }
                            }
                        });
                        tasks.insert(task.id(), id);
                    }
                }
                Err(e) => tracing::warn!(code = %e.code, cause = ?e.internal, "cannot read due notifications"),
            }
        }
        if digests_at.elapsed() >= DIGEST_EVERY {
            digests_at = Instant::now();
            if let Err(e) = core.send_notification_digests().await {
                tracing::warn!(code = %e.code, cause = ?e.internal, "cannot send notification digests");
            }
        }
        let sleep = match core.next_notification_due_ms().await {
            Ok(Some(at)) if at > core.ports().clock.now_millis() => {
                Duration::from_millis(at - core.ports().clock.now_millis()).min(POLL)
            }
            _ => POLL,
        };
        tokio::select! {
            () = wake.notified() => {
                if !crate::wake::after_burst(&mut stop).await {
                    running.abort_all();
                    return;
                }
            }
            () = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let mut finished = vec![done];
                while let Some(more) = running.try_join_next_with_id() {
                    finished.push(more);
                }
                for done in finished {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a notification round failed; its entry stays queued");
                            e.id()
                        }
                    };
                    if let Some(entry) = tasks.remove(&id) {
                        busy.remove(&entry);
                    }
                }
            }
            _ = stop.changed() => {
                running.abort_all();
                return;
            }
        }
    }
}
