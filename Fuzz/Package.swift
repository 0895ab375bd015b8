// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for credgate's parsers of untrusted input (issue 8).
///
/// A package of its own, beside the root one and depending on it by path, so that `swift build` and `swift test`
/// in the root never see these targets nor the sanitizer flags they need. Each fuzz target is one executable:
/// its `LLVMFuzzerTestOneInput` (exported with `@_cdecl`, so other drivers can link it too) in one file, and a
/// `main.swift` that hands it to libFuzzer's driver. Build and run them all with `scripts/fuzz.sh` (see
/// Fuzz/README.md).
let targets = [
    "FuzzUpload", // UploadValidator: multipart bodies in fuzzed chunks, both modes
    "FuzzRawUpload", // RawUploadValidator and filename(fromPathSegment:)
    "FuzzRequestHead", // ProxyHandler.check / climbsOut / path(of:), RequestID.from
    "FuzzS3URI", // S3URI(parsing:)
    "FuzzPresignedURL", // PresignedURLExpiry(url:)
    "FuzzSSN", // SSNCipher and SSNEncryptionFilter.decodeBody on client JSON
    "FuzzTokenLifetime", // TokenLifetime.lifetime(of:) through jwt-kit's parser
    "FuzzConfig", // ConfigLoader.parse(yaml:environment:readFile:)
    "FuzzFastHead", // FastHead.parseRequest / parseResponse, ChunkedFraming.feed (the fast path)
]

let package = Package(
    name: "credgate-fuzz",
    platforms: [.macOS(.v14)],
    products: targets.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(name: "credgate", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "CLibFuzzer", path: "Sources/CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], path: "Sources/FuzzSupport"),
    ]
        + targets.map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "FuzzSupport",
                    .product(name: "CredGate", package: "credgate"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                ],
                path: "Sources/\(name)"
            )
        }
)
