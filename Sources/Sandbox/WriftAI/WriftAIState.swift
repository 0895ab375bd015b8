/// Everything a WriftAI sandbox shares between its responder and its ``WriftAISandboxServer`` handle.
final class WriftAIState: Sendable {
    let token: [UInt8]
    let catalogue: WriftAICatalogue
    let counters = WriftAICounterBook()
    let rateLimits = RateLimits()
    let predictions = PredictionStore()
    let uploads = UploadStore()
    /// Completed files, served to their signed download URLs.
    let objects = ObjectStore()
    let bucket: String
    let presigner: Presigner
    let settings: WriftAISettings
    let maxUploadBytes: Int

    init(options: WriftAISandboxOptions) {
        token = Array(options.accessToken.utf8)
        catalogue = WriftAICatalogue(modelCount: options.modelCount)
        bucket = options.bucket
        presigner = Presigner(accessKeyID: options.presignAccessKeyID)
        maxUploadBytes = options.maxUploadBytes
        let lifetime = Int(options.urlLifetime.components.seconds)
        settings = WriftAISettings(
            .init(
                stream: options.stream,
                urlLifetime: min(max(lifetime, 1), Presigner.maximumLifetime),
                partSize: max(1, options.partSize),
                pageURLs: options.pageURLs
            ))
    }

    /// Compares a bearer token with the expected one in time independent of where they differ.
    func isValid(token given: Substring) -> Bool {
        let bytes = Array(given.utf8)
        guard bytes.count == token.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(bytes, token) { difference |= a ^ b }
        return difference == 0
    }
}

/// Settings tests change while the sandbox runs (`/sandbox/stream`, `/sandbox/urls`).
actor WriftAISettings {
    struct Values: Sendable, Equatable {
        /// How predictions created from now on stream.
        var stream: StreamPlan
        /// Lifetime of presigned URLs made from now on, whole seconds.
        var urlLifetime: Int
        /// `part_size` of uploads created from now on.
        var partSize: Int
        /// Whether pages carry `next_url` and `previous_url`.
        var pageURLs: Bool
    }

    private(set) var values: Values

    init(_ values: Values) {
        self.values = values
    }

    func setStream(_ plan: StreamPlan) { values.stream = plan }

    func setPageURLs(_ on: Bool) { values.pageURLs = on }

    /// Each given value changes, the others stay; returns what is now in force.
    func update(urlLifetime: Int?, partSize: Int?) -> Values {
        if let urlLifetime { values.urlLifetime = urlLifetime }
        if let partSize { values.partSize = partSize }
        return values
    }
}

extension WriftAIState {
    /// Shared by the HTTP controls and the Swift methods, so both validate alike.
    func rateLimit(count: Int, path: String?, resetAfter: Int) async throws(SandboxControlError) {
        guard count >= 0 else { throw .invalid("count must be 0 or more") }
        guard (0...86_400).contains(resetAfter) else { throw .invalid("reset_seconds must be between 0 and 86400") }
        if let path, !path.hasPrefix("/") { throw .invalid("path must start with /") }
        await rateLimits.add(count: count, path: path, resetAfter: resetAfter)
    }

    func setStream(_ plan: StreamPlan) async throws(SandboxControlError) {
        guard plan.delays.count <= 10_000 else { throw .invalid("at most 10000 events") }
        let all = plan.delays + [plan.finalDelay] + (plan.heartbeat.map { [$0] } ?? [])
        guard all.allSatisfy({ $0 >= .zero && $0 <= .seconds(3600) }) else {
            throw .invalid("delays must be between 0 and 3600000 ms")
        }
        if let heartbeat = plan.heartbeat, heartbeat < .milliseconds(10) {
            throw .invalid("heartbeat_ms must be 10 or more")
        }
        await settings.setStream(plan)
    }

    func setURLs(lifetime: Int?, partSize: Int?) async throws(SandboxControlError) -> WriftAISettings.Values {
        if let lifetime, !(1...Presigner.maximumLifetime).contains(lifetime) {
            throw .invalid("lifetime_seconds must be between 1 and \(Presigner.maximumLifetime)")
        }
        if let partSize, partSize < 1 { throw .invalid("part_size must be 1 or more") }
        return await settings.update(urlLifetime: lifetime, partSize: partSize)
    }
}
