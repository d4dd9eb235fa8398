//! OPS-02 audit log acceptance: T-04 combined filters over rows written by real requests, T-05 keyset pages
//! while rows are being inserted, S-06 credentials, statistics, and `waiaas audit verify|reseal|list` on the real
//! binary (a row edited, trailing rows deleted and the sealed head edited with the sqlite3 command line are found,
//! and the daemon does not start over a log whose end does not match its head).

use std::collections::HashSet;
use std::process::Command;

use waiaas_client::types::{AuditLogFilter, CreateAgent, CreateSession, ListParams};

use crate::support::{Daemon, EmbeddedDaemon, MASTER_PASSWORD, api_error, run_cli};

fn filter() -> AuditLogFilter {
    AuditLogFilter { limit: Some(200), ..Default::default() }
}

/// T-04: agent + event type + period select exactly the matching rows.
#[test]
fn t04_combined_filters_select_exactly_the_matching_rows() {
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let admin = daemon.admin();
    let start = daemon.now();
    let a = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let b = admin.create_agent(&CreateAgent::ethereum("b", "anvil")).unwrap();
    let mut in_window = Vec::new();
    for minute in 0..6 {
        daemon.advance(60);
        for agent in [&a, &b] {
            let session = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
            if agent.id == a.id && (2..=4).contains(&minute) {
                in_window.push(session.id.clone());
            }
            admin.revoke_session(&session.id).unwrap();
        }
        let _ = daemon.client().with_master_password("wrong").list_agents(&ListParams::default());
    }
    let from = start + 3 * 60;
    let to = start + 5 * 60;
    let rows = admin
        .audit_logs(&AuditLogFilter {
            agent_id: Some(a.id.clone()),
            event_types: vec!["SESSION_CREATED".into()],
            from: Some(from),
            to: Some(to),
            ..filter()
        })
        .unwrap()
        .data;
    let sessions: Vec<String> = rows.iter().rev().map(|r| r.session_id.clone().unwrap()).collect();
    assert_eq!(sessions, in_window, "exactly agent a's SESSION_CREATED rows of minutes 3..=5");
    assert!(rows.iter().all(|r| r.created_at >= from && r.created_at <= to && r.agent_id.as_deref() == Some(&a.id)));

    let two_types = admin
        .audit_logs(&AuditLogFilter {
            agent_id: Some(b.id.clone()),
            event_types: vec!["SESSION_CREATED".into(), "SESSION_REVOKED".into()],
            ..filter()
        })
        .unwrap();
    assert_eq!(two_types.data.len(), 12, "6 created + 6 revoked for agent b");
    let failures = admin
        .audit_logs(&AuditLogFilter { severity: Some("warning".into()), actor: Some("anonymous".into()), ..filter() })
        .unwrap();
    assert_eq!(failures.data.len(), 6);
    assert!(failures.data.iter().all(|r| r.event_type == "MASTER_AUTH_FAILED"));
}

/// T-05: limit-7 pages over a growing log see every original row exactly once, strictly newest first.
#[test]
fn t05_cursor_pages_are_exact_while_rows_are_inserted() {
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    for i in 0..40 {
        if i % 10 == 0 {
            daemon.advance(1);
        }
        admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    }
    let original: Vec<i64> = admin.audit_logs(&filter()).unwrap().data.iter().map(|r| r.id).collect();
    assert_eq!(original.len(), 41);

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            admin.audit_logs(&AuditLogFilter { limit: Some(7), cursor: cursor.clone(), ..Default::default() }).unwrap();
        // New rows arrive between pages; they are newer than every cursor, so no page shows them.
        admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
        seen.extend(page.data.iter().map(|r| r.id));
        assert_eq!(page.has_more, page.next_cursor.is_some());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, original, "every original row once, in order");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly descending");

    let empty = admin.audit_logs(&AuditLogFilter { event_types: vec!["ANOMALY_DETECTED".into()], ..filter() }).unwrap();
    assert!(empty.data.is_empty() && !empty.has_more && empty.next_cursor.is_none());
    for bad in ["not-a-cursor", "YWdlbnRzOjE", "%%%"] {
        let (status, code, _) = api_error(admin.audit_logs(&AuditLogFilter { cursor: Some(bad.into()), ..filter() }));
        assert_eq!((status, code.as_str()), (400, "INVALID_CURSOR"), "{bad}");
    }
    for bad_limit in [0, 201] {
        let (status, code, _) =
            api_error(admin.audit_logs(&AuditLogFilter { limit: Some(bad_limit), ..Default::default() }));
        assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"), "limit {bad_limit}");
    }
    let (status, _, _) =
        admin.request_raw("GET", "/v1/audit-logs?limit=1.5", &[("x-master-password", MASTER_PASSWORD)], None).unwrap();
    assert_eq!(status, 400, "integers parse strictly");
}

