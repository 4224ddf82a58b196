//! XFCC `parse`: never panics, errors point inside the input, and whatever
//! parses survives a serialise/parse round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    match portcullis_xfcc::parse(input) {
        Ok(elements) => {
            let text = portcullis_xfcc::to_header_value(&elements);
            // Values that must be quoted and end in '\' cannot be carried.
            let representable = elements
                .iter()
                .flat_map(|e| e.pairs())
                .all(|(_, v)| !v.ends_with('\\'));
            if representable {
                assert_eq!(portcullis_xfcc::parse(&text).as_ref(), Ok(&elements));
            }
        }
        Err(error) => assert!(error.offset() <= input.len().max(16 * 1024)),
    }
});
