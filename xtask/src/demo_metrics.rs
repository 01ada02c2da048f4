//! `cargo xtask demo --metrics`: vtep's rates as a real Prometheus graphs
//! them, for the README's pictures.
//!
//! Three hosts run vtep, each serving `/metrics` on its underlay address
//! inside its namespace; a fourth switches VNI 300, which none of them
//! carries, with the Linux vxlan driver; a fifth runs the distribution's
//! `prometheus`, scraping every gateway each second, its storage in the
//! lab's directory and its web page on that namespace's loopback. Traffic
//! flows for a minute, changing halfway; then, while it still flows, a
//! headless `chromium` in Prometheus's namespace screenshots Prometheus's
//! own graph page into `docs/img/metrics-*.png`. Nothing listens outside the lab's namespaces,
//! and the lab (every process in it, Prometheus and Chromium too) goes when
//! the demo ends, fails or is interrupted (Ctrl-C, SIGTERM).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use vtep_tests::lab::{self, Host, Lab, VniConfig, VtepConfig, Workload, mac, tenant_net};

use crate::cmd;

const VNI_A: u32 = 100;
const VNI_B: u32 = 200;
/// Carried by the kernel-vxlan host only: what it floods to h1 is dropped
/// there as `unknown-vni`.
const VNI_STRAY: u32 = 300;
/// The port every gateway serves `/metrics` on, at its underlay address.
const METRICS_PORT: u16 = 9470;
/// Prometheus's web page and API, on the loopback of its namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";
/// How often Prometheus scrapes each gateway (and evaluates).
const SCRAPE_INTERVAL: &str = "1s";
/// Each half of the traffic: tenant A alone, then tenant B and stray frames too.
const HALF: Duration = Duration::from_secs(30);
/// The longest the flows may run (they are stopped after the screenshots).
const FLOW_LIMIT_SECS: u32 = 300;
/// The rate window of the graphed expressions.
const RATE_WINDOW: &str = "10s";
/// Chromium's window, which is the screenshot's size.
const WINDOW: (u32, u32) = (1400, 1000);
/// Virtual time Chromium gives the page to load its data and draw, ms.
const RENDER_BUDGET_MS: u32 = 10_000;
/// A blank page or the browser's error page is smaller than this (a graph
/// page is 80 KB or more, one without data about 40 KB).
const MIN_SCREENSHOT_BYTES: u64 = 20_000;

/// One picture: Prometheus's graph page of `expr`.
struct Graph {
    file: &'static str,
    expr: String,
    what: &'static str,
}

fn graphs() -> [Graph; 3] {
    let w = RATE_WINDOW;
    [
        Graph {
            file: "metrics-packets.png",
            expr: format!("sum by (vni, direction) (rate(vtep_vni_packets_total[{w}]))"),
            what: "packets/s per VNI and direction, all gateways",
        },
        Graph {
            file: "metrics-bits.png",
            expr: format!("8 * sum by (gateway, vni) (rate(vtep_vni_bytes_total[{w}]))"),
            what: "bits/s per gateway and VNI, all directions",
        },
        Graph {
            file: "metrics-reasons.png",
            expr: format!(
                "sum by (gateway, reason, outcome) (rate(vtep_reason_packets_total[{w}])) > 0"
            ),
            what: "packets/s by reason (drops and the rest), where not zero",
        },
    ]
}

fn section(title: &str) {
    println!("\n==> {title}\n");
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
    // A second one ends xtask at once, should the cleanup hang.
    // SAFETY: signal(2) is async-signal-safe.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// From now on the first SIGINT or SIGTERM only sets [`INTERRUPTED`]: the
/// demo notices at its next step and returns, dropping the lab, which ends
/// every process in it and deletes its namespaces.
fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let handler = on_interrupt as extern "C" fn(libc::c_int);
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted; the lab is removed");
    }
    Ok(())
}

/// Sleeps `duration`, unless interrupted first.
fn pause(duration: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        check_interrupted()?;
        sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
    }
    check_interrupted()
}

