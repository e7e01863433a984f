import FillGuard
import FillGuardCore
import Foundation
import GRDB
import Synchronization

/// The embedded journal store: one SQLite file in WAL mode (GRDB). Each appended batch is one
/// transaction; with `fsync` durability SQLite syncs the WAL on every commit (`synchronous=FULL`),
/// so a batch that was appended survives power loss. A snapshot replaces the symbol's previous
/// one and deletes the records it covers, so the file stays bounded.
///
/// Records are stored in frames: one row per symbol per appended batch, its body the records
/// one after another (`JournalFrame`), each with its own checksum. One insert per symbol and
/// batch instead of one per record is what lets group commit write hundreds of records cheaply.
/// Files of format 1 (a row per record) are converted on open.
public final class SQLiteJournalStore: JournalStore {
    /// The on-disk format this version writes and reads (1: a row per record; 2: frames; 3:
    /// frames whose record checksums cover each record's sequence and kind too). Files of
    /// formats 1 and 2 are taken on open (format 2's records are read as they are).
    public static let formatVersion = 3

    /// Whether opening may start a new journal.
    public enum OpenMode: Sendable {
        /// Creates the journal when the file is new or an empty database (a session's first start).
        case createIfNeeded
        /// The file must already hold a journal (recovery): nothing is created in it.
        case existingJournal
    }

    private let pool: DatabasePool
    /// Per symbol, the last sequence of the newest frame written: each new frame names it
    /// (`prev_seq`), so a frame missing from the middle of a symbol's chain is found on load.
    private let lastWritten = Mutex<[String: Int64]>([:])
    /// The lock that makes this store the journal's only writer, held until `close()`.
    private let writerLock: WriterLock
    /// Set by the first `close()`: the connections are gone, so nothing may touch them again.
    private let closed = Mutex(false)
    /// The file.
    public let path: String
    /// The journal's identity, made when the journal was created (companion files, such as the
    /// simulated exchange's state, name it to say whose they are); empty for a journal that lost
    /// it or is older than identities.
    public let identity: String

