//! The config of `vtep run`: any text through TOML and validation is a
//! config or a list of problems, never a panic; what is accepted is in
//! range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtep::model::config::{Capacity, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Config>() {
        Ok(cfg) => {
            assert!((Capacity::MIN_FDB..=Capacity::MAX_FDB).contains(&cfg.capacity.fdb));
            for v in &cfg.vnis {
                assert!((1..=0xff_ffff).contains(&v.id), "VNI {} accepted", v.id);
            }
            let (lo, hi) = cfg.underlay.srcport;
            assert!(lo <= hi, "srcport {lo}..{hi} accepted");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused config says why");
            let _ = errors.to_string();
        }
    }
});
