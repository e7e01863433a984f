import FillGuardCore
import Synchronization

/// The load rules every store shares, so that they all behave alike: checksums are checked;
/// damage to the very last record (a torn last write) is dropped with a notice; any other damage
/// (followed by intact records, or spread over several records at the end) is corruption and
/// fails loudly; records a snapshot covers are
/// skipped; each symbol's records come back in sequence order.
public enum JournalAssembly {
    /// A record as a store read it, with its append position.
    public struct Row: Sendable {
        /// Append order (row id); increasing.
        public var position: Int64
        /// The record.
        public var record: JournalRecord
        /// Whether a crash during its write could have left it damaged (a store that writes
        /// whole records or none says false for a record it read whole): a damaged last record
        /// that cannot be torn is damage, and fails the load.
        public var canBeTorn: Bool

        /// A row.
        public init(position: Int64, record: JournalRecord, canBeTorn: Bool = true) {
            self.position = position
            self.record = record
            self.canBeTorn = canBeTorn
        }
    }

    /// What a store must do after assembling: drop rows from this append position on (a torn tail).
    public struct Result: Sendable {
        /// The contents for recovery.
        public var contents: JournalContents
        /// Rows at or after this position are torn and must be deleted; nil when all is intact.
        public var truncateFrom: Int64?
    }

