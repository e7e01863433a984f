#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A look at an SQLite write-ahead log (`-wal`) without SQLite, which deletes or resets a log it
/// cannot use with its database file (an emptied file, a damaged log header) on opening it.
enum WriteAheadLog {
    /// True when the log at `path` holds a committed transaction (a frame with a commit size),
    /// or bytes beyond a header that cannot be read as a log's (they may hold one): what a
    /// session wrote and no reader may erase. False for a missing or empty log, or a header
    /// alone, or frames of a transaction that never committed (a process killed while it
    /// created its journal).
    static func holdsCommits(at path: String) -> Bool {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var header = [UInt8](repeating: 0, count: 32)
        guard read(descriptor, &header, 0) == 32 else { return false }
        let magic = bigEndian(header, 0)
        let declared = bigEndian(header, 8)
        let pageSize = declared == 1 ? 65_536 : Int(declared)
        guard magic & 0xFFFF_FFFE == 0x377F_0682, pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else {
            return size(descriptor) > 32
        }
        let frameSize = 24 + pageSize
        var frameHeader = [UInt8](repeating: 0, count: 24)
        var offset = 32
        let total = size(descriptor)
        while offset + frameSize <= total {
            guard read(descriptor, &frameHeader, offset) == 24 else { return true }
            if bigEndian(frameHeader, 4) != 0 { return true }
            offset += frameSize
        }
        return false
    }

    private static func read(_ descriptor: Int32, _ buffer: inout [UInt8], _ offset: Int) -> Int {
        let count = buffer.count
        return buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, off_t(offset)) }
    }

    private static func size(_ descriptor: Int32) -> Int {
        var status = stat()
        return fstat(descriptor, &status) == 0 ? Int(status.st_size) : 0
    }

    private static func bigEndian(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
