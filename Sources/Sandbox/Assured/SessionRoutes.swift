import Hummingbird

/// The outcome of checking `Authorization: Bearer` on a JWT route.
enum BearerCheck {
    /// A valid access token: its user, and the token string exactly as sent (the SSN key is derived from it).
    case user(SandboxUser, token: String)
    /// The 401 to answer.
    case rejected(Response)
}

extension SandboxResponder {
    // MARK: Login and tokens (no API key needed)

    /// `POST /api/v1/users/login/` `{"email", "password", "remember"?}`.
    ///
    /// The view is exempt from authentication on the platform, so the API key the SDK sends anyway is neither
    /// needed nor checked, and an `Authorization` header is ignored. `remember` is accepted and has no effect.
    func login(_ request: Request, method: HTTPRequest.Method, recorded: inout RecordedRequest) async throws -> Response
    {
        guard method == .post else {
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST", "OPTIONS"])
        }
        let body = try await ReadBody.read(request, recorded: &recorded)

        if let status = await state.sessions.takeInjectedFailure() {
            await state.counters.count(.loginFailure)
            return Self.injectedLoginFailure(status: status)
        }

        let credentials = body.jsonObject().flatMap { object in
            FieldValidation.requiredStrings(["email", "password"], in: object)
        }
        guard case .success(let fields) = credentials else {
            await state.counters.count(.loginFailure)
            return credentials.failureResponse
        }
        guard let user = await state.sessions.authenticate(email: fields["email"]!, password: fields["password"]!)
        else {
            await state.counters.count(.loginFailure)
            return Self.badCredentials
        }
        let tokens = try await state.sessions.issue(for: user)
        await state.counters.count(.login)
        return JSONResponses.json(
            .ok,
            .object([
                (
                    "data",
                    .object(
                        user.fields + [
                            (
                                "jwt",
                                .object([("access", .string(tokens.access)), ("refresh", .string(tokens.refresh))])
                            )
                        ])
                ),
                ("msg", "Login successful"),
                ("extra_data", .object([])),
            ]))
    }

    /// `POST /api/v1/users/token/refresh/` `{"refresh"}`: simplejwt with rotation and blacklist-after-rotation.
    /// Authentication-exempt like simplejwt's view: an expired access token sent alongside does no harm.
    func refresh(_ request: Request, method: HTTPRequest.Method, recorded: inout RecordedRequest) async throws
        -> Response
    {
        guard method == .post else {
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST", "OPTIONS"])
        }
        let body = try await ReadBody.read(request, recorded: &recorded)
        let field = body.jsonObject().flatMap { FieldValidation.requiredStrings(["refresh"], in: $0) }
        guard case .success(let fields) = field else {
            await state.counters.count(.refreshFailure)
            return field.failureResponse
        }
        do throws(TokenRejection) {
            let tokens = try await state.sessions.refresh(fields["refresh"]!)
            await state.counters.count(.refresh)
            return JSONResponses.json(
                .ok, .object([("access", .string(tokens.access)), ("refresh", .string(tokens.refresh))]))
        } catch {
            await state.counters.count(.refreshFailure)
            return Self.tokenNotValid(error.message)
        }
    }

    /// `POST /api/v1/users/token/verify/` `{"token"}`: 200 `{}` for any valid token of this sandbox, access or refresh.
    func verify(_ request: Request, method: HTTPRequest.Method, recorded: inout RecordedRequest) async throws
        -> Response
    {
        guard method == .post else {
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST", "OPTIONS"])
        }
        let body = try await ReadBody.read(request, recorded: &recorded)
        let field = body.jsonObject().flatMap { FieldValidation.requiredStrings(["token"], in: $0) }
        guard case .success(let fields) = field else { return field.failureResponse }
        do throws(TokenRejection) {
            _ = try await state.sessions.check(fields["token"]!, type: nil)
            return JSONResponses.json(.ok, .object([]))
        } catch {
            return Self.tokenNotValid(error.message)
        }
    }

