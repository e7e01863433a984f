#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A look at an SQLite write-ahead log (`-wal`) without SQLite, which deletes a log beside an
/// empty database file, and ignores one whose header or frames fail their checksums, on opening.
struct WriteAheadLog {
    /// Some frame holds a commit (a non-zero database size), read or not: the log held
    /// committed transactions, unless its bytes beyond the header cannot be read as a log's at
    /// all (then true as well: they may hold them).
    var holdsCommits = false
    /// SQLite reads at least one committed transaction from it: its header and the frames up to
    /// a commit are intact (salts and cumulative checksums), as SQLite checks them.
    var commitsReadable = false

    /// The log at `path`; both false for a missing or empty log, a header alone, or frames of a
    /// transaction that never committed (a process killed while it created its journal).
    init(path: String) {
        self.init(bytes: Self.contents(of: path))
    }

    /// The bytes of the file at `path` (none when it is missing, unreadable or implausibly large).
    private static func contents(of path: String) -> [UInt8] {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size > 32, status.st_size < 1 << 34 else { return [] }
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
        let declared = Self.bigEndian(bytes, 8)
        let pageSize = declared == 1 ? 65_536 : Int(declared)
        guard magic & 0xFFFF_FFFE == 0x377F_0682, pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else {
            holdsCommits = true
            return
        }
        let frameSize = 24 + pageSize
        var offset = 32
        while offset + frameSize <= bytes.count {
            if Self.bigEndian(bytes, offset + 4) != 0 { holdsCommits = true }
            offset += frameSize
        }
        // SQLite's check: the header's checksum, then each frame's salts (the header's) and its
        // checksum, cumulative from the header's; it reads up to the last commit of the intact run.
        let wordsBigEndian = magic & 1 == 1
        var sums = Self.checksum(bytes[0..<24], bigEndian: wordsBigEndian, from: (0, 0))
        guard sums == (Self.bigEndian(bytes, 24), Self.bigEndian(bytes, 28)) else { return }
        offset = 32
        while offset + frameSize <= bytes.count {
            guard Self.bigEndian(bytes, offset) != 0,
                  bytes[(offset + 8)..<(offset + 16)].elementsEqual(bytes[16..<24]) else { return }
            sums = Self.checksum(bytes[offset..<(offset + 8)], bigEndian: wordsBigEndian, from: sums)
            sums = Self.checksum(bytes[(offset + 24)..<(offset + frameSize)], bigEndian: wordsBigEndian, from: sums)
            guard sums == (Self.bigEndian(bytes, offset + 16), Self.bigEndian(bytes, offset + 20)) else { return }
            if Self.bigEndian(bytes, offset + 4) != 0 { commitsReadable = true }
            offset += frameSize
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
