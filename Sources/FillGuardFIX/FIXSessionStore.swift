import FillGuardCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the session store could not read or write.
public struct FIXStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What failed.
    public var message: String
    /// A store error.
    public init(_ message: String) { self.message = message }
    /// The failure.
    public var description: String { message }
}

/// Where a session keeps its sequence numbers and sent messages, so both survive a restart and
/// resend requests can be answered. Called only from the session's driver, one call at a time.
public protocol FIXSessionStore: AnyObject, Sendable {
    /// MsgSeqNum of our next outgoing message.
    var nextSenderSeqNum: Int { get }
    /// MsgSeqNum expected next from the counterparty.
    var nextTargetSeqNum: Int { get }
    /// Records both sequence numbers.
    func setSequenceNumbers(sender: Int, target: Int) throws(FIXStoreError)
    /// Keeps a sent message for resends.
    func storeMessage(seq: Int, bytes: [UInt8]) throws(FIXStoreError)
    /// The stored messages with MsgSeqNum in `range`.
    func messages(in range: ClosedRange<Int>) -> [Int: [UInt8]]
    /// Forgets every message and restarts both sequences at 1 (ResetSeqNumFlag).
    func reset() throws(FIXStoreError)
    /// Keeps a fill received from the counterparty, before the sequence number that brought it is
    /// recorded: a process killed before its journal held the fill still finds it on restart.
    func storeExecution(_ report: ExecutionReport) throws(FIXStoreError)
    /// The fills kept by earlier runs (and this one), oldest first; a bounded window of the newest.
    var storedExecutions: [ExecutionReport] { get }
}

extension FIXSessionStore {
    /// A store that keeps no fills: nothing to do.
    public func storeExecution(_ report: ExecutionReport) throws(FIXStoreError) {}
    /// A store that keeps no fills has none.
    public var storedExecutions: [ExecutionReport] { [] }
}

/// A store in memory: for tests and sessions that reset on every logon. It keeps the sent
/// messages of the newest `messagesKept` sequence numbers for a resend (the session gap-fills a
/// request for older ones), so a long session's memory stays bounded.
public final class InMemoryFIXSessionStore: FIXSessionStore, @unchecked Sendable {
    // Guarded by the protocol's contract: one caller at a time (the session driver).
    private var sender = 1
    private var target = 1
    private var stored: [Int: [UInt8]] = [:]
    private var executions = ExecutionGenerations(size: 1_024)
    /// How many of the newest sequence numbers keep their message.
    public let messagesKept: Int
    /// Every sequence number below this one has had its message forgotten.
    private var forgottenBelow = 1

    /// An empty store starting both sequences at 1, keeping the messages of the newest
    /// `messagesKept` sequence numbers (100,000 by default: at most a few tens of MB).
    public init(messagesKept: Int = 100_000) {
        self.messagesKept = max(1, messagesKept)
    }

    /// MsgSeqNum of our next outgoing message.
    public var nextSenderSeqNum: Int { sender }
    /// MsgSeqNum expected next from the counterparty.
    public var nextTargetSeqNum: Int { target }
    /// Records both sequence numbers.
    public func setSequenceNumbers(sender: Int, target: Int) throws(FIXStoreError) {
        self.sender = sender
        self.target = target
    }
    /// Keeps a sent message, and forgets those `messagesKept` sequence numbers or more behind it.
    public func storeMessage(seq: Int, bytes: [UInt8]) throws(FIXStoreError) {
        stored[seq] = bytes
        // Each number is passed once: forgetting costs nothing per message on average.
        let keepFrom = seq - messagesKept + 1
        while forgottenBelow < keepFrom {
            stored.removeValue(forKey: forgottenBelow)
            forgottenBelow += 1
        }
    }
    /// The stored messages in `range`.
    public func messages(in range: ClosedRange<Int>) -> [Int: [UInt8]] { stored.filter { range.contains($0.key) } }
    /// Forgets the messages and sequence numbers; the fills are kept (they happened whatever the sequence).
    public func reset() throws(FIXStoreError) {
        sender = 1
        target = 1
        stored = [:]
        forgottenBelow = 1
    }
    /// Keeps a received fill (the newest 1,024 to 2,048).
    public func storeExecution(_ report: ExecutionReport) throws(FIXStoreError) { _ = executions.append(report) }
    /// The kept fills, oldest first.
    public var storedExecutions: [ExecutionReport] { executions.all }
}

