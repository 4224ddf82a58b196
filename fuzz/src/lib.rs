//! What several fuzz targets check alike.

use portcullis_xfcc::CertFormat;

/// `format.decode` on anything never panics, and whatever it accepts
/// re-encodes to a value that decodes to the same certificates (the leaf,
/// for the one-certificate formats).
pub fn decode_round_trip(format: CertFormat, input: &str) {
    let Ok(chain) = format.decode(input) else { return };
    assert!(!chain.is_empty());
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let again = format
        .decode(&format.encode(&refs))
        .expect("our own encoding decodes");
    if format.is_list() || matches!(format, CertFormat::Nginx | CertFormat::AwsAlb) {
        assert_eq!(again, chain);
    } else {
        assert_eq!(again[0], chain[0]);
    }
}

/// An environment from fuzz input: one value per variable of `vars`, in
/// order, separated by newlines; an empty line (or a missing one) leaves
/// the variable unset. `None` when the input is not UTF-8.
pub fn environment<'a>(
    vars: &'a [&'a str],
    data: &'a [u8],
) -> Option<impl Fn(&str) -> Option<String> + 'a> {
    let text = std::str::from_utf8(data).ok()?;
    let values: Vec<&str> = text.splitn(vars.len(), '\n').collect();
    Some(move |var: &str| {
        vars.iter()
            .position(|v| *v == var)
            .and_then(|i| values.get(i))
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
    })
}
