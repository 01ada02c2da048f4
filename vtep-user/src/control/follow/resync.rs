//! Resync: dump the links and the bridge FDB, and make the maps mirror them.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    time::Instant,
};

use anyhow::{Context as _, Result};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage, link::LinkMessage, neighbour::NeighbourMessage,
};
use vtep_common::{FDB_F_FOLLOWED, FdbEntry, FdbKey, MAX_FLOOD, VtepAddr};

use super::{Follower, Mirror};
use crate::{
    datapath::gateway::Gateway,
    model::addr::to_vtep,
    system::netlink::{self, parse_fdb, parse_link},
};

impl Follower {
    /// Dumps links and the bridge FDB and makes the maps mirror them:
    /// followed VNIs and their ports, entries written where they differ,
    /// mirrored entries the kernel no longer has removed. `why` goes to the
    /// log.
    pub fn resync(&mut self, gw: &mut Gateway, why: &str) -> Result<()> {
        let started = Instant::now();
        self.stats.resyncs += 1;
        let mut links = BTreeMap::new();
        netlink::dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                links.insert(l.header.index, parse_link(&l));
            }
        })
        .context("dumping links")?;
        self.links = links;
        self.reconcile(gw);
        // This dump covers the devices reconcile just started to follow.
        self.needs_resync = None;
        let vnis: BTreeSet<u32> = self.followed.values().map(|f| f.vni).collect();

        let mut want: HashMap<FdbKey, FdbEntry> = HashMap::new();
        let mut flood: BTreeMap<u32, BTreeSet<IpAddr>> =
            vnis.iter().map(|&v| (v, BTreeSet::new())).collect();
        let mut groups = flood.clone();
        let tables = &self.tables;
        let mut ms = NeighbourMessage::default();
        ms.header.family = AddressFamily::Bridge;
        netlink::dump(RouteNetlinkMessage::GetNeighbour(ms), |m| {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                return;
            };
            let Some(rec) = parse_fdb(&n) else {
                return;
            };
            match tables.classify(&rec) {
                Mirror::Remote { vni, mac, vtep } => {
                    want.insert(
                        FdbKey::new(vni, mac),
                        FdbEntry::remote(to_vtep(vtep), FDB_F_FOLLOWED, 0),
                    );
                }
                Mirror::Local { vni, mac, port } => {
                    want.insert(
                        FdbKey::new(vni, mac),
                        FdbEntry::local(port, FDB_F_FOLLOWED, 0),
                    );
                }
                Mirror::Flood { vni, vtep } => {
                    flood.entry(vni).or_default().insert(vtep);
                }
                Mirror::Group { vni, group } => {
                    groups.entry(vni).or_default().insert(group);
                }
                Mirror::Ignore(_) => {}
            }
        })
        .context("dumping the bridge FDB")?;

        let mut written = 0usize;
        for (k, e) in &want {
            match gw.fdb_put_followed(k, e) {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => {
                    self.warn_once(format!(
                        "mirroring entries into the FDB map: {e} (what does not fit takes \
                         the kernel path)"
                    ));
                    break;
                }
            }
        }
        let mut removed = 0usize;
        for (k, _) in gw.fdb_entries() {
            if vnis.contains(&k.vni) && !want.contains_key(&k) && gw.fdb_del_followed(&k) {
                removed += 1;
            }
        }
        let mut members = 0;
        for (&vni, list) in &flood {
            members += list.len();
            self.write_flood(gw, vni, list);
        }
        self.flood = flood;
        let with_group = groups.values().filter(|g| !g.is_empty()).count();
        for (vni, set) in groups {
            self.set_groups(gw, vni, set);
        }
        self.stats.changes += (written + removed) as u64;
        log::info!(
            "follow: resync ({why}): {} VNI(s) {}, {} entries mirrored ({written} written, \
             {removed} removed), {members} flood-list member(s), {with_group} group(s), in {} ms",
            vnis.len(),
            self.describe(),
            want.len(),
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// `vxlan100 (VNI 100, bridge br100, 2 ports)`, ...
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .followed
            .values()
            .map(|f| {
                let bridge = f
                    .bridge
                    .and_then(|b| self.links.get(&b))
                    .map_or_else(|| "no bridge".into(), |l| format!("bridge {}", l.name));
                let ports = self.tables.ports.values().filter(|&&b| Some(b) == f.bridge);
                format!(
                    "{} VNI {} {bridge} {} port(s)",
                    f.name,
                    f.vni,
                    ports.count()
                )
            })
            .collect();
        format!("[{}]", parts.join("; "))
    }

    pub(super) fn write_flood(&mut self, gw: &mut Gateway, vni: u32, list: &BTreeSet<IpAddr>) {
        let mut members: Vec<VtepAddr> = list.iter().map(|&ip| to_vtep(ip)).collect();
        if members.len() > MAX_FLOOD {
            // The kernel floods in a followed VNI; vtep's copy of the list
            // only names the remote VTEPs whose next hops it keeps resolved.
            self.warn_once(format!(
                "VNI {vni}: {} flood-list members; vtep lists the first {MAX_FLOOD} \
                 (the kernel floods, so none is lost)",
                members.len()
            ));
            members.truncate(MAX_FLOOD);
        }
        if gw.flood_list(vni).len() == members.len()
            && gw
                .flood_list(vni)
                .iter()
                .zip(&members)
                .all(|(a, b)| to_vtep(*a) == *b)
        {
            return;
        }
        if let Err(e) = gw.flood_set(vni, &members) {
            self.warn_once(format!("VNI {vni}: flood list: {e}"));
        }
    }
}
