//! The checks of a table change, as pure functions over what they read of
//! the tables ([`TableView`]): the gateway makes them on its maps before it
//! writes, and `vtep -batch` on its view of the maps as the lines before
//! leave them. One source of truth for what is refused, and in what words.

use super::*;
use crate::model::config::Locals;

/// What a VNI's checks need of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VniState {
    /// Mirrored from a kernel vxlan device: the follower's, not the CLI's.
    pub followed: bool,
}

/// What the checks read of the tables.
pub trait TableView {
    /// `vni`, if it exists.
    fn vni(&self, vni: u32) -> Option<VniState>;
    /// Whether `mac` has an entry in `vni`: `Some(followed)`.
    fn entry_followed(&self, vni: u32, mac: Mac) -> Option<bool>;
    fn flood_contains(&self, vni: u32, dst: IpAddr) -> bool;
    fn flood_len(&self, vni: u32) -> usize;
    /// The VNI of access port `ifindex`, if it is one.
    fn port_vni(&self, ifindex: u32) -> Option<u32>;
    /// How many access ports `vni` has.
    fn port_count(&self, vni: u32) -> usize;
    fn uplink(&self) -> Result<u32>;
    /// This VTEP's underlay addresses.
    fn locals(&self) -> Result<Locals>;
}

/// A remote VTEP (`fdb ... dst`, a flood-list member) can be sent to: it
/// is not this VTEP, and the underlay has a local address of its family.
pub fn remote(t: &impl TableView, dst: IpAddr) -> Result<()> {
    let locals = t.locals()?;
    if locals.contains(dst) {
        return Err(GatewayError::Invalid(format!(
            "{dst} is this VTEP's own address"
        )));
    }
    match locals.unreachable(dst) {
        Some(why) => Err(GatewayError::Invalid(why)),
        None => Ok(()),
    }
}

/// A VNI's group (`vni add|set VNI group ADDR`): a multicast address of a
/// family the underlay has a local address of.
pub fn vni_group(t: &impl TableView, group: Option<IpAddr>) -> Result<()> {
    let Some(g) = group else {
        return Ok(());
    };
    if !g.is_multicast() {
        return Err(GatewayError::Invalid(format!(
            "{g} is not a multicast address"
        )));
    }
    match t.locals()?.unreachable(g) {
        Some(why) => Err(GatewayError::Invalid(why)),
        None => Ok(()),
    }
}

/// `vni` exists and is vtep's to change (not followed).
pub fn owned(t: &impl TableView, vni: u32) -> Result<()> {
    match t.vni(vni) {
        None => Err(GatewayError::UnknownVni(vni)),
        Some(v) if v.followed => Err(GatewayError::FollowedVni(vni)),
        Some(_) => Ok(()),
    }
}

/// `vni add` (`replace`: `vni set`, or a config's VNI).
pub fn vni_set(t: &impl TableView, vni: u32, replace: bool) -> Result<()> {
    match t.vni(vni) {
        Some(_) if !replace => Err(GatewayError::VniExists(vni)),
        Some(v) if v.followed => Err(GatewayError::FollowedVni(vni)),
        _ => Ok(()),
    }
}

/// `fdb add|replace MAC vni VNI dst IP|dev PORT` (`port`: the access
/// port's ifindex); `followed`: the follower writes it.
pub fn fdb_set(
    t: &impl TableView,
    vni: u32,
    mac: Mac,
    port: Option<u32>,
    followed: bool,
    mode: SetMode,
) -> Result<()> {
    let v = t.vni(vni).ok_or(GatewayError::UnknownVni(vni))?;
    if !followed && v.followed {
        return Err(GatewayError::FollowedVni(vni));
    }
    if mac.is_multicast() || mac.is_zero() {
        return Err(GatewayError::Invalid(format!(
            "{mac} is not a unicast MAC (flood-list members are 00:00:00:00:00:00 with append)"
        )));
    }
    if let Some(ifindex) = port
        && t.port_vni(ifindex) != Some(vni)
    {
        let name = iface::ifname(ifindex).unwrap_or_else(|| format!("if{ifindex}"));
        return Err(GatewayError::Invalid(format!(
            "{name} is not an access port of VNI {vni}"
        )));
    }
    match t.entry_followed(vni, mac) {
        Some(true) if !followed => Err(GatewayError::Followed { mac, vni }),
        Some(_) if mode == SetMode::Add => Err(GatewayError::EntryExists { mac, vni }),
        _ => Ok(()),
    }
}

