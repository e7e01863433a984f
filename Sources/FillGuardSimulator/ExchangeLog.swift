#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FillGuard
import FillGuardCore
import Foundation
import Synchronization

/// What the simulated exchange writes down so that it keeps its state across a restart of the
/// process it runs in, as a real broker does: every order's state after each change, every
/// execution, and the wall clock now and then (to simulate the time it was "down").
enum ExchangeLogEntry: Codable, Sendable {
    /// An order's state after a change.
    case order(SimulatedOrder)
    /// A fill, with the order's state after it and the price it filled at.
    case execution(ExecutionReport, order: SimulatedOrder)
    /// Wall-clock time (Unix nanoseconds) and every symbol's price at that moment.
    case clock(Int64, prices: [Symbol: Price])
    /// Whose state this is: the first entry of a file a journaled session started.
    case session(ExchangeSession)
}

/// The session a saved exchange state belongs to: its journal, and the settings it traded with.
/// Recovery checks them, so that a journal is never reconciled against another session's
/// exchange (which would journal that exchange's fills as its own) or with other settings.
public struct ExchangeSession: Codable, Sendable, Hashable {
    /// The identity of the session's journal (`SQLiteJournalStore.identity`).
    public var journalID: String
    /// Whether the exchange had native modify.
    public var nativeModify: Bool
    /// FillGuard's replacement strategy without native modify.
    public var strategy: String

    /// A session's identity and settings.
    public init(journalID: String, nativeModify: Bool, strategy: String) {
        self.journalID = journalID
        self.nativeModify = nativeModify
        self.strategy = strategy
    }
}

extension ExchangeSession {
    /// Whether the saved exchange state at `path` is what a session of journal `journalID` leaves
    /// before it trades (killed in its first moments): it names that journal first, and holds
    /// nothing after it but clock entries (no order, no execution). False when the file is
    /// missing or unreadable, names another journal, or holds anything else.
    public static func isUntradedState(at path: String, of journalID: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let decoder = JSONDecoder()
        var pending = Data()
        var entries = 0
        // Read a piece at a time: a state that traded says so within its first entries.
        while true {
            let piece: Data
            do { piece = try handle.read(upToCount: 65_536) ?? Data() } catch { return false } // nil: the end
            let atEnd = piece.isEmpty
            pending.append(piece)
            // Complete lines (and, at the end, an unterminated last one); the rest waits.
            var start = pending.startIndex
            while let end = pending[start...].firstIndex(of: 0x0A) ?? (atEnd && start < pending.endIndex ? pending.endIndex : nil) {
                let line = pending[start..<end]
                start = end < pending.endIndex ? pending.index(after: end) : end
                guard let entry = try? decoder.decode(ExchangeLogEntry.self, from: line) else { return false }
                switch entry {
                case .session(let session) where entries == 0 && session.journalID == journalID: break
                case .clock where entries > 0: break
                default: return false
                }
                entries += 1
            }
            pending = Data(pending[start...])
            if atEnd { return entries > 0 }
        }
    }
}

/// An append-only JSON Lines file. Each entry is written with one `write(2)` before the change
/// it records is reported to anyone, so a killed process never loses an acknowledged change
/// (the page cache outlives the process; power loss is not simulated). A torn last line is
/// ignored on reading and cut off when the file is opened again, so the next entry starts a
/// line of its own. A write that fails (a full disk) is undone and ends the file's writing:
/// a state with a hole in it would mislead a later recovery, so it is reported instead.
final class ExchangeLog: Sendable {
    let path: String
    private let descriptor: Int32
    private let failed = Mutex<String?>(nil)

    init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDWR | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else { throw ExchangeLogError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        try cutTornLastLine()
    }

    deinit { close(descriptor) }

    /// Why writing stopped, if it did.
    var failure: String? { failed.withLock { $0 } }

    func write(_ entry: ExchangeLogEntry) {
        guard var line = try? JSONEncoder().encode(entry) else { return }
        line.append(0x0A)
        failed.withLock { failure in
            guard failure == nil else { return }
            let start = lseek(descriptor, 0, SEEK_END)
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written <= 0 {
                        failure = "cannot write the simulated exchange's state to \(path): \(String(cString: strerror(errno))); it is saved only up to here"
                        if start >= 0 { _ = ftruncate(descriptor, start) }
                        return
                    }
                    offset += written
                }
            }
        }
    }

    /// Cuts off a last line a killed writer left without its newline (reading skips it; an
    /// entry appended after it would be glued to it and spoil the file).
    private func cutTornLastLine() throws {
        let size = lseek(descriptor, 0, SEEK_END)
        guard size > 0 else { return }
        var keep = size
        var byte: UInt8 = 0
        while keep > 0 {
            guard pread(descriptor, &byte, 1, keep - 1) == 1 else { break }
            if byte == 0x0A { break }
            keep -= 1
        }
        if keep != size, ftruncate(descriptor, keep) != 0 {
            throw ExchangeLogError(message: "cannot cut the torn last line of \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Wall-clock time as Unix nanoseconds.
    static func wallClockNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Every entry of the file at `path`, oldest first (none if it does not exist). Only a torn
    /// last line (no newline after it: the write was cut off) is skipped; any other line that is
    /// not an entry means the file is not this exchange's state, and reading fails rather than
    /// reconcile against a wrong, empty exchange.
    static func read(path: String) throws(ExchangeLogError) -> [ExchangeLogEntry] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        var entries: [ExchangeLogEntry] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            if let entry = try? decoder.decode(ExchangeLogEntry.self, from: Data(line)) {
                entries.append(entry)
            } else if index < lines.count - 1 {
                throw ExchangeLogError(message: "\(path) is not a simulated exchange's state: line \(index + 1) is not one of its entries")
            }
        }
        return entries
    }
}

/// The exchange's state file could not be opened, or belongs to another session.
public struct ExchangeLogError: Error, CustomStringConvertible {
    /// What is wrong, for a person.
    public var message: String
    /// The message.
    public var description: String { message }
}
