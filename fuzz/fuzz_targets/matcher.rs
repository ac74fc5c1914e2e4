#![no_main]
//! See `slaprobe::props::matcher` for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| slaprobe::props::matcher(data));