/// `fdb del MAC vni VNI`.
pub fn fdb_del(t: &impl TableView, vni: u32, mac: Mac) -> Result<()> {
    t.vni(vni).ok_or(GatewayError::UnknownVni(vni))?;
    match t.entry_followed(vni, mac) {
        None => Err(GatewayError::NoSuchEntry { mac, vni }),
        Some(true) => Err(GatewayError::Followed { mac, vni }),
        Some(false) => Ok(()),
    }
}

/// `fdb append 00:00:00:00:00:00 vni VNI dst IP`.
pub fn flood_add(t: &impl TableView, vni: u32, dst: IpAddr) -> Result<()> {
    owned(t, vni)?;
    if t.flood_contains(vni, dst) {
        return Err(GatewayError::FloodMemberExists { dst, vni });
    }
    if t.flood_len(vni) >= MAX_FLOOD {
        return Err(GatewayError::FloodListFull(vni));
    }
    Ok(())
}

/// `fdb del 00:00:00:00:00:00 vni VNI [dst IP]`.
pub fn flood_del(t: &impl TableView, vni: u32, dst: Option<IpAddr>) -> Result<()> {
    owned(t, vni)?;
    match dst {
        Some(d) if !t.flood_contains(vni, d) => {
            Err(GatewayError::NoSuchFloodMember { dst: d, vni })
        }
        _ => Ok(()),
    }
}

/// `port add IFNAME vni VNI`, `ifindex` being IFNAME's (if it has one).
pub fn port_add(t: &impl TableView, ifname: &str, ifindex: Option<u32>, vni: u32) -> Result<u32> {
    if t.vni(vni).is_some_and(|v| v.followed) {
        return Err(GatewayError::FollowedVni(vni));
    }
    let ifindex = ifindex.ok_or_else(|| GatewayError::NoSuchInterface(ifname.into()))?;
    port_set(t, ifindex, ifname, vni)?;
    Ok(ifindex)
}

/// Making `ifindex` (named `ifname`) an access port of `vni`, whoever
/// owns the VNI.
pub fn port_set(t: &impl TableView, ifindex: u32, ifname: &str, vni: u32) -> Result<()> {
    t.vni(vni).ok_or(GatewayError::UnknownVni(vni))?;
    if ifindex == t.uplink()? {
        return Err(GatewayError::IsUplink(ifname.into()));
    }
    match t.port_vni(ifindex) {
        Some(old) if old != vni => Err(GatewayError::PortInUse {
            ifname: ifname.into(),
            vni: old,
        }),
        Some(_) => Ok(()),
        None if t.port_count(vni) >= MAX_VNI_PORTS => Err(GatewayError::PortListFull(vni)),
        None => Ok(()),
    }
}

/// `port del IFNAME`, `ifindex` being IFNAME's (if it has one): the port's
/// ifindex and VNI.
pub fn port_del(t: &impl TableView, ifname: &str, ifindex: Option<u32>) -> Result<(u32, u32)> {
    let ifindex = ifindex.ok_or_else(|| GatewayError::NoSuchInterface(ifname.into()))?;
    let Some(vni) = t.port_vni(ifindex) else {
        return Err(GatewayError::NotAPort(ifname.into()));
    };
    if t.vni(vni).is_some_and(|v| v.followed) {
        return Err(GatewayError::FollowedVni(vni));
    }
    Ok((ifindex, vni))
}

/// The gateway's maps, as they are.
impl TableView for Gateway {
    fn vni(&self, vni: u32) -> Option<VniState> {
        self.vnis.get(&vni, 0).ok().map(|i| VniState {
            followed: i.flags & VNI_F_FOLLOWED != 0,
        })
    }

