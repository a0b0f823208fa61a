//! Typed PostgreSQL messages through the session, both directions of one connection.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| indextap_proxy::fuzzing::pg_messages(data));
