import FuzzSupport

@testable import CredGate

/// Fuzz target: `ConfigLoader.parse(yaml:environment:readFile:)`: Yams (libyaml) and the hand-written walker over
/// the node tree, `${VAR}` / `${VAR:-default}` / `VAR_FILE` interpolation, quantities (`25MiB`, `5m`) and URLs.
/// The file is the operator's, not a client's, but a trap here is a gateway that will not start, or will not
/// reload, with no message saying why.
///
/// Input: the whole input is the YAML. The environment has the variables the shipped profiles use, and
/// `readFile` answers for `/run/secrets/...` without touching the file system. Besides traps, it checks that
/// every refusal names at least one problem, each with a path and a message, and that an accepted file's
/// credential header names are tokens.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let yaml = String(fuzzBytes: input.rest())
    do {
        let config = try ConfigLoader.parse(yaml: yaml, environment: environment, readFile: readFile)
        // Credential headers are written into every request with HTTPHeaders, which traps on a name that is
        // not ASCII: the loader must have refused any name that is not an RFC 9110 token.
        for name in config.credentials.values.flatMap(\.headerNames) {
            fuzzExpect(
                !name.isEmpty && name.utf8.allSatisfy { tokenBytes.contains($0) },
                "accepted the header name \(String(reflecting: name))")
        }
    } catch {
        fuzzExpect(!error.issues.isEmpty, "a refusal without a problem")
        for issue in error.issues {
            fuzzExpect(!issue.path.isEmpty && !issue.message.isEmpty, "an issue without a path or a message")
        }
        _ = error.description
    }
    return 0
}

let environment = [
    "ASSURED_BASE_URL": "http://127.0.0.1:9",
    "ASSURED_API_KEY": "fuzz-api-key",
    "ASSURED_USER": "provider-admin@example.com",
    "ASSURED_PASS_FILE": "/run/secrets/assured_pass",
    "EXAMPLE_TOKEN": "fuzz-example-token", // Config/examples/minimal.yaml
    "EMPTY": "",
]

/// Secrets under /run/secrets/ exist; any other path does not.
func readFile(_ path: String) throws -> String {
    guard path.hasPrefix("/run/secrets/") else { throw NoSuchFile() }
    return "secret-from-\(path.utf8.count)-byte-path\n"
}

struct NoSuchFile: Error {}

let tokenBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~".utf8)
