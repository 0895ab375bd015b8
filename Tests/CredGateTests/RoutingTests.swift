import Testing

@testable import CredGate

private func pattern(_ text: String) throws -> PathPattern { try PathPattern(text) }

@Suite struct PathPatternTests {
    @Test func parsesSegments() throws {
        #expect(try pattern("/api/v1/{id}/**").segments == [.literal("api"), .literal("v1"), .param("id"), .wildcard])
        #expect(try pattern("/").segments == [.literal("")])
        #expect(try pattern("/users/").segments == [.literal("users"), .literal("")])
        #expect(try pattern("/a/{b}/").description == "/a/{b}/")
    }

    @Test(arguments: [
        ("", PathPattern.ParseError.mustStartWithSlash),
        ("api/**", .mustStartWithSlash),
        ("/**/x", .wildcardNotLast),
        ("/a/**/", .wildcardNotLast),
        ("/a*", .badSegment("a*")),
        ("/a/**b", .badSegment("**b")),
        ("/{}", .badSegment("{}")),
        ("/{a-b}", .badSegment("{a-b}")),
        ("/x{id}", .badSegment("x{id}")),
        ("/a?b", .badSegment("a?b")),
    ])
    func badPatterns(_ text: String, _ error: PathPattern.ParseError) {
        #expect(throws: error) { try PathPattern(text) }
    }

    /// The byte matcher the data path uses agrees with the UTF-8 view matcher on every pattern/path pair of a
    /// grid with case changes, empty segments, prefixes and trailing slashes.
    @Test func byteMatchingAgreesWithTheViewMatcher() throws {
        let patterns = try [
            "/", "/**", "/api/**", "/api", "/api/", "/api/v1/users", "/api/v1/users/", "/api/{id}", "/api/{id}/",
            "/api/{id}/x/**", "/API/V1/**", "/a/b/c", "/a//b", "/@/x", "/files/handle/",
        ].map(pattern)
        let paths = [
            "/", "//", "/api", "/api/", "/API/", "/apix", "/ap", "/api/v1/users", "/api/v1/USERS", "/api/v1/users/",
            "/api/v1/users/x", "/api/v1", "/api/7", "/api/7/", "/api//", "/api/7/x", "/api/7/x/y/z", "/a/b/c", "/a//b",
            "/a/b/c/", "/@/x", "/`/x", "/files/HANDLE/", "/files/handle", "/api/v1/users?x",
        ]
        for p in patterns {
            for path in paths {
                #expect(p.matches(path[...]) == p.matchesByView(path[...]), "\(p) \(path)")
            }
        }
    }

