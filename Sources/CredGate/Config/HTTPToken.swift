/// RFC 9110 `token`: what a method or a header name may be made of. Checked at load time so a typo in a
/// header name fails the config, not every request.
enum HTTPToken {
    private static let extra = Set("!#$%&'*+-.^_`|~".unicodeScalars)

    static func isValid(_ text: some StringProtocol) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                    || extra.contains(scalar)
            }
    }

    /// Whether `text` may be sent as a header value: no CR, LF, NUL or other control byte but tab, which would
    /// split or corrupt the request.
    static func isValidFieldValue(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.allSatisfy { $0 == "\t" || ($0.value >= 0x20 && $0.value != 0x7F) }
    }
}
