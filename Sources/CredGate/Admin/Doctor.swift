import Logging
import NIOCore

/// `credgate doctor`: checks every credential against the real platform, as cloud-sql-proxy's and Vault's own
/// checks do, so that an operator knows before the first request whether the key or the password works.
///
/// A session credential logs in (the whole login, as the gateway would, with its backoff turned into one
/// attempt); a static credential with a `probe:` sends that cheap request with the credential and expects a 2xx;
/// one without a probe is reported as not checked. Nothing in a result is a secret: the platform's status, and a
/// sentence built from fixed phrases.
public enum Doctor {
    public enum Outcome: String, Sendable {
        case ok
        case failed = "FAILED"
        case notChecked = "not checked"
    }

    public struct Result: Sendable {
        public var credential: String
        public var kind: String
        public var upstream: String
        public var outcome: Outcome
        /// How long the check took (nil when nothing was sent).
        public var elapsed: Duration?
        /// The platform's answer status, when it answered.
        public var platformStatus: Int?
        /// What happened, for a person.
        public var detail: String
    }

    /// Checks each credential of `config`, in name order, one at a time (a doctor run is a handful of requests).
    /// `transport` makes the HTTP client for an upstream (the same kind sessions use).
    public static func run(
        config: GatewayConfig, transport: (UpstreamConfig) -> any SessionTransport, logger: Logger
    ) async -> [Result] {
        var results: [Result] = []
        for name in config.credentials.keys.sorted() {
            let credential = config.credentials[name]!
            switch credential.kind {
            case .jwtSession(let session):
                guard let upstream = config.upstreams[session.upstream] else { continue }
                results.append(
                    await login(name, session, upstream: upstream, transport: transport(upstream), logger: logger))
            case .apiKey(let header, let value):
                let upstreamName =
                    credential.probe?.upstream
                    ?? config.allRoutes.first { $0.credentials.contains(name) }?.upstream
                guard let upstreamName, let upstream = config.upstreams[upstreamName] else {
                    results.append(
                        Result(
                            credential: name, kind: "api_key", upstream: "-", outcome: .notChecked,
                            detail: "no route uses it"))
                    continue
                }
                guard let probe = credential.probe else {
                    results.append(
                        Result(
                            credential: name, kind: "api_key", upstream: upstreamName, outcome: .notChecked,
                            detail: "no probe configured (credentials.\(name).probe)"))
                    continue
                }
                results.append(
                    await self.probe(
                        name, probe, headers: [(header, value.reveal())], upstream: upstream,
                        transport: transport(upstream)))
            case .awsSigV4:
                let upstream = config.allRoutes.first { $0.credentials.contains(name) }?.upstream ?? "-"
                results.append(
                    Result(
                        credential: name, kind: "aws_sigv4", upstream: upstream, outcome: .notChecked,
                        detail: "doctor has no check for AWS keys yet"))
            }
        }
        return results
    }

    private static func login(
        _ name: String, _ config: JWTSessionConfig, upstream: UpstreamConfig, transport: any SessionTransport,
        logger: Logger
    ) async -> Result {
        let session = JWTSession(name: name, config: config, transport: transport, logger: logger)
        let started = ContinuousClock.now
        var result = Result(
            credential: name, kind: "jwt_session", upstream: upstream.name, outcome: .ok, detail: "logged in")
        do {
            let token = try await session.validToken()
            result.elapsed = ContinuousClock.now - started
            result.platformStatus = 200
            let left = (token.expiresAt - ContinuousClock.now).components.seconds
            result.detail = "logged in; the token expires in \(left / 60) min"
        } catch {
            result.elapsed = ContinuousClock.now - started
            result.outcome = .failed
            result.platformStatus = Self.status(in: error.reason)
            result.detail = error.reason
        }
        await session.shutdown()
        return result
    }

    private static func probe(
        _ name: String, _ probe: CredentialProbe, headers: [(String, String)], upstream: UpstreamConfig,
        transport: any SessionTransport
    ) async -> Result {
        let started = ContinuousClock.now
        var result = Result(credential: name, kind: "api_key", upstream: upstream.name, outcome: .ok, detail: "")
        do {
            let answer = try await transport.send(method: probe.method, path: probe.path, headers: headers, body: "")
            result.elapsed = ContinuousClock.now - started
            result.platformStatus = answer.status
            if (200..<300).contains(answer.status) {
                result.detail = "\(probe.method) \(probe.path) answered \(answer.status)"
            } else {
                result.outcome = .failed
                let hint = answer.status == 401 || answer.status == 403 ? ": the platform refused the credential" : ""
                result.detail = "\(probe.method) \(probe.path) answered \(answer.status)\(hint)"
            }
        } catch {
            result.elapsed = ContinuousClock.now - started
            result.outcome = .failed
            result.detail =
                "\(probe.method) \(probe.path): \((error as? SessionTransportError)?.description ?? "no answer")"
        }
        return result
    }

    /// The status in a session's failure sentence ("login answered 401"), if any.
    static func status(in reason: String) -> Int? {
        guard let range = reason.range(of: "answered ") else { return nil }
        return Int(reason[range.upperBound...].prefix { $0.isNumber })
    }
}
