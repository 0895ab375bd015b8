/// An `s3://<bucket>/<key>` reference to one object, checked before anything is sent.
///
/// The platform answers a malformed `s3_url` with an opaque error (or signs a URL that can never work), and a
/// presign answer is cached under this value: so a request is checked here, once, and a person gets a sentence
/// saying what is wrong instead of the platform's 500. The rules are S3's own for general purpose bucket names
/// (AWS "General purpose bucket naming rules") and object keys (at most 1024 bytes of UTF-8); on top of them,
/// whitespace and control characters are refused anywhere, because in practice they are a copy-paste accident
/// (a trailing newline, a tab), never a real key, and they would make the cache key differ from what the user sees.
///
/// The key is kept exactly as written: an `s3://` URI is not a URL, so `%`, `?` and `#` are ordinary characters of
/// the key and nothing is percent-decoded.
struct S3URI: Sendable, Hashable, CustomStringConvertible {
    /// The bucket name: 3 to 63 lowercase letters, digits, dots and hyphens.
    let bucket: String
    /// The object key: everything after the first `/` that follows the bucket, never empty.
    let key: String

    /// S3's limit on an object key, in bytes of UTF-8.
    static let maximumKeyBytes = 1024

    /// Parses and checks `string`; the error's ``Problem/description`` is a sentence for the person who sent it.
    init(parsing string: String) throws(Problem) {
        if string.isEmpty { throw .empty }
        if let (scalar, position) = Self.firstForbiddenScalar(in: string) {
            throw .forbiddenCharacter(scalar, position: position)
        }
        guard string.hasPrefix("s3://") else { throw .notS3Scheme }
        let rest = string.dropFirst("s3://".count)
        guard let slash = rest.firstIndex(of: "/") else {
            if rest.isEmpty { throw .missingBucket }
            throw .missingKey
        }
        let bucket = String(rest[..<slash])
        let key = String(rest[rest.index(after: slash)...])
        if bucket.isEmpty { throw .missingBucket }
        try Self.checkBucket(bucket)
        if key.isEmpty { throw .missingKey }
        let keyBytes = key.utf8.count
        if keyBytes > Self.maximumKeyBytes { throw .keyTooLong(bytes: keyBytes) }
        self.bucket = bucket
        self.key = key
    }

    /// Nil when `string` is not a valid S3 URI; use ``init(parsing:)`` to learn why.
    init?(validating string: String) {
        guard let uri = try? S3URI(parsing: string) else { return nil }
        self = uri
    }

    /// The URI as written: `s3://<bucket>/<key>`.
    var description: String { "s3://\(bucket)/\(key)" }

    // MARK: - Rules

    /// Prefixes S3 reserves (punycode, its own internal names, documentation examples): no real bucket has them.
    static let reservedPrefixes = ["xn--", "sthree-", "amzn-s3-demo-"]

    /// Suffixes S3 reserves for names that look like buckets but are not general purpose buckets.
    static let reservedSuffixes: [(suffix: String, usedFor: String)] = [
        ("-s3alias", "access point aliases"),
        ("--ol-s3", "Object Lambda access point aliases"),
        (".mrap", "Multi-Region Access Points"),
        ("--x-s3", "directory buckets"),
        ("--table-s3", "table buckets"),
    ]

