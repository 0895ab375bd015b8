#if canImport(Glibc)
    import Glibc

    /// Keeps only the executable's pages that are in use resident (issue 13, item 3: memory).
    ///
    /// The static binary maps about 40 MiB of code and read-only data. Start-up runs a lot of it once (argument
    /// parsing, YAML, the configuration's checks, TLS and HTTP-client set-up), and the kernel maps code in 64 KiB
    /// runs around each page touched (fault-around): right after start about 22 MiB of the file is resident, most of
    /// it never run again. After start-up this unmaps the read-only segments of the executable, and of the shared
    /// libraries it loaded (libc, libstdc++: their symbol tables are only read while loading), from the process
    /// (`MADV_DONTNEED`); what requests run is mapped again from the page cache on first use (a minor fault), so
    /// the resident set becomes what the data path and the timers use. The link order puts the functions the data
    /// path runs next to each other (`link/credgate.order`, see `scripts/order-file.sh`), so that set is a few
    /// contiguous MiB rather than 64 KiB runs all over the text.
    ///
    /// Which pages: each object's `PT_LOAD` segments without write permission (`.text`, `.rodata`, `.eh_frame` and
    /// the like), read from the program headers in its first page. They are never written (no text relocations:
    /// lld links with `-z text`, and x86-64 libraries have none), so the copy in the page cache is byte for byte
    /// what was mapped and dropping the mapping loses nothing. The relocated read-only data (`PT_GNU_RELRO`) is in a writable segment, and is left alone: its pages
    /// are private copies that a re-read of the file would not restore.
    ///
    /// Why not `MADV_PAGEOUT` (the first version): the kernel only pages out a file's pages for a process that could
    /// open the file for writing. The image runs as the `credgate` user and the binary belongs to root, so there it
    /// did nothing (idle RSS 29 MiB instead of 13). `MADV_DONTNEED` needs no such right, and leaves the pages in the
    /// page cache (no disk read when they come back).
    ///
    /// `CREDGATE_KEEP_STARTUP_PAGES=1` leaves the pages as they are.
    enum ResidentCode {
        /// Unmaps the read-only segments of the executable and of the shared libraries it loaded; returns how many
        /// bytes were advised (0 when none or refused).
        static func releaseStartupPages() -> Int {
            // Where each object's first page is mapped: its ELF header and program headers are there. (Glibc's Swift
            // module has neither `dl_iterate_phdr` nor `getauxval`, hence /proc/self/maps.)
            var released = 0
            for object in objectsMapped() {
                released += release(mapped: object.start, length: object.length, isExecutable: object.isExecutable)
            }
            return released
        }

        /// One object (the executable or a shared library) whose first page is mapped at `mapped`.
        private static func release(mapped: UInt, length: Int, isExecutable: Bool) -> Int {
            guard length >= MemoryLayout<Elf64_Ehdr>.size, let image = UnsafeRawPointer(bitPattern: mapped) else {
                return 0
            }
            let header = image.load(as: Elf64_Ehdr.self)
            let phdrSize = MemoryLayout<Elf64_Phdr>.size
            guard header.e_ident.0 == 0x7F, header.e_ident.1 == UInt8(ascii: "E"),
                header.e_ident.2 == UInt8(ascii: "L"), header.e_ident.3 == UInt8(ascii: "F"),
                Int(header.e_phentsize) == phdrSize,
                Int(header.e_phoff) + Int(header.e_phnum) * phdrSize <= length
            else { return 0 }
            let headers = (0..<Int(header.e_phnum)).map {
                image.load(fromByteOffset: Int(header.e_phoff) + $0 * phdrSize, as: Elf64_Phdr.self)
            }
            // The load bias: where the segment that starts the file was placed, less its link-time address.
            guard let first = headers.first(where: { $0.p_type == UInt32(PT_LOAD) && $0.p_offset == 0 }) else {
                return 0
            }
            let base = mapped &- UInt(first.p_vaddr)
            let page = UInt(max(sysconf(Int32(_SC_PAGESIZE)), 4096))
            var relro: Range<UInt> = 0..<0
            for h in headers where h.p_type == UInt32(PT_GNU_RELRO) {
                let start = base &+ UInt(h.p_vaddr)
                relro = (start & ~(page - 1))..<((start &+ UInt(h.p_memsz) &+ page - 1) & ~(page - 1))
            }
            var released = 0
            for h in headers where h.p_type == UInt32(PT_LOAD) && h.p_flags & UInt32(PF_W) == 0 {
                // Only whole pages inside the segment: a page shared with a neighbour stays.
                let start = (base &+ UInt(h.p_vaddr) &+ page - 1) & ~(page - 1)
                let end = (base &+ UInt(h.p_vaddr) &+ UInt(h.p_memsz)) & ~(page - 1)
                guard end > start, !relro.overlaps(start..<end),
                    let address = UnsafeMutableRawPointer(bitPattern: start)
                else { continue }
                // Read-ahead off: should the page cache lose these pages, a fault reads one page, not a run.
                _ = madvise(address, Int(end - start), MADV_RANDOM)
                if madvise(address, Int(end - start), MADV_DONTNEED) == 0 { released += Int(end - start) }
            }
            guard isExecutable else { return released }
            return released + releaseCleanPagesOfWritableReadOnlyData(base: base, page: page, relro: relro)
        }

        /// `.rodata` when it is in a writable segment: its pages still as the file has them.
        ///
        /// The Swift compiler marks the read-only data it emits writable (`.rodata`, "aw"), and lld merges every
        /// `.rodata` into one section with the flags of all: 37 MiB (ICU's tables among them) in a writable segment,
        /// of which start-up leaves about 4 MiB resident. Those pages cannot all be dropped: one the loader relocated
        /// is a private copy (anonymous), and dropping it would bring back the file's unrelocated bytes. So only the
        /// pages `/proc/self/pagemap` shows as present and still the file's (bit 61: file page) are dropped, in runs.
        /// Nothing writes `.rodata` after the loader's relocations (its contents are constants), so a page cannot
        /// become a private copy between the look and the `madvise`. The section is found in the section headers of
        /// the executable's file (read with `pread`; they are not mapped).
        private static func releaseCleanPagesOfWritableReadOnlyData(base: UInt, page: UInt, relro: Range<UInt>) -> Int {
            guard let range = writableReadOnlyData(), let pagemap = fopen("/proc/self/pagemap", "r") else { return 0 }
            defer { fclose(pagemap) }
            let start = (base &+ range.lowerBound &+ page - 1) & ~(page - 1)
            let end = (base &+ range.upperBound) & ~(page - 1)
            guard end > start, !relro.overlaps(start..<end) else { return 0 }
            let count = Int((end - start) / page)
            var entries = [UInt64](repeating: 0, count: count)
            let fd = fileno(pagemap)
            let wanted = count * 8
            let got = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t((start / page) * 8)) }
            guard got == wanted else { return 0 }
            var released = 0
            var runStart: Int?
            for i in 0...count {
                // Present (bit 63) and a file page (bit 61): not a private copy, not swapped.
                let clean = i < count && entries[i] & (1 << 63) != 0 && entries[i] & (1 << 61) != 0
                if clean, runStart == nil { runStart = i }
                guard !clean, let first = runStart else { continue }
                runStart = nil
                let length = (i - first) * Int(page)
                if let address = UnsafeMutableRawPointer(bitPattern: start &+ UInt(first) * page),
                    madvise(address, length, MADV_DONTNEED) == 0
                {
                    released += length
                }
            }
            return released
        }

        /// The link-time address range of `.rodata` when the section is writable, from /proc/self/exe's headers.
        private static func writableReadOnlyData() -> Range<UInt>? {
            let fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var header = Elf64_Ehdr()
            let headerSize = MemoryLayout<Elf64_Ehdr>.size
            let sectionSize = MemoryLayout<Elf64_Shdr>.size
            guard withUnsafeMutableBytes(of: &header, { pread(fd, $0.baseAddress, headerSize, 0) }) == headerSize,
                Int(header.e_shentsize) == sectionSize, header.e_shnum > 0, header.e_shstrndx < header.e_shnum
            else { return nil }
            var sections = [Elf64_Shdr](repeating: Elf64_Shdr(), count: Int(header.e_shnum))
            let tableSize = Int(header.e_shnum) * sectionSize
            guard
                sections.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, tableSize, off_t(header.e_shoff)) })
                    == tableSize
            else { return nil }
            let names = sections[Int(header.e_shstrndx)]
            guard names.sh_size > 0, names.sh_size < 1 << 24 else { return nil }
            var nameBytes = [UInt8](repeating: 0, count: Int(names.sh_size))
            guard
                nameBytes.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, $0.count, off_t(names.sh_offset)) })
                    == nameBytes.count
            else { return nil }
            let wanted = Array(".rodata".utf8) + [0]
            for section in sections
            where section.sh_type == UInt32(SHT_PROGBITS) && section.sh_flags & UInt64(SHF_WRITE) != 0
                && section.sh_addr != 0
            {
                let at = Int(section.sh_name)
                guard at + wanted.count <= nameBytes.count, Array(nameBytes[at..<at + wanted.count]) == wanted
                else { continue }
                return UInt(section.sh_addr)..<UInt(section.sh_addr + section.sh_size)
            }
            return nil
        }

        /// The executable's and each shared library's mapping at file offset 0 (address and length), from
        /// /proc/self/maps: the objects with code mapped (`r-xp`), so never a data file that happens to be mapped.
        private static func objectsMapped() -> [(start: UInt, length: Int, isExecutable: Bool)] {
            guard let maps = fopen("/proc/self/maps", "r") else { return [] }
            defer { fclose(maps) }
            var exe = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &exe, exe.count - 1)
            guard n > 0 else { return [] }
            let exePath = String(decoding: exe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var firstPages: [(path: Substring, start: UInt, length: Int)] = []
            var withCode = Set<Substring>()
            var line = [CChar](repeating: 0, count: 4096)
            while fgets(&line, Int32(line.count), maps) != nil {
                let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                // "start-end perms offset dev inode path"
                let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
                guard fields.count >= 6, fields[5].hasPrefix("/") else { continue }
                // Only objects with code (the executable, shared libraries): not a data file someone mapped.
                if fields[1] == "r-xp" { withCode.insert(fields[5]) }
                guard UInt(fields[2], radix: 16) == 0, fields[1].hasPrefix("r") else { continue }
                let range = fields[0].split(separator: "-")
                guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16),
                    end > start, !firstPages.contains(where: { $0.path == fields[5] })
                else { continue }
                firstPages.append((fields[5], start, Int(end - start)))
            }
            return firstPages.filter { withCode.contains($0.path) }.map {
                (start: $0.start, length: $0.length, isExecutable: $0.path == exePath)
            }
        }
    }
#else
    enum ResidentCode {
        static func releaseStartupPages() -> Int { 0 }
    }
#endif
