#![no_main]
//! See `slaprobe::props::canary_id` for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| slaprobe::props::canary_id(data));
