//! Builder for vtep's TOML configuration (`vtep run --config FILE`).
//!
//! Optional settings are left out of the file unless a test sets them, so
//! the daemon's defaults are what most tests exercise.

use serde::Serialize;

/// A whole `vtep run` configuration.
#[derive(Clone, Debug, Serialize)]
pub struct VtepConfig {
    pub underlay: Underlay,
    #[serde(rename = "vni", skip_serializing_if = "Vec::is_empty")]
    pub vnis: Vec<VniConfig>,
    #[serde(rename = "fdb", skip_serializing_if = "Vec::is_empty")]
    pub fdb: Vec<FdbConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<FollowConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// `[capacity]`: table sizes, in entries.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Capacity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdb: Option<u32>,
}

/// `[follow]`: the kernel vxlan devices (and their bridges) vtep mirrors.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FollowConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcvbuf: Option<u32>,
}

/// `[underlay]`: the uplink and this VTEP's address.
#[derive(Clone, Debug, Serialize)]
pub struct Underlay {
    pub interface: String,
    /// This VTEP's addresses: written as one string when there is one, as a
    /// list (`["198.18.0.1", "2001:db8::1"]`) when there are two. Empty:
    /// left out, for vtep to take it from the followed devices.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "one_or_list")]
    pub local: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcport: Option<[u16; 2]>,
    /// `ttl = N` or `ttl = "auto"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Setting>,
    /// `tos = N` or `tos = "inherit"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos: Option<Setting>,
    /// `flowlabel = N`, `"hash"` or `"inherit"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flowlabel: Option<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_checksum: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp6_zero_csum_tx: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp6_zero_csum_rx: Option<bool>,
}

/// A setting that takes a number or a word (`ttl = 64`, `ttl = "auto"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    Num(u32),
    Word(String),
}

impl From<u32> for Setting {
    fn from(n: u32) -> Self {
        Setting::Num(n)
    }
}

impl From<&str> for Setting {
    fn from(w: &str) -> Self {
        Setting::Word(w.to_owned())
    }
}

/// `local`: one address as a string, two as a list.
fn one_or_list<S: serde::Serializer>(local: &[String], s: S) -> Result<S::Ok, S::Error> {
    match local {
        [one] => s.serialize_str(one),
        all => all.serialize(s),
    }
}

/// `[[vni]]`: one VXLAN segment, its access ports and its flood list.
#[derive(Clone, Debug, Serialize)]
pub struct VniConfig {
    pub id: u32,
    pub ports: Vec<String>,
    pub flood: Vec<String>,
    /// The VNI's multicast group (`group = "239.1.1.1"` or `"ff05::100"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ageing: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxaddress: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_source: Option<bool>,
}

/// `[[fdb]]`: a static entry, remote (`dst`) or local (`port`).
#[derive(Clone, Debug, Serialize)]
pub struct FdbConfig {
    pub mac: String,
    pub vni: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

impl VtepConfig {
    /// A configuration for the VTEP at `local` whose uplink is the lab's `uplink`.
    pub fn new(local: &str) -> VtepConfig {
        VtepConfig {
            underlay: Underlay {
                interface: super::UPLINK.to_owned(),
                local: vec![local.to_owned()],
                port: None,
                srcport: None,
                ttl: None,
                tos: None,
                flowlabel: None,
                udp_checksum: None,
                udp6_zero_csum_tx: None,
                udp6_zero_csum_rx: None,
            },
            vnis: Vec::new(),
            fdb: Vec::new(),
            follow: None,
            capacity: None,
            metrics: None,
        }
    }

    /// Follows the kernel vxlan devices `devices` (`[follow]`).
    pub fn follow<S: AsRef<str>>(mut self, devices: impl IntoIterator<Item = S>) -> VtepConfig {
        let f = self.follow.get_or_insert_with(FollowConfig::default);
        f.devices
            .extend(devices.into_iter().map(|d| d.as_ref().to_owned()));
        self
    }

    /// An FDB of `entries` entries (`[capacity] fdb`).
    pub fn fdb_capacity(mut self, entries: u32) -> VtepConfig {
        self.capacity.get_or_insert_with(Capacity::default).fdb = Some(entries);
        self
    }

