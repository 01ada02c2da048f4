//! Flood lists (`FLOOD`): the remote VTEPs that get a VNI's BUM traffic.

use super::*;

impl Gateway {
    pub fn flood_list(&self, vni: u32) -> Vec<IpAddr> {
        self.flood
            .get(&vni, 0)
            .map(|l| l.members().iter().filter_map(from_vtep).collect())
            .unwrap_or_default()
    }

    /// `bridge fdb append 00:00:00:00:00:00 ... dst IP`.
    pub fn flood_add(&mut self, vni: u32, dst: IpAddr) -> Result<()> {
        self.vni_info(vni)?;
        if self.vni_followed(vni) {
            return Err(GatewayError::FollowedVni(vni));
        }
        let mut list = self.flood.get(&vni, 0).unwrap_or_default();
        let member = to_vtep(dst);
        if list.contains(&member) {
            return Err(GatewayError::FloodMemberExists { dst, vni });
        }
        let n = list.members().len();
        if n == MAX_FLOOD {
            return Err(GatewayError::FloodListFull(vni));
        }
        list.vteps[n] = member;
        list.len = n as u32 + 1;
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }

    /// `bridge fdb del 00:00:00:00:00:00 ... [dst IP]`: one member, or with
    /// no `dst` the whole list.
    pub fn flood_del(&mut self, vni: u32, dst: Option<IpAddr>) -> Result<()> {
        self.vni_info(vni)?;
        if self.vni_followed(vni) {
            return Err(GatewayError::FollowedVni(vni));
        }
        let list = self.flood.get(&vni, 0).unwrap_or_default();
        let kept: Vec<VtepAddr> = match dst {
            None => Vec::new(),
            Some(d) => {
                let member = to_vtep(d);
                if !list.contains(&member) {
                    return Err(GatewayError::NoSuchFloodMember { dst: d, vni });
                }
                list.members()
                    .iter()
                    .copied()
                    .filter(|m| *m != member)
                    .collect()
            }
        };
        self.flood_set(vni, &kept)
    }

    /// Sets the whole flood list of `vni`.
    pub fn flood_set(&mut self, vni: u32, members: &[VtepAddr]) -> Result<()> {
        if members.len() > MAX_FLOOD {
            return Err(GatewayError::FloodListFull(vni));
        }
        let mut list = FloodList::default();
        list.vteps[..members.len()].copy_from_slice(members);
        list.len = members.len() as u32;
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }
}
