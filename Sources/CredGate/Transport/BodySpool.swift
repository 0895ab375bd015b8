import Crypto
import Foundation
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

/// Why a spool operation was refused.
enum BodySpoolError: Error, Equatable, CustomStringConvertible {
    /// The spool was closed (the exchange was dropped).
    case closed
    /// `append` after `finish`: the body was already declared whole.
    case appendAfterFinish
    /// `read` before `finish`: the body is not whole yet, and a held partial block is not in the file.
    case readBeforeFinish
    /// `read` with a chunk size that is not positive.
    case invalidChunkSize(Int)
    /// The file gave back fewer bytes than were written to it.
    case truncated(expected: Int, found: Int)

    var description: String {
        switch self {
        case .closed: "the body spool is closed"
        case .appendAfterFinish: "bytes appended to a finished body spool"
        case .readBeforeFinish: "body spool read before it was finished"
        case .invalidChunkSize(let size): "invalid body spool chunk size \(size)"
        case .truncated(let expected, let found): "body spool file holds \(found) of \(expected) bytes"
        }
    }
}

/// Holds a request body whole so that it can be checked before a single byte of it is forwarded, without
/// holding a large upload in memory (like nginx's `proxy_request_buffering on` with `client_body_temp`).
///
/// Bodies up to `memoryLimit` stay in memory. A larger one goes to a temporary file that never has a name
/// (`O_TMPFILE`, or a randomly named file unlinked at once where that is unsupported) and never holds
/// plaintext: the bodies are healthcare documents, so the file holds them AES-256-CTR encrypted under a
/// random per-spool key that exists only in this object. CTR lets the stream be encrypted piecewise: block
/// `i` of the body uses the counter block (random initial counter block + `i`, a 128-bit big-endian
/// addition), appends encrypt whole 16-byte blocks and carry the rest to the next append or `finish()`, and
/// reads decrypt each chunk from its offset the same way.
///
/// Confined to `eventLoop` like a channel handler: every method must be called there. Operations run in the
/// order they are called, each after the previous one completed. A failed write makes the spool fail every
/// later operation (the body it holds is incomplete).
final class BodySpool {
    private enum Storage {
        case memory(ByteBuffer)
        case file(NIOFileHandle)
        case closed
    }

    private let directory: String
    private let memoryLimit: Int
    private let fileIO: NonBlockingFileIO
    private let allocator: ByteBufferAllocator
    private let eventLoop: any EventLoop

    /// The key and counter the file is encrypted with (``SpoolCipher``), in this object only.
    private let cipher = SpoolCipher()

    private var storage: Storage
    /// Plaintext bytes stored (in memory, in the file, or held as the partial last block).
    private(set) var byteCount = 0
    /// Bytes encrypted for the file so far: the file's length once their writes completed.
    private var encryptedCount = 0
    /// The plaintext after the last whole 16-byte block, waiting for the next append or `finish()`.
    private var partialBlock: [UInt8] = []
    private var finishCalled = false
    private var isClosed = false
    /// The error of a failed write, failing every later operation.
    private var failure: (any Error)?
    /// The last operation queued; never fails, so that the next one always runs after it.
    private var lastOperation: EventLoopFuture<Void>
    private var descriptor: CInt?

    /// - Parameters:
    ///   - directory: Where the unnamed temporary file is created.
    ///   - memoryLimit: Bodies up to this many bytes stay in memory and no file is opened; the first append
    ///     that would pass it moves everything to the file.
    init(
        directory: String, memoryLimit: Int, fileIO: NonBlockingFileIO, allocator: ByteBufferAllocator,
        eventLoop: any EventLoop
    ) {
        self.directory = directory
        self.memoryLimit = max(0, memoryLimit)
        self.fileIO = fileIO
        self.allocator = allocator
        self.eventLoop = eventLoop
        self.storage = .memory(allocator.buffer(capacity: 0))
        self.lastOperation = eventLoop.makeSucceededVoidFuture()
    }

    deinit {
        if case .file(let handle) = storage { try? handle.close() }
    }

    /// Whether the body went to a file.
    var isOnDisk: Bool {
        if case .file = storage { return true }
        return false
    }

