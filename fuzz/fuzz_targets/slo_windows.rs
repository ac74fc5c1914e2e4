#![no_main]
//! See `slaprobe::props::slo_windows` for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| slaprobe::props::slo_windows(data));
