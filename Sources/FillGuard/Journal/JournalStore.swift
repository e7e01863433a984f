import FillGuardCore

/// One journaled record, as a store keeps it: which symbol's lane wrote it, where it stands in
/// that lane's order, what kind it is, and its encoded body with a checksum.
public struct JournalRecord: Sendable, Hashable {
    /// What a record holds.
    public enum Kind: UInt8, Sendable, Hashable, CaseIterable {
        /// An inbound event (command, broker report, operation outcome, timer), before it applied.
        case input = 1
        /// An operation about to be sent to the broker.
        case intent = 2
        /// A complete copy of the lane's state covering every record up to `sequence`.
        case snapshot = 3
    }

    /// The lane (symbol) that wrote it.
    public var symbol: Symbol
    /// Its place in the lane's order; increasing within a symbol.
    public var sequence: UInt64
    /// What it holds.
    public var kind: Kind
    /// The encoded body.
    public var payload: [UInt8]
    /// CRC-32 of the payload, checked when read back.
    public var checksum: UInt32

    /// A record; the checksum is computed from the payload.
    public init(symbol: Symbol, sequence: UInt64, kind: Kind, payload: [UInt8]) {
        self.symbol = symbol
        self.sequence = sequence
        self.kind = kind
        self.payload = payload
        self.checksum = CRC32.checksum(payload)
    }

    /// A record as read back, with the checksum that was stored.
    public init(symbol: Symbol, sequence: UInt64, kind: Kind, payload: [UInt8], checksum: UInt32) {
        self.symbol = symbol
        self.sequence = sequence
        self.kind = kind
        self.payload = payload
        self.checksum = checksum
    }

    /// True when the payload still matches its checksum.
    public var isIntact: Bool { CRC32.checksum(payload) == checksum }
}

/// What recovery reads back: per symbol, the newest snapshot and the records after it.
public struct JournalContents: Sendable {
    /// One symbol's part.
    public struct Lane: Sendable {
        /// The newest snapshot, if any.
        public var snapshot: JournalRecord?
        /// Input and intent records after the snapshot, in sequence order.
        public var records: [JournalRecord]

        /// A lane's part of the journal.
        public init(snapshot: JournalRecord? = nil, records: [JournalRecord] = []) {
            self.snapshot = snapshot
            self.records = records
        }
    }

    /// Every symbol that has records, with its part.
    public var lanes: [Symbol: Lane]

    /// Contents from lanes.
    public init(lanes: [Symbol: Lane] = [:]) { self.lanes = lanes }

    /// The number of input and intent records to replay.
    public var recordCount: Int { lanes.values.reduce(0) { $0 + $1.records.count } }
}

/// How hard the store works to make an appended batch survive a crash.
public enum JournalDurability: String, Sendable, Hashable, CaseIterable {
    /// Every batch is flushed to stable storage (fsync) before it counts as written: survives
    /// power loss. The default.
    case fsync
    /// Batches reach the operating system before they count as written: survives the process
    /// being killed, not a power loss. For tests and simulation.
    case off
}

/// Why the journal could not do what was asked.
public struct JournalError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The store could not be opened, read or written.
        case storage
        /// A record failed its checksum or could not be decoded where it cannot be a torn tail.
        case corrupted
        /// The store was written by another FillGuard with a format this one does not read (a
        /// newer one), or with records an earlier one's rules would have to re-derive.
        case unsupportedVersion
        /// Replaying the records did not rebuild a consistent state.
        case inconsistent
        /// The journal was closed or failed earlier; nothing more is accepted.
        case closed
        /// Another writer has the journal open (one writer per journal).
        case inUse
        /// `recover()` was called a second time: it runs once, before any other input.
        case alreadyRecovered
    }
    /// The kind of failure.
    public var code: Code
    /// What happened, for a person.
    public var message: String

    /// An error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// "corrupted: ...".
    public var description: String { "journal \(code.rawValue): \(message)" }
}

/// Durable storage for journal records. Implementations: `SQLiteJournalStore` (FillGuardSQLite,
/// the embedded default) and `PostgresJournalStore` (FillGuardPostgres, shared).
///
/// The contract (checked by the shared contract suite): `append` is atomic (all of a batch or
/// none) and, once it returns, the batch survives a crash as `durability` promises; a snapshot
/// record replaces the symbol's earlier snapshot and lets the store drop the symbol's records up
/// to its sequence; `load` returns, per symbol, the newest snapshot and the records after it in
/// sequence order, dropping a torn tail with a message rather than failing.
public protocol JournalStore: Sendable {
    /// Appends a batch atomically and durably.
    func append(_ batch: [JournalRecord]) async throws(JournalError)
    /// Reads what recovery needs. Messages about repaired damage (a torn tail) go to `notices`.
    func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents
    /// Releases the store's resources. Appends after closing fail.
    func close() async
}