/// Workload 1 of `tenant` on `host`: MAC `mac(host, tenant, 1)`, address `<net>.<host>`.
fn tenant_workload(lab: &Lab, host: &Host, tenant: u8) -> Workload {
    let cidr = format!("{}.{}/24", tenant_net(tenant), host.n);
    lab.workload(host, tenant, 1, &mac(host.n, tenant, 1), &cidr)
}

/// Where `host` serves `/metrics`.
fn metrics_addr(host: &Host) -> String {
    format!("{}:{METRICS_PORT}", host.underlay_ip)
}

/// vtep's config on `host`: tenants A and B flood to the `peers`; `/metrics`
/// on the underlay address.
fn config(host: &Host, peers: &[&Host], a: &Workload, b: &Workload) -> VtepConfig {
    let flood = || peers.iter().map(|p| p.underlay_ip.as_str());
    VtepConfig::new(&host.underlay_ip)
        .vni(VniConfig::new(VNI_A).port(&a.port).flood(flood()))
        .vni(VniConfig::new(VNI_B).port(&b.port).flood(flood()))
        .metrics(&metrics_addr(host))
}

/// The lines of a scrape the demo prints: a few families, all their samples.
fn shown_in_demo(line: &str) -> bool {
    let name = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))
        .unwrap_or(line);
    [
        "vtep_build_info",
        "vtep_vni_packets_total",
        "vtep_fdb_entries",
        "vtep_fdb_capacity",
    ]
    .iter()
    .any(|family| {
        name.strip_prefix(family)
            .is_some_and(|rest| rest.starts_with([' ', '{']))
    })
}

/// Prometheus's configuration: every gateway, labelled `gateway="hN"`.
fn prometheus_config(gateways: &[Host]) -> String {
    let mut yaml = format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n\
         scrape_configs:\n  - job_name: vtep\n    static_configs:\n"
    );
    for host in gateways {
        let _ = writeln!(
            yaml,
            "      - targets: ['{}']\n        labels: {{gateway: h{}}}",
            metrics_addr(host),
            host.n
        );
    }
    yaml
}

/// The Prometheus running in `host`: its HTTP API through `promtool`, run
/// in the same namespace.
struct Prometheus<'a> {
    host: &'a Host,
}

impl Prometheus<'_> {
    /// The value of the instant query `expr` (one series, no spaces in
    /// `expr`: the lab splits command lines on whitespace); `None` if it
    /// has no result or fails.
    fn scalar(&self, expr: &str) -> Option<f64> {
        let line = format!("promtool query instant http://{PROMETHEUS} {expr}");
        let run = lab::quietly(|| self.host.exec(&line));
        parse_promtool_value(&run.stdout)
    }

    /// `promtool query instant` of `expr` (spaces allowed, not traced):
    /// what it prints, or an error saying why it failed.
    fn query(&self, expr: &str) -> anyhow::Result<String> {
        let url = format!("http://{PROMETHEUS}");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host.name, "promtool"])
            .args(["query", "instant", &url, expr])
            .output()
            .context("cannot run ip netns exec promtool")?;
        if !out.status.success() {
            bail!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `promtool query instant` of `expr` (no spaces), as it prints it, or
    /// its error.
    fn show(&self, expr: &str) -> String {
        let run = self.host.exec(&format!(
            "promtool query instant http://{PROMETHEUS} {expr}"
        ));
        if run.success() {
            run.stdout.trim_end().to_owned()
        } else {
            run.to_string()
        }
    }
}

/// The Grafana dashboard's panels: (title, expression) of every query.
fn dashboard_queries() -> anyhow::Result<Vec<(String, String)>> {
    let path = cmd::workspace_root().join("packaging/grafana/vtep.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push((title.to_owned(), expr.to_owned()));
            }
        }
    }
    Ok(queries)
}

/// Grafana's variables as the dashboard's defaults have them (every
/// gateway, every VNI), its rate interval as the demo's graphs.
fn as_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_WINDOW)
        .replace("$instance", ".*")
        .replace("$vni", ".*")
}

