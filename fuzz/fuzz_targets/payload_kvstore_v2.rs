#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lattice_conform::harness::payload_kvstore_v2(data));