    /// Follows every vxlan device of the host (`[follow] all = true`).
    pub fn follow_all(mut self) -> VtepConfig {
        self.follow.get_or_insert_with(FollowConfig::default).all = true;
        self
    }

    /// The event socket's receive buffer (`[follow] rcvbuf`), bytes.
    pub fn follow_rcvbuf(mut self, bytes: u32) -> VtepConfig {
        self.follow.get_or_insert_with(FollowConfig::default).rcvbuf = Some(bytes);
        self
    }

    /// Leaves `underlay.local` out of the file: vtep takes it from the
    /// followed devices.
    pub fn local_from_link(mut self) -> VtepConfig {
        self.underlay.local.clear();
        self
    }

    /// A second local address, of the other family: a dual-stack VTEP
    /// (`local = ["198.18.0.1", "2001:db8::1"]`).
    pub fn also_local(mut self, addr: &str) -> VtepConfig {
        self.underlay.local.push(addr.to_owned());
        self
    }

    /// `underlay.ttl` (`64`, or `"auto"`).
    pub fn ttl(mut self, ttl: impl Into<Setting>) -> VtepConfig {
        self.underlay.ttl = Some(ttl.into());
        self
    }

    /// `underlay.tos` (`0..=255`, or `"inherit"`).
    pub fn tos(mut self, tos: impl Into<Setting>) -> VtepConfig {
        self.underlay.tos = Some(tos.into());
        self
    }

    /// `underlay.flowlabel` (`"hash"`, `"inherit"`, or `0..=1048575`).
    pub fn flowlabel(mut self, label: impl Into<Setting>) -> VtepConfig {
        self.underlay.flowlabel = Some(label.into());
        self
    }

    /// `underlay.udp6_zero_csum_tx` and `underlay.udp6_zero_csum_rx`.
    pub fn udp6_zero_csum(mut self, tx: bool, rx: bool) -> VtepConfig {
        self.underlay.udp6_zero_csum_tx = Some(tx);
        self.underlay.udp6_zero_csum_rx = Some(rx);
        self
    }

    pub fn vni(mut self, vni: VniConfig) -> VtepConfig {
        self.vnis.push(vni);
        self
    }

    /// A static entry: `mac` in `vni` lives behind the VTEP `dst`.
    pub fn fdb_remote(self, mac: &str, vni: u32, dst: &str) -> VtepConfig {
        self.fdb_entry(mac, vni, Some(dst), None)
    }

    /// A static entry: `mac` in `vni` lives behind the access port `port`.
    pub fn fdb_local(self, mac: &str, vni: u32, port: &str) -> VtepConfig {
        self.fdb_entry(mac, vni, None, Some(port))
    }

    fn fdb_entry(
        mut self,
        mac: &str,
        vni: u32,
        dst: Option<&str>,
        port: Option<&str>,
    ) -> VtepConfig {
        self.fdb.push(FdbConfig {
            mac: mac.to_owned(),
            vni,
            dst: dst.map(str::to_owned),
            port: port.map(str::to_owned),
        });
        self
    }
}

impl std::fmt::Display for VtepConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = toml::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

impl VniConfig {
    /// VNI `id` with no ports, an empty flood list and every option at the daemon's default.
    pub fn new(id: u32) -> VniConfig {
        VniConfig {
            id,
            ports: Vec::new(),
            flood: Vec::new(),
            group: None,
            learning: None,
            ageing: None,
            maxaddress: None,
            check_source: None,
        }
    }

    pub fn port(mut self, port: &str) -> VniConfig {
        self.ports.push(port.to_owned());
        self
    }