/// Runs every query of the dashboard: each must parse, and each must find
/// series unless it filters them (`> 0`).
fn check_dashboard(prometheus: &Prometheus, surprises: &mut Vec<String>) -> anyhow::Result<()> {
    for (title, expr) in dashboard_queries()? {
        let expr = as_promql(&expr);
        let out = match prometheus.query(&expr) {
            Ok(out) => out,
            Err(e) => {
                surprises.push(format!("the dashboard's `{expr}` ({title}) fails: {e:#}"));
                continue;
            }
        };
        let series = out.lines().filter(|l| l.contains(" => ")).count();
        println!("{series:>3} series  {title}: {expr}");
        if series == 0 && !expr.contains('>') {
            surprises.push(format!("the dashboard's `{expr}` ({title}) finds nothing"));
        }
    }
    Ok(())
}

/// The value of promtool's first result line, `{labels} => VALUE @[TIME]`.
fn parse_promtool_value(out: &str) -> Option<f64> {
    let line = out.lines().next()?;
    let (_, rest) = line.split_once("=> ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Percent-encodes `text` for a URL's query (everything but the unreserved characters).
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Prometheus's graph page of `expr` over the last `range_secs`.
fn graph_url(expr: &str, range_secs: u64) -> String {
    format!(
        "http://{PROMETHEUS}/graph?g0.expr={}&g0.tab=0&g0.stacked=0&g0.range_input={range_secs}s",
        url_encode(expr)
    )
}

/// Headless Chromium in `host`'s namespace: a screenshot of `url` into `file`.
fn screenshot(host: &Host, profile: &Path, url: &str, file: &Path) -> anyhow::Result<u64> {
    let (width, height) = WINDOW;
    let run = host.exec(&format!(
        "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
         --disable-background-networking --disable-component-update --disable-sync \
         --hide-scrollbars --user-data-dir={} --window-size={width},{height} \
         --virtual-time-budget={RENDER_BUDGET_MS} --screenshot={} {url}",
        profile.display(),
        file.display()
    ));
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if !run.success() || size < MIN_SCREENSHOT_BYTES {
        bail!("chromium wrote no screenshot of {url} ({size} bytes): {run}");
    }
    Ok(size)
}

/// The demo; what did not go as it says, or an error if it could not go on.
pub fn walk_through() -> anyhow::Result<Vec<String>> {
    catch_interrupts();
    let mut surprises = Vec::new();
    let out_dir = cmd::workspace_root().join("docs").join("img");

    section("1. The lab: vtep on h1, h2, h3; Linux vxlan (VNI 300) on h4; Prometheus on h9");
    let lab = Lab::new("demo metrics");
    let hosts: Vec<Host> = (1..=3).map(|n| lab.host(n)).collect();
    let a: Vec<Workload> = hosts.iter().map(|h| tenant_workload(&lab, h, 1)).collect();
    let b: Vec<Workload> = hosts.iter().map(|h| tenant_workload(&lab, h, 2)).collect();
    let h4 = lab.kernel_vxlan_host(4, &[VNI_STRAY], &[&hosts[0].underlay_ip]);
    let stray_cidr = format!("{}.4/24", tenant_net(3));
    let stray = lab.kernel_workload(&h4, VNI_STRAY, (3, 1), &mac(4, 3, 1), &stray_cidr);
    let h9 = lab.host(9);
    check_interrupted()?;

    section(
        "2. vtep on h1, h2 and h3, serving /metrics on the underlay address ([metrics] listen)",
    );
    let configs: Vec<VtepConfig> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let peers: Vec<&Host> = hosts.iter().filter(|p| p.n != h.n).collect();
            config(h, &peers, &a[i], &b[i])
        })
        .collect();
    println!("{}", configs[0]);
    let mut daemons = Vec::new();
    for (host, config) in hosts.iter().zip(&configs) {
        daemons.push(lab.start_vtep(host, config));
        check_interrupted()?;
    }

    section("3. Prometheus on h9: scrapes every gateway each second, web page on h9's loopback");
    let prom_dir = lab.dir().join("prometheus");
    let data = prom_dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    lab.remove_on_drop(&prom_dir);
    let prom_config = prom_dir.join("prometheus.yml");
    let yaml = prometheus_config(&hosts);
    std::fs::write(&prom_config, &yaml)
        .with_context(|| format!("writing {}", prom_config.display()))?;
    println!("{yaml}");
    let mut prometheus_proc = h9.spawn_as(
        "prometheus",
        &format!(
            "prometheus --config.file={} --storage.tsdb.path={} --web.listen-address={PROMETHEUS}",
            prom_config.display(),
            data.display()
        ),
    );
    let started = Instant::now();
    let prometheus = Prometheus { host: &h9 };
    let gateways = hosts.len() as f64;
    let all_up = lab::wait_until(Duration::from_secs(30), || {
        INTERRUPTED.load(Ordering::Relaxed) || prometheus.scalar("count(up==1)") == Some(gateways)
    });
    check_interrupted()?;
    if !all_up {
        bail!(
            "Prometheus does not scrape all {gateways} gateways after 30 s:\n{}\n--- its log:\n{}",
            prometheus.show("up"),
            prometheus_proc.output()
        );
    }
    println!("{}", prometheus.show("up"));
    let scrape = h9.exec(&format!(
        "curl -sS http://{}/metrics",
        metrics_addr(&hosts[0])
    ));
    if !scrape.success() {
        bail!("h1's /metrics does not answer from h9: {scrape}");
    }
    println!("(some of the families h1 serves)");
    for line in scrape.stdout.lines().filter(|l| shown_in_demo(l)) {
        println!("{line}");
    }
    // A few scrapes of the idle lab first: the graphs start at zero.
    pause(Duration::from_secs(5))?;

    section("4. First half: tenant A, TCP h1 -> h2 at 20 Mbit/s and broadcasts from h3");
    let iperf_port = 5201;
    let servers =
        [&a[1], &b[2]].map(|w| w.spawn(&format!("iperf3 -s -B {} -p {iperf_port}", w.ip)));
    let listening = lab::wait_until(Duration::from_secs(5), || {
        [&a[1], &b[2]].iter().all(|w| {
            let ss = lab::quietly(|| w.exec(&format!("ss -Hltn sport = :{iperf_port}")));
            !ss.stdout.trim().is_empty()
        })
    });
    if !listening {
        bail!("the iperf3 servers do not listen after 5 s");
    }
    // The flows run until the screenshots are taken (or 5 minutes at most).
    let mut tcp = vec![a[0].spawn(&format!(
        "iperf3 -c {} -p {iperf_port} -t {FLOW_LIMIT_SECS} -b 20M",
        a[1].ip
    ))];
    let broadcast = format!("{}.255", tenant_net(1));
    let mut pings = vec![a[2].spawn(&format!("ping -n -b -i 0.1 {broadcast}"))];
    pause(HALF)?;

    section("5. Second half: tenant B too (TCP h1 -> h3 at 40 Mbit/s), and VNI 300 frames from h4");
    tcp.push(b[0].spawn(&format!(
        "iperf3 -c {} -p {iperf_port} -t {FLOW_LIMIT_SECS} -b 40M",
        b[2].ip
    )));
    // A neighbour no one has: h4's bridge floods the pings to h1, which does
    // not carry VNI 300.
    let nobody = format!("{}.99", tenant_net(3));
    stray.ip(&format!(
        "neigh replace {nobody} lladdr {} dev eth0 nud permanent",
        mac(0xee, 3, 1)
    ));
    pings.push(stray.spawn(&format!("ping -n -i 0.05 {nobody}")));
    pause(HALF)?;
    let w = RATE_WINDOW;
    println!(
        "{}",
        prometheus.show(&format!(
            "sum(rate(vtep_vni_packets_total[{w}]))by(vni,direction)"
        ))
    );
    println!(
        "{}",
        prometheus.show(&format!(
            "sum(rate(vtep_reason_packets_total{{outcome=\"drop\"}}[{w}]))by(gateway,reason)>0"
        ))
    );
    let expected = [
        (
            format!("sum(rate(vtep_vni_packets_total{{vni=\"{VNI_A}\"}}[{w}]))"),
            "tenant A's packets",
        ),
        (
            format!("sum(rate(vtep_vni_packets_total{{vni=\"{VNI_B}\"}}[{w}]))"),
            "tenant B's packets",
        ),
        (
            format!("sum(rate(vtep_vni_packets_total{{direction=\"flood\"}}[{w}]))"),
            "flooded broadcasts",
        ),
        (
            format!("sum(rate(vtep_reason_packets_total{{reason=\"unknown-vni\"}}[{w}]))"),
            "VNI 300 frames dropped as unknown-vni",
        ),
    ];
    for (expr, what) in &expected {
        match prometheus.scalar(expr) {
            Some(rate) if rate > 0.0 => println!("{what}: {rate:.0}/s"),
            other => surprises.push(format!("Prometheus sees no {what}: `{expr}` is {other:?}")),
        }
    }

    section(
        "6. The Grafana dashboard's queries against this Prometheus (packaging/grafana/vtep.json)",
    );
    check_dashboard(&prometheus, &mut surprises)?;

    section(
        "7. Headless Chromium on h9 screenshots Prometheus's graph page (traffic still flowing)",
    );
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let profile = lab.dir().join("chromium");
    std::fs::create_dir_all(&profile).with_context(|| format!("creating {}", profile.display()))?;
    lab.remove_on_drop(&profile);
    let range = started.elapsed().as_secs() + 5;
    let mut shots = Vec::new();
    for graph in graphs() {
        check_interrupted()?;
        let shot = lab.dir().join(graph.file);
        let size = screenshot(&h9, &profile, &graph_url(&graph.expr, range), &shot)?;
        println!(
            "{}: {} ({size} bytes)\n  {}",
            graph.file, graph.what, graph.expr
        );
        shots.push(shot);
    }
    for client in &mut tcp {
        if let Some(status) = client.exited() {
            surprises.push(format!(
                "iperf3 ended ({status}) before the screenshots:\n{}",
                client.output()
            ));
        }
    }
    // Only pictures of a demo that went as described replace the README's.
    let mut written: Vec<PathBuf> = Vec::new();
    if surprises.is_empty() {
        for shot in &shots {
            let dest = out_dir.join(shot.file_name().unwrap_or_default());
            std::fs::copy(shot, &dest)
                .with_context(|| format!("copying {} to {}", shot.display(), dest.display()))?;
            written.push(dest);
        }
    }

    section("8. Teardown: stop the traffic, Prometheus and vtep, vtep down, delete the namespaces");
    drop(tcp);
    drop(pings);
    drop(servers);
    prometheus_proc.stop();
    drop(daemons);
    drop(lab);
    if written.is_empty() {
        println!("\n{} left as it was", out_dir.display());
    }
    for picture in &written {
        println!("wrote {}", picture.display());
    }
    Ok(surprises)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_promtool_values() {
        assert_eq!(
            parse_promtool_value("{} => 3 @[1796166755.848]\n"),
            Some(3.0)
        );
        assert_eq!(
            parse_promtool_value("{vni=\"100\"} => 1234.5 @[1796166755.848]"),
            Some(1234.5)
        );
        assert_eq!(parse_promtool_value(""), None);
        assert_eq!(parse_promtool_value("Error: bad query"), None);
    }

    #[test]
    fn encodes_expressions_for_the_url() {
        assert_eq!(
            url_encode("sum by (vni) (rate(x{a=\"b\"}[10s]))"),
            "sum%20by%20%28vni%29%20%28rate%28x%7Ba%3D%22b%22%7D%5B10s%5D%29%29"
        );
    }
}
