//! The operator's monitoring kit in `docs/monitoring/`: the Grafana dashboard is valid JSON whose every query
//! names only metrics of the catalog (`waiaas_core::metrics::CATALOG`) and covers each of them, and the alerting
//! rules name only catalog metrics. `promtool check rules` and `promtool test rules` run in CI through
//! `scripts/check-monitoring`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use waiaas_core::metrics::{CATALOG, MetricKind};

fn kit(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The catalog metric a series name belongs to (`_bucket`, `_count` and `_sum` of a histogram are its own).
fn catalog_metric(series: &str) -> Option<&'static str> {
    CATALOG.iter().map(|d| d.name).find(|name| *name == series).or_else(|| {
        CATALOG
            .iter()
            .filter(|d| d.kind == MetricKind::Histogram)
            .map(|d| d.name)
            .find(|name| ["_bucket", "_count", "_sum"].iter().any(|suffix| series.strip_suffix(suffix) == Some(*name)))
    })
}

/// Every `waiaas_...` identifier in a PromQL expression (or any text).
fn series_names(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| token.starts_with("waiaas_"))
        .collect()
}

/// Every string under a key named `key`, at any depth.
fn strings_under<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == key => out.push(s),
                    _ => strings_under(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_query_names_catalog_metrics_and_covers_the_catalog() {
    let dashboard: Value = serde_json::from_str(&kit("grafana-dashboard.json")).expect("the dashboard is valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        let mut exprs = Vec::new();
        strings_under(&panel["targets"], "expr", &mut exprs);
        assert!(!exprs.is_empty(), "panel {} has no query", panel["title"]);
    }
    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    strings_under(&dashboard["templating"], "definition", &mut exprs);
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = series_names(expr);
        assert!(!names.is_empty(), "{expr:?} names no WAIaaS metric");
        for name in names {
            let metric = catalog_metric(name).unwrap_or_else(|| panic!("{name} (in {expr:?}) is not in the catalog"));
            used.insert(metric);
        }
    }
    let missing: Vec<_> = CATALOG.iter().map(|d| d.name).filter(|name| !used.contains(name)).collect();
    assert!(missing.is_empty(), "no dashboard panel shows {missing:?}");
}

#[test]
fn the_alerting_rules_name_only_catalog_metrics() {
    let rules = kit("alerts.yml");
    let names = series_names(&rules);
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        assert!(catalog_metric(name).is_some(), "{name} in alerts.yml is not in the catalog");
    }
    // The rules' test feeds only catalog series too.
    for name in series_names(&kit("alerts.test.yml")) {
        assert!(catalog_metric(name).is_some(), "{name} in alerts.test.yml is not in the catalog");
    }
    assert_eq!(catalog_metric("waiaas_rpc_duration_seconds_bucket"), Some("waiaas_rpc_duration_seconds"));
    assert_eq!(catalog_metric("waiaas_sessions_active_count"), None);
}