    /// Adds the VTEPs at `addrs` to the flood list.
    pub fn flood<S: AsRef<str>>(mut self, addrs: impl IntoIterator<Item = S>) -> VniConfig {
        self.flood
            .extend(addrs.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sends the VNI's BUM frames to the multicast group `addr` too, and
    /// joins it on the uplink.
    pub fn group(mut self, addr: &str) -> VniConfig {
        self.group = Some(addr.to_owned());
        self
    }

    pub fn learning(mut self, on: bool) -> VniConfig {
        self.learning = Some(on);
        self
    }

    pub fn ageing(mut self, secs: u32) -> VniConfig {
        self.ageing = Some(secs);
        self
    }

    pub fn maxaddress(mut self, n: u32) -> VniConfig {
        self.maxaddress = Some(n);
        self
    }
}

/// `[metrics]`: the daemon's Prometheus endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub listen: String,
}

impl VtepConfig {
    /// Serves Prometheus metrics on `addr` (`ADDR:PORT`, `[metrics] listen`).
    pub fn metrics(mut self, addr: &str) -> VtepConfig {
        self.metrics = Some(Metrics {
            listen: addr.to_owned(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_layout() {
        let cfg = VtepConfig::new("198.18.0.1")
            .vni(
                VniConfig::new(100)
                    .port("t1w1")
                    .flood(["198.18.0.2"])
                    .ageing(2),
            )
            .fdb_remote("02:00:00:00:01:02", 100, "198.18.0.2")
            .to_string();
        let value: toml::Value = toml::from_str(&cfg).expect("valid TOML");
        assert_eq!(value["underlay"]["interface"].as_str(), Some("uplink"));
        assert_eq!(value["underlay"]["local"].as_str(), Some("198.18.0.1"));
        assert_eq!(value["vni"][0]["id"].as_integer(), Some(100));
        assert_eq!(value["vni"][0]["ports"][0].as_str(), Some("t1w1"));
        assert_eq!(value["vni"][0]["flood"][0].as_str(), Some("198.18.0.2"));
        assert_eq!(value["vni"][0]["ageing"].as_integer(), Some(2));
        assert!(value["vni"][0].get("learning").is_none(), "{cfg}");
        assert_eq!(value["fdb"][0]["dst"].as_str(), Some("198.18.0.2"));
        assert!(value["fdb"][0].get("port").is_none(), "{cfg}");
        assert!(value.get("follow").is_none(), "{cfg}");
    }

    #[test]
    fn renders_the_issue_9_keys() {
        let cfg = VtepConfig::new("198.18.0.1")
            .also_local("2001:db8::1")
            .ttl("auto")
            .tos("inherit")
            .flowlabel(7)
            .udp6_zero_csum(true, false)
            .vni(VniConfig::new(100).group("ff05::100"))
            .to_string();
        let value: toml::Value = toml::from_str(&cfg).expect("valid TOML");
        let u = &value["underlay"];
        let local: Vec<&str> = u["local"]
            .as_array()
            .expect("two addresses are a list")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(local, ["198.18.0.1", "2001:db8::1"], "{cfg}");
        assert_eq!(u["ttl"].as_str(), Some("auto"), "{cfg}");
        assert_eq!(u["tos"].as_str(), Some("inherit"), "{cfg}");
        assert_eq!(u["flowlabel"].as_integer(), Some(7), "{cfg}");
        assert_eq!(u["udp6_zero_csum_tx"].as_bool(), Some(true), "{cfg}");
        assert_eq!(u["udp6_zero_csum_rx"].as_bool(), Some(false), "{cfg}");
        assert_eq!(value["vni"][0]["group"].as_str(), Some("ff05::100"));
        let plain = VtepConfig::new("198.18.0.1").to_string();
        assert!(
            !plain.contains("group") && !plain.contains("tos"),
            "{plain}"
        );
    }

    #[test]
    fn renders_follow() {
        let cfg = VtepConfig::new("198.18.0.1")
            .local_from_link()
            .follow(["vxlan100"])
            .follow_rcvbuf(8192)
            .to_string();
        let value: toml::Value = toml::from_str(&cfg).expect("valid TOML");
        assert!(value["underlay"].get("local").is_none(), "{cfg}");
        assert_eq!(value["follow"]["devices"][0].as_str(), Some("vxlan100"));
        assert_eq!(value["follow"]["rcvbuf"].as_integer(), Some(8192));
        assert!(value["follow"].get("all").is_none(), "{cfg}");
    }

    #[test]
    fn renders_metrics() {
        let plain = VtepConfig::new("198.18.0.1").to_string();
        assert!(!plain.contains("metrics"), "{plain}");
        let cfg = VtepConfig::new("198.18.0.1")
            .metrics("198.18.0.1:9100")
            .to_string();
        let value: toml::Value = toml::from_str(&cfg).expect("valid TOML");
        assert_eq!(
            value["metrics"]["listen"].as_str(),
            Some("198.18.0.1:9100"),
            "{cfg}"
        );
    }
}
