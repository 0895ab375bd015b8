#if canImport(Glibc)
    import Glibc

    /// Keeps only the executable's pages that are in use resident (issue 13, item 3: memory).
    ///
    /// The static binary maps about 40 MiB of code and read-only data. Start-up runs a lot of it once (argument
    /// parsing, YAML, the configuration's checks, TLS and HTTP-client set-up), and the kernel maps code in 64 KiB
    /// runs around each page touched (fault-around) and reads ahead around it: right after start about 22 MiB of the
    /// file is resident, most of it never run again. After start-up this:
    /// - turns read-ahead off for those mappings (`MADV_RANDOM`), so a page the data path needs later is read alone;
    /// - asks the kernel to page them out (`MADV_PAGEOUT`, Linux 5.4): clean file pages, dropped without I/O; what
    ///   requests run comes back on first use (from the page cache, or the disk if it was evicted there too).
    /// Nothing is written, no behaviour changes; a kernel without `MADV_PAGEOUT` refuses the advice and nothing
    /// happens. `CREDGATE_KEEP_STARTUP_PAGES=1` leaves the pages as they are.
    enum ResidentCode {
        static func releaseStartupPages() {
            guard let maps = fopen("/proc/self/maps", "r") else { return }
            defer { fclose(maps) }
            var exe = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &exe, exe.count - 1)
            guard n > 0 else { return }
            let exePath = String(decoding: exe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var line = [CChar](repeating: 0, count: 4096)
            while fgets(&line, Int32(line.count), maps) != nil {
                let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let fields = text.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 6, fields[5].hasPrefix(exePath), fields[1] == "r-xp" || fields[1] == "r--p"
                else { continue }
                let range = fields[0].split(separator: "-")
                guard range.count == 2, let start = UInt(range[0], radix: 16),
                    let end = UInt(range[1].trimmingCharacters(), radix: 16), end > start,
                    let address = UnsafeMutableRawPointer(bitPattern: start)
                else { continue }
                _ = madvise(address, Int(end - start), MADV_RANDOM)
                _ = madvise(address, Int(end - start), 21) // MADV_PAGEOUT
            }
        }
    }

    extension Substring {
        fileprivate func trimmingCharacters() -> Substring {
            var s = self
            while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
            return s
        }
    }
#else
    enum ResidentCode {
        static func releaseStartupPages() {}
    }
#endif
