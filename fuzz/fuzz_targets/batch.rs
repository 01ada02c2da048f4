//! `vtep -batch`: any text is read line by line into changes or errors
//! that name the command, never a panic (the parse step, before the
//! gateway's tables are opened).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut last = 0;
    for (n, words, change) in vtep::cli::batch::parse(text) {
        assert!(n > last && !words.is_empty());
        last = n;
        if let Err(e) = change {
            let _ = format!("{e:#}");
        }
    }
});