/// A store in a directory: `seqnums` holds "sender target" (two 20-digit numbers, rewritten in
/// place with one write on each change, as QuickFIX's file store does),
/// `messages` is an append-only log of sent messages ("seq length\n" then the bytes; only where
/// each one is, not its bytes, is kept in memory, read back for a resend), and
/// `executions` (with `executions.old`, the generation before) the received fills, one JSON
/// object per line, written before the sequence number that brought them.
public final class FileFIXSessionStore: FIXSessionStore, @unchecked Sendable {
    // Guarded by the protocol's contract: one caller at a time (the session driver).
    private let directory: URL
    private var sender = 1
    private var target = 1
    /// Where each logged message's bytes are in `messages`, by MsgSeqNum.
    private var logged: [Int: LogEntry] = [:]
    /// `messages`, open for appending and for reading back.
    private let log: Int32
    /// The length of `messages` (its complete records).
    private var logLength: UInt64

    /// A message's place in the log.
    private struct LogEntry {
        var offset: UInt64
        var length: Int
    }
    private var executions: ExecutionGenerations
    private var executionLog: FileHandle
    private let encoder = JSONEncoder()
    /// `seqnums`, open for writing in place.
    private let sequenceFile: Int32
    /// `lock`, whose record lock says this process uses the store.
    private let lockFile: Int32
    /// `closeFiles()` was called: the descriptors are no longer ours.
    private var isClosed = false
    /// fsync before each sequence number is recorded (see `init`).
    private let synchronous: Bool
    /// Messages or fills were appended since the last fsync.
    private var unsynced = false
    /// fsync calls made (the synchronous store's cost, for tests and benchmarks).
    public private(set) var syncs = 0

    /// Opens (or creates) the store in `directory`, loading what a previous run left. At least the
    /// newest `executionsKept` received fills are kept (at most twice that), for `storedExecutions`.
    /// `synchronous`: every change of the sequence numbers first makes the logged messages and
    /// fills durable (fsync), then the numbers, so after a power loss the store never records a
    /// message as received whose fill it lost, nor one as sent that it cannot resend. Without it
    /// the store survives a killed process, not a power loss.
    public init(directory: String, executionsKept: Int = 1_024, synchronous: Bool = false) throws(FIXStoreError) {
        self.synchronous = synchronous
        self.directory = URL(fileURLWithPath: directory, isDirectory: true)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw FIXStoreError("\(directory) is a file, not a directory: the store is a directory of its own (seqnums, messages)")
        }
        do {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        } catch {
            throw FIXStoreError("cannot create the directory \(directory): \(error.localizedDescription)")
        }
        lockFile = try Self.lockStore(self.directory.appendingPathComponent("lock").path)
        let seqURL = self.directory.appendingPathComponent("seqnums")
        // An empty sequence file beside no logged message or kept fill is a store a kill caught
        // between creating the file and its first write: fresh (1, 1), not corrupt for good.
        // (Any other file with something in it says the store was in use: then it is damage.)
        let storeDirectory = self.directory
        let storeFiles = ["messages", "executions", "executions.old"].map { storeDirectory.appendingPathComponent($0).path }
        let freshlyCreated = (try? Data(contentsOf: seqURL))?.isEmpty == true && storeFiles.allSatisfy { path in
            ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.intValue ?? 0 == 0
        }
        if !freshlyCreated, let text = try? String(contentsOf: seqURL, encoding: .utf8) {
            let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard parts.count == 2, let sender = Int(parts[0]), let target = Int(parts[1]), sender >= 1, target >= 1 else {
                close(lockFile)
                throw FIXStoreError("corrupt sequence file \(seqURL.path): \"\(text)\"")
            }
            self.sender = sender
            self.target = target
        }
        // Left by an earlier build, killed while it replaced `seqnums` by renaming this over it.
        unlink(self.directory.appendingPathComponent("seqnums.new").path)
        sequenceFile = open(seqURL.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard sequenceFile >= 0 else {
            let reason = String(cString: strerror(errno))
            close(lockFile)
            throw FIXStoreError("cannot open \(seqURL.path): \(reason)")
        }
        let logURL = self.directory.appendingPathComponent("messages")
        log = open(logURL.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else {
            let reason = String(cString: strerror(errno))
            close(sequenceFile)
            close(lockFile)
            throw FIXStoreError("cannot open \(logURL.path): \(reason)")
        }
        let (index, logRecordsLength) = Self.indexLog((try? Data(contentsOf: logURL)).map { Array($0) } ?? [])
        logged = index.mapValues { LogEntry(offset: UInt64($0.lowerBound), length: $0.count) }
        // A record cut short by a kill goes: the next one must not run into it.
        logLength = UInt64(logRecordsLength)
        guard ftruncate(log, off_t(logRecordsLength)) == 0 else {
            let reason = String(cString: strerror(errno))
            close(sequenceFile)
            close(log)
            close(lockFile)
            throw FIXStoreError("cannot truncate \(logURL.path): \(reason)")
        }
        // A message is logged before it is sent: one logged past the recorded number was sent
        // by a process killed before it recorded the number (stores of builds that recorded it
        // after sending), and reusing its number would have our next Logon refused.
        if let last = logged.keys.max(), last >= sender { sender = last + 1 }
        executions = ExecutionGenerations(size: executionsKept)
        executions.previous = Self.readExecutions(at: self.directory.appendingPathComponent("executions.old")).reports
        let currentURL = self.directory.appendingPathComponent("executions")
        let (current, completeLength) = Self.readExecutions(at: currentURL)
        executions.current = current
        do {
            executionLog = try Self.openForAppending(currentURL, truncatingTo: completeLength)
        } catch {
            close(sequenceFile)
            close(log)
            close(lockFile)
            throw error
        }
        // Every file is open from here on: a failure below closes them all (deinit).
        // In the fixed-width form from here on (a file of an earlier build, or a new one).
        try writeSequenceNumbers()
        guard ftruncate(sequenceFile, off_t(Self.sequenceRecordLength)) == 0 else {
            throw FIXStoreError("cannot write \(seqURL.path): \(String(cString: strerror(errno)))")
        }
        if synchronous {
            // The files just created, and the directory entries naming them.
            unsynced = true
            try synchronize()
            try sync(sequenceFile, seqURL.path)
            try synchronizeDirectory()
        }
    }

    deinit { closeFiles() }

    /// Throws once `closeFiles()` was called: its descriptor numbers may name other files now.
    private func refuseIfClosed() throws(FIXStoreError) {
        if isClosed { throw FIXStoreError("the store in \(directory.path) is closed") }
    }

    /// Closes the store's files and gives up its lock, as the end of the process would; the store
    /// is not used afterwards (its writes then fail). For a test that plays a killed process.
    public func closeFiles() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(log)
        try? executionLog.close()
        Glibc.close(sequenceFile)
        Glibc.close(lockFile)
    }

