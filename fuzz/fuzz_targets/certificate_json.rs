#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lattice_conform::harness::certificate_json(data));
