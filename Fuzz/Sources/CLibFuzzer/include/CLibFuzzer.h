#ifndef CLIBFUZZER_H
#define CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for programs that keep their own main (compiler-rt's FuzzerInterface.h). SwiftPM
/// renames an executable's main and points the linker's main at it, so libFuzzer's own main is never the one
/// that runs: each target's main.swift hands control to this instead.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