    /// Takes a write lock on the store's `lock` file for this process, or throws when another
    /// process holds it: two sessions writing one store would each record the other's sequence
    /// numbers. A POSIX record lock, held per process (a store reopened in this process takes it
    /// again, and the first of the two to close gives it up), dropped by the kernel when the
    /// process dies.
    private static func lockStore(_ path: String) throws(FIXStoreError) -> Int32 {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FIXStoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var lock = Glibc.flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(descriptor, F_SETLK, &lock) == 0 else {
            let busy = errno == EAGAIN || errno == EACCES
            let reason = String(cString: strerror(errno))
            var holder = Glibc.flock()
            holder.l_type = Int16(F_WRLCK)
            holder.l_whence = Int16(SEEK_SET)
            let pid = busy && fcntl(descriptor, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? " (process \(holder.l_pid))" : ""
            close(descriptor)
            throw FIXStoreError(busy ? "in use by another process\(pid): one session per store"
                                     : "cannot lock \(path): \(reason)")
        }
        return descriptor
    }

    /// MsgSeqNum of our next outgoing message.
    public var nextSenderSeqNum: Int { sender }
    /// MsgSeqNum expected next from the counterparty.
    public var nextTargetSeqNum: Int { target }

    /// Records both sequence numbers (kept across a killed process; not fsynced).
    public func setSequenceNumbers(sender: Int, target: Int) throws(FIXStoreError) {
        guard sender != self.sender || target != self.target else { return }
        try refuseIfClosed()
        self.sender = sender
        self.target = target
        if synchronous { try synchronize() }
        try writeSequenceNumbers()
        if synchronous { try sync(sequenceFile, directory.appendingPathComponent("seqnums").path) }
    }

    /// Makes the messages and fills appended since the last call durable.
    private func synchronize() throws(FIXStoreError) {
        guard unsynced else { return }
        try sync(log, directory.appendingPathComponent("messages").path)
        try sync(executionLog.fileDescriptor, directory.appendingPathComponent("executions").path)
        unsynced = false
    }

    /// fsync of one file.
    private func sync(_ descriptor: Int32, _ path: String) throws(FIXStoreError) {
        syncs += 1
        guard fsync(descriptor) == 0 else { throw FIXStoreError("cannot fsync \(path): \(String(cString: strerror(errno)))") }
    }

    /// fsync of the store's directory: its entries (a new or renamed file) survive a power loss.
    private func synchronizeDirectory() throws(FIXStoreError) {
        let descriptor = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FIXStoreError("cannot open \(directory.path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        try sync(descriptor, directory.path)
    }

    /// The length of `seqnums`: two 20-digit numbers, a space and a newline.
    static let sequenceRecordLength = 42

    /// Rewrites `seqnums` in place: one write of the same length at offset 0. A kill cannot cut
    /// it short (a write within one page is copied whole before the signal is taken), so the file
    /// holds the old numbers or the new, with no file aside; renaming a new file over it, as
    /// earlier builds did, made ext4 write the file out at every message (about 0.4 ms each).
    private func writeSequenceNumbers() throws(FIXStoreError) {
        var record = [UInt8](repeating: UInt8(ascii: "0"), count: Self.sequenceRecordLength)
        for (number, end) in [(sender, 20), (target, 41)] {
            var rest = UInt64(max(0, number))
            var index = end - 1
            while rest > 0 {
                record[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                index -= 1
            }
        }
        record[20] = UInt8(ascii: " ")
        record[41] = UInt8(ascii: "\n")
        let written = record.withUnsafeBytes { pwrite(sequenceFile, $0.baseAddress, $0.count, 0) }
        guard written == Self.sequenceRecordLength else {
            throw FIXStoreError("cannot write \(directory.appendingPathComponent("seqnums").path): \(written < 0 ? String(cString: strerror(errno)) : "short write")")
        }
    }

    /// Appends a sent message to the log.
    public func storeMessage(seq: Int, bytes: [UInt8]) throws(FIXStoreError) {
        try refuseIfClosed()
        let record = Array("\(seq) \(bytes.count)\n".utf8) + bytes
        let written = record.withUnsafeBytes { write(log, $0.baseAddress, $0.count) }
        guard written == record.count else {
            let reason = written < 0 ? String(cString: strerror(errno)) : "short write"
            // A partial record would hide every later one from the next start: cut it off again.
            _ = ftruncate(log, off_t(logLength))
            throw FIXStoreError("cannot append to the message log: \(reason)")
        }
        logged[seq] = LogEntry(offset: logLength + UInt64(record.count - bytes.count), length: bytes.count)
        logLength += UInt64(record.count)
        unsynced = true
    }

    /// The stored messages in `range`, read back from the log (one that cannot be read is left
    /// out: the session fills its place with a gap fill).
    public func messages(in range: ClosedRange<Int>) -> [Int: [UInt8]] {
        var result: [Int: [UInt8]] = [:]
        guard !isClosed else { return result }
        for (seq, entry) in logged where range.contains(seq) {
            var bytes = [UInt8](repeating: 0, count: entry.length)
            let read = bytes.withUnsafeMutableBytes { pread(log, $0.baseAddress, entry.length, off_t(entry.offset)) }
            if read == entry.length { result[seq] = bytes }
        }
        return result
    }

    /// Appends a received fill to `executions`; a full generation becomes `executions.old`.
    public func storeExecution(_ report: ExecutionReport) throws(FIXStoreError) {
        try refuseIfClosed()
        let line: Data
        do {
            line = try encoder.encode(report) + Data([UInt8(ascii: "\n")])
        } catch {
            throw FIXStoreError("cannot encode fill \(report.executionID): \(error)")
        }
        if executions.isCurrentFull {
            let currentURL = directory.appendingPathComponent("executions")
            let oldURL = directory.appendingPathComponent("executions.old")
            // The generation moved aside is durable first: its fills must not be lost with it.
            if synchronous { try synchronize() }
            try? executionLog.close()
            do {
                _ = try? FileManager.default.removeItem(at: oldURL)
                try FileManager.default.moveItem(at: currentURL, to: oldURL)
            } catch {
                throw FIXStoreError("cannot move \(currentURL.path) to \(oldURL.path): \(error)")
            }
            executionLog = try Self.openForAppending(currentURL, truncatingTo: 0)
            if synchronous { try synchronizeDirectory() }
        }
        _ = executions.append(report)
        do {
            try executionLog.write(contentsOf: line)
        } catch {
            throw FIXStoreError("cannot append to the execution log: \(error)")
        }
        unsynced = true
    }

    /// The fills kept, oldest first: `executions.old`, then `executions`.
    public var storedExecutions: [ExecutionReport] { executions.all }

    /// Forgets the messages and restarts both sequences at 1; the fills are kept (they happened
    /// whatever the sequence).
    public func reset() throws(FIXStoreError) {
        try refuseIfClosed()
        guard ftruncate(log, 0) == 0 else {
            throw FIXStoreError("cannot truncate the message log: \(String(cString: strerror(errno)))")
        }
        logged = [:]
        logLength = 0
        unsynced = true
        sender = 0
        try setSequenceNumbers(sender: 1, target: 1)
    }

    /// The fills in a JSON-lines file and the length of its complete lines. A line cut short by a
    /// kill (no newline) is not a fill; a complete line that does not decode is skipped.
    static func readExecutions(at url: URL) -> (reports: [ExecutionReport], completeLength: UInt64) {
        guard let data = try? Data(contentsOf: url) else { return ([], 0) }
        let bytes = [UInt8](data)
        let decoder = JSONDecoder()
        var reports: [ExecutionReport] = []
        var start = 0
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            if let report = try? decoder.decode(ExecutionReport.self, from: Data(bytes[start..<newline])) { reports.append(report) }
            start = newline + 1
        }
        return (reports, UInt64(start))
    }

    /// A handle appending to `url` (created if missing) after its first `length` bytes.
    private static func openForAppending(_ url: URL, truncatingTo length: UInt64) throws(FIXStoreError) -> FileHandle {
        if !FileManager.default.fileExists(atPath: url.path), !FileManager.default.createFile(atPath: url.path, contents: nil) {
            throw FIXStoreError("cannot create \(url.path)")
        }
        do {
            let handle = try FileHandle(forWritingTo: url)
            try handle.truncate(atOffset: length)
            try handle.seekToEnd()
            return handle
        } catch {
            throw FIXStoreError("cannot open \(url.path): \(error)")
        }
    }

    /// Reads "seq length\n" + bytes records; stops at the first incomplete or corrupt record.
    static func parseLog(_ bytes: [UInt8]) -> [Int: [UInt8]] {
        indexLog(bytes).index.mapValues { Array(bytes[$0]) }
    }

    /// Where each record's bytes are in a log, by MsgSeqNum, and the length of its complete
    /// records: reading stops at the first incomplete or corrupt record.
    static func indexLog(_ bytes: [UInt8]) -> (index: [Int: Range<Int>], completeLength: Int) {
        var result: [Int: Range<Int>] = [:]
        var index = 0
        while index < bytes.count {
            guard let newline = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let header = String(decoding: bytes[index..<newline], as: UTF8.self).split(separator: " ")
            // Compared as a remainder: a corrupt length near Int.max must not overflow.
            guard header.count == 2, let seq = Int(header[0]), let length = Int(header[1]), length >= 0,
                  length <= bytes.count - (newline + 1) else { break }
            result[seq] = (newline + 1)..<(newline + 1 + length)
            index = newline + 1 + length
        }
        return (result, index)
    }
}

/// The newest received fills in two generations: a full `current` becomes `previous` (the one
/// before is forgotten), so between `size` and twice that are kept and memory stays bounded.
struct ExecutionGenerations {
    /// Fills per generation.
    let size: Int
    /// The older generation.
    var previous: [ExecutionReport] = []
    /// The newer generation.
    var current: [ExecutionReport] = []

    init(size: Int) { self.size = max(1, size) }

    /// True when the next append starts a new generation.
    var isCurrentFull: Bool { current.count >= size }

    /// Adds a fill; true when it started a new generation.
    mutating func append(_ report: ExecutionReport) -> Bool {
        let rotated = isCurrentFull
        if rotated {
            previous = current
            current = []
        }
        current.append(report)
        return rotated
    }

    /// Every kept fill, oldest first.
    var all: [ExecutionReport] { previous + current }
}
