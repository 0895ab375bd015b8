import Crypto
import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A JSON value as a client sent it, for reading request bodies field by field the way a DRF serializer does
/// (telling a missing field from a null, a blank or a wrong type).
enum RequestJSON: Decodable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([RequestJSON])
    case object([String: RequestJSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? container.decode(Double.self) {
            self = .number(n)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([RequestJSON].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: RequestJSON].self))
        }
    }

    /// DRF's name for the type, as its "Expected a dictionary, but got ..." message says it.
    var pythonTypeName: String {
        switch self {
        case .string: "str"
        case .number(let n): n.rounded() == n ? "int" : "float"
        case .bool: "bool"
        case .null: "NoneType"
        case .array: "list"
        case .object: "dict"
        }
    }
}

/// A request body read to its end: the first bytes (up to a cap) kept, all of it counted and hashed.
struct ReadBody {
    var bytes: [UInt8]
    var total: Int
    var truncated: Bool { total > bytes.count }

    /// Largest JSON body the sandbox parses; the Assured bodies it reads are a few hundred bytes.
    static let jsonLimit = 1 << 20

    /// Reads the whole body, filling `recorded`'s size and digest as the echo does, so the recorder shows
    /// what arrived on every route. On a failed read the size so far is recorded and the error rethrown.
    static func read(_ request: Request, limit: Int = jsonLimit, recorded: inout RecordedRequest) async throws
        -> ReadBody
    {
        var hasher = SHA256()
        var kept: [UInt8] = []
        var total = 0
        do {
            for try await buffer in request.body {
                total += buffer.readableBytes
                buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                if kept.count < limit {
                    kept += buffer.readableBytesView.prefix(limit - kept.count)
                }
            }
        } catch {
            recorded.bodyBytes = total
            throw error
        }
        recorded.bodyBytes = total
        recorded.bodySHA256 = hasher.finalize().hexString
        return ReadBody(bytes: kept, total: total)
    }

    /// The body as a JSON object, or the DRF-style 400 (413 when too large) to answer instead.
    /// An empty body is an empty object, as DRF's `request.data` makes it.
    func jsonObject() -> Result<[String: RequestJSON], ResponseError> {
        if truncated {
            return .failure(ResponseError(JSONResponses.detail(.contentTooLarge, "Request body too large.")))
        }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }) {
            return .success([:])
        }
        guard let value = try? JSONDecoder().decode(RequestJSON.self, from: Data(bytes)) else {
            return .failure(
                ResponseError(JSONResponses.detail(.badRequest, "JSON parse error - the body is not valid JSON")))
        }
        guard case .object(let object) = value else {
            return .failure(
                ResponseError(
                    JSONResponses.json(
                        .badRequest,
                        .object([
                            (
                                "non_field_errors",
                                .array([
                                    .string("Invalid data. Expected a dictionary, but got \(value.pythonTypeName).")
                                ])
                            )
                        ]))))
        }
        return .success(object)
    }
}

/// A ready answer carried through a `Result`'s failure side.
struct ResponseError: Error {
    let response: Response
    init(_ response: Response) { self.response = response }
}

/// DRF `CharField` validation of the fields a view requires, in declaration order.
enum FieldValidation {
    /// The string values of `fields`, or a 400 listing every failing field like DRF (`{"field": ["..."]}`).
    /// Numbers are accepted and turned into text, as `CharField` does; blank strings fail unless `allowBlank`.
    static func requiredStrings(_ fields: [String], in object: [String: RequestJSON], allowBlank: Bool = false)
        -> Result<[String: String], ResponseError>
    {
        var values: [String: String] = [:]
        var errors: [(String, JSONValue)] = []
        for field in fields {
            switch object[field] {
            case nil:
                errors.append((field, .array(["This field is required."])))
            case .null:
                errors.append((field, .array(["This field may not be null."])))
            case .string(let s):
                if !allowBlank && s.trimmingASCIIWhitespace().isEmpty {
                    errors.append((field, .array(["This field may not be blank."])))
                } else {
                    values[field] = s
                }
            case .number(let n):
                values[field] = n.rounded() == n && abs(n) < 1e15 ? String(Int(n)) : String(n)
            case .bool, .array, .object:
                errors.append((field, .array(["Not a valid string."])))
            }
        }
        if !errors.isEmpty {
            return .failure(ResponseError(JSONResponses.json(.badRequest, .object(errors))))
        }
        return .success(values)
    }

    /// An optional text field: its string, nil when absent or null (the SDK sends nulls for unset fields).
    static func optionalString(_ field: String, in object: [String: RequestJSON]) -> String? {
        switch object[field] {
        case .string(let s): s
        case .number(let n): n.rounded() == n && abs(n) < 1e15 ? String(Int(n)) : String(n)
        default: nil
        }
    }
}