    private static func checkBucket(_ name: String) throws(Problem) {
        for character in name where !isBucketCharacter(character) {
            throw .bucketCharacter(name, character)
        }
        // Only ASCII is left, so the character count is the byte count S3 measures.
        let length = name.utf8.count
        guard (3...63).contains(length) else { throw .bucketLength(name, length) }
        guard let first = name.first, let last = name.last, isLetterOrDigit(first), isLetterOrDigit(last) else {
            throw .bucketEdge(name)
        }
        if name.contains("..") { throw .bucketAdjacentDots(name) }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count == 4, labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy(isDigit) }) {
            throw .bucketIPAddress(name)
        }
        if let prefix = reservedPrefixes.first(where: { name.hasPrefix($0) }) {
            throw .bucketReservedPrefix(name, prefix)
        }
        if let reserved = reservedSuffixes.first(where: { name.hasSuffix($0.suffix) }) {
            throw .bucketReservedSuffix(name, reserved.suffix, usedFor: reserved.usedFor)
        }
    }

    private static func isDigit(_ c: Character) -> Bool {
        guard let ascii = c.asciiValue else { return false }
        return (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(ascii)
    }

    private static func isLetterOrDigit(_ c: Character) -> Bool {
        guard let ascii = c.asciiValue else { return false }
        return isDigit(c) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(ascii)
    }

    private static func isBucketCharacter(_ c: Character) -> Bool {
        isLetterOrDigit(c) || c == "." || c == "-"
    }

    /// The first whitespace or control scalar and its 1-based position in characters, for the message.
    private static func firstForbiddenScalar(in string: String) -> (Unicode.Scalar, Int)? {
        // Nearly every URI is printable ASCII, which has no whitespace or control scalar: no Unicode property
        // lookups for it (they were a tenth of a presign cache hit's CPU).
        if string.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) { return nil }
        for (offset, character) in string.enumerated() {
            for scalar in character.unicodeScalars
            where scalar.properties.isWhitespace || scalar.properties.generalCategory == .control {
                return (scalar, offset + 1)
            }
        }
        return nil
    }

    // MARK: - Problems

    /// Why a string is not a valid S3 URI. The description is the sentence shown to the user (in a 422).
    enum Problem: Error, Sendable, Hashable, CustomStringConvertible {
        case empty
        case notS3Scheme
        case forbiddenCharacter(Unicode.Scalar, position: Int)
        case missingBucket
        case missingKey
        case bucketCharacter(String, Character)
        case bucketLength(String, Int)
        case bucketEdge(String)
        case bucketAdjacentDots(String)
        case bucketIPAddress(String)
        case bucketReservedPrefix(String, String)
        case bucketReservedSuffix(String, String, usedFor: String)
        case keyTooLong(bytes: Int)

        var description: String {
            let form = "s3://<bucket>/<key>"
            switch self {
            case .empty:
                return "The S3 URI is empty; expected \(form)."
            case .notS3Scheme:
                return "The S3 URI must start with \"s3://\" (in lowercase), as in s3://my-bucket/path/file.pdf."
            case .forbiddenCharacter(let scalar, let position):
                return "The S3 URI contains \(Self.name(of: scalar)) at character \(position); S3 URIs may not "
                    + "contain spaces, line breaks or other whitespace or control characters."
            case .missingBucket:
                return "The S3 URI has no bucket name; expected \(form)."
            case .missingKey:
                return "The S3 URI names a bucket but no object; expected \(form) with a key after the bucket name."
            case .bucketCharacter(let name, let character):
                let hint = character.isUppercase ? " (bucket names are all lowercase)" : ""
                return "The bucket name \"\(name)\" contains \"\(character)\"\(hint); bucket names may only contain "
                    + "lowercase letters, digits, dots and hyphens."
            case .bucketLength(let name, let length):
                let unit = length == 1 ? "character" : "characters"
                return "The bucket name \"\(name)\" is \(length) \(unit) long; bucket names are 3 to 63 "
                    + "characters long."
            case .bucketEdge(let name):
                return "The bucket name \"\(name)\" must begin and end with a lowercase letter or a digit."
            case .bucketAdjacentDots(let name):
                return "The bucket name \"\(name)\" contains two dots in a row, which S3 does not allow."
            case .bucketIPAddress(let name):
                return "The bucket name \"\(name)\" is formatted as an IP address, which S3 does not allow."
            case .bucketReservedPrefix(let name, let prefix):
                return "The bucket name \"\(name)\" starts with \"\(prefix)\", a prefix S3 reserves; no bucket "
                    + "can have it."
            case .bucketReservedSuffix(let name, let suffix, let usedFor):
                return "The bucket name \"\(name)\" ends with \"\(suffix)\", a suffix S3 reserves for \(usedFor); "
                    + "no bucket can have it."
            case .keyTooLong(let bytes):
                return "The object key is \(bytes) bytes long in UTF-8; S3 object keys are at most "
                    + "\(S3URI.maximumKeyBytes) bytes."
            }
        }

        private static func name(of scalar: Unicode.Scalar) -> String {
            let hex = String(scalar.value, radix: 16, uppercase: true)
            let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            switch scalar {
            case " ": return "a space"
            case "\t": return "a tab"
            case "\n", "\r", "\u{2028}", "\u{2029}", "\u{85}": return "a line break (\(code))"
            default:
                return scalar.properties.generalCategory == .control
                    ? "a control character (\(code))" : "a whitespace character (\(code))"
            }
        }
    }
}
