import NIOCore

// MARK: - A presign call answered from the cache

extension FastPathHandler {
    /// Answers a presign call (`POST` on a `presign_cache` route) from the cache, as the full path's
    /// ``PresignCacheFilter`` answers it (its answer function, written as the full path writes it): false when the full path is to take it. That is
    /// when the body is not all in or over the route's limits, when a credential cannot be written now (the full
    /// path waits for the session first), when the body is not the plain form the SDK sends
    /// (``PresignCacheFilter/plainRequestObject(_:)``: the full path's JSON reader explains any other), and on a
    /// miss (the full path leads or joins the platform call).
    func answerFromCache(
        _ request: FastHead.Request, _ buffer: ByteBuffer, route: CompiledRoute, plan: FastRoutePlan,
        presign: PresignCacheFilter, target: UpstreamTarget
    ) -> Bool {
        let length = request.length + request.contentLength
        guard request.contentLength <= PresignCacheFilter.requestLimit,
            Int64(request.contentLength) <= route.maxBodyBytes, buffer.readableBytes >= length,
            plan.credentialsReady
        else { return false }
        let object = buffer.withUnsafeReadableBytes {
            PresignCacheFilter.plainRequestObject(UnsafeRawBufferPointer(rebasing: $0[request.length..<length]))
        }
        guard let object,
            let hit = presign.cache.lookup(key: PresignCacheKey(object: object, identity: presign.identity))
        else { return false }

        var rest = buffer
        let head = rest.readSlice(length: request.length)!
        rest.moveReaderIndex(forwardBy: request.contentLength)
        held = rest.readableBytes > 0 ? rest : nil
        let exchange = FastExchange(
            route: route, plan: plan, target: target, head: head, request: request,
            requestID: pool.requestIDs.nextRandom(),
            upstreamHead: ByteBuffer(), sessionToken: nil, now: context.eventLoop.now)
        self.exchange = exchange
        if request.close { closeWhenDone = true }
        if let headGuard {
            headGuard.headArrived()
        } else {
            context.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        }
        // The full path's answer, made by the same function and written as the full path writes it.
        exchange.cacheOutcome = "HIT"
        exchange.bytesIn = Int64(request.contentLength)
        writeLocal(PresignCacheFilter.answer(hit, redirect: false), exchange)
        // Called from serveHeld(), which goes on with the requests held after this one.
        end(exchange, outcome: nil)
        if closeWhenDone {
            closeAfterWrites()
        } else {
            context.flush()
        }
        return true
    }
}
