import Foundation

/// When a presigned S3 URL stops working, read from the URL itself.
///
/// The platform publishes no lifetime for the URLs it hands out, so the only trustworthy source is the signature's
/// own parameters, which S3 checks:
/// - SigV4 (`X-Amz-Algorithm=AWS4-...`): expiry = `X-Amz-Date` (`yyyyMMdd'T'HHmmss'Z'`, UTC) + `X-Amz-Expires`
///   seconds (1 to 604800: S3 refuses anything longer, so such a URL is treated as unreadable).
/// - SigV2 (`AWSAccessKeyId` and `Signature`): expiry = `Expires`, unix epoch seconds.
///
/// Query keys are matched case-sensitively, as AWS writes them (`X-Amz-Date`, `Expires`), and values are
/// percent-decoded. Anything ambiguous (a needed parameter missing, empty, repeated or malformed, or both forms in
/// one URL) gives nil: a URL whose expiry cannot be read is simply not cached, which is always safe.
///
/// The result is wall-clock time on purpose: S3 compares it with its own clock, not with how long this process has
/// been running, so the question "is this URL still good" can only be asked of a `Date`.
struct PresignedURLExpiry: Sendable, Hashable {
    /// Which signature scheme the URL uses.
    enum Form: String, Sendable, Hashable {
        case sigV4 = "SigV4"
        case sigV2 = "SigV2"
    }

    let form: Form
    /// When S3 stops honouring the URL, as the URL says.
    let expiresAt: Date
    /// When the URL was signed (SigV4's `X-Amz-Date`); SigV2 does not say.
    let signedAt: Date?
    /// Whether a security token is present (`X-Amz-Security-Token`, or SigV2's `x-amz-security-token`): the URL
    /// was signed with temporary credentials and dies with them, possibly long before ``expiresAt``.
    let usesTemporaryCredentials: Bool

    /// The longest lifetime S3 accepts for a SigV4 presigned URL (7 days).
    static let maximumSigV4Expires = 604_800

    /// Reads the expiry of `url`, or nil when it is not a presigned S3 URL whose expiry can be read.
    init?(url: String) {
        guard let query = Self.query(of: url) else { return nil }
        let temporary = query.has("X-Amz-Security-Token") || query.has("x-amz-security-token")
        let looksV4 = query.has("X-Amz-Algorithm") || query.has("X-Amz-Date") || query.has("X-Amz-Expires")
        let looksV2 = query.has("AWSAccessKeyId") || query.has("Expires")
        switch (looksV4, looksV2) {
        case (true, false):
            guard let algorithm = query.single("X-Amz-Algorithm"), algorithm.hasPrefix("AWS4-"),
                query.single("X-Amz-Signature") != nil,
                let date = query.single("X-Amz-Date").flatMap(Self.amzDate),
                let expires = query.single("X-Amz-Expires").flatMap(Self.decimal),
                (1...Self.maximumSigV4Expires).contains(expires)
            else { return nil }
            self.init(
                form: .sigV4, expiresAt: date.addingTimeInterval(TimeInterval(expires)), signedAt: date,
                usesTemporaryCredentials: temporary)
        case (false, true):
            guard query.single("AWSAccessKeyId") != nil, query.single("Signature") != nil,
                let epoch = query.single("Expires").flatMap(Self.decimal),
                epoch > 0, epoch < Self.year10000
            else { return nil }
            self.init(
                form: .sigV2, expiresAt: Date(timeIntervalSince1970: TimeInterval(epoch)), signedAt: nil,
                usesTemporaryCredentials: temporary)
        default:
            return nil
        }
    }

    init(form: Form, expiresAt: Date, signedAt: Date?, usesTemporaryCredentials: Bool) {
        self.form = form
        self.expiresAt = expiresAt
        self.signedAt = signedAt
        self.usesTemporaryCredentials = usesTemporaryCredentials
    }

    /// The expiry to rely on for an answer received at `receivedAt`: the URL's own, but no later than
    /// `maximumLifetime` after receipt (a configured ceiling, so a week-long URL is not served for a week after
    /// its credentials were rotated), nor `temporaryCredentialsMaximumLifetime` after receipt when the URL carries
    /// a security token (temporary credentials may lapse before the URL says; the URL cannot tell when).
    func expiry(
        receivedAt: Date, maximumLifetime: TimeInterval, temporaryCredentialsMaximumLifetime: TimeInterval? = nil
    ) -> Date {
        var ceiling = maximumLifetime
        if usesTemporaryCredentials, let temporary = temporaryCredentialsMaximumLifetime {
            ceiling = min(ceiling, temporary)
        }
        return min(expiresAt, receivedAt.addingTimeInterval(max(0, ceiling)))
    }

    /// The capped expiry of `url` (see ``expiry(receivedAt:maximumLifetime:temporaryCredentialsMaximumLifetime:)``),
    /// or nil when it cannot be read, so the answer is not cached.
    static func expiry(
        of url: String, receivedAt: Date, maximumLifetime: TimeInterval,
        temporaryCredentialsMaximumLifetime: TimeInterval? = nil
    ) -> Date? {
        PresignedURLExpiry(url: url)?.expiry(
            receivedAt: receivedAt, maximumLifetime: maximumLifetime,
            temporaryCredentialsMaximumLifetime: temporaryCredentialsMaximumLifetime)
    }

    // MARK: - Parsing

    /// 10000-01-01T00:00:00Z: later `Expires` values are nonsense and would not survive date arithmetic.
    private static let year10000 = 253_402_300_800

    /// The query's parameters, decoded, in order; repeated names kept so they can be refused.
    private struct Query {
        var pairs: [(name: String, value: String)]

        func has(_ name: String) -> Bool { pairs.contains { $0.name == name } }

        /// The value of `name` when it occurs exactly once and is not empty.
        func single(_ name: String) -> String? {
            var found: String?
            for pair in pairs where pair.name == name {
                if found != nil { return nil }
                found = pair.value
            }
            guard let found, !found.isEmpty else { return nil }
            return found
        }
    }

    /// The text between `?` and `#`, split on `&` and percent-decoded; nil when there is none or an escape is
    /// malformed. `+` stays a plus: AWS encodes spaces as `%20`, and none of the values read here has either.
    private static func query(of url: String) -> Query? {
        guard let questionMark = url.firstIndex(of: "?") else { return nil }
        var text = url[url.index(after: questionMark)...]
        if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
        var pairs: [(String, String)] = []
        for item in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = String(parts[0]).removingPercentEncoding,
                let value = (parts.count > 1 ? String(parts[1]) : "").removingPercentEncoding
            else { return nil }
            pairs.append((name, value))
        }
        return Query(pairs: pairs)
    }

    /// A non-negative decimal integer of at most 15 digits (no sign, no spaces), or nil.
    private static func decimal(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC, exactly as SigV4 writes it, or nil. Parsed by hand rather than with a
    /// `DateFormatter`: no locale or time-zone state to get wrong, and it is on the request path.
    static func amzDate(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for i in range {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                value = value * 10 + Int(b[i] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
            let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
            (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second)
        else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        return Date(timeIntervalSince1970: TimeInterval(days * 86_400 + hour * 3_600 + minute * 60 + second))
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's `days_from_civil`).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
