//! Multicast group membership as an interface address (`RTM_NEWADDR` /
//! `RTM_DELADDR` with `IFA_F_MCAUTOJOIN`): the kernel joins the group on
//! the interface (IGMP / MLD reports go out) and keeps it joined for as long
//! as the address is there, whatever process made it, so that membership
//! outlives the daemon (the datapath keeps forwarding without one). The
//! same request as `ip address add 239.1.1.1/32 dev UPLINK autojoin`.

use std::{io, net::IpAddr};

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressFlags, AddressMessage},
};

use super::Rtnl;

/// The address message of group `group` on `ifindex`, with
/// `IFA_F_MCAUTOJOIN`: a host prefix (/32, /128), `IFA_LOCAL` and
/// `IFA_ADDRESS` both the group, as `ip address add ... autojoin` sends it.
pub fn group_address(group: IpAddr, ifindex: u32) -> AddressMessage {
    let mut msg = AddressMessage::default();
    let (family, prefix_len) = match group {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    msg.header.family = family;
    msg.header.prefix_len = prefix_len;
    msg.header.index = ifindex;
    msg.attributes = vec![
        AddressAttribute::Local(group),
        AddressAttribute::Address(group),
        AddressAttribute::Flags(AddressFlags::Mcautojoin),
    ];
    msg
}

impl Rtnl {
    /// Joins `group` on `ifindex` (an `IFA_F_MCAUTOJOIN` address). Already
    /// joined this way (the address is there: a daemon before this one
    /// added it) is no error.
    pub fn group_join(&mut self, group: IpAddr, ifindex: u32) -> io::Result<()> {
        let msg = RouteNetlinkMessage::NewAddress(group_address(group, ifindex));
        match self.request(msg, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Leaves `group` on `ifindex` (removes the address). Not joined (no
    /// such address, or no such interface any more) is no error.
    pub fn group_leave(&mut self, group: IpAddr, ifindex: u32) -> io::Result<()> {
        let msg = RouteNetlinkMessage::DelAddress(group_address(group, ifindex));
        match self.request(msg, NLM_F_ACK) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV | libc::ESRCH)
                ) =>
            {
                Ok(())
            }
            r => r.map(drop),
        }
    }
}
