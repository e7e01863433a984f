#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A look at an SQLite write-ahead log (`-wal`) without SQLite, which deletes a log beside an
/// empty database file, ignores one whose header fails its checksum, and reads one only up to
/// its first damaged frame, each without a word.
struct WriteAheadLog {
    /// Some frame holds a commit (a non-zero database size), read or not: the log held
    /// committed transactions, unless its bytes beyond the header cannot be read as a log's at
    /// all (then true as well: they may hold them).
    var holdsCommits = false
    /// The header is a log's and passes its checksum (SQLite reads the log at all).
    var headerIntact = false
    /// The first frame (numbered from 1) SQLite stops at though frames of this log follow it:
    /// one with the header's salts that fails its checksum.
    var damagedFrame: Int?
    /// Commits of this log (the header's salts) from `damagedFrame` on: transactions SQLite drops.
    /// One can be the last transaction, torn by a power loss before its commit was synced (never
    /// acknowledged); more than one means a transaction that was synced is lost.
    var commitsAfterDamage = 0

    /// The log at `path`; all false for a missing or empty log, a header alone, or frames of a
    /// transaction that never committed (a process killed while it created its journal).
    init(path: String) {
        let bytes = Self.contents(of: path)
        self.init(bytes: bytes ?? [])
        if bytes == nil { holdsCommits = true } // too large to read here: it may hold anything
    }

    /// The bytes of the file at `path` (none when it is missing or unreadable); nil when it is
    /// too large to read at once.
    private static func contents(of path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size > 32 else { return [] }
        guard status.st_size < 1 << 34 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            guard count > 0 else { break }
            done += count
        }
        bytes.removeLast(bytes.count - done)
        return bytes
    }

    /// The log whose bytes are `bytes`.
    init(bytes: [UInt8]) {
        guard bytes.count > 32 else { return }
        let magic = Self.bigEndian(bytes, 0)
        let pageSize = Int(Self.bigEndian(bytes, 8))
        guard magic & 0xFFFF_FFFE == 0x377F_0682, pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else {
            holdsCommits = true
            return
        }
        let frameSize = 24 + pageSize
        let frames = (bytes.count - 32) / frameSize
        func offset(_ frame: Int) -> Int { 32 + frame * frameSize }
        func commits(_ frame: Int) -> Bool { Self.bigEndian(bytes, offset(frame) + 4) != 0 }
        func ofThisLog(_ frame: Int) -> Bool {
            Self.bigEndian(bytes, offset(frame)) != 0 && bytes[(offset(frame) + 8)..<(offset(frame) + 16)].elementsEqual(bytes[16..<24])
        }
        holdsCommits = (0..<frames).contains(where: commits)
        // SQLite's check: the header's checksum, then each frame's salts (the header's) and its
        // checksum, cumulative from the header's; it reads up to the last commit of the intact run.
        let wordsBigEndian = magic & 1 == 1
        var sums = Self.checksum(bytes[0..<24], bigEndian: wordsBigEndian, from: (0, 0))
        guard sums == (Self.bigEndian(bytes, 24), Self.bigEndian(bytes, 28)) else { return }
        headerIntact = true
        for frame in 0..<frames {
            let start = offset(frame)
            if ofThisLog(frame) {
                sums = Self.checksum(bytes[start..<(start + 8)], bigEndian: wordsBigEndian, from: sums)
                sums = Self.checksum(bytes[(start + 24)..<(start + frameSize)], bigEndian: wordsBigEndian, from: sums)
                if sums == (Self.bigEndian(bytes, start + 16), Self.bigEndian(bytes, start + 20)) { continue }
            }
            // SQLite stops here. Frames of another log after it are an earlier log's leftovers.
            // A damaged frame of this log counts too when it is a commit: the transaction it
            // ends is lost with it.
            if ofThisLog(frame) { damagedFrame = frame + 1 }
            commitsAfterDamage = ((ofThisLog(frame) ? frame : frame + 1)..<frames).count { ofThisLog($0) && commits($0) }
            if damagedFrame == nil, commitsAfterDamage > 0 { damagedFrame = frame + 1 }
            return
        }
    }

    /// SQLite's log checksum over `bytes` (a multiple of 8) as 32-bit words in the log's byte order.
    private static func checksum(_ bytes: ArraySlice<UInt8>, bigEndian: Bool, from start: (UInt32, UInt32)) -> (UInt32, UInt32) {
        var (first, second) = start
        var index = bytes.startIndex
        while index + 8 <= bytes.endIndex {
            let word0 = word(bytes, index, bigEndian: bigEndian), word1 = word(bytes, index + 4, bigEndian: bigEndian)
            first = first &+ word0 &+ second
            second = second &+ word1 &+ first
            index += 8
        }
        return (first, second)
    }

    private static func word(_ bytes: ArraySlice<UInt8>, _ index: Int, bigEndian: Bool) -> UInt32 {
        let value = bytes[index..<(index + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return bigEndian ? value : value.byteSwapped
    }

    private static func bigEndian(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
