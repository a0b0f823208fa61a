//! A BSON command document, and the same document as a `find` filter, lowered into shapes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| indextap_analyzer::fuzzing::mongo_command_lowering(data));
