#![no_main]
//! See `slaprobe::props::tracker` for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| slaprobe::props::tracker(data));
