import NIOCore

/// Bytes `offset..<offset+length` of an ``UploadSpoolFile`` as an async sequence of chunks, each read when the
/// consumer (AsyncHTTPClient sending a part) asks for it: a part in flight holds one chunk in memory, whatever
/// the part size. Each iteration reads from the start of the range again (a retried `PUT`).
struct SpoolRange: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    /// The spool could not be read back; ``PresignedPut`` reports it as such, not as the storage's fault.
    struct ReadFailed: Error {}

    let file: UploadSpoolFile
    let offset: Int
    let length: Int
    var chunkSize = 256 * 1024

    struct AsyncIterator: AsyncIteratorProtocol {
        let range: SpoolRange
        var position = 0

        mutating func next() async throws -> ByteBuffer? {
            guard position < range.length else { return nil }
            let count = Swift.min(range.chunkSize, range.length - position)
            do {
                let chunk = try await range.file.read(offset: range.offset + position, length: count)
                position += count
                return chunk
            } catch {
                throw ReadFailed()
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(range: self) }
}
