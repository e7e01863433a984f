import FillGuard
import FillGuardCore
import Foundation
import GRDB

/// The embedded journal store: one SQLite file in WAL mode (GRDB). Each appended batch is one
/// transaction; with `fsync` durability SQLite syncs the WAL on every commit (`synchronous=FULL`),
/// so a batch that was appended survives power loss. A snapshot replaces the symbol's previous
/// one and deletes the records it covers, so the file stays bounded.
public final class SQLiteJournalStore: JournalStore {
    /// The on-disk format this version writes and reads.
    public static let formatVersion = 1

    private let pool: DatabasePool
    /// The file.
    public let path: String

    /// Opens (creating if needed) the journal at `path`. Throws `unsupportedVersion` for a file
    /// written by a newer FillGuard, `storage` when it cannot be opened.
    public init(path: String, durability: JournalDurability = .fsync) throws(JournalError) {
        self.path = path
        var configuration = Configuration()
        configuration.label = "fillguard-journal"
        configuration.prepareDatabase { db in
            try db.execute(sql: durability == .fsync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS records (
                        id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, seq INTEGER NOT NULL,
                        kind INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL);
                    CREATE INDEX IF NOT EXISTS records_by_symbol ON records (symbol, seq);
                    CREATE TABLE IF NOT EXISTS snapshots (
                        symbol TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL);
                    INSERT OR IGNORE INTO meta (key, value) VALUES ('format', '\(Self.formatVersion)');
                    """)
            }
        } catch {
            throw JournalError(.storage, "cannot open the journal at \(path): \(error)")
        }
        let stored: String?
        do {
            stored = try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'") }
        } catch {
            throw JournalError(.storage, "cannot read the journal at \(path): \(error)")
        }
        guard let stored, let version = Int(stored) else {
            throw JournalError(.corrupted, "the journal at \(path) has no readable format version")
        }
        guard version <= Self.formatVersion else {
            throw JournalError(.unsupportedVersion, "the journal at \(path) has format \(version), newer than this FillGuard reads (\(Self.formatVersion)); upgrade FillGuard")
        }
    }

    /// Appends a batch in one transaction.
    public func append(_ batch: [JournalRecord]) async throws(JournalError) {
        do {
            try await pool.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO records (symbol, seq, kind, payload, crc) VALUES (?, ?, ?, ?, ?)")
                for record in batch {
                    let sequence = Int64(bitPattern: record.sequence)
                    if record.kind == .snapshot {
                        try db.execute(sql: "INSERT OR REPLACE INTO snapshots (symbol, seq, payload, crc) VALUES (?, ?, ?, ?)",
                                       arguments: [record.symbol.name, sequence, Data(record.payload), Int64(record.checksum)])
                        try db.execute(sql: "DELETE FROM records WHERE symbol = ? AND seq <= ?", arguments: [record.symbol.name, sequence])
                    } else {
                        try insert.execute(arguments: [record.symbol.name, sequence, Int64(record.kind.rawValue), Data(record.payload), Int64(record.checksum)])
                    }
                }
            }
        } catch {
            throw JournalError(.storage, "cannot write to the journal at \(path): \(error)")
        }
    }

    /// Loads per the contract; a torn tail is deleted from the file with a notice.
    public func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
        let rows: [JournalAssembly.Row]
        let snapshots: [JournalRecord]
        do {
            (rows, snapshots) = try await pool.read { db in
                var rows: [JournalAssembly.Row] = []
                let cursor = try Row.fetchCursor(db, sql: "SELECT id, symbol, seq, kind, payload, crc FROM records")
                while let row = try cursor.next() {
                    let kind = JournalRecord.Kind(rawValue: UInt8(clamping: row[3] as Int64)) ?? .input
                    let payload: Data = row[4] ?? Data()
                    rows.append(JournalAssembly.Row(position: row[0], record: JournalRecord(
                        symbol: Symbol(row[1]), sequence: UInt64(bitPattern: row[2]), kind: kind,
                        payload: [UInt8](payload), checksum: UInt32(truncatingIfNeeded: row[5] as Int64))))
                }
                let snapshots = try Row.fetchAll(db, sql: "SELECT symbol, seq, payload, crc FROM snapshots").map { row in
                    let payload: Data = row[2] ?? Data()
                    return JournalRecord(symbol: Symbol(row[0]), sequence: UInt64(bitPattern: row[1]), kind: .snapshot,
                                         payload: [UInt8](payload), checksum: UInt32(truncatingIfNeeded: row[3] as Int64))
                }
                return (rows, snapshots)
            }
        } catch {
            throw JournalError(.storage, "cannot read the journal at \(path): \(error)")
        }
        let result = try JournalAssembly.assemble(rows: rows, snapshots: snapshots, notices: notices)
        if let cut = result.truncateFrom {
            do {
                try await pool.write { db in try db.execute(sql: "DELETE FROM records WHERE id >= ?", arguments: [cut]) }
            } catch {
                throw JournalError(.storage, "cannot drop the torn tail of the journal at \(path): \(error)")
            }
        }
        return result.contents
    }

    /// Leaves the journal at `path` as a crash in the middle of writing a record would: one more
    /// record at the end whose payload was cut short (its checksum is that of the whole payload).
    /// Nothing acted on that record, since nothing acts before a write completes. For crash
    /// tests; never on a live journal.
    public static func simulateTornWrite(path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            let full: [UInt8] = [1, 2] + Array("a record the crash interrupted".utf8)
            let symbol = try String.fetchOne(db, sql: "SELECT symbol FROM records ORDER BY id DESC LIMIT 1") ?? "TORN"
            let sequence = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM records WHERE symbol = ?", arguments: [symbol]) ?? 0
            try db.execute(sql: "INSERT INTO records (symbol, seq, kind, payload, crc) VALUES (?, ?, 1, ?, ?)",
                           arguments: [symbol, sequence + (1 << 20), Data(full.prefix(full.count / 2)), Int64(CRC32.checksum(full))])
        }
        try queue.close()
    }

    /// Closes the file.
    public func close() async {
        try? pool.close()
    }
}
