import Crypto

/// A provider as `GET /api/v1/users/providers-list/` lists it (a subset of the platform's fields).
struct SandboxProvider: Sendable {
    var id: String
    var profile_id: String
    var first_name: String
    var last_name: String
    var npi: String
    var email: String
    var user_type: String
    var is_active: Bool
    var created_at: String

    var json: JSONValue {
        .object([
            ("id", .string(id)),
            ("profile_id", .string(profile_id)),
            ("first_name", .string(first_name)),
            ("last_name", .string(last_name)),
            ("npi", .string(npi)),
            ("email", .string(email)),
            ("user_type", .string(user_type)),
            ("is_active", .bool(is_active)),
            ("created_at", .string(created_at)),
        ])
    }
}

/// The fixed, deterministic set of providers the sandbox serves: same ids on every run and every machine.
struct ProviderDirectory: Sendable {
    let providers: [SandboxProvider]

    init(count: Int) {
        let firstNames = [
            "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken",
            "Margaret", "Dennis", "Sophie", "Tim", "Katherine", "Niklaus", "Shafi", "Leslie", "Mary", "Vint",
        ]
        let lastNames = [
            "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Perlman",
            "Thompson", "Hamilton", "Ritchie", "Wilson", "Berners-Lee", "Johnson", "Wirth", "Goldwasser",
            "Lamport", "Keller",
        ]
        providers = (0..<max(0, count)).map { i in
            let first = firstNames[i % firstNames.count]
            let last = lastNames[(i * 7) % lastNames.count]
            let day = 1 + i % 28
            return SandboxProvider(
                id: Self.stableUUID("credgate-sandbox/provider/\(i)"),
                profile_id: Self.stableUUID("credgate-sandbox/provider-profile/\(i)"),
                first_name: first,
                last_name: last,
                npi: Self.npi(index: i),
                email: "\(first).\(last).\(i + 1)@example.com".lowercased(),
                user_type: "provider",
                is_active: true,
                created_at: "2025-01-\(day < 10 ? "0" : "")\(day)T09:00:00Z"
            )
        }
    }

    /// A version-4-shaped UUID derived from a name, so it never changes between runs.
    static func stableUUID(_ name: String) -> String {
        var bytes = Array(SHA256.hash(data: Array(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let hex = bytes.hexString
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-"
            + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    /// A 10-digit NPI with a valid check digit (Luhn over the `80840` prefix plus the first nine digits).
    static func npi(index: Int) -> String {
        let base = 100_000_000 + (23_456_789 + index * 7_919) % 900_000_000
        let digits = Array("80840\(base)").map { Int(String($0))! }
        var sum = 0
        for (position, digit) in digits.reversed().enumerated() {
            // The check digit will sit to the right, so the rightmost payload digit is doubled.
            if position % 2 == 0 {
                let doubled = digit * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += digit
            }
        }
        let check = (10 - sum % 10) % 10
        return "\(base)\(check)"
    }
}
