//! MAC and VTEP addresses: parsing, printing, and conversion to the map
//! types of `vtep_common`.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use vtep_common::{AF_INET, AF_INET6, VtepAddr};

/// An Ethernet MAC address, printed and parsed as `02:00:00:00:01:02`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const ZERO: Mac = Mac([0; 6]);

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    pub fn is_multicast(&self) -> bool {
        vtep_common::header::is_multicast(&self.0)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("{s:?} is not a MAC address (expected six hex bytes, like 02:00:00:00:01:02)")
        };
        let mut out = [0u8; 6];
        // One separator throughout: `:` or `-`.
        let sep = if s.contains(':') { ':' } else { '-' };
        let mut parts = s.split(sep);
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            // Hex digits only: from_str_radix also takes a sign.
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

/// The map form of an IP address.
pub fn to_vtep(ip: IpAddr) -> VtepAddr {
    match ip {
        IpAddr::V4(v4) => VtepAddr::v4(v4.octets()),
        IpAddr::V6(v6) => VtepAddr::v6(v6.octets()),
    }
}

/// The IP address of a map entry, if it holds one.
pub fn from_vtep(a: &VtepAddr) -> Option<IpAddr> {
    match a.family {
        AF_INET => a.as_v4().map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(a.addr))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_roundtrip() {
        let m: Mac = "02:00:00:00:01:0A".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 1, 10]);
        assert_eq!(m.to_string(), "02:00:00:00:01:0a");
        assert_eq!("02-00-00-00-01-0a".parse::<Mac>().unwrap(), m);
    }

    #[test]
    fn bad_macs_are_refused() {
        for s in [
            "",
            "02:00:00:00:01",
            "02:00:00:00:01:02:03",
            "0g:00:00:00:01:02",
            "002:00:00:00:01:02",
            // Found by the fuzzer (fuzz/corpus/addr/crash-mac-plus-sign):
            // a sign is no hex digit.
            "0:00:02:00:00:+0",
            "+2:00:00:00:01:02",
            // One separator throughout, and only `:` or `-`.
            "02:00-00:00-01:02",
            "02.00.00.00.01.02",
            "0200.0000.0102",
            "02:00:00:00:01:02:",
            " 02:00:00:00:01:02",
            "02:00:00:00:01:\u{e9}",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn vtep_roundtrip() {
        for s in ["198.18.0.2", "2001:db8::1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(from_vtep(&to_vtep(ip)), Some(ip));
        }
        assert_eq!(from_vtep(&VtepAddr::default()), None);
    }
}
