//! OPS-04 benchmarks (`cargo bench -p waiaas-tests --bench webhooks`): deliveries per second to local receivers
//! (one webhook: deliveries to one endpoint go one at a time, in order; eight webhooks: in parallel), and the
//! admission rate with five `*` webhooks subscribed against none: with receivers that hang (the deliveries wait:
//! what webhooks cost the pipeline itself) and with receivers that answer at once (delivered meanwhile, on the
//! same cores). Not tests: nothing here asserts a time.

#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;

mod load;

use std::time::Instant;

use load::admission_rate;
use support::{Anvil, EmbeddedDaemon, Receiver};
use waiaas_client::{AuditLogFilter, Client, CreateWebhook};

/// Rounds of each admission measurement.
const ROUNDS: usize = 9;
/// Sends per admission round (16 clients).
const SENDS: usize = 4_000;

fn webhook(admin: &Client, url: String, events: &str) -> String {
    admin
        .create_webhook(&CreateWebhook { url, event_types: vec![events.into()], description: None })
        .expect("webhook")
        .id
}

/// Deliveries per second of `n` test pings to each of `hooks` webhooks (queued first, then timed from the first
/// receipt to the last).
fn delivery_rate(hooks: usize, n: usize) -> f64 {
    let daemon = EmbeddedDaemon::start(&[]);
    let admin = daemon.admin();
    let receivers: Vec<Receiver> = (0..hooks).map(|_| Receiver::status(200)).collect();
    let ids: Vec<String> = receivers.iter().map(|r| webhook(&admin, r.url("/bench"), "WEBHOOK_TEST")).collect();
    for _ in 0..n {
        for id in &ids {
            admin.test_webhook(id).expect("ping");
        }
    }
    for r in &receivers {
        r.wait_for(n, 600);
    }
    let all: Vec<Instant> = receivers.iter().flat_map(|r| r.received().into_iter().map(|d| d.at)).collect();
    let (first, last) = (all.iter().min().copied().unwrap(), all.iter().max().copied().unwrap());
    all.len() as f64 / last.duration_since(first).as_secs_f64()
}

/// The id of the newest audit row.
fn last_audit_id(admin: &Client) -> i64 {
    let newest = admin.audit_logs(&AuditLogFilter { limit: Some(1), ..AuditLogFilter::default() }).expect("audit");
    newest.data[0].id
}

fn main() {
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    println!("WAIaaS webhook benchmarks — build profile: {profile}");
    println!("{:<52} {:>8.0} deliveries/s", "deliveries, 1 webhook (in order, one at a time)", delivery_rate(1, 500));
    println!("{:<52} {:>8.0} deliveries/s", "deliveries, 8 webhooks (in parallel)", delivery_rate(8, 200));

    let anvil = Anvil::start();
    let daemon = || {
        EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str()), ("WAIAAS_WEBHOOKS_TIMEOUT_MS", "120000")])
    };
    // Three daemons: no webhook; five `*` webhooks whose receivers answer at once (the deliveries run meanwhile, on
    // the same two cores); five whose receivers hang (each holds one delivery in flight, so the rest waits in its
    // stream: what subscribed webhooks cost the pipeline itself, the delivery task's wake-ups included).
    let (none, delivering, queueing) = (daemon(), daemon(), daemon());
    let quick: Vec<Receiver> = (0..5).map(|_| Receiver::status(200)).collect();
    let hanging: Vec<Receiver> = (0..5).map(|_| Receiver::scripted(|_| support::Answer::Hang)).collect();
    // Each receiver gets every row from its webhook's own WEBHOOK_CREATED on.
    let firsts: Vec<i64> = quick
        .iter()
        .map(|r| {
            webhook(&delivering.admin(), r.url("/all"), "*");
            last_audit_id(&delivering.admin())
        })
        .collect();
    for r in &hanging {
        webhook(&queueing.admin(), r.url("/all"), "*");
    }
    let (mut base, mut with, mut queued) = (Vec::new(), Vec::new(), Vec::new());
    let delivered = || quick.iter().map(|r| r.received().len()).sum::<usize>();
    let mut during = 0;
    // The hanging case is judged by pairs: each round measures it next to a round without webhooks, in alternating
    // order, so the machine's drift (other processes, anvil's growing state) falls on both sides of a pair.
    let mut paired = Vec::new();
    for round in 0..ROUNDS {
        let rate = |daemon: &EmbeddedDaemon| admission_rate(daemon, &anvil, 16, SENDS);
        let (b, q) = if round % 2 == 0 {
            let b = rate(&none);
            (b, rate(&queueing))
        } else {
            let q = rate(&queueing);
            (rate(&none), q)
        };
        paired.push((q - b) / b * 100.0);
        base.push(b);
        queued.push(q);
        let before = delivered();
        with.push(rate(&delivering));
        during += delivered() - before;
        // The rest of the backlog is delivered before the next round, which would otherwise share the cores with it.
        let last = last_audit_id(&delivering.admin());
        for (r, first) in quick.iter().zip(&firsts) {
            r.wait_for(usize::try_from(last - first + 1).expect("count"), 600);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pairs = paired.iter().map(|p| format!("{p:+.0}")).collect::<Vec<_>>().join(" ");
    let (base, with, queued, pair) = (median(base), median(with), median(queued), median(paired));
    println!("{:<52} {base:>6.0} sends/s (16 clients, median of {ROUNDS})", "admission throughput, no webhook");
    println!(
        "{:<52} {queued:>6.0} sends/s: {pair:+.1} % (median of {ROUNDS} pairs, in order: {pairs} %)   target within 5 %",
        "  5 '*' webhooks, receivers hanging (nothing delivered)",
    );
    println!(
        "{:<52} {with:>6.0} sends/s: {:+.1} % ({during} deliveries made during the rounds, same cores)",
        "  5 '*' webhooks, delivering meanwhile",
        (with - base) / base * 100.0
    );
}
