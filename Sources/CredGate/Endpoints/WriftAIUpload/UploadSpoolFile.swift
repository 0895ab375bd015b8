import Crypto
import NIOCore
import NIOPosix
import _CryptoExtras

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a one-call WriftAI upload waits until the platform has said where its parts go: an encrypted temporary
/// file with no name, written as the body arrives and read back at any offset, one part at a time.
///
/// The same protection as the transport's ``BodySpool`` (an unnamed file, `O_TMPFILE` or unlinked at once, mode
/// 0600, AES-256-CTR under a random per-upload key that exists only in this object, the counter block for block
/// `i` being the random initial counter + `i`), with two differences this endpoint needs:
/// - **Writes are synchronous**, on the connection's event loop, in the body stage's `feed`. That is the
///   backpressure: the loop cannot read more of the client while it writes, so nothing piles up in memory
///   whatever the client's speed (a body stage has no way to pause the client, and queued asynchronous writes
///   held a whole 64 MiB body in memory in a test). nginx writes `client_body_temp` from its event loop the same
///   way; a write of a socket read's worth into the page cache takes microseconds.
/// - **Reads take an offset and a length**, so a part is read when it is sent, and read again for a retry,
///   instead of being held in memory until it has gone up; reads run on NIO's blocking-I/O thread pool.
final class UploadSpoolFile: @unchecked Sendable {
    private let handle: NIOFileHandle
    private let descriptor: CInt
    /// The key and counter the file is encrypted with (``SpoolCipher``, as for ``BodySpool``).
    private let cipher = SpoolCipher()
    /// Plaintext bytes written. Written only by ``append(_:)`` (on the event loop, before any read starts).
    private(set) var size = 0

    /// Opens the unnamed file in `directory` (synchronously: one `open`).
    init(directory: String) throws {
        descriptor = try Self.openUnnamed(in: directory)
        handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
    }

    deinit {
        try? handle.close()
    }

    /// Encrypts `buffer` and writes it at the end of the file, before returning.
    func append(_ buffer: ByteBuffer) throws {
        guard buffer.readableBytes > 0 else { return }
        var ciphertext = ByteBufferAllocator().buffer(capacity: buffer.readableBytes)
        try buffer.withUnsafeReadableBytes { try cipher.crypt($0, at: size, into: &ciphertext) }
        var offset = size
        try ciphertext.withUnsafeReadableBytes { bytes in
            var rest = bytes
            while !rest.isEmpty {
                let written = pwrite(descriptor, rest.baseAddress, rest.count, off_t(offset))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw IOError(errnoCode: errno, reason: "pwrite")
                }
                offset += written
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
            }
        }
        size += buffer.readableBytes
    }

    /// The plaintext of bytes `offset..<offset+length`, read with `pread` on NIO's blocking-I/O thread pool. Parts
    /// are read at the same time from several threads: `pread` on the raw descriptor allows that, where a
    /// `NIOFileHandle` refuses concurrent use (EBUSY).
    func read(offset: Int, length: Int) async throws -> ByteBuffer {
        let descriptor = descriptor
        let ciphertext = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
            var buffer = ByteBufferAllocator().buffer(capacity: length)
            var done = 0
            while done < length {
                let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length - done) { out in
                    pread(descriptor, out.baseAddress, length - done, off_t(offset + done))
                }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw IOError(errnoCode: errno, reason: "pread")
                }
                if count == 0 { throw BodySpoolError.truncated(expected: length, found: done) }
                done += count
            }
            return buffer
        }
        var plaintext = ByteBufferAllocator().buffer(capacity: length)
        try ciphertext.withUnsafeReadableBytes { try cipher.crypt($0, at: offset, into: &plaintext) }
        return plaintext
    }

    /// Gives the disk space of bytes `offset..<offset+length` back (a part the storage holds is never read again);
    /// the file keeps its size and reads of that range would give zeros. Best effort: where the file system cannot
    /// punch holes (or on macOS) the space is given back when the file closes.
    func release(offset: Int, length: Int) {
        #if os(Linux)
            // FALLOC_FL_PUNCH_HOLE (0x02) must be given with FALLOC_FL_KEEP_SIZE (0x01).
            _ = linuxFallocate(descriptor, 0x03, off_t(offset), off_t(length))
        #endif
    }

    /// Closes the file (its content, never readable without the key, is gone with it). Safe more than once; reads
    /// must be over.
    func close() {
        try? handle.close()
    }

    // MARK: - The unnamed file

    /// `O_TMPFILE | O_EXCL` (never linkable into the directory), or where the file system lacks it a file with a
    /// random 128-bit name created exclusively and unlinked at once; mode 0600 either way.
    private static func openUnnamed(in directory: String) throws -> CInt {
        #if os(Linux)
            // O_TMPFILE is `__O_TMPFILE | O_DIRECTORY`; __O_TMPFILE is 020000000 in the generic Linux ABI.
            let fd = open(directory, CInt(0o20_000_000) | O_DIRECTORY | O_RDWR | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { return fd }
            guard [EOPNOTSUPP, EISDIR, EINVAL].contains(errno) else { throw IOError(errnoCode: errno, reason: "open") }
        #endif
        var random = SystemRandomNumberGenerator()
        let name = String(random.next() as UInt64, radix: 16) + String(random.next() as UInt64, radix: 16)
        let path = (directory.hasSuffix("/") ? directory : directory + "/") + ".credgate-upload-" + name
        let named = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard named >= 0 else { throw IOError(errnoCode: errno, reason: "open") }
        guard unlink(path) == 0 else {
            let error = IOError(errnoCode: errno, reason: "unlink")
            closeDescriptor(named)
            throw error
        }
        return named
    }
}

#if os(Linux)
    /// `fallocate(2)`: glibc and musl both export it, but Swift's Glibc module leaves it out (it is declared only under
    /// `_GNU_SOURCE`), so it is bound by its symbol name.
    @_silgen_name("fallocate")
    private func linuxFallocate(_ fd: CInt, _ mode: CInt, _ offset: off_t, _ length: off_t) -> CInt
#endif

/// `close(2)`, outside the class whose own `close()` would shadow it.
private func closeDescriptor(_ descriptor: CInt) {
    _ = close(descriptor)
}
