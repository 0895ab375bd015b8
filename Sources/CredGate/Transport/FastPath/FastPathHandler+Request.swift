import NIOCore
import NIOHTTP1

// MARK: - A request

extension FastPathHandler {
    /// Starts a fast exchange for a parsed head at the start of `buffer`; false when the request needs the full
    /// path (its route has filters beyond credentials, or a credential cannot be written now).
    func start(_ request: FastHead.Request, _ buffer: ByteBuffer) -> Bool {
        guard let listener = runtime?.listeners[listenerIndex] else { return false }
        let path = buffer.withUnsafeReadableBytes {
            String(
                decoding: UnsafeRawBufferPointer(rebasing: $0[request.target.lowerBound..<request.pathEnd]),
                as: UTF8.self)
        }
        guard case .matched(let route) = listener.routes.lookup(method: request.method.rawValue, path: path[...]),
            let plan = route.fastPlan, let target = route.target
        else { return false }
        // On a presign_cache route only a cache hit is the fast path's; elsewhere only requests without a body.
        if let presign = plan.presign {
            return request.method == .POST
                && answerFromCache(request, buffer, route: route, plan: plan, presign: presign, target: target)
        }
        if request.method == .POST { return false }
        let requestID = pool.requestIDs.nextRandom()
        var upstreamHead = headBuffer(&spareUpstreamHead, capacity: request.length + 320)
        buffer.withUnsafeReadableBytes { bytes in
            Self.writeUpstreamHead(
                &upstreamHead, request, bytes, target: target, requestID: requestID, clientAddress: clientAddress)
        }
        var token: SessionToken?
        for splicer in plan.splicers {
            switch splicer.splice(into: &upstreamHead) {
            case .fullPath: return false
            case .spliced: break
            case .splicedSession(let t): token = t
            }
        }
        upstreamHead.writeStaticString("\r\n")
        var rest = buffer
        let head = rest.readSlice(length: request.length)!
        held = rest.readableBytes > 0 ? rest : nil
        let exchange = FastExchange(
            route: route, plan: plan, target: target, head: head, request: request, requestID: requestID,
            upstreamHead: upstreamHead, sessionToken: token, now: context.eventLoop.now)
        self.exchange = exchange
        mode = .exchange
        if request.close { closeWhenDone = true }
        if let headGuard {
            headGuard.headArrived()
        } else {
            context.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        }
        acquire(exchange, fresh: false)
        return true
    }

    /// The head the upstream gets: the request line with the upstream's path, its `Host`, the client's header
    /// lines but `Host` and `Connection`, and the gateway's `X-Forwarded-*`, `Via` and `X-Request-ID`, as
    /// ``HeaderHygiene/upstreamHead(from:target:requestID:clientAddress:hasBody:trustForwarded:forwardCookies:)``
    /// makes them (the credentials and the final empty line follow).
    static func writeUpstreamHead(
        _ out: inout ByteBuffer, _ request: FastHead.Request, _ bytes: UnsafeRawBufferPointer, target: UpstreamTarget,
        requestID: RandomRequestID, clientAddress: String?
    ) {
        out.writeString(request.method.rawValue)
        out.writeStaticString(" ")
        let clientTarget = UnsafeRawBufferPointer(rebasing: bytes[request.target])
        if target.mount.isEmpty && target.basePath.isEmpty {
            out.writeBytes(clientTarget)
        } else {
            out.writeString(target.upstreamURI(String(decoding: clientTarget, as: UTF8.self)))
        }
        out.writeStaticString(" HTTP/1.1\r\nhost: ")
        out.writeString(target.hostHeader)
        out.writeStaticString("\r\n")
        var lines = HeaderLineCopier()
        FastHead.forEachHeader(bytes, from: request.headersStart, to: request.length) { name, value in
            if !FastHead.equalsLowercased(bytes, name, "host") && !FastHead.equalsLowercased(bytes, name, "connection")
            {
                lines.copy(bytes, name, value, into: &out)
            }
            return true
        } onMalformed: {
        }
        lines.flush(bytes, into: &out)
        if let clientAddress {
            out.writeStaticString("x-forwarded-for: ")
            out.writeString(clientAddress)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("via: 1.1 credgate\r\nx-forwarded-proto: http\r\nx-forwarded-host: ")
        out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[request.host]))
        out.writeStaticString("\r\nx-request-id: ")
        requestID.write(into: &out)
        out.writeStaticString("\r\n")
    }

    func acquire(_ exchange: FastExchange, fresh: Bool) {
        guard let raw = pool.raw else {
            return answerLocally(exchange, .upstreamReset(upstream: exchange.target.name))
        }
        if !fresh, let connection = raw.takeIdle(exchange.target) {
            return attach(exchange, connection, reused: true)
        }
        raw.connect(exchange.target) { [self] result in
            guard self.context != nil, self.exchange === exchange else {
                if case .success(let (connection, _)) = result { raw.release(connection) }
                return
            }
            switch result {
            case .success(let (connection, _)):
                self.attach(exchange, connection, reused: false)
            case .failure(let error):
                self.answerLocally(exchange, ProxyHandler.connectProblem(error, upstream: exchange.target.name))
            }
        }
    }

    private func attach(_ exchange: FastExchange, _ connection: UpstreamConnection, reused: Bool) {
        // A pooled connection is attached in the turn the exchange started in: its time is now.
        let now = reused ? exchange.started : context.eventLoop.now
        exchange.connection = connection
        exchange.reused = reused
        if exchange.connectedAt == nil { exchange.connectedAt = now }
        connection.delegate = self
        connection.setAutoRead(context.channel.isWritable)
        connection.write(bytes: exchange.upstreamHead)
        connection.flush()
        exchange.sentAt = now
        exchange.lastActivity = now
        armTimer(exchange)
    }
}

/// Header lines copied from a head's bytes into another: consecutive lines already in the form ``ByteBuffer/
/// writeHeaderLine(_:_:_:)`` writes (`name: value\r\n`, one space, no trailing white space) go out as one run of
/// bytes, in one write instead of four per line; any other line is written through that function. ``flush(_:into:)``
/// before anything else is written to the same buffer, and at the end.
struct HeaderLineCopier {
    private var run = 0..<0

    mutating func copy(
        _ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, _ value: Range<Int>, into out: inout ByteBuffer
    ) {
        guard value.lowerBound == name.upperBound + 2, bytes[name.upperBound + 1] == 0x20,
            bytes[value.upperBound] == 0x0D
        else {
            flush(bytes, into: &out)
            return out.writeHeaderLine(bytes, name, value)
        }
        let line = name.lowerBound..<(value.upperBound + 2)
        if !run.isEmpty && run.upperBound == line.lowerBound {
            run = run.lowerBound..<line.upperBound
        } else {
            flush(bytes, into: &out)
            run = line
        }
    }

    mutating func flush(_ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard !run.isEmpty else { return }
        out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[run]))
        run = 0..<0
    }
}

extension ByteBuffer {
    /// A header line copied from a head's bytes: `name: value\r\n`.
    mutating func writeHeaderLine(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, _ value: Range<Int>) {
        writeBytes(UnsafeRawBufferPointer(rebasing: bytes[name]))
        writeStaticString(": ")
        writeBytes(UnsafeRawBufferPointer(rebasing: bytes[value]))
        writeStaticString("\r\n")
    }
}
