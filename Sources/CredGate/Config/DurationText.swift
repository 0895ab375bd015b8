import NIOCore

/// Durations written as in the configuration (`500ms`, `30s`, `1m`, `1h`, or a bare number of seconds), for the
/// command line's options, so that a flag and the config file read the same text the same way.
public enum DurationText {
    /// What a duration looks like, for error messages.
    public static let hint = Quantity.durationHint

    /// The duration, or nil when `text` is not one (or is too long to represent).
    public static func parse(_ text: String) -> TimeAmount? {
        try? Quantity.duration(text).get()
    }
}
