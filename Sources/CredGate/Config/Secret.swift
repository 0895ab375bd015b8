/// A credential value that must never be printed.
///
/// Its descriptions print `<redacted>`, so a log line, an error message or a `dump` cannot leak it by
/// accident; code that needs the bytes asks for ``reveal()`` explicitly.
struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String

    init(_ value: String) { self.value = value }

    /// The secret itself, for the one place that writes it on the wire.
    func reveal() -> String { value }

    var description: String { "<redacted>" }
    var debugDescription: String { "<redacted>" }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
