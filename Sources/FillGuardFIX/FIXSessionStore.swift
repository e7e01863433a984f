import Foundation

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
}

/// A store in memory: for tests and sessions that reset on every logon.
public final class InMemoryFIXSessionStore: FIXSessionStore, @unchecked Sendable {
    // Guarded by the protocol's contract: one caller at a time (the session driver).
    private var sender = 1
    private var target = 1
    private var stored: [Int: [UInt8]] = [:]

    /// An empty store starting both sequences at 1.
    public init() {}

    /// MsgSeqNum of our next outgoing message.
    public var nextSenderSeqNum: Int { sender }
    /// MsgSeqNum expected next from the counterparty.
    public var nextTargetSeqNum: Int { target }
    /// Records both sequence numbers.
    public func setSequenceNumbers(sender: Int, target: Int) throws(FIXStoreError) {
        self.sender = sender
        self.target = target
    }
    /// Keeps a sent message.
    public func storeMessage(seq: Int, bytes: [UInt8]) throws(FIXStoreError) { stored[seq] = bytes }
    /// The stored messages in `range`.
    public func messages(in range: ClosedRange<Int>) -> [Int: [UInt8]] { stored.filter { range.contains($0.key) } }
    /// Forgets everything.
    public func reset() throws(FIXStoreError) {
        sender = 1
        target = 1
        stored = [:]
    }
}

/// A store in a directory: `seqnums` holds "sender target" (replaced atomically on each change),
/// `messages` is an append-only log of sent messages ("seq length\n" then the bytes).
public final class FileFIXSessionStore: FIXSessionStore, @unchecked Sendable {
    // Guarded by the protocol's contract: one caller at a time (the session driver).
    private let directory: URL
    private var sender = 1
    private var target = 1
    private var stored: [Int: [UInt8]] = [:]
    private var log: FileHandle

    /// Opens (or creates) the store in `directory`, loading what a previous run left.
    public init(directory: String) throws(FIXStoreError) {
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
        let seqURL = self.directory.appendingPathComponent("seqnums")
        if let text = try? String(contentsOf: seqURL, encoding: .utf8) {
            let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard parts.count == 2, let sender = Int(parts[0]), let target = Int(parts[1]), sender >= 1, target >= 1 else {
                throw FIXStoreError("corrupt sequence file \(seqURL.path): \"\(text)\"")
            }
            self.sender = sender
            self.target = target
        }
        let logURL = self.directory.appendingPathComponent("messages")
        if let data = try? Data(contentsOf: logURL) {
            stored = Self.parseLog(Array(data))
        } else if !FileManager.default.createFile(atPath: logURL.path, contents: nil) {
            throw FIXStoreError("cannot create \(logURL.path)")
        }
        do {
            log = try FileHandle(forWritingTo: logURL)
            try log.seekToEnd()
        } catch {
            throw FIXStoreError("cannot open \(logURL.path): \(error)")
        }
    }

    deinit { try? log.close() }

    /// MsgSeqNum of our next outgoing message.
    public var nextSenderSeqNum: Int { sender }
    /// MsgSeqNum expected next from the counterparty.
    public var nextTargetSeqNum: Int { target }

    /// Records both sequence numbers durably.
    public func setSequenceNumbers(sender: Int, target: Int) throws(FIXStoreError) {
        guard sender != self.sender || target != self.target else { return }
        self.sender = sender
        self.target = target
        let url = directory.appendingPathComponent("seqnums")
        do {
            try Data("\(sender) \(target)\n".utf8).write(to: url, options: .atomic)
        } catch {
            throw FIXStoreError("cannot write \(url.path): \(error)")
        }
    }

    /// Appends a sent message to the log.
    public func storeMessage(seq: Int, bytes: [UInt8]) throws(FIXStoreError) {
        stored[seq] = bytes
        do {
            try log.write(contentsOf: Data("\(seq) \(bytes.count)\n".utf8) + Data(bytes))
        } catch {
            throw FIXStoreError("cannot append to the message log: \(error)")
        }
    }

    /// The stored messages in `range`.
    public func messages(in range: ClosedRange<Int>) -> [Int: [UInt8]] { stored.filter { range.contains($0.key) } }

    /// Forgets every message and restarts both sequences at 1.
    public func reset() throws(FIXStoreError) {
        stored = [:]
        do {
            try log.truncate(atOffset: 0)
        } catch {
            throw FIXStoreError("cannot truncate the message log: \(error)")
        }
        sender = 0
        try setSequenceNumbers(sender: 1, target: 1)
    }

    /// Reads "seq length\n" + bytes records; stops at the first incomplete or corrupt record.
    static func parseLog(_ bytes: [UInt8]) -> [Int: [UInt8]] {
        var result: [Int: [UInt8]] = [:]
        var index = 0
        while index < bytes.count {
            guard let newline = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let header = String(decoding: bytes[index..<newline], as: UTF8.self).split(separator: " ")
            // Compared as a remainder: a corrupt length near Int.max must not overflow.
            guard header.count == 2, let seq = Int(header[0]), let length = Int(header[1]), length >= 0,
                  length <= bytes.count - (newline + 1) else { break }
            result[seq] = Array(bytes[(newline + 1)..<(newline + 1 + length)])
            index = newline + 1 + length
        }
        return result
    }
}
