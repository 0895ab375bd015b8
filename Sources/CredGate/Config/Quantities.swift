import NIOCore

/// Durations and byte sizes as people write them in a config file (`250ms`, `60s`, `128MiB`), or as a bare
/// integer (seconds, bytes). Integers only: `1.5s` is `1500ms`, and nothing rounds behind the user's back.
enum Quantity {
    enum Problem: Error, Equatable {
        case malformed
        case tooLarge
    }

    static let durationHint = "an integer of seconds, or an integer with ms, s, m or h: 250ms, 5s, 2m, 1h"
    static let sizeHint = "an integer of bytes, or an integer with KiB, MiB, GiB (or KB, MB, GB): 10KiB, 25MiB, 1GiB"

    private static let durationUnits: [String: Int64] = [
        "": 1_000_000_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    private static let sizeUnits: [String: Int64] = [
        "": 1, "B": 1,
        "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
        "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000,
    ]

    static func duration(_ text: String) -> Result<TimeAmount, Problem> {
        scaled(text, units: durationUnits).map { TimeAmount.nanoseconds($0) }
    }

    static func byteSize(_ text: String) -> Result<Int64, Problem> {
        scaled(text, units: sizeUnits)
    }

    /// `<digits>[spaces]<unit>` times the unit's factor, refusing overflow rather than wrapping.
    private static func scaled(_ text: String, units: [String: Int64]) -> Result<Int64, Problem> {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text[digits.endIndex...].drop { $0 == " " }
        guard !digits.isEmpty, let factor = units[String(unit)] else { return .failure(.malformed) }
        guard let number = Int64(digits) else { return .failure(.tooLarge) }
        let (product, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? .failure(.tooLarge) : .success(product)
    }
}
