//! Which vxlan devices are followed, and which bridge ports are their
//! access ports: brought in line with the links after every change.

use std::collections::{BTreeMap, BTreeSet};

use super::{Followed, Follower, Tables};
use crate::{
    control::apply,
    datapath::gateway::Gateway,
    system::netlink::{Link, Vxlan},
};

impl Follower {
    /// Why a vxlan device cannot be followed, if it cannot.
    fn unfollowable(&self, link: &Link, vx: &Vxlan) -> Option<String> {
        let name = &link.name;
        if vx.external {
            return Some(format!(
                "{name} is in external (collect_metadata/vnifilter) mode: not followed, \
                 the kernel keeps forwarding it"
            ));
        }
        if self.config_vnis.contains(&vx.vni) {
            return Some(format!(
                "{name} carries VNI {}, which the config's [[vni]] configures: not followed",
                vx.vni
            ));
        }
        if vx.port != self.port {
            return Some(format!(
                "{name} uses UDP port {}, the underlay {}: not followed (vtep has one VXLAN \
                 port; set underlay.port)",
                vx.port, self.port
            ));
        }
        if let Some(l) = vx.local {
            match self.locals.for_remote(l) {
                None => {
                    return Some(format!(
                        "{name} has local {l}, and the underlay has no {} address: not \
                         followed (set underlay.local)",
                        if l.is_ipv6() { "IPv6" } else { "IPv4" }
                    ));
                }
                Some(ours) if ours != l => {
                    return Some(format!(
                        "{name} has local {l}, the underlay {ours}: not followed"
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Brings followed VNIs and their access ports in line with the links:
    /// follows wanted vxlan devices, drops those gone, attaches the ports
    /// that joined their bridges and detaches those that left.
    pub(super) fn reconcile(&mut self, gw: &mut Gateway) {
        let mut want: BTreeMap<u32, Followed> = BTreeMap::new();
        let mut by_vni: BTreeMap<u32, String> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut notes = Vec::new();
        for (&ifindex, link) in &self.links {
            let Some(vx) = link.vxlan else { continue };
            if !self.cfg.wants(&link.name) {
                continue;
            }
            if let Some(why) = self.unfollowable(link, &vx) {
                warnings.push(why);
                continue;
            }
            if let Some(other) = by_vni.get(&vx.vni) {
                warnings.push(format!(
                    "{} and {other} both carry VNI {}: {} not followed",
                    link.name, vx.vni, link.name
                ));
                continue;
            }
            by_vni.insert(vx.vni, link.name.clone());
            if vx.udp_csum && !self.udp_checksum {
                notes.push(format!(
                    "{} sends outer UDP checksums (udpcsum, the kernel's default); vtep sends \
                     VNI {} with checksum 0 (underlay.udp_checksum = false), which receivers \
                     accept: set underlay.udp_checksum = true to match",
                    link.name, vx.vni
                ));
            }
            want.insert(
                ifindex,
                Followed {
                    name: link.name.clone(),
                    vni: vx.vni,
                    port: vx.port,
                    bridge: link.master,
                    learning: vx.learning,
                },
            );
        }
        for w in warnings {
            self.warn_once(w);
        }
        for n in notes {
            self.note_once(n);
        }
        let missing: Vec<String> = self
            .cfg
            .devices
            .iter()
            .filter(|name| !self.links.values().any(|l| &l.name == *name))
            .map(|name| format!("no device {name} yet; following it once it appears"))
            .collect();
        for w in missing {
            self.warn_once(w);
        }

        // Devices no longer followed (gone, changed, or now refused).
        let dropped: Vec<(u32, Followed)> = self
            .followed
            .iter()
            .filter(|(i, f)| want.get(i).is_none_or(|w| w.vni != f.vni))
            .map(|(i, f)| (*i, f.clone()))
            .collect();
        for (_, f) in dropped {
            log::info!("follow: {} (VNI {}) no longer followed", f.name, f.vni);
            if let Err(e) = gw.vni_unfollow(f.vni) {
                log::warn!("follow: removing VNI {}: {e}", f.vni);
            }
            self.flood.remove(&f.vni);
            self.set_groups(gw, f.vni, BTreeSet::new());
        }
        // Followed VNIs of an earlier run whose device is not followed now.
        let vnis: BTreeSet<u32> = want.values().map(|f| f.vni).collect();
        for vni in gw.vni_ids() {
            if gw.vni_followed(vni) && !vnis.contains(&vni) {
                log::info!("follow: VNI {vni} was followed; its device is not: removing it");
                if let Err(e) = gw.vni_unfollow(vni) {
                    log::warn!("follow: removing VNI {vni}: {e}");
                }
                self.set_groups(gw, vni, BTreeSet::new());
            }
        }
        // Devices followed from now on.
        for (&ifindex, f) in &want {
            if let Some(o) = self.followed.get(&ifindex)
                && o.vni == f.vni
            {
                if o.learning != f.learning
                    && let Err(e) = gw.vni_follow(f.vni, f.learning)
                {
                    log::warn!("follow: VNI {}: {e}", f.vni);
                }
                continue;
            }
            if gw.vni_exists(f.vni) && !gw.vni_followed(f.vni) {
                log::warn!(
                    "follow: VNI {} was configured with the CLI; {} takes it over",
                    f.vni,
                    f.name
                );
                if let Err(e) = gw.vni_del(f.vni) {
                    log::warn!("follow: VNI {}: {e}", f.vni);
                }
            }
            match gw.vni_follow(f.vni, f.learning) {
                Ok(()) => {
                    log::info!(
                        "follow: following {} (VNI {}, port {}, {})",
                        f.name,
                        f.vni,
                        f.port,
                        if f.learning { "learning" } else { "nolearning" }
                    );
                    self.needs_resync
                        .get_or_insert_with(|| format!("{} appeared", f.name));
                }
                Err(e) => log::warn!("follow: VNI {}: {e}", f.vni),
            }
        }
        self.followed = want;

        // Tables for classifying FDB entries, and the bridges' ports.
        let mut t = Tables {
            families: super::families(&self.locals),
            ..Tables::default()
        };
        for (&ifindex, link) in &self.links {
            if link.vxlan.is_some() {
                t.vxlan_devices.insert(ifindex);
            }
        }
        for (&ifindex, f) in &self.followed {
            t.devices.insert(ifindex, (f.vni, f.port));
            if let Some(b) = f.bridge {
                t.bridges.insert(b, f.vni);
            }
        }
        let mut refused = Vec::new();
        for (&ifindex, link) in &self.links {
            let Some(bridge) = link.master else { continue };
            if !t.bridges.contains_key(&bridge) || link.vxlan.is_some() {
                continue;
            }
            if ifindex == self.uplink {
                refused.push(format!(
                    "{} is the uplink and a port of a followed bridge: it stays the uplink",
                    link.name
                ));
                continue;
            }
            if self.config_ports.contains(&link.name) {
                refused.push(format!(
                    "{} is an access port in [[vni]] and a port of a followed bridge: the \
                     config wins",
                    link.name
                ));
                continue;
            }
            t.ports.insert(ifindex, bridge);
        }
        for w in refused {
            self.warn_once(w);
        }
        self.tables = t;

        // Access ports: those of followed VNIs follow the bridges' ports.
        let vni_of_bridge = self.tables.bridges.clone();
        let want_ports: BTreeMap<u32, u32> = self
            .tables
            .ports
            .iter()
            .filter_map(|(&p, b)| Some((p, *vni_of_bridge.get(b)?)))
            .collect();
        for (ifindex, vni) in gw.port_list() {
            if gw.vni_followed(vni) && want_ports.get(&ifindex) != Some(&vni) {
                let name = self.link_name(ifindex);
                log::info!("follow: {name} left the bridge of VNI {vni}: no longer an access port");
                if let Err(e) = gw.port_del_index(ifindex, &name) {
                    log::warn!("follow: removing access port {name}: {e}");
                }
            }
        }
        for (&ifindex, &vni) in &want_ports {
            if gw.port_vni(ifindex) == Some(vni) {
                continue;
            }
            let name = self.link_name(ifindex);
            match apply::attach_port(gw, &name, vni) {
                Ok(()) => log::info!("follow: {name} joined the bridge of VNI {vni}: access port"),
                Err(e) => self.warn_once(format!(
                    "{name}: cannot make it an access port of VNI {vni} ({e:#}); its frames \
                     take the kernel path"
                )),
            }
        }
    }

    pub(super) fn link_name(&self, ifindex: u32) -> String {
        self.links
            .get(&ifindex)
            .map_or_else(|| format!("if{ifindex}"), |l| l.name.clone())
    }
}
