//! TCP throughput between two workloads with iperf3.

use std::time::Duration;

use super::{Lab, Workload, quietly, wait_until};

/// iperf3's default port.
const IPERF_PORT: u16 = 5201;

/// What the client's `iperf3 -J` reported.
#[derive(Clone, Copy, Debug)]
pub struct Iperf {
    pub sent_bytes: u64,
    pub received_bytes: u64,
    pub bits_per_second: f64,
    pub retransmits: u64,
}

impl Lab {
    /// Runs an iperf3 TCP test of `seconds` from `client` to `server`.
    /// Panics, with both sides' output and the lab's state, if iperf3 reports an error.
    pub fn iperf(&self, client: &Workload, server: &Workload, seconds: u32) -> Iperf {
        self.iperf_streams(client, server, seconds, 1)
    }

    /// Like [`Lab::iperf`], with `streams` parallel TCP connections
    /// (`iperf3 -P`): as many flows, and so as many outer source ports.
    pub fn iperf_streams(
        &self,
        client: &Workload,
        server: &Workload,
        seconds: u32,
        streams: u32,
    ) -> Iperf {
        let mut listener = server.spawn(&format!("iperf3 -s -1 -B {}", server.ip));
        let listening = wait_until(Duration::from_secs(5), || {
            let sockets = quietly(|| server.exec_ok(&format!("ss -Hltn sport = :{IPERF_PORT}")));
            !sockets.trim().is_empty()
        });
        assert!(
            listening,
            "iperf3 server in {} not listening: {}",
            server.name,
            listener.output()
        );
        let run = client.exec(&format!(
            "iperf3 -c {} -t {seconds} -P {streams} -J",
            server.ip
        ));
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        let end = &report["end"];
        let error = report["error"].as_str();
        if !run.success() || error.is_some() || end.is_null() {
            listener.stop();
            panic!(
                "iperf3 {} -> {} failed: {run}\n--- server:\n{}\n{}",
                client.name,
                server.name,
                listener.output(),
                self.diagnostics()
            );
        }
        let count = |section: &str, field: &str| end[section][field].as_u64().unwrap_or(0);
        Iperf {
            sent_bytes: count("sum_sent", "bytes"),
            received_bytes: count("sum_received", "bytes"),
            bits_per_second: end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0),
            retransmits: count("sum_sent", "retransmits"),
        }
    }
}
