//! The untyped packets of the PostgreSQL startup phase, read and classified.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| indextap_proxy::fuzzing::pg_startup(data));
