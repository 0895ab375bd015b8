/// A credential value that must never be printed.
///
/// Its descriptions print `<redacted>`, so a log line, an error message or a `dump` cannot leak it by
/// accident; code that needs the bytes asks for ``reveal()`` explicitly.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String

    public init(_ value: String) { self.value = value }

    /// The secret itself, for the one place that writes it on the wire.
    public func reveal() -> String { value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
