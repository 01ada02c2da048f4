//! `[metrics] listen`: the daemon's Prometheus endpoint, scraped with curl
//! from inside the gateway's namespace. promtool accepts the classic text
//! format, OpenMetrics is served when asked for, and the counters agree
//! with `vtep stats -j` read right after.

use std::collections::BTreeMap;
use std::time::Duration;

use vtep_tests::lab::{Flood, Host, Lab, VniConfig, VtepConfig, vtep_bin, wait_until};

const VNI: u32 = 100;
/// The endpoint's port, on the gateway's underlay address.
const PORT: u16 = 9470;

/// A sample line's name and labels, as one key (`name{a="b",...}`), and its value.
fn parse_samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a sample value: {l:?}"));
            (key.to_owned(), value)
        })
        .collect()
}

/// `curl` in `host`'s namespace: the body, with `args` before the URL.
fn curl(host: &Host, args: &str, url: &str) -> String {
    host.exec_ok(&format!("curl -sS --max-time 10 {args} {url}"))
}

/// Waits until something answers on `url` from inside `host`.
fn wait_for_endpoint(host: &Host, url: &str) -> bool {
    wait_until(Duration::from_secs(10), || {
        host.exec(&format!("curl -sf --max-time 2 -o /dev/null {url}"))
            .success()
    })
}

