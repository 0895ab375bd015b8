#!/usr/bin/env python3
"""Which code and data of a running credgate are resident, by library/module (diagnosis for the RSS target).

    bench/resident-code.py PID [BINARY]

Reads /proc/PID/maps and /proc/PID/pagemap (root, or the process's owner on kernels that allow it) and, for every
resident page of the mappings of the process's own executable, finds the ELF section and the symbols it holds
(`nm -S -n` of BINARY, which must be the unstripped file the process runs, or an unstripped copy with the same
layout: `strip` does not move anything). Each page is split between the symbols in it by bytes and the bytes are
summed by owner: the Swift module of a mangled Swift symbol ($s4Yams..., $s7NIOCore...), or a C family (ICU,
BoringSSL, libyaml, the Swift runtime, libdispatch, CoreFoundation). Then other mappings (shared libraries,
anonymous memory) by name. Prints MiB.
"""
import bisect
import collections
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def sections(binary):
    out = subprocess.run(["readelf", "-S", "-W", binary], capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m:
            name, addr, off, size = m.group(1), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16)
            if addr and size:
                result.append((off, off + size, addr, name))
    return sorted(result)


def symbols(binary):
    out = subprocess.run(["nm", "-S", "-n", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    addrs, ends, names = [], [], []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            addr, size, _kind, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3]
            if size:
                addrs.append(addr)
                ends.append(addr + size)
                names.append(name)
    return addrs, ends, names


SWIFT_MODULE = re.compile(r"^\$s(\d+)([A-Za-z_][A-Za-z0-9_]*)")


def owner(name):
    if name.startswith(("$ss", "$sS", "$sSS", "$sSa", "$sSD")) and not SWIFT_MODULE.match(name):
        return "Swift stdlib"
    m = SWIFT_MODULE.match(name)
    if m:
        n = int(m.group(1))
        module = m.group(2)[:n]
        return "Swift stdlib" if module in ("Swift",) else module
    if name.startswith(("$s", "_$s")):
        return "Swift (other mangled)"
    if re.match(r"^(_ZN6icu_|_ZNK6icu_|u[a-z]*_|icu_|_ZN\d+icu_|icudt)", name) or "icu_7" in name or "icu_6" in name:
        return "ICU"
    if name.startswith(("CCryptoBoringSSL", "CNIOBoringSSL", "_CCryptoBoringSSL")):
        return "BoringSSL"
    if name.startswith("yaml_"):
        return "libyaml (Yams)"
    if name.startswith(("swift_", "_swift_", "_ZN5swift", "_ZNK5swift", "swift::")):
        return "Swift runtime"
    if name.startswith(("_dispatch", "dispatch_", "_os_")):
        return "libdispatch"
    if name.startswith(("CF", "_CF", "__CF", "_kCF", "kCF", "__kCF")):
        return "CoreFoundation"
    if name.startswith("c_nio") or name.startswith("CNIO"):
        return "NIO C shims"
    if name.startswith("_Z"):
        return "C++ (other)"
    return "C (other)"


def main():
    pid = int(sys.argv[1])
    exe = os.path.realpath(f"/proc/{pid}/exe")
    binary = sys.argv[2] if len(sys.argv) > 2 else exe
    secs = sections(binary)
    sec_starts = [s[0] for s in secs]
    addrs, ends, names = symbols(binary)

    by_owner = collections.Counter()
    by_section = collections.Counter()
    by_mapping = collections.Counter()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms, offset = parts[1], int(parts[2], 16)
            path = parts[5] if len(parts) >= 6 else "[anon]"
            n = (hi - lo) // PAGE
            pagemap.seek(lo // PAGE * 8)
            raw = pagemap.read(n * 8)
            present = [i for i, (e,) in enumerate(struct.iter_unpack("<Q", raw)) if e >> 63 & 1]
            label = os.path.basename(path) if path != exe else "credgate (" + perms + ")"
            by_mapping[label] += len(present) * PAGE
            if path != exe:
                continue
            for i in present:
                foff = offset + i * PAGE
                j = bisect.bisect_right(sec_starts, foff) - 1
                # A page may span sections; attribute it by bytes to each section and symbol it overlaps.
                page_lo, page_hi = foff, foff + PAGE
                covered = 0
                k = max(j, 0)
                while k < len(secs) and secs[k][0] < page_hi:
                    s_lo, s_hi, s_addr, s_name = secs[k]
                    a, b = max(page_lo, s_lo), min(page_hi, s_hi)
                    if a < b:
                        by_section[s_name] += b - a
                        covered += b - a
                        va_lo, va_hi = a - s_lo + s_addr, b - s_lo + s_addr
                        if s_name.startswith(".text") or s_name.startswith(".rodata") or s_name.startswith(".data") \
                                or s_name.startswith(".bss") or s_name.startswith("swift5"):
                            m = bisect.bisect_right(addrs, va_lo) - 1
                            m = max(m, 0)
                            seen = 0
                            while m < len(addrs) and addrs[m] < va_hi:
                                x, y = max(va_lo, addrs[m]), min(va_hi, ends[m])
                                if x < y:
                                    by_owner[owner(names[m])] += y - x
                                    seen += y - x
                                m += 1
                            if seen < va_hi - va_lo:
                                by_owner[f"(no symbol, {s_name})"] += (va_hi - va_lo) - seen
                        else:
                            by_owner[f"({s_name})"] += b - a
                    k += 1
                if covered < PAGE:
                    by_section["(headers/padding)"] += PAGE - covered
                    by_owner["(headers/padding)"] += PAGE - covered

    mib = lambda b: b / 1048576
    print(f"resident pages of {exe} (symbols from {binary}):")
    total = sum(by_owner.values())
    print(f"  total {mib(total):.1f} MiB")
    print("  by owner:")
    for name, b in by_owner.most_common(25):
        print(f"    {mib(b):6.2f}  {name}")
    print("  by section:")
    for name, b in by_section.most_common(12):
        print(f"    {mib(b):6.2f}  {name}")
    print("all mappings of the process (resident, MiB):")
    for name, b in by_mapping.most_common(15):
        if b:
            print(f"    {mib(b):6.2f}  {name}")
    print(f"    total {mib(sum(by_mapping.values())):.1f}")


if __name__ == "__main__":
    main()