    fn entry_followed(&self, vni: u32, mac: Mac) -> Option<bool> {
        self.fdb_get(vni, mac)
            .map(|e| e.flags & FDB_F_FOLLOWED != 0)
    }

    fn flood_contains(&self, vni: u32, dst: IpAddr) -> bool {
        self.flood
            .get(&vni, 0)
            .is_ok_and(|l| l.contains(&to_vtep(dst)))
    }

    fn flood_len(&self, vni: u32) -> usize {
        self.flood.get(&vni, 0).map_or(0, |l| l.members().len())
    }

    fn port_vni(&self, ifindex: u32) -> Option<u32> {
        Gateway::port_vni(self, ifindex)
    }

    fn port_count(&self, vni: u32) -> usize {
        self.vni_ports.get(&vni, 0).map_or(0, |l| l.members().len())
    }

    fn uplink(&self) -> Result<u32> {
        Ok(self.underlay()?.uplink_ifindex)
    }

    fn locals(&self) -> Result<Locals> {
        Ok(Locals::of(&self.underlay()?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Tables in memory: VNI 100 (vtep's), VNI 200 (followed), the uplink
    /// 1, access port 5 in VNI 100.
    #[derive(Default)]
    struct Fake {
        vnis: BTreeMap<u32, bool>,
        entries: BTreeMap<(u32, Mac), bool>,
        flood: BTreeMap<u32, Vec<IpAddr>>,
        ports: BTreeMap<u32, u32>,
        full: BTreeSet<u32>,
    }

    impl TableView for Fake {
        fn vni(&self, vni: u32) -> Option<VniState> {
            self.vnis.get(&vni).map(|&followed| VniState { followed })
        }
        fn entry_followed(&self, vni: u32, mac: Mac) -> Option<bool> {
            self.entries.get(&(vni, mac)).copied()
        }
        fn flood_contains(&self, vni: u32, dst: IpAddr) -> bool {
            self.flood.get(&vni).is_some_and(|l| l.contains(&dst))
        }
        fn flood_len(&self, vni: u32) -> usize {
            self.flood.get(&vni).map_or(0, Vec::len)
        }
        fn port_vni(&self, ifindex: u32) -> Option<u32> {
            self.ports.get(&ifindex).copied()
        }
        fn port_count(&self, vni: u32) -> usize {
            if self.full.contains(&vni) {
                MAX_VNI_PORTS
            } else {
                self.ports.values().filter(|&&v| v == vni).count()
            }
        }
        fn uplink(&self) -> Result<u32> {
            Ok(1)
        }
        fn locals(&self) -> Result<Locals> {
            Ok(Locals::one(IpAddr::from([198, 18, 0, 1])))
        }
    }

    fn tables() -> Fake {
        let mut t = Fake::default();
        t.vnis.insert(100, false);
        t.vnis.insert(200, true);
        t.ports.insert(5, 100);
        t
    }

    const MAC: Mac = Mac([2, 0, 0, 0, 1, 2]);

    fn said(r: Result<impl std::fmt::Debug>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn fdb_changes_are_checked_in_the_gateways_words() {
        let mut t = tables();
        assert!(fdb_set(&t, 100, MAC, None, false, SetMode::Add).is_ok());
        assert!(fdb_set(&t, 100, MAC, Some(5), false, SetMode::Add).is_ok());
        assert!(said(fdb_set(&t, 7, MAC, None, false, SetMode::Add)).starts_with("VNI 7 is not"));
        assert!(said(fdb_set(&t, 200, MAC, None, false, SetMode::Add)).contains("mirrored"));
        assert!(fdb_set(&t, 200, MAC, None, true, SetMode::Replace).is_ok());
        let multicast = Mac([1, 0, 0x5e, 0, 0, 1]);
        assert!(said(fdb_set(&t, 100, multicast, None, false, SetMode::Add)).contains("unicast"));
        assert!(
            said(fdb_set(&t, 100, MAC, Some(6), false, SetMode::Add))
                .ends_with("is not an access port of VNI 100")
        );
        t.entries.insert((100, MAC), false);
        assert!(said(fdb_set(&t, 100, MAC, None, false, SetMode::Add)).contains("exists already"));
        assert!(fdb_set(&t, 100, MAC, None, false, SetMode::Replace).is_ok());
        assert!(fdb_del(&t, 100, MAC).is_ok());
        t.entries.insert((100, MAC), true);
        assert!(said(fdb_set(&t, 100, MAC, None, false, SetMode::Replace)).contains("kernel FDB"));
        assert!(said(fdb_del(&t, 100, MAC)).contains("kernel FDB"));
        assert!(said(fdb_del(&t, 100, Mac([2, 0, 0, 0, 9, 9]))).ends_with("no such entry"));
    }

    #[test]
    fn flood_lists_are_checked() {
        let mut t = tables();
        let dst = IpAddr::from([198, 18, 0, 2]);
        assert!(flood_add(&t, 100, dst).is_ok());
        assert!(said(flood_del(&t, 100, Some(dst))).contains("is not in the flood list"));
        assert!(flood_del(&t, 100, None).is_ok());
        assert!(said(flood_add(&t, 200, dst)).contains("mirrored"));
        t.flood.insert(100, vec![dst]);
        assert!(said(flood_add(&t, 100, dst)).contains("already in the flood list"));
        t.flood.insert(
            100,
            (0..MAX_FLOOD as u8)
                .map(|d| IpAddr::from([10, 0, 0, d]))
                .collect(),
        );
        assert!(said(flood_add(&t, 100, dst)).contains("is full"));
    }

    #[test]
    fn remotes_and_groups_need_a_local_address_of_their_family() {
        let t = tables();
        let v4 = IpAddr::from([198, 18, 0, 2]);
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(remote(&t, v4).is_ok());
        assert_eq!(
            said(remote(&t, IpAddr::from([198, 18, 0, 1]))),
            "198.18.0.1 is this VTEP's own address"
        );
        assert_eq!(
            said(remote(&t, v6)),
            "2001:db8::2 is IPv6 but underlay.local has no IPv6 address"
        );
        assert!(vni_group(&t, None).is_ok());
        assert!(vni_group(&t, Some(IpAddr::from([239, 1, 1, 1]))).is_ok());
        assert_eq!(
            said(vni_group(&t, Some(v4))),
            "198.18.0.2 is not a multicast address"
        );
        assert_eq!(
            said(vni_group(&t, Some("ff05::100".parse().unwrap()))),
            "ff05::100 is IPv6 but underlay.local has no IPv6 address"
        );
    }

    #[test]
    fn vnis_and_ports_are_checked() {
        let mut t = tables();
        assert!(said(vni_set(&t, 100, false)).contains("exists already"));
        assert!(vni_set(&t, 100, true).is_ok() && vni_set(&t, 7, false).is_ok());
        assert!(said(vni_set(&t, 200, true)).contains("mirrored"));
        assert!(owned(&t, 100).is_ok());
        assert!(said(owned(&t, 7)).starts_with("VNI 7 is not"));

        assert_eq!(port_add(&t, "p6", Some(6), 100).unwrap(), 6);
        assert_eq!(port_add(&t, "p5", Some(5), 100).unwrap(), 5);
        assert!(said(port_add(&t, "p6", Some(6), 200)).contains("mirrored"));
        assert!(said(port_add(&t, "nope", None, 100)).contains("no interface named \"nope\""));
        assert!(said(port_add(&t, "p6", Some(6), 7)).starts_with("VNI 7 is not"));
        assert!(said(port_add(&t, "up", Some(1), 100)).contains("is the uplink"));
        t.vnis.insert(300, false);
        assert!(
            said(port_add(&t, "p5", Some(5), 300)).contains("already an access port of VNI 100")
        );
        t.full.insert(100);
        assert!(said(port_add(&t, "p6", Some(6), 100)).contains("most access ports"));
        assert!(port_add(&t, "p5", Some(5), 100).is_ok(), "already its port");

        assert_eq!(port_del(&t, "p5", Some(5)).unwrap(), (5, 100));
        assert!(said(port_del(&t, "p6", Some(6))).contains("not an access port"));
        t.ports.insert(8, 200);
        assert!(said(port_del(&t, "p8", Some(8))).contains("mirrored"));
    }
}
