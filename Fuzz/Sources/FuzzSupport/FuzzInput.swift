/// Reads a fuzzer's input front to back: a few option bytes, then lines of text, then the rest as a payload.
///
/// The same idea as LLVM's `FuzzedDataProvider`, kept small: every read succeeds (an exhausted input reads as
/// zeros or empty), so any byte string is a valid input and libFuzzer's mutations of the options and of the
/// payload are equally cheap. The layouts each target reads are written in its file and in Fuzz/README.md, so a
/// seed can be written by hand with `printf`.
public struct FuzzInput {
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        if let data, size > 0 {
            bytes = ArraySlice(UnsafeBufferPointer(start: data, count: size))
        } else {
            bytes = []
        }
    }

    public var isEmpty: Bool { bytes.isEmpty }

    /// The next byte, or 0 when there is none.
    public mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    /// The next `count` bytes (fewer at the end).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let taken = bytes.prefix(count)
        bytes = bytes.dropFirst(taken.count)
        return Array(taken)
    }

    /// The bytes up to the next `\n` (which is consumed and not returned), or all that is left.
    public mutating func line() -> [UInt8] {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return rest() }
        let line = Array(bytes[..<newline])
        bytes = bytes[(newline + 1)...]
        return line
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] {
        defer { bytes = [] }
        return Array(bytes)
    }
}

extension String {
    /// The bytes as UTF-8, invalid sequences replaced by U+FFFD: what a transport that builds `String`s from the
    /// wire (SwiftNIO's HTTP parser does) hands to the code under test.
    public init(fuzzBytes bytes: some Collection<UInt8>) {
        self.init(decoding: bytes, as: UTF8.self)
    }
}

/// Stops the process with a message when an invariant of the code under test does not hold, so that libFuzzer
/// records the input as a crash (a plain `precondition` would say nothing useful in release builds).
public func fuzzExpect(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        fatalError("fuzz invariant failed: \(message())", file: file, line: line)
    }
}
