//! MongoDB frames (OP_MSG, OP_QUERY, OP_COMPRESSED, OP_REPLY) through the session and the
//! topology rewrite, both directions of one connection.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| indextap_proxy::fuzzing::mongo_wire(data));
