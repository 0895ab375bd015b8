import CLibFuzzer

#if canImport(Glibc)
    import Glibc
#endif

/// A fuzz target's C entry point, `LLVMFuzzerTestOneInput`'s signature.
public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Runs libFuzzer with this process's arguments on `testOneInput`, and exits with its status.
///
/// Why not libFuzzer's own `main`: SwiftPM links every executable with `--defsym main=<Module>_main` (so its
/// tests can call into it), so the `main` that runs is always the module's. Each target's `main.swift` calls
/// this, which is also what `-sanitize=fuzzer` would have done.
public func fuzzMain(_ testOneInput: FuzzTestOneInput) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}