    /// Assembles rows (any order) and snapshots into contents; see the type's rules.
    public static func assemble(rows: [Row], snapshots: [JournalRecord], notices: (String) -> Void) throws(JournalError) -> Result {
        let ordered = rows.sorted { $0.position < $1.position }
        var truncateFrom: Int64?
        if let firstDamaged = ordered.firstIndex(where: { !$0.record.isIntact || !isReadable($0.record) }) {
            let after = ordered[(firstDamaged + 1)...]
            let intactAfter = after.filter { $0.record.isIntact && isReadable($0.record) }
            guard intactAfter.isEmpty else {
                let row = ordered[firstDamaged]
                throw JournalError(.corrupted, "record \(row.position) (\(row.record.symbol), \(JournalPosition.describe(row.record.sequence))) fails its checksum (or names no kind of record kept there) and \(intactAfter.count) intact records follow it; the journal is damaged in the middle and cannot be trusted. Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
            }
            // A crash cuts the write it interrupts short: only the last record can be torn. Damage
            // to several records at the end is damage, not a crash (dropping it would drop
            // records that were committed).
            guard after.isEmpty else {
                let row = ordered[firstDamaged]
                throw JournalError(.corrupted, "the journal's last \(after.count + 1) records (from record \(row.position), \(row.record.symbol)) all fail their checksums; a crash tears at most the last record written, so this is damage and cannot be trusted. Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
            }
            guard ordered[firstDamaged].canBeTorn else {
                let row = ordered[firstDamaged]
                throw JournalError(.corrupted, "the journal's last record (record \(row.position), \(row.record.symbol)) is whole but fails its checksum (or names no kind of record): a crash cuts a write short, it does not change one, so this is damage and cannot be trusted. Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
            }
            truncateFrom = ordered[firstDamaged].position
            notices("the journal's last record (record \(ordered[firstDamaged].position)) was torn by a crash during a write; dropped. What it held is recovered from the broker by reconciliation")
        }
        for snapshot in snapshots {
            // The checksum first: a damaged format byte is damage, not a newer FillGuard's snapshot
            // (said as "upgrade FillGuard", it would send a person the wrong way).
            guard snapshot.isIntact else {
                throw JournalError(.corrupted, "the snapshot of \(snapshot.symbol) fails its checksum")
            }
            if let version = snapshot.payload.first, version > SnapshotCodec.version {
                throw JournalError(.unsupportedVersion, "the snapshot of \(snapshot.symbol) has format \(version), newer than this FillGuard reads (\(SnapshotCodec.version)); upgrade FillGuard")
            }
        }
        var lanes: [Symbol: JournalContents.Lane] = [:]
        for snapshot in snapshots { lanes[snapshot.symbol, default: JournalContents.Lane()].snapshot = snapshot }
        for row in ordered {
            if let truncateFrom, row.position >= truncateFrom { break }
            let record = row.record
            if record.kind == .snapshot { continue }
            if let version = record.payload.first, version > JournalCodec.version {
                throw JournalError(.unsupportedVersion, "record \(row.position) has format \(version), newer than this FillGuard reads (\(JournalCodec.version)); upgrade FillGuard")
            }
            if let covered = lanes[record.symbol]?.snapshot?.sequence, record.sequence <= covered { continue }
            lanes[record.symbol, default: JournalContents.Lane()].records.append(record)
        }
        for symbol in lanes.keys {
            lanes[symbol]?.records.sort { $0.sequence < $1.sequence }
        }
        return Result(contents: JournalContents(lanes: lanes), truncateFrom: truncateFrom)
    }

    /// A record with a payload, of a kind a store keeps among its records: stores keep snapshots
    /// apart, so a row that reads as a snapshot is damage (it would be skipped unseen).
    private static func isReadable(_ record: JournalRecord) -> Bool {
        !record.payload.isEmpty && record.kind != .snapshot
    }
}

/// A journal store in memory: nothing survives the process, but it outlives a `FillManager`,
/// so tests can "restart" a manager on the same store. Behaves as the contract says.
public final class InMemoryJournalStore: JournalStore {
    private struct State {
        var rows: [JournalAssembly.Row] = []
        var snapshots: [Symbol: JournalRecord] = [:]
        var nextPosition: Int64 = 1
        var closed = false
        var failNextAppend: JournalError?
    }

    private let state = Mutex(State())

    /// An empty store.
    public init() {}

    /// Appends atomically.
    public func append(_ batch: [JournalRecord]) async throws(JournalError) {
        try state.withLock { state throws(JournalError) in
            if state.closed { throw JournalError(.closed, "the store is closed") }
            if let failure = state.failNextAppend {
                state.failNextAppend = nil
                throw failure
            }
            for record in batch {
                if record.kind == .snapshot {
                    state.snapshots[record.symbol] = record
                    state.rows.removeAll { $0.record.symbol == record.symbol && $0.record.sequence <= record.sequence }
                } else {
                    state.rows.append(JournalAssembly.Row(position: state.nextPosition, record: record))
                    state.nextPosition += 1
                }
            }
        }
    }

    /// Loads per the contract, dropping a torn tail.
    public func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
        let (rows, snapshots) = state.withLock { ($0.rows, Array($0.snapshots.values)) }
        let result = try JournalAssembly.assemble(rows: rows, snapshots: snapshots, notices: notices)
        if let cut = result.truncateFrom {
            state.withLock { $0.rows.removeAll { $0.position >= cut } }
        }
        return result.contents
    }

    /// Marks the store closed; it can be reopened with `reopen()` (a restart in tests).
    public func close() async { state.withLock { $0.closed = true } }

    /// Opens a closed store again, as a restarted process would.
    public func reopen() { state.withLock { $0.closed = false } }

    /// A copy of what is stored now: what a process killed at this instant would find on disk
    /// (records still queued in a `Journal` are not in it).
    public func fork() -> InMemoryJournalStore {
        let copy = InMemoryJournalStore()
        let current = state.withLock { $0 }
        copy.state.withLock { state in
            state.rows = current.rows
            state.snapshots = current.snapshots
            state.nextPosition = current.nextPosition
        }
        return copy
    }

    /// Every row, in append order (for tests).
    public var rows: [JournalRecord] { state.withLock { $0.rows.map(\.record) } }

    /// Makes the next append fail with `error` (for tests of the failure path).
    public func failNextAppend(with error: JournalError) { state.withLock { $0.failNextAppend = error } }

    /// Forgets the newest `count` records, as a store whose last writes were lost would (a power
    /// cut with durability off: the process may already have acted on them). For tests.
    public func dropNewestRecords(_ count: Int) {
        state.withLock { state in state.rows.removeLast(min(count, state.rows.count)) }
    }

    /// Deletes the records `predicate` picks wherever they are, as damage to the middle of a
    /// journal would (for tests).
    public func removeRecords(where predicate: (JournalRecord) -> Bool) {
        state.withLock { state in state.rows.removeAll { predicate($0.record) } }
    }

    /// Changes stored records in place, as damage would (for tests).
    public func rewriteRecords(_ change: (inout JournalRecord) -> Void) {
        state.withLock { state in
            for index in state.rows.indices { change(&state.rows[index].record) }
        }
    }

    /// Adds a record cut short at the end, as a crash in the middle of writing it would leave
    /// (nothing acted on it: nothing acts before a write completes). For tests.
    public func appendTornRecord() {
        state.withLock { state in
            let symbol = state.rows.last?.record.symbol ?? Symbol("TORN")
            let sequence = state.rows.filter { $0.record.symbol == symbol }.map(\.record.sequence).max() ?? 0
            let full: [UInt8] = [1, 2] + Array("a record the crash interrupted".utf8)
            var record = JournalRecord(symbol: symbol, sequence: sequence + (1 << 20), kind: .input, payload: full)
            record.payload = Array(full.prefix(full.count / 2))
            state.rows.append(JournalAssembly.Row(position: state.nextPosition, record: record))
            state.nextPosition += 1
        }
    }
}
