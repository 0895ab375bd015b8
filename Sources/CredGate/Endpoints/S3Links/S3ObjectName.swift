import Foundation

/// Object names as keg-storage makes them: a user's file name is never the key. It is sanitised (only its last
/// path component, no control characters, no leading dots), and a new object gets a random UUID that keeps the
/// extension (`report.PDF` → `4f0c…e1.PDF`), so names cannot collide, climb out of a prefix or be guessed.
enum S3ObjectName {
    /// The file name reduced to what is safe to show or keep: the part after the last `/` or `\`, without control
    /// characters, surrounding whitespace or leading dots (no dot-files). Nil when nothing is left.
    static func sanitised(_ filename: String) -> String? {
        let last =
            filename.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "/" || $0 == "\\" }).last ?? ""
        var scalars = String.UnicodeScalarView()
        for scalar in last.unicodeScalars
        where scalar.properties.generalCategory != .control
            && scalar.properties.generalCategory != .format
        {
            scalars.append(scalar)
        }
        var name = String(scalars).trimmingCharacters(in: .whitespacesAndNewlines)
        while name.hasPrefix(".") { name.removeFirst() }
        name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.utf8.count <= 255 else { return nil }
        return name
    }

    /// The extension kept on a new name: after the last `.`, 1 to 16 letters or digits; nil for none.
    static func fileExtension(of sanitisedName: String) -> String? {
        guard let dot = sanitisedName.lastIndex(of: "."), dot != sanitisedName.startIndex else { return nil }
        let ext = sanitisedName[sanitisedName.index(after: dot)...]
        guard (1...16).contains(ext.count),
            ext.unicodeScalars.allSatisfy({ $0.isASCII && $0.properties.isAlphabetic || ("0"..."9").contains($0) })
        else { return nil }
        return String(ext)
    }

    /// A new key: `prefix` + a lower-case random UUID + the extension, if any (`uploads/4f0c….pdf`).
    static func newKey(for filename: String, prefix: String, uuid: UUID = UUID()) -> String? {
        guard let name = sanitised(filename) else { return nil }
        let base = uuid.uuidString.lowercased()
        return prefix + (fileExtension(of: name).map { base + "." + $0 } ?? base)
    }
}