/// S-06: a session token is refused on the audit API with 403; no credential with 401.
#[test]
fn s06_session_tokens_cannot_read_the_audit_log() {
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let agent = daemon.admin().create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let token = daemon.admin().create_session(&CreateSession::for_agent(&agent.id)).unwrap().token;
    let as_agent = daemon.client().with_session_token(&token);
    let (status, code, _) = api_error(as_agent.audit_logs(&filter()));
    assert_eq!((status, code.as_str()), (401, "WRONG_AUTH"));
    let (status, code, _) = api_error(as_agent.audit_stats(None, None, None, None));
    assert_eq!((status, code.as_str()), (401, "WRONG_AUTH"));
    let (status, code, _) = api_error(daemon.client().audit_logs(&filter()));
    assert_eq!((status, code.as_str()), (401, "UNAUTHORIZED"));
    let (status, code, _) = api_error(daemon.client().audit_stats(None, None, None, None));
    assert_eq!((status, code.as_str()), (401, "UNAUTHORIZED"));
}

#[test]
fn stats_count_rows_by_type_severity_agent_and_bucket() {
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let admin = daemon.admin();
    let start = daemon.now();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    daemon.advance(3_600);
    for _ in 0..3 {
        admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    }
    let _ = daemon.client().with_master_password("wrong").list_agents(&ListParams::default());
    let stats = admin.audit_stats(None, Some(start), Some(start + 7_200), Some("hour")).unwrap();
    assert_eq!(stats.total, 5);
    let count = |t: &str| stats.by_event_type.iter().find(|c| c.event_type == t).map(|c| c.count);
    assert_eq!(
        (count("AGENT_CREATED"), count("SESSION_CREATED"), count("MASTER_AUTH_FAILED")),
        (Some(1), Some(3), Some(1))
    );
    let agent_rows = stats.by_agent.iter().find(|c| c.agent_id.as_deref() == Some(&agent.id)).unwrap().count;
    assert_eq!(agent_rows, 4);
    assert_eq!(stats.by_agent.iter().find(|c| c.agent_id.is_none()).unwrap().count, 1);
    assert_eq!(stats.series.iter().map(|b| b.count).sum::<u64>(), 5);
    assert_eq!(stats.series.len(), 2, "two hourly buckets: {:?}", stats.series);
    assert!(stats.series.iter().all(|b| b.bucket_start % 3_600 == 0));
    let by_agent = admin.audit_stats(Some(&agent.id), Some(start), Some(start + 7_200), Some("day")).unwrap();
    assert_eq!((by_agent.total, by_agent.bucket.as_str()), (4, "day"));
    let (status, code, _) = api_error(admin.audit_stats(None, None, None, Some("minute")));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"));
}

#[test]
fn audit_rows_survive_the_agent_and_the_kill_switch() {
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    admin.terminate_agent(&agent.id).unwrap();
    admin.activate_kill_switch(Some("incident")).unwrap();
    let rows = admin.audit_logs(&AuditLogFilter { agent_id: Some(agent.id.clone()), ..filter() }).unwrap();
    let types: HashSet<String> = rows.data.into_iter().map(|r| r.event_type).collect();
    assert!(
        types.is_superset(&["AGENT_CREATED", "SESSION_CREATED", "AGENT_TERMINATED"].map(String::from).into()),
        "{types:?}"
    );
    assert!(admin.audit_stats(None, None, None, None).unwrap().total >= 4, "stats reachable while tripped");
}