    /// The descriptor of the spool file while it is open, so tests can look at what the file really holds.
    var fileDescriptorForTesting: CInt? { descriptor }

    /// Stores the next bytes of the body. The future completes once they are stored (callers stop reading
    /// the client meanwhile), and fails with the underlying error (e.g. ENOSPC) if they could not be; appends
    /// made before an earlier one completed are stored after it, in call order.
    func append(_ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        if isClosed { return eventLoop.makeFailedFuture(BodySpoolError.closed) }
        if finishCalled { return eventLoop.makeFailedFuture(BodySpoolError.appendAfterFinish) }
        return enqueue(isWrite: true) { self.store(buffer) }
    }

    /// Declares the body whole: the held partial block is encrypted and written. Must come before `read`.
    func finish() -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        if isClosed { return eventLoop.makeFailedFuture(BodySpoolError.closed) }
        finishCalled = true
        return enqueue(isWrite: true) { self.writePartialBlock() }
    }

    /// Streams the body back from byte 0, in order, as plaintext chunks of at most `chunkSize` bytes, calling
    /// `handler` for each and reading the next only once the future it returned succeeded (so a slow
    /// upstream slows the reading). Can be called again, e.g. to retry on a fresh connection. A failing
    /// handler future ends the read with its error.
    func read(chunkSize: Int = 65_536, _ handler: @escaping (ByteBuffer) -> EventLoopFuture<Void>)
        -> EventLoopFuture<Void>
    {
        eventLoop.assertInEventLoop()
        if isClosed { return eventLoop.makeFailedFuture(BodySpoolError.closed) }
        if !finishCalled { return eventLoop.makeFailedFuture(BodySpoolError.readBeforeFinish) }
        guard chunkSize > 0 else { return eventLoop.makeFailedFuture(BodySpoolError.invalidChunkSize(chunkSize)) }
        return enqueue(isWrite: false) {
            switch self.storage {
            case .memory(let buffer): return self.readMemory(buffer, chunkSize: chunkSize, handler)
            case .file(let handle): return self.readFile(handle, chunkSize: chunkSize, handler)
            case .closed: return self.eventLoop.makeFailedFuture(BodySpoolError.closed)
            }
        }
    }

    /// Closes the file (its content, already unreadable, is gone with it) and drops an in-memory body. Safe to
    /// call more than once; later appends and reads fail. An operation under way ends first (a read stops at
    /// its next chunk), then the descriptor is closed.
    func close() {
        eventLoop.assertInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        if case .memory = storage { storage = .closed }
        lastOperation.assumeIsolated().whenComplete { _ in self.closeFile() }
    }

    // MARK: - Sequencing

    /// Runs `operation` after every operation queued before it, unless the spool was closed or a write failed
    /// meanwhile. A failing write (`isWrite`) fails all later operations.
    private func enqueue(isWrite: Bool, _ operation: @escaping () -> EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let result = lastOperation.assumeIsolated().flatMap { () -> EventLoopFuture<Void> in
            if self.isClosed { return self.eventLoop.makeFailedFuture(BodySpoolError.closed) }
            if let failure = self.failure { return self.eventLoop.makeFailedFuture(failure) }
            let future = operation()
            guard isWrite else { return future }
            return future.hop(to: self.eventLoop).assumeIsolated().flatMapError { error in
                if self.failure == nil { self.failure = error }
                return self.eventLoop.makeFailedFuture(error)
            }.nonisolated()
        }.nonisolated()
        lastOperation = result.recover { _ in }
        return result
    }

    private func closeFile() {
        if case .file(let handle) = storage { try? handle.close() }
        storage = .closed
        descriptor = nil
    }

    // MARK: - Writing

    private func store(_ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        switch storage {
        case .memory(let held):
            if held.readableBytes + buffer.readableBytes <= memoryLimit {
                var body = held
                var incoming = buffer
                body.writeBuffer(&incoming)
                storage = .memory(body)
                byteCount += buffer.readableBytes
                return eventLoop.makeSucceededVoidFuture()
            }
            return Self.openUnnamedFile(in: directory, fileIO: fileIO, eventLoop: eventLoop)
                .hop(to: eventLoop).assumeIsolated().flatMap { handle -> EventLoopFuture<Void> in
                    guard !self.isClosed else {
                        try? handle.close()
                        return self.eventLoop.makeFailedFuture(BodySpoolError.closed)
                    }
                    self.storage = .file(handle)
                    self.descriptor = try? handle.withUnsafeFileDescriptor { $0 }
                    // What was in memory (and counted already) goes to the file ahead of the new bytes.
                    return self.encryptAndWrite([held, buffer], to: handle).assumeIsolated().map {
                        self.byteCount += buffer.readableBytes
                    }.nonisolated()
                }.nonisolated()
        case .file(let handle):
            return encryptAndWrite([buffer], to: handle).assumeIsolated().map {
                self.byteCount += buffer.readableBytes
            }.nonisolated()
        case .closed:
            return eventLoop.makeFailedFuture(BodySpoolError.closed)
        }
    }

    /// Encrypts the whole blocks of (held partial block + `buffers`) into a fresh buffer, keeps the rest as
    /// the partial block, and writes the ciphertext at its offset.
    private func encryptAndWrite(_ buffers: [ByteBuffer], to handle: NIOFileHandle) -> EventLoopFuture<Void> {
        let offset = encryptedCount
        var ciphertext = allocator.buffer(capacity: partialBlock.count + buffers.reduce(0) { $0 + $1.readableBytes })
        do {
            for buffer in buffers { try encryptWholeBlocks(buffer, into: &ciphertext) }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return fileIO.write(fileHandle: handle, toOffset: Int64(offset), buffer: ciphertext, eventLoop: eventLoop)
    }

    private func encryptWholeBlocks(_ buffer: ByteBuffer, into ciphertext: inout ByteBuffer) throws {
        var input = buffer
        if !partialBlock.isEmpty {
            partialBlock += input.readBytes(length: min(16 - partialBlock.count, input.readableBytes)) ?? []
            guard partialBlock.count == 16 else { return }
            try partialBlock.withUnsafeBytes { try cipher.crypt($0, at: encryptedCount, into: &ciphertext) }
            encryptedCount += 16
            partialBlock.removeAll(keepingCapacity: true)
        }
        let whole = input.readableBytes & ~15
        if whole > 0 {
            try input.withUnsafeReadableBytes { bytes in
                try cipher.crypt(
                    UnsafeRawBufferPointer(rebasing: bytes.prefix(whole)), at: encryptedCount, into: &ciphertext)
            }
            input.moveReaderIndex(forwardBy: whole)
            encryptedCount += whole
        }
        partialBlock = input.readBytes(length: input.readableBytes) ?? []
    }

    private func writePartialBlock() -> EventLoopFuture<Void> {
        guard case .file(let handle) = storage, !partialBlock.isEmpty else {
            return eventLoop.makeSucceededVoidFuture()
        }
        let offset = encryptedCount
        var ciphertext = allocator.buffer(capacity: partialBlock.count)
        do {
            try partialBlock.withUnsafeBytes { try cipher.crypt($0, at: offset, into: &ciphertext) }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        encryptedCount += partialBlock.count
        partialBlock = []
        return fileIO.write(fileHandle: handle, toOffset: Int64(offset), buffer: ciphertext, eventLoop: eventLoop)
    }

    // MARK: - Reading

    private func readMemory(
        _ body: ByteBuffer, chunkSize: Int, _ handler: @escaping (ByteBuffer) -> EventLoopFuture<Void>
    )
        -> EventLoopFuture<Void>
    {
        if isClosed { return eventLoop.makeFailedFuture(BodySpoolError.closed) }
        var rest = body
        guard rest.readableBytes > 0, let chunk = rest.readSlice(length: min(chunkSize, rest.readableBytes)) else {
            return eventLoop.makeSucceededVoidFuture()
        }
        let remaining = rest
        return handler(chunk).hop(to: eventLoop).assumeIsolated().flatMap {
            self.readMemory(remaining, chunkSize: chunkSize, handler)
        }.nonisolated()
    }

    private final class ReadCursor {
        var offset = 0
    }

    private func readFile(
        _ handle: NIOFileHandle, chunkSize: Int, _ handler: @escaping (ByteBuffer) -> EventLoopFuture<Void>
    )
        -> EventLoopFuture<Void>
    {
        let cursor = ReadCursor()
        let expected = encryptedCount
        let bound = NIOLoopBound((spool: self, cursor: cursor, handler: handler), eventLoop: eventLoop)
        // Positional reads: each read starts at byte 0 whatever else uses the descriptor.
        return fileIO.readChunked(
            fileHandle: handle, fromOffset: 0, byteCount: expected, chunkSize: chunkSize, allocator: allocator,
            eventLoop: eventLoop
        ) { ciphertext in
            let (spool, cursor, handler) = bound.value
            guard ciphertext.readableBytes > 0 else { return spool.eventLoop.makeSucceededVoidFuture() }
            if spool.isClosed { return spool.eventLoop.makeFailedFuture(BodySpoolError.closed) }
            var plaintext = spool.allocator.buffer(capacity: ciphertext.readableBytes)
            do {
                try ciphertext.withUnsafeReadableBytes {
                    try spool.cipher.crypt($0, at: cursor.offset, into: &plaintext)
                }
            } catch {
                return spool.eventLoop.makeFailedFuture(error)
            }
            cursor.offset += ciphertext.readableBytes
            return handler(plaintext)
        }.assumeIsolated().flatMapThrowing {
            guard cursor.offset == expected else {
                throw BodySpoolError.truncated(expected: expected, found: cursor.offset)
            }
        }.nonisolated()
    }

    // MARK: - The unnamed file

    /// Opens a new read-write file in `directory` that has no name: `O_TMPFILE` (with `O_EXCL`, so it can
    /// never be linked into the directory later), or where the file system or kernel lacks it, a file with a
    /// random name created exclusively and unlinked at once. Mode 0600 either way; the opening happens on
    /// the file I/O thread pool.
    static func openUnnamedFile(in directory: String, fileIO: NonBlockingFileIO, eventLoop: any EventLoop)
        -> EventLoopFuture<NIOFileHandle>
    {
        #if os(Linux)
            // O_TMPFILE is `__O_TMPFILE | O_DIRECTORY`, a macro Swift does not import; __O_TMPFILE is 020000000
            // in the generic Linux ABI (x86_64, aarch64).
            let tmpfile = CInt(0o20_000_000) | O_DIRECTORY
            return fileIO.openFile(
                _deprecatedPath: directory, mode: [.read, .write], flags: .posix(flags: tmpfile | O_EXCL, mode: 0o600),
                eventLoop: eventLoop
            ).flatMapError { error in
                // EOPNOTSUPP: the file system has no O_TMPFILE; EISDIR/EINVAL: the kernel does not know the flag.
                guard let ioError = error as? IOError, [EOPNOTSUPP, EISDIR, EINVAL].contains(ioError.errnoCode) else {
                    return eventLoop.makeFailedFuture(error)
                }
                return openThenUnlink(in: directory, fileIO: fileIO, eventLoop: eventLoop)
            }
        #else
            return openThenUnlink(in: directory, fileIO: fileIO, eventLoop: eventLoop)
        #endif
    }

    /// The `mkstemp` + `unlink` fallback: a new file under a random 128-bit name, unlinked before use.
    static func openThenUnlink(in directory: String, fileIO: NonBlockingFileIO, eventLoop: any EventLoop)
        -> EventLoopFuture<NIOFileHandle>
    {
        var random = SystemRandomNumberGenerator()
        let name = [random.next() as UInt64, random.next() as UInt64]
            .map { String($0, radix: 16).leftPadded(to: 16) }.joined()
        let path = (directory.hasSuffix("/") ? directory : directory + "/") + ".credgate-spool-" + name
        return fileIO.openFile(
            _deprecatedPath: path, mode: [.read, .write], flags: .posix(flags: O_CREAT | O_EXCL, mode: 0o600),
            eventLoop: eventLoop
        ).flatMap { handle in
            fileIO.unlink(path: path, eventLoop: eventLoop).map { handle }.flatMapError { error in
                try? handle.close()
                return eventLoop.makeFailedFuture(error)
            }
        }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
