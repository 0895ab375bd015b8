import Foundation

/// The text rules of S3 URLs: percent-encoding as AWS signs it, and the compact UTC timestamps of SigV4.
enum S3Encoding {
    /// RFC 3986 encoding as SigV4 requires it: unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay, every other
    /// byte of the UTF-8 becomes `%XX` (upper-case hex); `/` stays only when `keepSlash` (object keys in paths).
    /// botocore writes keys and query values this way, so `license 1.pdf` becomes `license%201.pdf`.
    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-decoding of a URL path: `%XX` to bytes, `+` left alone (it is a plus in a path). Nil when an escape
    /// is malformed or the result is not UTF-8, so a mangled key is never looked up as some other key.
    static func decodePath(_ text: Substring) -> String? {
        // Foundation's decoding has exactly these rules (nil on a bad escape or non-UTF-8, `+` kept).
        String(text).removingPercentEncoding
    }

    // MARK: Timestamps

    /// `yyyyMMdd'T'HHmmss'Z'` (SigV4's `X-Amz-Date`) for whole seconds since the epoch, in UTC.
    static func amzDate(epochSeconds: Int) -> String {
        let t = utc(epochSeconds)
        return pad(t.year, 4) + pad(t.month, 2) + pad(t.day, 2) + "T" + pad(t.hour, 2) + pad(t.minute, 2)
            + pad(t.second, 2) + "Z"
    }

    /// `yyyyMMdd`, the date of a credential scope.
    static func scopeDate(epochSeconds: Int) -> String {
        let t = utc(epochSeconds)
        return pad(t.year, 4) + pad(t.month, 2) + pad(t.day, 2)
    }

    /// ISO 8601 with a `Z`, as S3 writes `<Expires>` and `<ServerTime>` in its errors.
    static func iso8601(epochSeconds: Int) -> String {
        let t = utc(epochSeconds)
        return
            "\(pad(t.year, 4))-\(pad(t.month, 2))-\(pad(t.day, 2))T\(pad(t.hour, 2)):\(pad(t.minute, 2)):\(pad(t.second, 2))Z"
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as S3 writes `Last-Modified`.
    static func httpDate(epochSeconds: Int) -> String {
        let t = utc(epochSeconds)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"] // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let weekday = weekdays[
            epochSeconds.quotientAndRemainderFlooring(dividingBy: 86_400).0.quotientAndRemainderFlooring(dividingBy: 7)
                .1]
        return
            "\(weekday), \(pad(t.day, 2)) \(months[t.month - 1]) \(pad(t.year, 4)) \(pad(t.hour, 2)):\(pad(t.minute, 2)):\(pad(t.second, 2)) GMT"
    }

    private static func utc(_ epochSeconds: Int) -> (
        year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
    ) {
        let (days, secondsOfDay) = epochSeconds.quotientAndRemainderFlooring(dividingBy: 86_400)
        let (year, month, day) = civil(fromDays: days)
        return (year, month, day, secondsOfDay / 3600, secondsOfDay / 60 % 60, secondsOfDay % 60)
    }

    /// Seconds since the epoch of an `X-Amz-Date`; nil unless it is exactly `yyyyMMdd'T'HHmmss'Z'` and valid.
    static func epochSeconds(amzDate text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
            let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
        else { return nil }
        let days = days(fromCivil: year, month, day)
        // Reject dates that do not exist (20260231): they would not come back the same.
        guard civil(fromDays: days) == (year, month, day) else { return nil }
        return days * 86_400 + hour * 3600 + minute * 60 + second
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970-01-01.
    private static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Howard Hinnant's `days_from_civil`, the inverse of ``civil(fromDays:)``.
    private static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

extension Int {
    /// Quotient rounded towards minus infinity, and a remainder that is never negative.
    fileprivate func quotientAndRemainderFlooring(dividingBy divisor: Int) -> (Int, Int) {
        let (q, r) = quotientAndRemainder(dividingBy: divisor)
        return r < 0 ? (q - 1, r + divisor) : (q, r)
    }
}
