//! `CertFormat::Base64Der.decode`: see `portcullis_fuzz::decode_round_trip`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_xfcc::CertFormat;

fuzz_target!(|input: &str| portcullis_fuzz::decode_round_trip(CertFormat::Base64Der, input));
