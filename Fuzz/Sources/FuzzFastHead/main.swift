// Hands control to libFuzzer (see fuzzMain); the target itself is fuzzFastHead, in the other file. A closure,
// not the function itself: converting the @_cdecl function to a C pointer here would emit its C symbol twice.
import FuzzSupport

fuzzMain { data, size in fuzzFastHead(data, size) }
