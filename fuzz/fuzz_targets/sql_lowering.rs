//! SQL text lowered into shapes, fresh and through the cache.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| indextap_analyzer::fuzzing::sql_lowering(data));