/// `waiaas audit verify` on the real data dir finds a row edited behind the daemon's back with sqlite3.
#[test]
fn audit_verify_detects_a_row_edited_with_sqlite3() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    for _ in 0..3 {
        admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    }
    let out = run_cli(
        daemon.data_dir(),
        &["audit", "list", "--event-type", "SESSION_CREATED", "--json"],
        &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    daemon.stop();

    let verify = || run_cli(daemon.data_dir(), &["audit", "verify"], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    let out = verify();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 rows verified"));

    let db = daemon.data_dir().join("data/waiaas.db");
    let sql = "UPDATE audit_logs SET details = '{\"edited\":true}' WHERE id = 3;";
    let edited = Command::new("sqlite3")
        .arg(&db)
        .arg(sql)
        .status()
        .expect("the sqlite3 command line (scripts/test installs it)");
    assert!(edited.success());
    let out = verify();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("row 3 was altered"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let deleted = Command::new("sqlite3").arg(&db).arg("DELETE FROM audit_logs WHERE id IN (2, 3);").status().unwrap();
    assert!(deleted.success());
    let out = verify();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("breaks at row 4"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs SQL on the stopped daemon's database with the sqlite3 command line.
fn sqlite3(data_dir: &std::path::Path, sql: &str) {
    let db = data_dir.join("data/waiaas.db");
    let done = Command::new("sqlite3").arg(&db).arg(sql).status().expect("the sqlite3 command line");
    assert!(done.success(), "{sql}");
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Trailing rows deleted behind the daemon's back leave a valid, shorter chain; the sealed head still records the
/// row the log ended at, so `verify` reports the truncation and the next start refuses to run (and so to re-seal)
/// over it, until the operator accepts the log with `waiaas audit reseal`, which records what was found.
#[test]
fn audit_verify_reports_deleted_trailing_rows() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    for _ in 0..3 {
        admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    }
    daemon.stop();
    let password = [("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)];
    let verify = || run_cli(daemon.data_dir(), &["audit", "verify"], &password);
    let out = verify();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("4 rows verified; the log ends at row 4, as its sealed head records"),
        "{}",
        stdout(&out)
    );

    sqlite3(daemon.data_dir(), "DELETE FROM audit_logs WHERE id > 2;");
    let out = verify();
    assert!(!out.status.success(), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(report.contains("audit chain intact: 2 rows verified"), "{report}");
    assert!(
        report.contains(
            "audit log TAMPERED: the log ends at row 2 but the head records row 4: trailing rows were deleted"
        ),
        "{report}"
    );

    let refused = daemon.start_another(&[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("the audit log does not match its sealed head: the log ends at row 2 but the head records row 4"),
        "{said}"
    );
    assert!(said.contains("waiaas audit reseal"), "{said}");
    assert!(!verify().status.success(), "the refused start changed nothing");

    let out = run_cli(daemon.data_dir(), &["audit", "reseal"], &password);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("resealed the audit log as it stands"), "{}", stdout(&out));
    let out = verify();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("note: a head was sealed over existing rows at row 5"), "{}", stdout(&out));

    daemon.restart();
    let filter = AuditLogFilter { event_types: vec!["AUDIT_HEAD_SEALED".into()], ..filter() };
    let sealed = daemon.admin().audit_logs(&filter).unwrap().data;
    assert_eq!(sealed.len(), 1);
    assert_eq!((sealed[0].id, sealed[0].actor.as_str(), sealed[0].severity.as_str()), (5, "master", "warning"));
    assert_eq!(sealed[0].details["unprotectedThrough"], 2);
    let finding = sealed[0].details["finding"].as_str().unwrap();
    assert!(finding.contains("the log ends at row 2 but the head records row 4"), "{finding}");
}

/// Moving the head back onto an earlier row (to hide the rows after it) is found: the head's MAC was made with a
/// key derived from the master password, which whoever edits the file does not have.
#[test]
fn audit_verify_reports_an_edited_head() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    for _ in 0..2 {
        admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    }
    daemon.stop();
    sqlite3(
        daemon.data_dir(),
        "DELETE FROM audit_logs WHERE id = 3; \
         UPDATE audit_head SET last_id = 2, last_hash = (SELECT hash FROM audit_logs WHERE id = 2);",
    );
    let out = run_cli(daemon.data_dir(), &["audit", "verify"], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("audit chain intact: 2 rows verified"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("audit log TAMPERED: the sealed head was edited: its MAC does not verify"),
        "{}",
        stdout(&out)
    );

    let wrong = run_cli(daemon.data_dir(), &["audit", "verify"], &[("WAIAAS_MASTER_PASSWORD", "wrong")]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("INVALID_MASTER_PASSWORD"));
    assert!(stdout(&wrong).is_empty(), "no verdict without the right password: {}", stdout(&wrong));

    let refused = daemon.start_another(&[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the sealed head was edited"));
}

#[test]
fn audit_list_needs_a_running_daemon_and_the_password() {
    let mut daemon = Daemon::start();
    let out = run_cli(daemon.data_dir(), &["audit", "list"], &[("WAIAAS_MASTER_PASSWORD", "wrong")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INVALID_MASTER_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.stop();
    let out = run_cli(daemon.data_dir(), &["audit", "list"], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon is running"));
}
