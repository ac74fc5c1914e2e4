#![no_main]
//! See `slaprobe::props::template` for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| slaprobe::props::template(data));
