//! VNI multicast groups (`VNI_GROUP`), and this VTEP's membership of them
//! on the uplink.
//!
//! A VNI with a group sends its BUM frames to the group too, and takes
//! VXLAN addressed to it. The uplink joins the group as an
//! `IFA_F_MCAUTOJOIN` address (`system::netlink`), which the kernel keeps
//! when the daemon stops, since the datapath goes on forwarding: joined
//! before the map says the VNI has the group, left when the last of vtep's
//! VNIs with it lets it go (two VNIs sharing a group share one membership)
//! and in `vtep down`. A followed VNI's group is the kernel vxlan device's,
//! which holds its own membership: the follower mirrors it into the map
//! only ([`Gateway::vni_group_mirror`]).

use crate::system::netlink::Rtnl;

use super::*;

impl Gateway {
    /// The multicast group of `vni`, if it has one.
    pub fn vni_group(&self, vni: u32) -> Option<IpAddr> {
        let map = self.vni_group.as_ref()?;
        map.get(&vni, 0).ok().and_then(|g| from_vtep(&g))
    }

    /// Every VNI that has a group, with it, by VNI.
    pub fn group_list(&self) -> Vec<(u32, IpAddr)> {
        let Some(map) = &self.vni_group else {
            return Vec::new();
        };
        let mut all: Vec<(u32, IpAddr)> = map
            .iter()
            .filter_map(|r| r.ok())
            .filter_map(|(vni, g)| Some((vni, from_vtep(&g)?)))
            .collect();
        all.sort_unstable();
        all
    }

    /// Sets (`Some`) or clears (`None`) the group of `vni`, a VNI of
    /// vtep's: the new group is joined on the uplink before the map is
    /// written (a failed join changes nothing), the old one left unless
    /// another of vtep's VNIs has it. Setting the group a VNI has already
    /// joins it again (a restarted daemon finds its address there, or puts
    /// back one removed by hand).
    pub fn vni_group_set(&mut self, vni: u32, group: Option<IpAddr>) -> Result<()> {
        check::vni_group(self, group)?;
        let old = self.vni_group(vni);
        if group.is_none() && old.is_none() {
            return Ok(());
        }
        if let Some(g) = group {
            self.group_join(g)?;
        }
        if let Err(e) = self.vni_group_write(vni, group) {
            if let Some(g) = group.filter(|&g| Some(g) != old) {
                self.group_leave_unless_used(g, None);
            }
            return Err(e);
        }
        if let Some(o) = old.filter(|&o| Some(o) != group) {
            self.group_leave_unless_used(o, None);
        }
        Ok(())
    }

    /// Writes the group of a followed VNI, as its kernel vxlan device has
    /// it, into the map only (the device holds the membership). For the
    /// follower.
    pub fn vni_group_mirror(&mut self, vni: u32, group: Option<IpAddr>) -> Result<()> {
        if self.vni_group(vni) == group {
            return Ok(());
        }
        self.vni_group_write(vni, group)
    }

    /// Removes `vni`'s group with the VNI, leaving it unless another VNI
    /// of vtep's has it.
    pub(super) fn vni_group_forget(&mut self, vni: u32) {
        let Some(old) = self.vni_group(vni) else {
            return;
        };
        let followed = self.vni_followed(vni);
        if let Some(map) = self.vni_group.as_mut() {
            let _ = map.remove(&vni);
        }
        if !followed {
            self.group_leave_unless_used(old, Some(vni));
        }
    }

    /// Leaves every group vtep's VNIs joined on the uplink (`vtep down`),
    /// and says which could not be left.
    pub fn groups_leave_all(&mut self) -> Vec<(IpAddr, std::io::Error)> {
        let mut groups: Vec<IpAddr> = self
            .group_list()
            .into_iter()
            .filter(|(vni, _)| !self.vni_followed(*vni))
            .map(|(_, g)| g)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let Ok(uplink) = self.underlay().map(|u| u.uplink_ifindex) else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        let mut rtnl = match Rtnl::new() {
            Ok(r) => r,
            Err(e) => {
                return groups.into_iter().map(|g| (g, clone_io(&e))).collect();
            }
        };
        for g in groups {
            if let Err(e) = rtnl.group_leave(g, uplink) {
                failed.push((g, e));
            }
        }
        failed
    }

    fn vni_group_write(&mut self, vni: u32, group: Option<IpAddr>) -> Result<()> {
        let map = self.vni_group.as_mut().ok_or_else(|| {
            GatewayError::Invalid(
                "this gateway's tables predate VNI groups: restart its daemon with this vtep \
                 (`vtep run`), which converts them"
                    .into(),
            )
        })?;
        match group {
            Some(g) => map
                .insert(vni, to_vtep(g), 0)
                .map_err(map_err(names::VNI_GROUP)),
            None => match map.remove(&vni) {
                Err(e) if !is_not_found(&e) => Err(map_err(names::VNI_GROUP)(e)),
                _ => Ok(()),
            },
        }
    }

    /// Joins `group` on the uplink.
    pub(super) fn group_join(&mut self, group: IpAddr) -> Result<()> {
        let uplink = self.underlay()?.uplink_ifindex;
        Rtnl::new()
            .and_then(|mut r| r.group_join(group, uplink))
            .map_err(|source| GatewayError::Membership {
                group,
                join: true,
                source,
            })
    }

    /// Leaves `group` on the uplink unless a VNI of vtep's other than
    /// `except` has it; a failure is logged (the map no longer names the
    /// group: a stale membership costs received copies the datapath drops).
    fn group_leave_unless_used(&mut self, group: IpAddr, except: Option<u32>) {
        let used = self
            .group_list()
            .into_iter()
            .any(|(v, g)| g == group && Some(v) != except && !self.vni_followed(v));
        if used {
            return;
        }
        let left = self.underlay().map_err(|e| e.to_string()).and_then(|u| {
            Rtnl::new()
                .and_then(|mut r| r.group_leave(group, u.uplink_ifindex))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = left {
            log::warn!("leaving multicast group {group} on the uplink: {e}");
        }
    }
}

fn clone_io(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(errno) => std::io::Error::from_raw_os_error(errno),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}