    @Test func literal() throws {
        let p = try pattern("/api/v1/users")
        #expect(p.matches("/api/v1/users"))
        #expect(!p.matches("/api/v1/user"))
        #expect(!p.matches("/api/v1/usersx"))
        #expect(!p.matches("/api/v1"))
        #expect(!p.matches("/api/v1/users/x"))
        #expect(
            p.matches("/API/v1/users"),
            "literal segments match in any ASCII case (a case-insensitive platform must not let a spelling skip a route)"
        )
        #expect(p.matches("/api/V1/Users"))
        #expect(!p.matches("/api/v1/usérs"))
    }

    @Test func root() throws {
        let p = try pattern("/")
        #expect(p.matches("/"))
        #expect(!p.matches("/a"))
        #expect(!p.matches("//"))
    }

    @Test func trailingSlashIsSignificant() throws {
        let withSlash = try pattern("/users/")
        let without = try pattern("/users")
        #expect(withSlash.matches("/users/"))
        #expect(!withSlash.matches("/users"))
        #expect(without.matches("/users"))
        #expect(!without.matches("/users/"))
    }

    @Test func param() throws {
        let p = try pattern("/users/{id}/")
        #expect(p.matches("/users/42/"))
        #expect(p.matches("/users/a%20b/"))
        #expect(!p.matches("/users//"), "a param takes a non-empty segment")
        #expect(!p.matches("/users/42"))
        #expect(!p.matches("/users/42/x/"))
    }

    @Test func encodedSlashStaysInOneSegment() throws {
        #expect(try pattern("/files/{name}").matches("/files/a%2Fb"))
        #expect(!(try pattern("/files/{name}/{more}").matches("/files/a%2Fb")))
        #expect(try pattern("/files/a%2Fb").matches("/files/a%2Fb"))
        #expect(!(try pattern("/files/a/b").matches("/files/a%2Fb")))
        #expect(!(try pattern("/files/a%2Fb").matches("/files/a/b")))
    }

    @Test func wildcardTakesZeroOrMoreSegments() throws {
        let p = try pattern("/api/**")
        #expect(p.matches("/api"))
        #expect(p.matches("/api/"))
        #expect(p.matches("/api/v1"))
        #expect(p.matches("/api/v1/users/42/"))
        #expect(!p.matches("/apix"))
        #expect(!p.matches("/"))
        #expect(!p.matches("/other/api"))

        let all = try pattern("/**")
        #expect(all.matches("/"))
        #expect(all.matches("/anything/at/all"))

        let afterParam = try pattern("/u/{id}/**")
        #expect(afterParam.matches("/u/1"))
        #expect(afterParam.matches("/u/1/x/y"))
        #expect(!afterParam.matches("/u/"))
        #expect(!afterParam.matches("/u"))
    }

    @Test(arguments: [
        ("/**", "/api/v1/{id}/"), ("/**", "/"), ("/**", "/a/**"),
        ("/api/**", "/api/**"), ("/api/**", "/api"), ("/api/**", "/api/v1/**"), ("/api/**", "/api/{x}"),
        ("/a/{id}", "/a/b"), ("/a/{id}", "/a/{other}"), ("/a/{id}/", "/a/b/"),
        ("/a/b", "/a/b"), ("/", "/"),
    ])
    func covers(_ earlier: String, _ later: String) throws {
        #expect(try pattern(earlier).covers(pattern(later)))
    }

    @Test(arguments: [
        ("/api", "/api/**"), ("/api/x/**", "/api/**"), ("/api/x/**", "/api"),
        ("/a/{id}", "/a/**"), ("/a/{id}", "/a/"), ("/{id}", "/"),
        ("/a/b", "/a/{id}"), ("/a/b", "/a/c"), ("/a/b", "/a/b/"), ("/a/b/", "/a/b"),
        ("/a/{id}", "/a/b/c"), ("/api/**", "/apix/**"), ("/{id}/**", "/**"),
    ])
    func doesNotCover(_ earlier: String, _ later: String) throws {
        #expect(!(try pattern(earlier).covers(pattern(later))))
    }

    /// `covers` must agree with `matches`: whenever it claims a cover, every sample path the later pattern
    /// matches is matched by the earlier one.
    @Test func coversAgreesWithMatches() throws {
        let patterns = try [
            "/", "/**", "/a", "/a/", "/a/**", "/a/{x}", "/a/{x}/", "/a/{x}/**", "/{x}", "/{x}/**",
            "/a/b", "/a/b/**", "/{x}/b", "/a//b",
        ].map(pattern)
        let paths = ["/", "//", "/a", "/a/", "/a//", "/a/b", "/a/b/", "/a/b/c", "/a//b", "/b", "/b/b", "/a/c/d/"]
        for earlier in patterns {
            for later in patterns where earlier.covers(later) {
                for path in paths where later.matches(path[...]) {
                    #expect(earlier.matches(path[...]), "\(earlier) covers \(later) but not \(path)")
                }
            }
        }
    }
}

@Suite struct RouteTableTests {
    private func table() throws -> RouteTable<String> {
        RouteTable([
            .init(methods: ["POST"], pattern: try pattern("/api/v1/users/login/"), payload: "login"),
            .init(methods: ["GET", "PATCH"], pattern: try pattern("/api/v1/ssn/{id}/"), payload: "ssn"),
            .init(methods: ["GET", "POST"], pattern: try pattern("/api/**"), payload: "api"),
            .init(methods: nil, pattern: try pattern("/health"), payload: "health"),
        ])
    }

    @Test func firstMatchWins() throws {
        let table = try table()
        guard case .matched("login") = table.lookup(method: "POST", path: "/api/v1/users/login/") else {
            Issue.record("login")
            return
        }
        guard case .matched("ssn") = table.lookup(method: "GET", path: "/api/v1/ssn/42/") else {
            Issue.record("ssn")
            return
        }
        // Not a method of the first matching route, but of a later one: the later one takes it.
        guard case .matched("api") = table.lookup(method: "GET", path: "/api/v1/users/login/") else {
            Issue.record("api")
            return
        }
        guard case .matched("health") = table.lookup(method: "BREW", path: "/health") else {
            Issue.record("nil methods take every method")
            return
        }
    }

    @Test func methodNotAllowedListsEveryMatchingRoutesMethods() throws {
        guard case .methodNotAllowed(let allowed) = try table().lookup(method: "DELETE", path: "/api/v1/ssn/42/") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["GET", "PATCH", "POST"])
    }

    @Test func methodsAreCaseSensitive() throws {
        guard case .methodNotAllowed = try table().lookup(method: "get", path: "/api/x") else {
            Issue.record("expected 405")
            return
        }
    }

    @Test func notFound() throws {
        let table = try table()
        for path in ["/", "/apix", "/health/", "/other/api"] {
            guard case .notFound = table.lookup(method: "GET", path: path[...]) else {
                Issue.record("\(path) should not match")
                continue
            }
        }
        guard case .notFound = RouteTable<String>([]).lookup(method: "GET", path: "/") else {
            Issue.record("an empty table matches nothing")
            return
        }
    }
}
