//! The Grafana dashboard, `packaging/grafana/vtep.json`: it imports (a JSON
//! dashboard with a `${DS_PROMETHEUS}` datasource input), its expressions
//! are PromQL (`promtool check rules`), every metric they use is a family
//! vtep's `/metrics` exports, and every family dashboards may rely on has a
//! panel.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use vtep::daemon::metrics::{Format, Snapshot, encode, families};

/// The families the README promises dashboards and alerts (issue #11).
const PROMISED: [&str; 8] = [
    "vtep_vni_packets_total",
    "vtep_vni_bytes_total",
    "vtep_reason_packets_total",
    "vtep_fdb_entries",
    "vtep_flood_list_members",
    "vtep_fdb_capacity",
    "vtep_follow_resyncs_total",
    "vtep_build_info",
];

const DATASOURCE: &str = "${DS_PROMETHEUS}";

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/vtep.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every PromQL string of the dashboard: the panels' `expr`s and the
/// template variables' queries.
fn expressions(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// The prefixes of the families `/metrics` exports: vtep's own, and the
/// process ones of the Prometheus conventions.
const PREFIXES: [&str; 2] = ["vtep_", "process_"];

/// The metric names in `expr`: identifiers starting with one of
/// [`PREFIXES`], outside quoted strings (label names and PromQL's functions
/// and keywords never start so).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while let Some((start, c)) = chars.next() {
        if c == '"' {
            // Skip to the closing quote (PromQL escapes with a backslash).
            let mut escaped = false;
            for (_, c) in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => escaped = false,
                }
            }
        } else if ident(c) {
            let mut end = start + c.len_utf8();
            while let Some(&(i, c)) = chars.peek() {
                if !ident(c) {
                    break;
                }
                end = i + c.len_utf8();
                chars.next();
            }
            let word = &expr[start..end];
            if PREFIXES.iter().any(|p| word.starts_with(p)) {
                names.insert(word.to_owned());
            }
        }
    }
    names
}

/// Every metric name the dashboard's expressions use.
fn dashboard_metrics() -> BTreeSet<String> {
    expressions(&dashboard())
        .iter()
        .flat_map(|e| metric_names(e))
        .collect()
}

/// The families in what the exporter writes, from its `# TYPE` lines
/// (classic text format: the names as scraped, `_total` included).
fn exported() -> BTreeSet<String> {
    let text = encode(families(&Snapshot::default()), Format::Prometheus).expect("encodes");
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_is_an_exported_family() {
    let exported = exported();
    assert!(exported.contains("vtep_vni_packets_total"), "{exported:?}");
    let unknown: Vec<String> = dashboard_metrics()
        .into_iter()
        .filter(|m| !exported.contains(m))
        .collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses {unknown:?}, which /metrics does not export ({exported:?})"
    );
}

/// Grafana's variables, replaced by what they stand for, so that
/// Prometheus's own parser can read the expressions.
fn as_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
        .replace("$vni", ".*")
}

#[test]
fn expressions_are_promql() {
    let dir = std::env::temp_dir().join(format!("vtep-grafana-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules = dir.join("dashboard.rules.yml");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let exprs: Vec<String> = expressions(&dashboard())
        .iter()
        // Template variables' queries are Grafana's `label_values(...)`.
        .filter(|e| !e.starts_with("label_values("))
        .map(|e| as_promql(e))
        .collect();
    for (i, expr) in exprs.iter().enumerate() {
        // A JSON string is a YAML string.
        let quoted = serde_json::to_string(expr).expect("string");
        yaml.push_str(&format!(
            "      - record: dashboard:expr{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(&rules, &yaml).expect("write rules");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.unwrap_or_else(|e| {
        panic!("cannot run promtool ({e}): install Debian's prometheus (`cargo xtask setup`)")
    });
    assert!(
        out.status.success(),
        "promtool check rules rejects the dashboard's expressions:\n{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exprs.len() >= 15, "{} expressions", exprs.len());
}

#[test]
fn finds_metric_names_in_promql() {
    let names = metric_names(
        r#"8 * sum by (vni) (rate(vtep_vni_bytes_total{instance=~"vtep_x", a="\"vtep_y"}[5m])) / vtep_fdb_capacity - process_start_time_seconds"#,
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "process_start_time_seconds",
            "vtep_fdb_capacity",
            "vtep_vni_bytes_total"
        ]
    );
}

#[test]
fn imports_with_a_prometheus_datasource_input() {
    let dashboard = dashboard();
    let inputs = dashboard["__inputs"]
        .as_array()
        .expect("an import-format dashboard has __inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "no DS_PROMETHEUS datasource input: {inputs:?}"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let graphs: Vec<&Value> = panels.iter().filter(|p| p["type"] != "row").collect();
    assert!(graphs.len() >= 8, "{} panels", graphs.len());
    for panel in graphs {
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], DATASOURCE, "panel {title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], DATASOURCE, "panel {title}");
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        assert_eq!(variable["datasource"]["uid"], DATASOURCE, "{variable}");
    }
}

#[test]
fn every_promised_family_has_a_panel() {
    let used = dashboard_metrics();
    let missing: Vec<&str> = PROMISED
        .into_iter()
        .filter(|f| !used.contains(*f))
        .collect();
    assert!(missing.is_empty(), "no panel uses {missing:?}");
}