    /// `GET /api/v1/users/logged-in-user-details/`: the API key is required (checked before), the JWT optional.
    /// With a valid JWT it answers that token's user; with none, the key's owner. A Bearer token that is sent but
    /// invalid is refused, as DRF does once an authenticator raises (inferred). Answer shape inferred from login's.
    func loggedInUserDetails(_ request: Request, method: HTTPRequest.Method) async -> Response {
        let user: SandboxUser?
        switch Self.bearer(request) {
        case .absent:
            user = await state.sessions.keyOwner
        case .malformed, .token:
            switch await authenticate(request) {
            case .user(let found, _): user = found
            case .rejected(let response): return response
            }
        }
        guard method == .get else {
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "HEAD", "OPTIONS"])
        }
        guard let user else { return JSONResponses.detail(.notFound, "Not found.") }
        return JSONResponses.json(
            .ok,
            .object([
                ("data", .object(user.fields)),
                ("msg", "User details fetched successfully"),
                ("extra_data", .object([])),
            ]))
    }

    // MARK: The JWT check

    /// simplejwt's `JWTAuthentication` on a route that requires it: a valid, unexpired, unrevoked access token of
    /// this sandbox, else the 401 it would answer. Every refusal is counted.
    func authenticate(_ request: Request) async -> BearerCheck {
        let rejection: Response
        switch Self.bearer(request) {
        case .absent:
            rejection = Self.unauthorized(.object([("detail", "Authentication credentials were not provided.")]))
        case .malformed:
            rejection = Self.unauthorized(
                .object([
                    ("detail", "Authorization header must contain two space-delimited values"),
                    ("code", "bad_authorization_header"),
                ]))
        case .token(let token):
            do throws(TokenRejection) {
                return .user(try await state.sessions.user(forAccess: token), token: token)
            } catch {
                rejection = Self.unauthorized(
                    .object([
                        ("detail", "Given token not valid for any token type"),
                        ("code", "token_not_valid"),
                        (
                            "messages",
                            .array([
                                .object([
                                    ("token_class", "AccessToken"),
                                    ("token_type", "access"),
                                    ("message", .string(error.message)),
                                ])
                            ])
                        ),
                    ]))
            }
        }
        await state.counters.count(.jwtRejection)
        return .rejected(rejection)
    }

    enum BearerHeader: Equatable {
        /// No `Authorization`, or one of another scheme: simplejwt treats both as "no credentials".
        case absent
        /// `Bearer` with no token, or with more than one word after it.
        case malformed
        case token(String)
    }

    /// The `Authorization` header read as simplejwt does: split on whitespace, scheme `Bearer` (case-sensitive),
    /// exactly one token after it. Repeated fields are joined with a comma, as the WSGI server would.
    static func bearer(_ request: Request) -> BearerHeader {
        let values = request.headers[values: .authorization]
        guard !values.isEmpty else { return .absent }
        let parts = values.joined(separator: ",").split(whereSeparator: {
            $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n"
        })
        guard parts.first == "Bearer" else { return .absent }
        guard parts.count == 2 else { return .malformed }
        return .token(String(parts[1]))
    }

    // MARK: Answers

    /// simplejwt's error for a refused token on its own views: `{"detail", "code": "token_not_valid"}`.
    static func tokenNotValid(_ message: String) -> Response {
        unauthorized(.object([("detail", .string(message)), ("code", "token_not_valid")]))
    }

    /// A 401 with the challenge DRF adds for its JWT authenticator.
    static func unauthorized(_ body: JSONValue) -> Response {
        var response = JSONResponses.json(.unauthorized, body)
        response.headers[.wwwAuthenticate] = "Bearer realm=\"api\""
        return response
    }

    static var badCredentials: Response {
        JSONResponses.detail(.unauthorized, "No active account found with the given credentials")
    }

    /// What an injected login failure answers: the platform's bad-credentials body for 401, DRF's throttle
    /// answer (with `Retry-After: 1`) for 429, Django's bare HTML page for 500, and a `detail` for anything else.
    static func injectedLoginFailure(status: Int) -> Response {
        switch status {
        case 401:
            return badCredentials
        case 429:
            var response = JSONResponses.detail(
                .tooManyRequests, "Request was throttled. Expected available in 1 second.")
            response.headers[.retryAfter] = "1"
            return response
        case 500:
            return Response(
                status: .internalServerError,
                headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string:
                            "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
                    ))
            )
        default:
            return JSONResponses.detail(HTTPResponse.Status(code: status), "Injected login failure.")
        }
    }
}

extension Result where Failure == ResponseError {
    /// The ready answer of a failed validation (only meaningful on `.failure`).
    var failureResponse: Response {
        if case .failure(let error) = self { return error.response }
        return JSONResponses.detail(.internalServerError, "Internal error.")
    }
}