    /// Opens the journal at `path` (creating it only with `.createIfNeeded`) as its only writer.
    /// Throws `storage` for a missing file and `corrupted` for an empty one with `.existingJournal`,
    /// `inUse` while another store (in this or another process) has it open,
    /// `unsupportedVersion` for a file written by a newer FillGuard, `corrupted` for a file that
    /// is not a journal, `storage` when it cannot be opened.
    public init(path: String, durability: JournalDurability = .fsync, mode: OpenMode = .createIfNeeded) throws(JournalError) {
        self.path = path
        // A device, a directory or a pipe is no place for a journal: SQLite would create its
        // companion files beside it (/dev/null-journal) and fail at the first write.
        var status = stat()
        if stat(path, &status) == 0, (status.st_mode & S_IFMT) != S_IFREG {
            throw JournalError(.storage, "\(path) is not a regular file: a journal is a file (SQLite keeps its -wal and -shm beside it)")
        }
        // A write-ahead log without its database file (moved away, say) holds a session that
        // SQLite would wipe on opening a new file there: refused, and nothing is created.
        if !FileManager.default.fileExists(atPath: path),
           let size = (try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int, size > 0 {
            throw JournalError(.corrupted, "\(path)-wal holds a journal's latest writes, but its database file \(path) is missing: "
                               + "put the file back (the two belong together), or move the -wal aside to start a new journal")
        }
        // Recovery opens a journal that exists: the lock (which creates its file) and the pool are
        // not to make one where there is none.
        if mode == .existingJournal, !FileManager.default.fileExists(atPath: path) {
            throw JournalError(.storage, "there is no journal at \(path) (the file does not exist; opening an existing journal creates nothing)")
        }
        // Taken before anything reads or writes the file: a second writer is refused, never interleaved.
        writerLock = try WriterLock(path: path)
        // (An empty file whose -wal holds pages is judged by `checkIsJournal`: a log that holds
        // committed writes SQLite would not read with it, and erase, is refused.)
        if mode == .existingJournal, Self.fileSize(path) == 0, Self.fileSize(path + "-wal") == 0 {
            throw JournalError(.corrupted, "\(path) is empty, not a FillGuard journal (opening an existing journal creates nothing)")
        }
        var configuration = Configuration()
        configuration.label = "fillguard-journal"
        let synchronous = durability == .fsync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF"
        configuration.prepareDatabase { db in try db.execute(sql: synchronous) }
        // Look first without writing: a database that is not a journal is left exactly as it was
        // (opening the pool would already switch it to WAL).
        try Self.checkIsJournal(path: path, mode: mode)
        let stored: String?
        var identity = ""
        var chain: [String: Int64] = [:]
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // The pool switches its writer to WAL with synchronous=NORMAL after `prepareDatabase`
            // ran (GRDB's setUpWALMode), and NORMAL syncs the WAL at checkpoints only: a power
            // loss could take commits already acknowledged. The durability is set again here, on
            // the writer, once the pool is open.
            try pool.writeWithoutTransaction { db in try db.execute(sql: synchronous) }
            stored = try pool.write { db in
                // Another application's database is refused, never written into: a database with
                // tables must have a journal's format row.
                try Self.checkIsJournal(db, path: path, mode: mode)
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS frames (
                        id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, last_seq INTEGER NOT NULL, body BLOB NOT NULL, prev_seq INTEGER);
                    CREATE INDEX IF NOT EXISTS frames_by_symbol ON frames (symbol, last_seq);
                    CREATE TABLE IF NOT EXISTS snapshots (
                        symbol TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL);
                    INSERT OR IGNORE INTO meta (key, value) VALUES ('format', '\(Self.formatVersion)');
                    """)
                // A journal gets its identity when it is created (while it holds nothing). One
                // that lost it, or is older than identities, is not given a new one: its companion
                // files could not be matched to it anyway, and a refused open changes nothing.
                // (A format-1 file keeps its records in `records`, converted below.)
                let hasFormat1Records = try db.tableExists("records") && (Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM records)") ?? false)
                let isNew = try !hasFormat1Records
                    && !(Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM frames) OR EXISTS (SELECT 1 FROM snapshots)") ?? false)
                if mode == .createIfNeeded, isNew {
                    try db.execute(sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('id', ?)", arguments: [UUID().uuidString])
                }
                identity = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'id'") ?? ""
                let stored = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'")
                if stored == "1" { try Self.convertFormat1(db) }
                // Format 2's frames read as they are (their kind bytes say their checksums cover
                // the payload alone); the records written from now on are format 3's, so a
                // FillGuard that reads only format 2 must refuse the file from now on.
                if stored == "2" { try db.execute(sql: "UPDATE meta SET value = '\(Self.formatVersion)' WHERE key = 'format'") }
                // Files written before frames named their predecessor get the column (NULL: unchecked).
                if try !db.columns(in: "frames").contains(where: { $0.name == "prev_seq" }) {
                    try db.execute(sql: "ALTER TABLE frames ADD COLUMN prev_seq INTEGER")
                }
                chain = try Self.lastWrittenSequences(db)
                return stored
            }
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(.storage, "cannot open the journal at \(path): \(error)")
        }
        self.identity = identity
        lastWritten.withLock { $0 = chain }
        guard let stored, let version = Int(stored) else {
            throw JournalError(.corrupted, "the journal at \(path) has no readable format version")
        }
        guard version <= Self.formatVersion else {
            throw JournalError(.unsupportedVersion, "the journal at \(path) has format \(version), newer than this FillGuard reads (\(Self.formatVersion)); upgrade FillGuard")
        }
    }

    /// The size of a file in bytes, 0 when it is missing or unreadable.
    private static func fileSize(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int ?? 0
    }

    /// Refuses, without writing anything, a file that holds an SQLite database that is not a
    /// journal (or, for `.existingJournal`, holds no journal at all). A file that does not exist
    /// or is empty is left to the pool (it creates the journal, where the mode allows).
    private static func checkIsJournal(path: String, mode: OpenMode) throws(JournalError) {
        // A log of committed writes beside a file that SQLite reads no journal from (emptied, or
        // the log's header damaged) would be erased by opening: refused, and nothing is changed.
        let log = WriteAheadLog(path: path + "-wal")
        guard let size = try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, size > 0 else {
            // SQLite deletes the log of an empty file, whatever it holds.
            if log.holdsCommits { throw unreadableLog(path: path, file: "is empty") }
            return
        }
        // SQLite reads a log up to its first damaged frame and drops the rest without a word.
        // One transaction after it can be the last one, torn by a power loss before its commit
        // was synced (never acknowledged); more are transactions that were made durable.
        if let frame = log.damagedFrame, log.commitsAfterDamage >= 2 {
            throw JournalError(.corrupted, "\(path)-wal is damaged at frame \(frame), and \(log.commitsAfterDamage) committed transactions end there or after it: SQLite would "
                               + "drop them without a word (it reads a log only up to its first damaged frame), and with them writes the journal had made "
                               + "durable. Nothing was changed. Restore both files from a backup; or, to go on from the journal as it was before the damage "
                               + "(reconciliation then rebuilds the rest from the broker), move the -wal aside")
        }
        if fileSize(path + "-journal") > 0 {
            // A rollback journal a process killed mid-transaction left beside the file (one killed
            // while it created the journal, before the switch to WAL): SQLite rolls it back,
            // putting the file back as it was, but only on a connection that may write.
            do {
                let queue = try DatabaseQueue(path: path)
                defer { try? queue.close() }
                try queue.read { db in _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
            } catch {
                throw JournalError(.storage, "cannot open the journal at \(path) to roll back the interrupted write its \(path)-journal holds: \(error)")
            }
        }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            try queue.read { db in try checkIsJournal(db, path: path, mode: mode, log: log) }
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(.storage, "cannot open the journal at \(path): \(error)")
        }
    }

    /// The tables of a journal: `meta` with a format row, and the tables of that format
    /// (frames and snapshots; records for format 1). Nothing at all is a new journal, unless
    /// the mode asks for an existing one.
    private static func checkIsJournal(_ db: Database, path: String, mode: OpenMode, log: WriteAheadLog? = nil) throws(JournalError) {
        do {
            let tables = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
            // A log whose header SQLite refuses is not read at all: its commits (the journal's
            // tables among them) would be erased by a new journal.
            if tables.isEmpty, let log, log.holdsCommits, !log.headerIntact { throw unreadableLog(path: path, file: "holds no tables") }
            if tables.isEmpty {
                guard mode == .createIfNeeded else {
                    throw JournalError(.corrupted, "\(path) holds no FillGuard journal: an SQLite database with no tables (a session killed while it created its journal leaves one; nothing was recorded in it)")
                }
                return
            }
            let format = tables.contains("meta") ? try? String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'") : nil
            guard let format else {
                throw JournalError(.corrupted, "\(path) is not a FillGuard journal (an SQLite database with tables \(tables.sorted().joined(separator: ", ")) and no journal format)")
            }
            // A newer format is refused before anything is changed in it (tables, columns).
            guard let version = Int(format) else {
                throw JournalError(.corrupted, "the journal at \(path) has no readable format version")
            }
            guard version <= formatVersion else {
                throw JournalError(.unsupportedVersion, "the journal at \(path) has format \(version), newer than this FillGuard reads (\(formatVersion)); upgrade FillGuard")
            }
            let needed: Set<String> = format == "1" ? ["records"] : ["frames", "snapshots"]
            let missing = needed.subtracting(tables)
            guard missing.isEmpty else {
                throw JournalError(.corrupted, "the journal at \(path) has lost its table\(missing.count == 1 ? "" : "s") \(missing.sorted().joined(separator: ", ")) (or is another application's database); it cannot be trusted. Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
            }
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(.storage, "cannot read the journal at \(path): \(error)")
        }
    }

    /// True when the `-wal` beside `path` holds committed writes that SQLite would not read with
    /// an empty `path` (it deletes that log): a file to refuse, not to take as empty.
    public static func logHoldsCommits(besideEmptyFile path: String) -> Bool {
        WriteAheadLog(path: path + "-wal").holdsCommits
    }

    /// The refusal of a file whose `-wal` holds committed writes SQLite does not read with it.
    private static func unreadableLog(path: String, file: String) -> JournalError {
        JournalError(.corrupted, "\(path)-wal holds committed writes, but SQLite reads none of them with \(path), which \(file) "
                     + "(the file was emptied or replaced, or the log's header is damaged): the two no longer match, and opening them "
                     + "would erase the log. Nothing was changed. Restore both from a backup, or move the -wal aside to start a new journal")
    }

    /// Per symbol, the newest frame's last sequence, or the snapshot's when it is later (its
    /// frames were deleted): what the next frame of the symbol names as its predecessor.
    private static func lastWrittenSequences(_ db: Database) throws -> [String: Int64] {
        var chain: [String: Int64] = [:]
        // Damaged rows are skipped here (typed reads would stop the process); loading reports them.
        for row in try Row.fetchAll(db, sql: """
            SELECT symbol, last_seq FROM frames WHERE id IN (SELECT max(id) FROM frames GROUP BY symbol)
            AND typeof(symbol) = 'text' AND typeof(last_seq) = 'integer'
            """) {
            chain[row[0] as String] = row[1] as Int64
        }
        for row in try Row.fetchAll(db, sql: "SELECT symbol, seq FROM snapshots WHERE typeof(symbol) = 'text' AND typeof(seq) = 'integer'") {
            let symbol: String = row[0]
            chain[symbol] = max(chain[symbol] ?? .min, row[1] as Int64)
        }
        return chain
    }

    /// Rewrites a format-1 file's records (a row each) as frames of one record, in the same
    /// order and bytes (damage included, so the load rules judge it as before), in the open's transaction.
    private static func convertFormat1(_ db: Database) throws {
        if try db.tableExists("records") {
            let insert = try db.makeStatement(sql: "INSERT INTO frames (symbol, last_seq, body) VALUES (?, ?, ?)")
            let rows = try Row.fetchCursor(db, sql: "SELECT symbol, seq, kind, payload, crc FROM records ORDER BY id")
            while let row = try rows.next() {
                let symbol = try StoredValue.text(row, 0, "records.symbol")
                let sequence = try StoredValue.integer(row, 1, "records.seq")
                let payload = try StoredValue.blob(row, 3, "records.payload")
                var body: [UInt8] = []
                let kind = UInt8(clamping: try StoredValue.integer(row, 2, "records.kind"))
                let checksum = UInt32(truncatingIfNeeded: try StoredValue.integer(row, 4, "records.crc"))
                JournalFrame.append(sequence: UInt64(bitPattern: sequence), kind: kind, checksum: checksum, payload: payload, to: &body)
                // Format 1 read any damaged last record as torn; frames read only a record cut
                // short so. A damaged record is converted cut short by a byte: judged as before.
                if JournalRecord.Kind(rawValue: kind) == nil || CRC32.checksum([UInt8](payload)) != checksum { body.removeLast() }
                try insert.execute(arguments: [symbol, sequence, Data(body)])
            }
            try db.execute(sql: "DROP TABLE records")
        }
        try db.execute(sql: "UPDATE meta SET value = '\(formatVersion)' WHERE key = 'format'")
    }

    /// Appends a batch in one transaction: a frame per symbol, in the batch's order (a snapshot
    /// closes the frames before it, replaces the symbol's snapshot and deletes the frames it covers).
    public func append(_ batch: [JournalRecord]) async throws(JournalError) {
        try refuseIfClosed()
        do {
            try await pool.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO frames (symbol, last_seq, body, prev_seq) VALUES (?, ?, ?, ?)")
                var open: [Symbol: (last: UInt64, body: [UInt8])] = [:]
                var order: [Symbol] = []
                // The chain as this transaction leaves it; kept only once it has committed.
                var chain = self.lastWritten.withLock { $0 }
                func flush() throws {
                    for symbol in order {
                        guard let frame = open[symbol] else { continue }
                        let last = Int64(bitPattern: frame.last)
                        try insert.execute(arguments: [symbol.name, last, Data(frame.body), chain[symbol.name] ?? 0])
                        chain[symbol.name] = last
                    }
                    open.removeAll(keepingCapacity: true)
                    order.removeAll(keepingCapacity: true)
                }
                for record in batch {
                    if record.kind == .snapshot {
                        try flush()
                        let sequence = Int64(bitPattern: record.sequence)
                        try db.execute(sql: "INSERT OR REPLACE INTO snapshots (symbol, seq, payload, crc) VALUES (?, ?, ?, ?)",
                                       arguments: [record.symbol.name, sequence, Data(record.payload),
                                                   SnapshotCheck.stored(payload: record.payload, sequence: record.sequence)])
                        try db.execute(sql: "DELETE FROM frames WHERE symbol = ? AND last_seq <= ?", arguments: [record.symbol.name, sequence])
                        continue
                    }
                    if open[record.symbol] == nil {
                        order.append(record.symbol)
                        open[record.symbol] = (record.sequence, [])
                    }
                    open[record.symbol]!.last = max(open[record.symbol]!.last, record.sequence)
                    JournalFrame.append(record, to: &open[record.symbol]!.body)
                }
                try flush()
                // Kept on commit, in the writer's queue: before the next append's transaction
                // reads it, even one from another caller running in between (a store shared by
                // two journals would otherwise chain a frame to a stale predecessor).
                let committed = chain
                db.afterNextTransaction(onCommit: { _ in self.lastWritten.withLock { $0 = committed } })
            }
        } catch {
            throw JournalError(.storage, "cannot write to the journal at \(path): \(error)")
        }
    }

    /// Loads per the contract; a torn tail is deleted from the file with a notice. A row whose
    /// columns do not hold what a journal writes (a NULL, text for a number) is corruption.
    public func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
        try refuseIfClosed()
        let rows: [JournalAssembly.Row]
        let snapshots: [JournalRecord]
        // Records are numbered in append order (frame row id, then place in the frame); the
        // numbers are the assembly's positions, and `places` maps them back to where they are.
        var places: [(frame: Int64, index: Int)] = []
        var frames: [Int64: (symbol: Symbol, records: [JournalRecord], previous: Int64?)] = [:]
        do {
            (rows, snapshots, places, frames) = try await pool.read { db in
                var rows: [JournalAssembly.Row] = []
                var places: [(frame: Int64, index: Int)] = []
                var frames: [Int64: (symbol: Symbol, records: [JournalRecord], previous: Int64?)] = [:]
                let cursor = try Row.fetchCursor(db, sql: "SELECT id, symbol, body, last_seq, prev_seq FROM frames ORDER BY id")
                var chain = JournalChain()
                while let row = try cursor.next() {
                    let id = try StoredValue.integer(row, 0, "frames.id")
                    let symbol = Symbol(try StoredValue.text(row, 1, "frames.symbol"))
                    let body = try StoredValue.blob(row, 2, "frames.body")
                    let records = JournalFrame.records(in: body, symbol: symbol)
                    let previous = try StoredValue.optionalInteger(row, 4, "frames.prev_seq")
                    try chain.add(frame: id, symbol: symbol, records: records, last: try StoredValue.integer(row, 3, "frames.last_seq"),
                                  previous: previous)
                    frames[id] = (symbol, records, previous)
                    // Only a frame's last record can be one a crash cut short, and only if the
                    // body ends inside it.
                    let cut = JournalFrame.endsCutShort(body)
                    for (index, record) in records.enumerated() {
                        rows.append(JournalAssembly.Row(position: Int64(places.count), record: record,
                                                        canBeTorn: cut && index == records.count - 1))
                        places.append((id, index))
                    }
                }
                let snapshots = try Row.fetchAll(db, sql: "SELECT symbol, seq, payload, crc FROM snapshots").map { row in
                    let sequence = UInt64(bitPattern: try StoredValue.integer(row, 1, "snapshots.seq"))
                    let payload = [UInt8](try StoredValue.blob(row, 2, "snapshots.payload"))
                    return JournalRecord(symbol: Symbol(try StoredValue.text(row, 0, "snapshots.symbol")), sequence: sequence, kind: .snapshot,
                                         payload: payload,
                                         checksum: SnapshotCheck.checksum(stored: try StoredValue.integer(row, 3, "snapshots.crc"),
                                                                         payload: payload, sequence: sequence))
                }
                try chain.check(snapshots: snapshots)
                return (rows, snapshots, places, frames)
            }
        } catch let broken as JournalChain.Broken {
            throw JournalError(.corrupted, "the journal at \(path) has a broken chain of records: \(broken.description); it cannot be trusted. Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
        } catch let damaged as StoredValue.Damaged {
            throw JournalError(.corrupted, "the journal at \(path) is damaged: \(damaged.description); it cannot be trusted. Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
        } catch {
            throw JournalError(.storage, "cannot read the journal at \(path): \(error)")
        }
        let result = try JournalAssembly.assemble(rows: rows, snapshots: snapshots, notices: notices)
        if let cut = result.truncateFrom {
            // Frames after the cut go; the frame it falls in keeps the records before it.
            let (frame, index) = places[Int(cut)]
            let kept = frames[frame].map { (symbol: $0.symbol, records: Array($0.records.prefix(index)), previous: $0.previous) }
            do {
                try await pool.write { db in
                    try db.execute(sql: "DELETE FROM frames WHERE id >= ?", arguments: [frame])
                    if let kept, let last = kept.records.map(\.sequence).max() {
                        var body: [UInt8] = []
                        for record in kept.records { JournalFrame.append(record, to: &body) }
                        try db.execute(sql: "INSERT INTO frames (id, symbol, last_seq, body, prev_seq) VALUES (?, ?, ?, ?, ?)",
                                       arguments: [frame, kept.symbol.name, Int64(bitPattern: last), Data(body), kept.previous])
                    }
                    let chain = try Self.lastWrittenSequences(db)
                    self.lastWritten.withLock { $0 = chain }
                }
            } catch {
                throw JournalError(.storage, "cannot drop the torn tail of the journal at \(path): \(error)")
            }
        }
        return result.contents
    }

    /// Leaves the journal at `path` as a crash in the middle of writing a record would: one more
    /// frame at the end whose record was cut short (its checksum is that of the whole payload).
    /// Nothing acted on that record, since nothing acts before a write completes. A journal not
    /// yet created (a session killed while it created it) is left as it is. For crash tests;
    /// never on a live journal.
    public static func simulateTornWrite(path: String) throws {
        // A session killed while it created its journal left no records to tear.
        guard FileManager.default.fileExists(atPath: path) else { return }
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        guard try queue.read({ db in try db.tableExists("frames") }) else { return }
        try queue.write { db in
            let full: [UInt8] = [1, 2] + Array("a record the crash interrupted".utf8)
            let symbol = try String.fetchOne(db, sql: "SELECT symbol FROM frames ORDER BY id DESC LIMIT 1") ?? "TORN"
            let sequence = try Int64.fetchOne(db, sql: "SELECT max(last_seq) FROM frames WHERE symbol = ?", arguments: [symbol]) ?? 0
            var body: [UInt8] = []
            JournalFrame.append(sequence: UInt64(bitPattern: sequence + (1 << 20)), kind: JournalRecord.Kind.input.rawValue,
                                checksum: CRC32.checksum(full), payload: full, to: &body)
            body.removeLast(full.count / 2)
            try db.execute(sql: "INSERT INTO frames (symbol, last_seq, body) VALUES (?, ?, ?)",
                           arguments: [symbol, sequence + (1 << 20), Data(body)])
        }
    }

    /// The writer's `PRAGMA synchronous` (2 FULL: the WAL synced at every commit; 0 OFF), for tests.
    func writerSynchronousSetting() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Whether the journal holds anything a session wrote (a record or a snapshot).
    public func holdsRecords() throws(JournalError) -> Bool {
        try refuseIfClosed()
        do {
            return try pool.read { db in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM frames) OR EXISTS (SELECT 1 FROM snapshots)") ?? false
            }
        } catch {
            throw JournalError(.storage, "cannot read the journal at \(path): \(error)")
        }
    }

    /// A value the application keeps with the journal under `key` (see `setSetting`), if any.
    public func setting(_ key: String) throws(JournalError) -> String? {
        try refuseIfClosed()
        do {
            return try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: ["setting." + key]) }
        } catch {
            throw JournalError(.storage, "cannot read the journal at \(path): \(error)")
        }
    }

    /// Keeps `value` with the journal under `key`: settings a later recovery must use, such as
    /// whether the broker had native modify. Kept apart from the journal's own rows.
    public func setSetting(_ key: String, _ value: String) throws(JournalError) {
        try refuseIfClosed()
        do {
            try pool.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: ["setting." + key, value])
            }
        } catch {
            throw JournalError(.storage, "cannot write to the journal at \(path): \(error)")
        }
    }

    /// Closes the file, then gives up the writer's lock. Everything written is moved from the
    /// write-ahead log into the database file first, so that the file alone (a copy of it, say)
    /// holds the whole journal after a clean close.
    public func close() async {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        _ = try? await pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        try? pool.close()
        writerLock.release()
    }

    /// Throws `closed` once the store is closed: a closed SQLite connection must not be used.
    private func refuseIfClosed() throws(JournalError) {
        if closed.withLock({ $0 }) { throw JournalError(.closed, "the journal at \(path) is closed") }
    }
}

