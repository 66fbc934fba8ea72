#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lattice_conform::harness::wasm_module(data));
