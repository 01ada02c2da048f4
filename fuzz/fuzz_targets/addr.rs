//! The CLI's address and number arguments: MACs, VTEP addresses, VNIs and
//! interface names are parsed or refused, never a panic; what parses
//! prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtep::model::{
    addr::{Mac, from_vtep, to_vtep},
    config::{check_ifname, check_vni, parse_vtep},
};

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.get(..8) {
        let v = i64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        if let Ok(vni) = check_vni("vni", v) {
            assert!((1..=0xff_ffff).contains(&vni) && i64::from(vni) == v);
        }
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mac) = s.parse::<Mac>() {
        assert_eq!(mac.to_string().parse::<Mac>(), Ok(mac), "{s:?}");
        // Six groups of hex digits, all with the same separator.
        let sep = if s.contains(':') { ':' } else { '-' };
        assert!(
            s.chars().all(|c| c.is_ascii_hexdigit() || c == sep),
            "{s:?} accepted as {mac}"
        );
    }
    if let Ok(ip) = parse_vtep("dst", s) {
        assert_eq!(from_vtep(&to_vtep(ip)), Some(ip), "{s:?}");
    }
    if let Ok(v) = s.parse::<i64>() {
        let _ = check_vni("vni", v);
    }
    let _ = check_ifname("port", s);
});
