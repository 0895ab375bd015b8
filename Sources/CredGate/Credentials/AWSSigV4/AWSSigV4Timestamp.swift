import Foundation

extension AWSSigV4 {
    /// The moment a request is signed, in SigV4's two spellings: `X-Amz-Date` (`yyyyMMdd'T'HHmmss'Z'`, ISO 8601
    /// basic format, UTC) and the scope's `yyyyMMdd`.
    ///
    /// Whole seconds only, rounded down, as botocore's `strftime` drops the fraction: a URL signed at
    /// 07:35:25.75 says `T073525Z`, and its expiry counts from there. Computed with the proleptic Gregorian
    /// calendar by arithmetic (no `DateFormatter`, no locale, no time zone database), so the result cannot depend
    /// on the machine.
    struct Timestamp: Sendable, Hashable, CustomStringConvertible {
        /// Seconds since 1970-01-01T00:00:00Z, rounded down.
        let epochSeconds: Int64
        /// `20130524T000000Z`.
        let amzDate: String

        init(_ date: Date) {
            self.init(epochSeconds: Int64(date.timeIntervalSince1970.rounded(.down)))
        }

        init(epochSeconds: Int64) {
            self.epochSeconds = epochSeconds
            let (days, secondOfDay) = Self.floorDivision(epochSeconds, 86_400)
            let (year, month, day) = Self.civil(daysSinceEpoch: days)
            amzDate =
                Self.pad(year, 4) + Self.pad(month, 2) + Self.pad(day, 2) + "T"
                + Self.pad(secondOfDay / 3600, 2) + Self.pad(secondOfDay / 60 % 60, 2) + Self.pad(secondOfDay % 60, 2)
                + "Z"
        }

        /// `20130524`: the date of the credential scope, and of the signing key.
        var scopeDate: String { String(amzDate.prefix(8)) }

        /// The same instant as a `Date`.
        var date: Date { Date(timeIntervalSince1970: TimeInterval(epochSeconds)) }

        var description: String { amzDate }

        /// Year, month, day of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`, exact for every
        /// `Int64` day in range, leap years included).
        static func civil(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
            let z = daysSinceEpoch + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let dayOfEra = z - era * 146_097 // [0, 146096]
            let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365 // [0, 399]
            let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100) // [0, 365], from March
            let shiftedMonth = (5 * dayOfYear + 2) / 153 // [0, 11], March = 0
            let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
            let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
            return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
        }

        private static func floorDivision(_ a: Int64, _ b: Int64) -> (quotient: Int64, remainder: Int64) {
            let q = a / b
            let r = a % b
            return r < 0 ? (q - 1, r + b) : (q, r)
        }

        private static func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
    }
}
