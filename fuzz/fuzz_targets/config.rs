#![no_main]
//! See `slaprobe::props::config` for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| slaprobe::props::config(data));