#[test]
fn metrics_pass_promtool_and_agree_with_vtep_stats() {
    let lab = Lab::new("metrics");
    let mut ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let (w1, w2) = (ov.workloads[0].clone(), ov.workloads[1].clone());
    let h1 = ov.hosts[0].clone();
    let listen = format!("{}:{PORT}", h1.underlay_ip);
    let url = format!("http://{listen}/metrics");
    // Host 1 again, now with the endpoint (it adopts its pinned tables).
    ov.stop(0);
    ov.configs[0] = ov.configs[0].clone().metrics(&listen);
    ov.restart(&lab, 0);
    assert!(
        wait_for_endpoint(&h1, &url),
        "nothing serves {url}; vtep's log:\n{}",
        ov.daemons[0].log()
    );

    // Traffic both ways (ARP floods, echo requests and replies), then none.
    lab.assert_ping(&w1, &w2.ip);
    lab.assert_ping(&w2, &w1.ip);
    // The AF_XDP engine adds its counts to the maps every 100 ms.
    std::thread::sleep(Duration::from_millis(500));

    // Scrape between two reads of `vtep stats -a -j` that agree, so that
    // nothing counted in between (an ARP refresh of the underlay would).
    let stats = || -> serde_json::Value {
        serde_json::from_str(&lab.vtep_ok(&h1, "stats -a -j")).expect("vtep stats -j")
    };
    let mut agreed = None;
    for _ in 0..5 {
        let before = stats();
        let text = curl(&h1, "", &url);
        if stats() == before {
            agreed = Some((text, before));
            break;
        }
    }
    let (text, stats) = agreed.expect("vtep stats -j kept changing with no traffic");
    let samples = parse_samples(&text);
    let value = |key: &str| -> f64 {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
    };

    let vni = stats["vni"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["vni"] == VNI))
        .unwrap_or_else(|| panic!("no VNI {VNI} in {stats}"));
    for (direction, packets, bytes) in [
        ("decap", "rx_packets", Some("rx_bytes")),
        ("encap", "tx_packets", Some("tx_bytes")),
        ("switch", "local_packets", Some("local_bytes")),
        ("flood", "flood_packets", None),
    ] {
        let labels = format!("{{vni=\"{VNI}\",direction=\"{direction}\"}}");
        assert_eq!(
            value(&format!("vtep_vni_packets_total{labels}")),
            vni[packets].as_u64().expect(packets) as f64,
            "{direction} packets: {stats}\n{text}"
        );
        let bytes_key = format!("vtep_vni_bytes_total{labels}");
        match bytes {
            Some(b) => assert_eq!(
                value(&bytes_key),
                vni[b].as_u64().expect(b) as f64,
                "{direction} bytes: {stats}\n{text}"
            ),
            None => assert!(!samples.contains_key(&bytes_key), "{text}"),
        }
    }
    assert!(
        vni["rx_packets"].as_u64() > Some(0) && vni["tx_packets"].as_u64() > Some(0),
        "the pings crossed host 1: {stats}"
    );
    let reasons = stats["reasons"].as_array().expect("reasons");
    assert!(!reasons.is_empty(), "stats -a lists every reason: {stats}");
    for r in reasons {
        let key = format!(
            "vtep_reason_packets_total{{reason=\"{}\",outcome=\"{}\"}}",
            r["reason"].as_str().expect("reason"),
            r["outcome"].as_str().expect("outcome")
        );
        assert_eq!(
            value(&key),
            r["count"].as_u64().expect("count") as f64,
            "{key}"
        );
    }
    let learned = lab
        .fdb(&h1, Some(VNI))
        .iter()
        .filter(|e| e.is_learned())
        .count();
    assert!(learned >= 2, "both workloads' MACs are learned on host 1");
    assert_eq!(
        value(&format!(
            "vtep_fdb_entries{{vni=\"{VNI}\",state=\"learned\"}}"
        )),
        learned as f64
    );
    assert_eq!(
        value(&format!("vtep_learned_entries{{vni=\"{VNI}\"}}")),
        learned as f64
    );
    assert_eq!(
        value(&format!("vtep_flood_list_members{{vni=\"{VNI}\"}}")),
        1.0
    );
    assert_eq!(value("vtep_fdb_capacity"), 262_144.0, "the default FDB");
    assert_eq!(value("vtep_follow_resyncs_total"), 0.0, "no [follow]");
    let engine = std::env::var("VTEP_ENGINE").unwrap_or_else(|_| "xdp".into());
    assert_eq!(
        value(&format!(
            "vtep_build_info{{version=\"{}\",engine=\"{engine}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );

    // promtool (Debian's 2.42) reads and lints the classic format.
    let scraped = lab.dir().join("metrics.txt");
    std::fs::write(&scraped, &text).expect("writing the scrape");
    let check = lab.dir().join("promtool-check.sh");
    std::fs::write(
        &check,
        format!("promtool check metrics < {}\n", scraped.display()),
    )
    .expect("writing the check");
    let run = vtep_tests::lab::run(&format!("sh {}", check.display()));
    assert!(
        run.success(),
        "promtool check metrics refused it: {run}\n{text}"
    );

    // The headers: the classic format by default, OpenMetrics when asked.
    let headers = lab.dir().join("headers");
    let header_args = format!("-D {} -o /dev/null", headers.display());
    curl(&h1, &header_args, &url);
    let head = std::fs::read_to_string(&headers).expect("headers");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    let om = curl(
        &h1,
        &format!(
            "-D {} -H Accept:application/openmetrics-text;version=1.0.0",
            headers.display()
        ),
        &url,
    );
    let head = std::fs::read_to_string(&headers).expect("headers");
    assert!(
        head.contains(
            "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{head}"
    );
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    assert!(om.contains("\n# TYPE vtep_vni_packets counter\n"), "{om}");
    assert!(om.contains("\n# UNIT vtep_vni_bytes bytes\n"), "{om}");

    // Only GET /metrics.
    let status = |args: &str, path: &str| {
        curl(
            &h1,
            &format!("-o /dev/null -w %{{http_code}} {args}"),
            &format!("http://{listen}{path}"),
        )
    };
    assert_eq!(status("", "/"), "404");
    assert_eq!(status("", "/metrics/x"), "404");
    assert_eq!(status("-X POST", "/metrics"), "405");

    // A second daemon (another pin path) on the same address stops before
    // anything is brought up, naming the setting; the first goes on.
    let config = lab.dir().join("second.toml");
    std::fs::write(&config, ov.configs[0].to_string()).expect("writing the config");
    let second = h1.exec(&format!(
        "timeout 30 {} run --config {} --pin-path {} --metrics {listen}",
        vtep_bin().display(),
        config.display(),
        lab.dir().join("second-pins").display()
    ));
    assert_eq!(second.status.code(), Some(1), "{second}");
    assert!(
        second.stderr.contains(&format!("metrics.listen {listen}"))
            && second.stderr.contains("in use"),
        "{second}"
    );
    assert!(!second.stderr.contains("vtep up"), "{second}");
    assert!(
        h1.exec(&format!("curl -sf --max-time 2 -o /dev/null {url}"))
            .success()
    );
    lab.assert_ping(&w1, &w2.ip);
}

/// With `[follow]` (the XDP engine, whatever the pass): entries mirrored
/// from the kernel FDB are counted as followed, and the resyncs are the
/// follower's own count (the one its summary logs at stop).
#[test]
fn followed_entries_and_resyncs_are_counted() {
    let lab = Lab::new("metrics follow");
    let h1 = lab.evpn_host(1, &[VNI]);
    let listen = format!("{}:{PORT}", h1.underlay_ip);
    let url = format!("http://{listen}/metrics");
    let config = VtepConfig::new(&h1.underlay_ip)
        .local_from_link()
        .follow([format!("vxlan{VNI}")])
        .metrics(&listen);
    let mut daemon = lab.start_vtep_on(&h1, config, Some("xdp"));
    assert!(
        wait_for_endpoint(&h1, &url),
        "nothing serves {url}; vtep's log:\n{}",
        daemon.log()
    );
    h1.bridge(&format!(
        "fdb add 02:00:00:00:ee:01 dev vxlan{VNI} dst 198.18.0.9"
    ));
    let followed = format!("vtep_fdb_followed_entries{{vni=\"{VNI}\"}}");
    let mut samples = BTreeMap::new();
    let mirrored = wait_until(Duration::from_secs(5), || {
        samples = parse_samples(&curl(&h1, "", &url));
        samples.get(&followed) == Some(&1.0)
    });
    assert!(mirrored, "no followed entry counted: {samples:?}");
    assert_eq!(
        samples.get(&format!(
            "vtep_fdb_entries{{vni=\"{VNI}\",state=\"static\"}}"
        )),
        Some(&1.0),
        "a followed entry is static, as `vtep fdb show` says"
    );
    let resyncs = samples["vtep_follow_resyncs_total"];
    assert!(resyncs >= 1.0, "the start's resync: {samples:?}");

    daemon.stop();
    let log = daemon.log();
    let logged = log
        .lines()
        .find_map(|l| {
            let (_, tail) = l.split_once("map change(s), ")?;
            tail.split_once(" resync(s)")?.0.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no follow summary in the log:\n{log}"));
    assert_eq!(resyncs, logged, "{log}");
}
