// Intentionally empty: SwiftPM needs a source file in a C target; the header declares a libFuzzer function.
