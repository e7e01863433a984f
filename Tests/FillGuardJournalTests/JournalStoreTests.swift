@testable import FillGuard
import FillGuardCore
import FillGuardJournalContract
@testable import FillGuardSQLite
import FillGuardSimulator
import Foundation
import GRDB
import Synchronization
import Testing

/// A fresh directory in this test process's scratch directory.
func temporaryDirectory() throws -> String {
    let path = scratchRoot + "/\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Where this process's test directories go: removed when the process exits, unless
/// `scripts/test` runs it (its TMPDIR is a scratch directory it removes, or keeps after a failure).
let scratchRoot: String = {
    atexit {
        let temporary = FileManager.default.temporaryDirectory.path
        guard !temporary.contains("/fillguard-test.") else { return }
        try? FileManager.default.removeItem(atPath: temporary + "/fillguard-journal-tests-\(getpid())")
    }
    return FileManager.default.temporaryDirectory.path + "/fillguard-journal-tests-\(getpid())"
}()

@Suite("Journal stores pass the contract", .timeLimit(.minutes(5)))
struct JournalStoreTests {
    @Test("a snapshot whose format byte was damaged is reported as damage (corrupted), not as a newer FillGuard's (upgrade FillGuard); an intact newer one is")
    func damagedSnapshotFormatIsDamage() throws {
        var damaged = JournalRecord(symbol: "GLD", sequence: 5, kind: .snapshot, payload: [SnapshotCodec.version, 1, 2, 3])
        damaged.payload[0] = 9
        #expect(throws: JournalError.self) { _ = try JournalAssembly.assemble(rows: [], snapshots: [damaged], notices: { _ in }) }
        do {
            _ = try JournalAssembly.assemble(rows: [], snapshots: [damaged], notices: { _ in })
        } catch {
            #expect(error.code == .corrupted, "\(error)")
        }
        let newer = JournalRecord(symbol: "GLD", sequence: 5, kind: .snapshot, payload: [9, 1, 2, 3])
        do {
            _ = try JournalAssembly.assemble(rows: [], snapshots: [newer], notices: { _ in })
            Issue.record("a newer snapshot was accepted")
        } catch {
            #expect(error.code == .unsupportedVersion, "\(error)")
        }
    }

    @Test("in memory")
    func inMemory() async throws {
        try await JournalStoreContract(newStorage: {
            let store = InMemoryJournalStore()
            return { store.reopen(); return store }
        }).run()
    }

    @Test("SQLite (WAL, fsync)")
    func sqlite() async throws {
        try await JournalStoreContract(newStorage: {
            let path = try temporaryDirectory() + "/journal.sqlite"
            // SQLite writes a frame whole or not at all: a torn write is a frame cut short.
            return (open: { try SQLiteJournalStore(path: path, durability: .fsync) }, tear: { try SQLiteJournalStore.simulateTornWrite(path: path) })
        }).run()
    }

    @Test("SQLite's durability is in effect on the writer: FULL (the WAL synced at every commit) with fsync, OFF with off, not the pool's WAL default NORMAL")
    func sqliteDurabilityIsInEffect() async throws {
        let directory = try temporaryDirectory()
        let synced = try SQLiteJournalStore(path: directory + "/fsync.sqlite", durability: .fsync)
        #expect(try synced.writerSynchronousSetting() == 2)
        let unsynced = try SQLiteJournalStore(path: directory + "/off.sqlite", durability: .off)
        #expect(try unsynced.writerSynchronousSetting() == 0)
        // Reopened (an existing journal): the same.
        await synced.close()
        let reopened = try SQLiteJournalStore(path: directory + "/fsync.sqlite", durability: .fsync, mode: .existingJournal)
        #expect(try reopened.writerSynchronousSetting() == 2)
        await reopened.close()
        await unsynced.close()
    }

    @Test("SQLite converts a format-1 file (a row per record) to frames on open, keeping every record and its damage")
    func sqliteConvertsFormat1() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let queue = try DatabaseQueue(path: path)
        let good = JournalRecord(symbol: "OLD", sequence: 1 << 20, kind: .input, payload: [1, 7, 7])
        let intent = JournalRecord(symbol: "OLD", sequence: 1 << 20 | 1, kind: .intent, payload: [1, 8])
        let other = JournalRecord(symbol: "OTH", sequence: 1 << 20, kind: .input, payload: [1, 9])
        try await queue.write { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE records (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, seq INTEGER NOT NULL,
                    kind INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL);
                CREATE TABLE snapshots (symbol TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL);
                INSERT INTO meta (key, value) VALUES ('format', '1');
                """)
            for record in [good, intent, other] {
                try db.execute(sql: "INSERT INTO records (symbol, seq, kind, payload, crc) VALUES (?, ?, ?, ?, ?)",
                               arguments: [record.symbol.name, Int64(record.sequence), Int64(record.kind.rawValue), Data(record.payload), Int64(record.checksum)])
            }
            // A torn last record, as format 1 stored one.
            try db.execute(sql: "INSERT INTO records (symbol, seq, kind, payload, crc) VALUES ('OTH', ?, 1, ?, 12345)",
                           arguments: [Int64(2 << 20), Data([1, 2])])
        }
        try queue.close()

        let store = try SQLiteJournalStore(path: path)
        // Older than identities, with records: not given one (its companion files have none).
        #expect(store.identity.isEmpty, "a format-1 journal with records was given the identity \(store.identity)")
        let notices = NoticeCollector()
        let contents = try await store.load(notices: { _ in })
        #expect(contents.lanes["OLD"]?.records == [good, intent])
        #expect(contents.lanes["OTH"]?.records == [other], "the torn record is dropped, as before")
        try await store.append([JournalRecord(symbol: "OLD", sequence: 2 << 20, kind: .input, payload: [1, 3])])
        await store.close()
        let reopened = try SQLiteJournalStore(path: path)
        let again = try await reopened.load(notices: { notices.append($0) })
        #expect(again.lanes["OLD"]?.records.map(\.sequence) == [1 << 20, 1 << 20 | 1, 2 << 20])
        #expect(notices.all.isEmpty, "the torn tail was removed from the file the first time")
        await reopened.close()
        let format = try await DatabaseQueue(path: path).read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'") }
        #expect(format == "\(SQLiteJournalStore.formatVersion)")
    }

    @Test("SQLite: a batch of many symbols is one frame per symbol, and a torn record inside a frame keeps the records before it")
    func sqliteTornInsideAFrame() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        let first = (1...3).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) }
        let second = (1...2).map { JournalRecord(symbol: "BBB", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) }
        try await store.append([first[0], second[0], first[1], second[1], first[2]])
        await store.close()
        #expect(try SQLiteTestAccess.frameCount(path: path) == 2)
        // Cut the last frame's last record short.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "UPDATE frames SET body = substr(body, 1, length(body) - 1) WHERE id = (SELECT max(id) FROM frames)")
        }
        try queue.close()
        let reopened = try SQLiteJournalStore(path: path)
        let notices = NoticeCollector()
        let contents = try await reopened.load(notices: { notices.append($0) })
        #expect(notices.all.count == 1)
        #expect(contents.lanes["AAA"]?.records == first)
        #expect(contents.lanes["BBB"]?.records == [second[0]], "the intact record before the torn one in its frame is kept")
        await reopened.close()
        let third = try SQLiteJournalStore(path: path)
        let later = NoticeCollector()
        let after = try await third.load(notices: { later.append($0) })
        #expect(later.all.isEmpty)
        #expect(after.lanes["BBB"]?.records == [second[0]], "the file holds exactly what the first load returned")
        await third.close()
    }

    @Test("SQLite: appends from two callers at once (two journals on one store, disjoint symbols) keep the chain: the journal loads whole")
    func sqliteOverlappingAppendsKeepTheChain() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path, durability: .off)
        _ = try await store.load(notices: { _ in })
        let rounds = 300
        func records(_ symbol: Symbol) -> [JournalRecord] {
            (1...rounds).map { JournalRecord(symbol: symbol, sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8(truncatingIfNeeded: $0)]) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for symbol in ["AAA", "BBB"] as [Symbol] {
                group.addTask { for record in records(symbol) { try await store.append([record]) } }
            }
            try await group.waitForAll()
        }
        await store.close()
        let reopened = try SQLiteJournalStore(path: path, mode: .existingJournal)
        let contents = try await reopened.load(notices: { _ in })
        #expect(contents.lanes["AAA"]?.records == records("AAA"))
        #expect(contents.lanes["BBB"]?.records == records("BBB"))
        await reopened.close()
    }

    @Test("SQLite: a last record that is whole but damaged (a flipped payload bit, an unknown kind) is damage, not a torn write: the load fails, nothing is dropped",
          arguments: ["payload", "kind"])
    func sqliteWholeDamagedLastRecordIsCorruption(_ damage: String) async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        let records = (1...3).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0), 7, 7]) }
        try await store.append(records)
        await store.close()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            let body = try #require(try Data.fetchOne(db, sql: "SELECT body FROM frames WHERE id = (SELECT max(id) FROM frames)"))
            var bytes = [UInt8](body)
            // The last record's header is 17 bytes before its 4-byte payload: kind at offset 8.
            let last = bytes.count - 4 - 17
            if damage == "payload" { bytes[bytes.count - 1] ^= 0x01 } else { bytes[last + 8] = 9 }
            try db.execute(sql: "UPDATE frames SET body = ? WHERE id = (SELECT max(id) FROM frames)", arguments: [Data(bytes)])
        }
        try queue.close()
        let reopened = try SQLiteJournalStore(path: path)
        await #expect { _ = try await reopened.load(notices: { _ in }) } throws: { error in
            guard let error = error as? JournalError else { return false }
            return error.code == .corrupted && error.message.contains("is whole but fails its checksum")
        }
        await reopened.close()
        #expect(try SQLiteTestAccess.frameCount(path: path) == 1, "nothing deleted")
    }

    /// One frame of five records of AAA: inputs 1 and 2, an intent of input 2, inputs 3 and 4,
    /// each with a 2-byte payload (19 bytes a record), its body changed by `damage` (bytes of
    /// the body, the record size). Returns the path.
    private static func fiveRecordFrame(damage: @escaping @Sendable (inout [UInt8], Int) -> Void) async throws -> String {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        let sequences: [UInt64] = [1 << 20, 2 << 20, 2 << 20 | 1, 3 << 20, 4 << 20]
        try await store.append(sequences.enumerated().map { index, sequence in
            JournalRecord(symbol: "AAA", sequence: sequence, kind: sequence & 0xFFFFF == 0 ? .input : .intent, payload: [1, UInt8(index)])
        })
        await store.close()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            var bytes = [UInt8](try #require(try Data.fetchOne(db, sql: "SELECT body FROM frames")))
            damage(&bytes, 19)
            try db.execute(sql: "UPDATE frames SET body = ?", arguments: [Data(bytes)])
        }
        try queue.close()
        return path
    }

    @Test("SQLite: a flipped bit in a record's sequence or kind fails its checksum: the record is not moved to another input, nor skipped as a snapshot",
          arguments: ["sequence", "kind"])
    func sqliteRecordHeaderIsChecked(_ field: String) async throws {
        let path = try await Self.fiveRecordFrame { bytes, size in
            if field == "sequence" {
                // The intent of input 2 (record 2) made an intent of input 3: bit 20 of its sequence.
                bytes[2 * size + 2] ^= 0x10
            } else {
                // The last record's kind, input (1), made a snapshot (3): a store keeps no snapshot there.
                bytes[4 * size + 8] ^= 0x02
            }
        }
        let reopened = try SQLiteJournalStore(path: path)
        await #expect { _ = try await reopened.load(notices: { _ in }) } throws: { error in
            guard let error = error as? JournalError else { return false }
            return error.code == .corrupted && error.message.contains("fails its checksum")
        }
        await reopened.close()
        #expect(try SQLiteTestAccess.frameCount(path: path) == 1, "nothing deleted")
    }

    @Test("SQLite: a file of format 2 (checksums of the payload alone) still loads and is marked format 3; a record of it that reads as a snapshot is damage")
    func sqliteFormat2RecordsStillLoad() async throws {
        // The records as format 2 wrote them: kind without the high bit, the payload's CRC-32.
        @Sendable func format2(_ bytes: inout [UInt8], _ size: Int) {
            for start in stride(from: 0, to: bytes.count, by: size) {
                bytes[start + 8] &= 0x7F
                let crc = CRC32.checksum(Array(bytes[(start + 17)..<(start + size)]))
                withUnsafeBytes(of: crc.littleEndian) { for (offset, byte) in $0.enumerated() { bytes[start + 9 + offset] = byte } }
            }
        }
        let path = try await Self.fiveRecordFrame { bytes, size in format2(&bytes, size) }
        try SQLiteTestAccess.setFormat(2, path: path)
        let reopened = try SQLiteJournalStore(path: path)
        let contents = try await reopened.load(notices: { _ in })
        #expect(contents.lanes["AAA"]?.records.map(\.sequence) == [1 << 20, 2 << 20, 2 << 20 | 1, 3 << 20, 4 << 20])
        await reopened.close()
        let format = try await DatabaseQueue(path: path).read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'") }
        #expect(format == "3", "a format-2 file written to from now on is marked format 3")
        // Format 2's kind is not covered by its checksum: an input made a snapshot is still damage.
        let damaged = try await Self.fiveRecordFrame { bytes, size in
            format2(&bytes, size)
            bytes[4 * size + 8] = 3
        }
        try SQLiteTestAccess.setFormat(2, path: damaged)
        let store = try SQLiteJournalStore(path: damaged)
        await #expect { _ = try await store.load(notices: { _ in }) } throws: { error in
            guard let error = error as? JournalError else { return false }
            return error.code == .corrupted && error.message.contains("fails its checksum")
        }
        await store.close()
    }

    @Test("SQLite: a second store of a journal this process has open is refused without touching the file: the live store keeps SQLite's locks on it")
    func sqliteRefusedSecondStoreKeepsTheFirstStoresLocks() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let first = try SQLiteJournalStore(path: path)
        try await first.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        _ = try await first.load(notices: { _ in })
        var status = stat()
        #expect(stat(path, &status) == 0)
        // A record lock of the test's own on a descriptor kept open, at a byte SQLite never locks:
        // closing any other descriptor of the file drops every record lock this process holds on
        // it, SQLite's and this one. (SQLite's own come and go with its transactions; this one
        // stays until the test ends.)
        let ownStart = 1 << 41
        let probe = open(path, O_RDWR | O_CLOEXEC)
        #expect(probe >= 0)
        defer { close(probe) }
        var own = flock()
        own.l_type = Int16(F_RDLCK)
        own.l_whence = Int16(SEEK_SET)
        own.l_start = off_t(ownStart)
        own.l_len = 1
        #expect(fcntl(probe, F_SETLK, &own) == 0)
        /// True while /proc/locks lists the test's own lock on the journal file.
        func ownLockHeld() throws -> Bool {
            // Read to its end: the file's size says 0, and a reader that trusts it may stop after
            // its first page (with other tests' SQLite files open, the table is longer than that).
            guard let file = FileHandle(forReadingAtPath: "/proc/locks") else { return false }
            defer { try? file.close() }
            let table = String(decoding: try file.readToEnd() ?? Data(), as: UTF8.self)
            let inode = ":\(status.st_ino)"
            return table.split(separator: "\n").contains { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return fields.count > 6 && fields[1] == "POSIX" && fields[4] == "\(getpid())" && fields[5].hasSuffix(inode)
                    && fields[6] == "\(ownStart)"
            }
        }
        #expect(try ownLockHeld(), "the test's own lock is listed")
        for spelling in [path, path.replacingOccurrences(of: "/journal.sqlite", with: "/./journal.sqlite")] {
            #expect { _ = try SQLiteJournalStore(path: spelling) } throws: { ($0 as? JournalError)?.code == .inUse }
        }
        #expect(try ownLockHeld(), "a refused open closed a descriptor of the file, dropping this process's record locks on it (the live store's too)")
        await first.close()
        // Given up on close: the journal opens again.
        let again = try SQLiteJournalStore(path: path, mode: .existingJournal)
        #expect(try await again.load(notices: { _ in }).lanes["AAA"]?.records.count == 1)
        await again.close()
    }

    @Test("SQLite: after a clean close the database file alone holds the whole journal (a copy without its -wal is complete)")
    func sqliteCloseCheckpoints() async throws {
        let directory = try temporaryDirectory()
        let path = directory + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        _ = try await store.load(notices: { _ in })   // as a recovery does first
        _ = try store.holdsRecords()
        let records = (1...50).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) }
        try await store.append(records)
        await store.close()
        let copy = directory + "/copy.sqlite"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        #expect(!FileManager.default.fileExists(atPath: copy + "-wal"))
        let reopened = try SQLiteJournalStore(path: copy, mode: .existingJournal)
        let contents = try await reopened.load(notices: { _ in })
        #expect(contents.lanes["AAA"]?.records == records)
        await reopened.close()
    }

    @Test("SQLite: a write-ahead log without its database file is refused, never wiped by a new journal there")
    func sqliteOrphanedLogIsRefused() async throws {
        let directory = try temporaryDirectory()
        let store = try SQLiteJournalStore(path: directory + "/journal.sqlite")
        let records = (1...20).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) }
        try await store.append(records)
        // As after a crash: the latest writes are in the log; the database file is moved away.
        let elsewhere = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: directory + "/journal.sqlite-wal", toPath: elsewhere + "/journal.sqlite-wal")
        await store.close()
        let size = try FileManager.default.attributesOfItem(atPath: elsewhere + "/journal.sqlite-wal")[.size] as? Int
        #expect((size ?? 0) > 0)
        #expect(throws: JournalError.self) { _ = try SQLiteJournalStore(path: elsewhere + "/journal.sqlite") }
        #expect(!FileManager.default.fileExists(atPath: elsewhere + "/journal.sqlite"), "nothing created")
        #expect(try FileManager.default.attributesOfItem(atPath: elsewhere + "/journal.sqlite-wal")[.size] as? Int == size, "the log is left as it was")
    }

    @Test("SQLite: a log damaged before transactions that were made durable is refused, never read up to the damage; damage in its last transaction (a write torn before its commit was synced) is what SQLite drops",
          arguments: [("middle", true), ("second-to-last commit", true), ("last transaction", false)])
    func sqliteLogDamagedBeforeLaterCommitsIsRefused(_ damage: String, refused: Bool) async throws {
        let directory = try temporaryDirectory()
        let store = try SQLiteJournalStore(path: directory + "/journal.sqlite")
        for batch in 1...6 {
            try await store.append([JournalRecord(symbol: "AAA", sequence: UInt64(batch) << 20, kind: .input, payload: [1, UInt8(batch)])])
        }
        // As after a crash: the batches are all in the log, none checkpointed yet.
        let copy = try temporaryDirectory() + "/journal.sqlite"
        for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: directory + "/journal.sqlite" + suffix, toPath: copy + suffix) }
        await store.close()
        var log = try [UInt8](Data(contentsOf: URL(fileURLWithPath: copy + "-wal")))
        let pageSize = Int(log[8]) << 24 | Int(log[9]) << 16 | Int(log[10]) << 8 | Int(log[11])
        let frames = (log.count - 32) / (24 + pageSize)
        // A byte of a page: in a frame halfway through the log, in the commit frame of the
        // transaction before the last (synced before the last began), or in the last frame.
        let commitFrames = (0..<frames).filter { frame in (4..<8).contains { log[32 + frame * (24 + pageSize) + $0] != 0 } }
        let frame = damage == "middle" ? frames / 2 : damage == "second-to-last commit" ? commitFrames[commitFrames.count - 2] : frames - 1
        log[32 + frame * (24 + pageSize) + 24 + 100] ^= 0x01
        try Data(log).write(to: URL(fileURLWithPath: copy + "-wal"))
        if refused {
            #expect { _ = try SQLiteJournalStore(path: copy, mode: .existingJournal) } throws: { error in
                guard let error = error as? JournalError else { return false }
                return error.code == .corrupted && error.message.contains("committed transactions end there or after it")
            }
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: copy + "-wal"))) == log, "the log is left as it was")
        } else {
            let reopened = try SQLiteJournalStore(path: copy, mode: .existingJournal)
            let records = try await reopened.load(notices: { _ in }).lanes["AAA"]?.records.map(\.sequence)
            #expect(records == (1...5).map { UInt64($0) << 20 }, "the torn last batch is the one dropped")
            await reopened.close()
        }
    }

    @Test("SQLite: a torn write is not simulated on a journal that was never created or holds no tables yet (a session killed while it created it)")
    func tornWriteNeedsAJournal() throws {
        let directory = try temporaryDirectory()
        try SQLiteJournalStore.simulateTornWrite(path: directory + "/missing.sqlite")
        #expect(!FileManager.default.fileExists(atPath: directory + "/missing.sqlite"), "nothing created")
        let bare = directory + "/bare.sqlite"
        let queue = try DatabaseQueue(path: bare)
        try queue.write { try $0.execute(sql: "PRAGMA user_version = 1") }
        try queue.close()
        try SQLiteJournalStore.simulateTornWrite(path: bare)
        #expect(try DatabaseQueue(path: bare).read { try $0.tableExists("frames") } == false, "no table made in it")
    }

    @Test("SQLite: a log of committed writes that SQLite would not read with its file (the file emptied, the log's header damaged) is refused, never erased; a log of a write that never committed is not",
          arguments: ["emptied file", "damaged log header", "uncommitted log", "no journal tables yet"])
    func sqliteLogItsFileCannotReadIsRefused(_ damage: String) async throws {
        let directory = try temporaryDirectory()
        if damage == "no journal tables yet" {
            // Killed after GRDB set the file up in WAL mode (a table created and dropped, committed
            // to the log) and before the journal's tables: SQLite reads the log, which holds no
            // table. A new journal, as before the log was looked at.
            let pool = try DatabasePool(path: directory + "/setup.sqlite")
            let copy = directory + "/journal.sqlite"
            for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: directory + "/setup.sqlite" + suffix, toPath: copy + suffix) }
            try pool.close()
            #expect(try (FileManager.default.attributesOfItem(atPath: copy + "-wal")[.size] as? Int ?? 0) > 32, "the set-up is in the log")
            let fresh = try SQLiteJournalStore(path: copy)
            #expect(try !fresh.holdsRecords())
            await fresh.close()
            return
        }
        let store = try SQLiteJournalStore(path: directory + "/journal.sqlite")
        try await store.append((1...20).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) })
        // As after a crash: the session's writes are all in the log, none checkpointed yet.
        let copy = try temporaryDirectory() + "/journal.sqlite"
        for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: directory + "/journal.sqlite" + suffix, toPath: copy + suffix) }
        await store.close()
        var log = try [UInt8](Data(contentsOf: URL(fileURLWithPath: copy + "-wal")))
        switch damage {
        case "emptied file":
            try Data().write(to: URL(fileURLWithPath: copy))
        case "damaged log header":
            log[20] ^= 0x01   // the header's second salt: SQLite reads none of the log's frames
        default:
            // Every frame's commit size cleared: a transaction that never committed.
            let pageSize = Int(log[8]) << 24 | Int(log[9]) << 16 | Int(log[10]) << 8 | Int(log[11])
            for frame in stride(from: 32, to: log.count - 24, by: 24 + pageSize) { for byte in 4..<8 { log[frame + byte] = 0 } }
            try Data().write(to: URL(fileURLWithPath: copy))
        }
        try Data(log).write(to: URL(fileURLWithPath: copy + "-wal"))
        if damage == "uncommitted log" {
            // Nothing was committed: the file is taken as a new journal.
            let fresh = try SQLiteJournalStore(path: copy)
            #expect(try !fresh.holdsRecords())
            await fresh.close()
            return
        }
        for mode in [SQLiteJournalStore.OpenMode.createIfNeeded, .existingJournal] {
            #expect { _ = try SQLiteJournalStore(path: copy, mode: mode) } throws: { error in
                guard let error = error as? JournalError else { return false }
                return error.code == .corrupted && error.message.contains("-wal holds committed writes")
            }
        }
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: copy + "-wal"))) == log, "the log is left as it was")
    }

    @Test("SQLite: a device or a directory is refused as a journal, and nothing is created beside it")
    func sqliteNeedsARegularFile() throws {
        let directory = try temporaryDirectory() + "/journal.sqlite"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let nullLeftovers = ["-journal", "-wal", "-shm"].filter { FileManager.default.fileExists(atPath: "/dev/null" + $0) }
        for path in [directory, "/dev/null"] {
            do {
                _ = try SQLiteJournalStore(path: path)
                Issue.record("\(path) was opened as a journal")
            } catch {
                #expect(error.code == .storage && error.message.contains("not a regular file"), "\(error)")
            }
        }
        for suffix in ["-journal", "-wal", "-shm"] {
            #expect(!FileManager.default.fileExists(atPath: directory + suffix))
        }
        #expect(["-journal", "-wal", "-shm"].filter { FileManager.default.fileExists(atPath: "/dev/null" + $0) } == nullLeftovers)
    }

    @Test("SQLite refuses a file from a newer FillGuard")
    func sqliteNewerFile() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        await store.close()
        // Simulate a newer writer.
        let raw = try SQLiteJournalStore(path: path)
        await raw.close()
        try SQLiteTestAccess.setFormat(99, path: path)
        let before = try #require(FileManager.default.contents(atPath: path))
        #expect(throws: JournalError.self) { _ = try SQLiteJournalStore(path: path) }
        #expect(FileManager.default.contents(atPath: path) == before, "nothing changed in a newer FillGuard's file")
        do {
            _ = try SQLiteJournalStore(path: path)
        } catch {
            #expect(error.code == .unsupportedVersion)
        }
    }

    @Test("SQLite refuses another application's database and writes nothing into it; an empty file becomes a journal")
    func sqliteForeignDatabase() async throws {
        let directory = try temporaryDirectory()
        let foreign = directory + "/other.sqlite"
        let queue = try DatabaseQueue(path: foreign)
        try await queue.write { try $0.execute(sql: "CREATE TABLE foo (x INTEGER)") }
        try queue.close()
        do {
            _ = try SQLiteJournalStore(path: foreign)
            Issue.record("a foreign database was opened as a journal")
        } catch {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("not a FillGuard journal"))
        }
        let check = try DatabaseQueue(path: foreign)
        let tables = try await check.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") }
        #expect(tables == ["foo"], "nothing added to it")
        try check.close()

        let empty = directory + "/empty.sqlite"
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        let store = try SQLiteJournalStore(path: empty)
        await store.close()
    }

    @Test("SQLite refuses a database whose only table is a 'meta' of its own, and recovery refuses a database with no journal")
    func sqliteForeignMetaAndExistingOnly() async throws {
        let directory = try temporaryDirectory()
        let foreign = directory + "/meta.sqlite"
        let queue = try DatabaseQueue(path: foreign)
        try await queue.write { try $0.execute(sql: "CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('owner', 'someone')") }
        try queue.close()
        let before = try #require(FileManager.default.contents(atPath: foreign))
        #expect(throws: JournalError.self) { _ = try SQLiteJournalStore(path: foreign) }
        #expect(FileManager.default.contents(atPath: foreign) == before, "not a byte changed (not even switched to WAL)")

        // A 'meta' that happens to hold a format row, beside tables no journal has.
        let lookalike = directory + "/lookalike.sqlite"
        let lookalikeQueue = try DatabaseQueue(path: lookalike)
        try await lookalikeQueue.write { try $0.execute(sql: "CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('format', '2'); CREATE TABLE users (x)") }
        try lookalikeQueue.close()
        let lookalikeBefore = try #require(FileManager.default.contents(atPath: lookalike))
        #expect(throws: JournalError.self) { _ = try SQLiteJournalStore(path: lookalike) }
        #expect(FileManager.default.contents(atPath: lookalike) == lookalikeBefore)

        // An SQLite database with no tables: a new journal for a session, but nothing to recover.
        let blank = directory + "/blank.sqlite"
        let blankQueue = try DatabaseQueue(path: blank)
        try await blankQueue.write { try $0.execute(sql: "PRAGMA user_version = 1") }
        try blankQueue.close()
        do {
            _ = try SQLiteJournalStore(path: blank, mode: .existingJournal)
            Issue.record("a database with no journal was opened for recovery")
        } catch {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("holds no FillGuard journal"))
        }
        let after = try DatabaseQueue(path: blank)
        #expect(try await after.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sqlite_master") } == 0, "recovery created nothing in it")
        try after.close()

        // No file, or an empty one: nothing to recover, and nothing is created (the store once
        // made an 8 KiB WAL database there and then called it a corrupt journal).
        let missing = directory + "/missing.sqlite"
        #expect { try SQLiteJournalStore(path: missing, mode: .existingJournal) } throws: { error in
            (error as? JournalError)?.code == .storage && (error as? JournalError)?.message.contains("there is no journal at") == true
        }
        #expect(!FileManager.default.fileExists(atPath: missing), "recovery created no file")
        let empty = directory + "/empty.sqlite"
        #expect(FileManager.default.createFile(atPath: empty, contents: nil))
        #expect { try SQLiteJournalStore(path: empty, mode: .existingJournal) } throws: { error in
            (error as? JournalError)?.code == .corrupted && (error as? JournalError)?.message.contains("is empty") == true
        }
        #expect((try FileManager.default.attributesOfItem(atPath: empty)[.size] as? Int) == 0, "the empty file stays empty")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("missing") || $0.hasPrefix("empty.sqlite-") }.isEmpty,
                "no -wal, -shm or other file beside them")
    }

    @Test("SQLite refuses a journal that lost its frames or snapshots table instead of recreating it empty")
    func sqliteLostTable() async throws {
        for table in ["frames", "snapshots"] {
            let path = try temporaryDirectory() + "/journal.sqlite"
            let store = try SQLiteJournalStore(path: path)
            try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
            await store.close()
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: "DROP TABLE \(table)") }
            try queue.close()
            do {
                _ = try SQLiteJournalStore(path: path, mode: .existingJournal)
                Issue.record("a journal without its \(table) table was opened")
            } catch {
                #expect(error.code == .corrupted)
                #expect(error.message.contains("lost its table"), "\(error)")
            }
        }
    }

    @Test("SQLite has one writer: a second store on the same file is refused (in use) until the first closes")
    func sqliteOneWriter() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let first = try SQLiteJournalStore(path: path)
        try await first.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        do {
            _ = try SQLiteJournalStore(path: path)
            Issue.record("a second writer opened the journal")
        } catch {
            #expect(error.code == .inUse)
        }
        do {
            _ = try SQLiteJournalStore(path: path, mode: .existingJournal)
            Issue.record("recovery opened a journal a session is writing")
        } catch {
            #expect(error.code == .inUse)
        }
        await first.close()
        let second = try SQLiteJournalStore(path: path, mode: .existingJournal)
        let contents = try await second.load(notices: { _ in })
        #expect(contents.lanes["AAA"]?.records.count == 1)
        await second.close()
    }

    @Test("SQLite: a second close does nothing, and a closed store refuses its work as closed instead of touching a closed connection")
    func sqliteClosedStore() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        await store.close()
        await store.close()
        await #expect { try await store.append([JournalRecord(symbol: "AAA", sequence: 2 << 20, kind: .input, payload: [1, 2])]) } throws: {
            ($0 as? JournalError)?.code == .closed
        }
        await #expect { _ = try await store.load(notices: { _ in }) } throws: { ($0 as? JournalError)?.code == .closed }
        #expect { _ = try store.holdsRecords() } throws: { ($0 as? JournalError)?.code == .closed }
        #expect { _ = try store.setting("x") } throws: { ($0 as? JournalError)?.code == .closed }
        #expect { try store.setSetting("x", "y") } throws: { ($0 as? JournalError)?.code == .closed }
        // Its lock went with the first close: the file opens again, with what was written.
        let again = try SQLiteJournalStore(path: path, mode: .existingJournal)
        #expect(try await again.load(notices: { _ in }).lanes["AAA"]?.records.count == 1)
        await again.close()
    }

    @Test("a journal closed by hand, then the manager shut down, closes once; a Journal serves one manager (a second one's recover() is refused as in use)")
    func journalClosedByHandAndSharedJournal() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let journal = Journal(store: try SQLiteJournalStore(path: path))
        let exchange = SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["GLD": Price("248")!])
        let manager = FillManager(broker: exchange, journal: journal)
        _ = try await manager.recover()
        let other = FillManager(broker: exchange, journal: journal)
        await #expect { _ = try await other.recover() } throws: { ($0 as? JournalError)?.code == .inUse }
        // Refused, not started: the second manager still takes nothing.
        await #expect { try await other.open(BracketSpec(positionID: "P2", symbol: "GLD", side: .buy, quantity: 1, entryType: .market)) } throws: {
            ($0 as? InputError)?.code == .journalUnavailable
        }
        await journal.close()
        await journal.close()
        #expect(journal.failure?.code == .closed)
        _ = await manager.shutdown()
        // The file was closed once, cleanly: it opens again.
        let reopened = try SQLiteJournalStore(path: path, mode: .existingJournal)
        await reopened.close()
    }

    @Test("SQLite gives a journal its identity when it is created, keeps it, and never makes a new one for a journal that lost it",
          arguments: [SQLiteJournalStore.OpenMode.createIfNeeded, .existingJournal])
    func sqliteIdentity(reopening mode: SQLiteJournalStore.OpenMode) async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let created = try SQLiteJournalStore(path: path)
        let identity = created.identity
        #expect(!identity.isEmpty)
        try await created.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        await created.close()
        let reopened = try SQLiteJournalStore(path: path, mode: mode)
        #expect(reopened.identity == identity)
        await reopened.close()
        try await DatabaseQueue(path: path).write { try $0.execute(sql: "DELETE FROM meta WHERE key = 'id'") }
        let lost = try SQLiteJournalStore(path: path, mode: mode)
        #expect(lost.identity.isEmpty, "no new identity for a journal that holds records")
        await lost.close()
        let rows = try await DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM meta WHERE key = 'id'") }
        #expect(rows == 0, "nothing written into it")
    }

    @Test("SQLite reports a row holding NULL or text where a journal writes a number as corruption, never stops the process",
          arguments: ["INSERT INTO snapshots (symbol, seq, payload, crc) VALUES (NULL, 1, x'01', 0)",
                      "INSERT INTO snapshots (symbol, seq, payload, crc) VALUES ('AAA', 'abc', x'01', 0)",
                      "INSERT INTO snapshots (symbol, seq, payload, crc) VALUES ('AAA', 1, x'01', 'crc')",
                      "UPDATE frames SET body = NULL",
                      "UPDATE frames SET symbol = x'00ff'"])
    func sqliteDamagedColumns(edit: String) async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        await store.close()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            // The schema says NOT NULL; a damaged or hand-edited file need not keep to it.
            try db.execute(sql: "PRAGMA ignore_check_constraints = ON")
            try db.execute(sql: "PRAGMA writable_schema = ON")
            try db.execute(sql: "UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') WHERE name = 'frames'")
            try db.execute(sql: "PRAGMA writable_schema = OFF")
        }
        try queue.close()
        let edited = try DatabaseQueue(path: path)
        try await edited.write { try $0.execute(sql: edit) }
        try edited.close()
        let reopened = try SQLiteJournalStore(path: path)
        do {
            _ = try await reopened.load(notices: { _ in })
            Issue.record("a damaged row was loaded: \(edit)")
        } catch {
            #expect(error.code == .corrupted, "\(error)")
            #expect(error.message.contains("is damaged"))
        }
        await reopened.close()
    }

    @Test("SQLite repairs a torn tail after frame row ids pass 2^31 (ids only grow) and keeps every intact record")
    func sqliteTornTailWithLargeRowIDs() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        let records = (1...4).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) }
        for record in records { try await store.append([record]) }
        await store.close()
        for shift in [Int64(1) << 31, Int64(1) << 32, Int64(1) << 40] {
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: "UPDATE frames SET id = id + ?", arguments: [shift]) }
            try queue.close()
            try SQLiteTestAccess.tearLastRecord(path: path)
            let reopened = try SQLiteJournalStore(path: path)
            let notices = NoticeCollector()
            let contents = try await reopened.load(notices: { notices.append($0) })
            #expect(notices.all.count == 1, "the torn tail is reported (ids shifted by \(shift))")
            #expect(contents.lanes["AAA"]?.records == records, "every intact record kept (ids shifted by \(shift))")
            await reopened.close()
            #expect(try SQLiteTestAccess.frameCount(path: path) == records.count, "only the torn frame was deleted (ids shifted by \(shift))")
        }
    }

    @Test("SQLite finds a frame missing from the middle of a symbol's chain, even one holding only intents")
    func sqliteMissingFrame() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        let batches: [[JournalRecord]] = [
            [JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])],
            [JournalRecord(symbol: "AAA", sequence: 1 << 20 | 1, kind: .intent, payload: [1, 2]),
             JournalRecord(symbol: "BBB", sequence: 1 << 20, kind: .input, payload: [1, 3])],
            [JournalRecord(symbol: "AAA", sequence: 2 << 20, kind: .input, payload: [1, 4])],
        ]
        for batch in batches { try await store.append(batch) }
        await store.close()
        // Intact, it loads, and keeps loading after more appends by a new store.
        let again = try SQLiteJournalStore(path: path)
        _ = try await again.load(notices: { _ in })
        try await again.append([JournalRecord(symbol: "AAA", sequence: 3 << 20, kind: .input, payload: [1, 5])])
        await again.close()
        let check = try SQLiteJournalStore(path: path)
        #expect(try await check.load(notices: { _ in }).lanes["AAA"]?.records.count == 4)
        await check.close()

        let queue = try DatabaseQueue(path: path)
        try await queue.write { try $0.execute(sql: "DELETE FROM frames WHERE symbol = 'AAA' AND last_seq = ?", arguments: [Int64(1 << 20 | 1)]) }
        try queue.close()
        let damaged = try SQLiteJournalStore(path: path)
        do {
            _ = try await damaged.load(notices: { _ in })
            Issue.record("a journal with a frame gone from the middle loaded")
        } catch {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("is gone"), "\(error)")
        }
        await damaged.close()
    }

    @Test("SQLite's frame chain holds across snapshots that delete frames, and across a torn tail's repair")
    func sqliteChainAcrossSnapshotsAndRepairs() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        for number in 1...3 {
            try await store.append([JournalRecord(symbol: "AAA", sequence: UInt64(number) << 20, kind: .input, payload: [1, UInt8(number)])])
        }
        try await store.append([JournalRecord(symbol: "AAA", sequence: 2 << 20, kind: .snapshot, payload: [1, 9])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 4 << 20, kind: .input, payload: [1, 4])])
        await store.close()
        try SQLiteTestAccess.tearLastRecord(path: path)
        let reopened = try SQLiteJournalStore(path: path)
        let first = try await reopened.load(notices: { _ in })
        #expect(first.lanes["AAA"]?.records.map(\.sequence) == [3 << 20, 4 << 20])
        try await reopened.append([JournalRecord(symbol: "AAA", sequence: 5 << 20, kind: .input, payload: [1, 5])])
        try await reopened.append([JournalRecord(symbol: "AAA", sequence: 5 << 20, kind: .snapshot, payload: [1, 9])])
        try await reopened.append([JournalRecord(symbol: "AAA", sequence: 6 << 20, kind: .input, payload: [1, 6])])
        await reopened.close()
        let last = try SQLiteJournalStore(path: path)
        let notices = NoticeCollector()
        let contents = try await last.load(notices: { notices.append($0) })
        #expect(notices.all.isEmpty)
        #expect(contents.lanes["AAA"]?.records.map(\.sequence) == [6 << 20])
        await last.close()
    }

    /// A journal of three frames of one AAA input each, then `sql` run on its file. Returns its path.
    private static func threeFramesOfAAA(damagedBy sql: String) async throws -> String {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        for number in 1...3 {
            try await store.append([JournalRecord(symbol: "AAA", sequence: UInt64(number) << 20, kind: .input, payload: [1, UInt8(number)])])
        }
        await store.close()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { try $0.execute(sql: sql) }
        try queue.close()
        return path
    }

    @Test("a journal left with a hot rollback journal (a process killed mid-transaction) is rolled back and opens, not refused as read-only")
    func sqliteHotRollbackJournal() async throws {
        let directory = try temporaryDirectory()
        let original = directory + "/original.sqlite", path = directory + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: original)
        let records = (1...3).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) }
        for record in records { try await store.append([record]) }
        await store.close()
        // A transaction in rollback-journal mode that spilled pages into the file, copied (file
        // and -journal) before it ends: what a kill at that moment leaves.
        let queue = try DatabaseQueue(path: original)
        try await queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            try db.execute(sql: "PRAGMA cache_size = 1")
            try db.execute(sql: "BEGIN")
            for number in 0..<2_000 {
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: ["k\(number)", String(repeating: "x", count: 100)])
            }
            try FileManager.default.copyItem(atPath: original, toPath: path)
            try FileManager.default.copyItem(atPath: original + "-journal", toPath: path + "-journal")
            try db.execute(sql: "ROLLBACK")
        }
        try queue.close()
        let reopened = try SQLiteJournalStore(path: path, mode: .existingJournal)
        let contents = try await reopened.load(notices: { _ in })
        #expect(contents.lanes["AAA"]?.records == records, "the interrupted transaction rolled back, the journal intact")
        await reopened.close()
        #expect(!FileManager.default.fileExists(atPath: path + "-journal"))
    }

    @Test("a frame written twice (a copy at the end) is corruption, named as repeated, not as a frame gone")
    func sqliteRepeatedFrame() async throws {
        let path = try await Self.threeFramesOfAAA(damagedBy: "INSERT INTO frames (symbol, last_seq, body, prev_seq) SELECT symbol, last_seq, body, prev_seq FROM frames WHERE id = (SELECT min(id) FROM frames)")
        let reopened = try SQLiteJournalStore(path: path)
        do {
            _ = try await reopened.load(notices: { _ in })
            Issue.record("a journal with a repeated frame loaded")
        } catch {
            #expect(error.code == .corrupted && error.message.contains("repeated or out of order"), "\(error)")
        }
        await reopened.close()
    }

    @Test("an emptied frame body is damage: in the middle of the journal it is corruption, at the end a torn tail dropped with a notice")
    func sqliteEmptiedFrame() async throws {
        for (which, middle) in [("min", true), ("max", false)] {
            let path = try await Self.threeFramesOfAAA(damagedBy: "UPDATE frames SET body = x'' WHERE id = (SELECT \(which)(id) FROM frames)")
            let reopened = try SQLiteJournalStore(path: path)
            let notices = NoticeCollector()
            do {
                let contents = try await reopened.load(notices: { notices.append($0) })
                #expect(!middle, "a frame emptied in the middle was read as if it held nothing")
                #expect(notices.all.count == 1, "the emptied last frame is told: \(notices.all)")
                #expect(contents.lanes["AAA"]?.records.map(\.sequence) == [1 << 20, 2 << 20])
            } catch {
                #expect(middle && error.code == .corrupted, "\(error.message)")
            }
            await reopened.close()
        }
    }

    @Test("damage to several records at the end is corruption, not a torn tail: committed records are not dropped")
    func sqliteDamagedTailOfSeveralRecords() async throws {
        // The payload's last byte of the last two frames changed: two committed records damaged.
        let path = try await Self.threeFramesOfAAA(damagedBy: "UPDATE frames SET body = CAST(substr(body, 1, length(body) - 1) || x'ff' AS BLOB) WHERE id > (SELECT min(id) FROM frames)")
        let reopened = try SQLiteJournalStore(path: path)
        do {
            _ = try await reopened.load(notices: { _ in })
            Issue.record("two damaged records at the end were dropped as a torn tail")
        } catch {
            #expect(error.code == .corrupted && error.message.contains("a crash tears at most the last record"), "\(error.message)")
        }
        await reopened.close()
        #expect(try SQLiteTestAccess.frameCount(path: path) == 3, "nothing was deleted")
    }

    @Test("a record whose length runs past its frame is damage: in the middle corruption, at the end a torn tail")
    func sqliteLengthPastTheFrame() async throws {
        // The payload length (4 bytes at offset 13) of the frame's only record, 2, made 3.
        for (which, middle) in [("min", true), ("max", false)] {
            let path = try await Self.threeFramesOfAAA(damagedBy: "UPDATE frames SET body = CAST(substr(body, 1, 13) || x'03' || substr(body, 15) AS BLOB) WHERE id = (SELECT \(which)(id) FROM frames)")
            let reopened = try SQLiteJournalStore(path: path)
            let notices = NoticeCollector()
            do {
                let contents = try await reopened.load(notices: { notices.append($0) })
                #expect(!middle, "a damaged length in the middle was read as if nothing were wrong")
                #expect(notices.all.count == 1, "\(notices.all)")
                #expect(contents.lanes["AAA"]?.records.map(\.sequence) == [1 << 20, 2 << 20])
            } catch {
                #expect(middle && error.code == .corrupted, "\(error.message)")
            }
            await reopened.close()
        }
    }

    /// A frame of three records, the last frame of the journal: the first record's length made
    /// large enough to run over the other two. Read as a torn tail, the three committed records
    /// were dropped (and deleted) with one notice.
    @Test("a damaged length that runs over the records after it in the last frame is corruption, not a torn tail")
    func sqliteLengthRunningOverLaterRecords() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        try await store.append((2...4).map { JournalRecord(symbol: "AAA", sequence: UInt64($0) << 20, kind: .input, payload: [1, UInt8($0)]) })
        await store.close()
        // The first record's payload length (4 bytes at offset 13): 2 made 0x40 (64).
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "UPDATE frames SET body = CAST(substr(body, 1, 13) || x'40' || substr(body, 15) AS BLOB) WHERE id = (SELECT max(id) FROM frames)")
        }
        try queue.close()
        let reopened = try SQLiteJournalStore(path: path)
        do {
            let contents = try await reopened.load(notices: { _ in })
            Issue.record("three committed records were dropped as a torn tail: \(contents.lanes["AAA"]?.records.map(\.sequence) ?? [])")
        } catch {
            #expect(error.code == .corrupted && error.message.contains("damage inside the frame"), "\(error.message)")
        }
        await reopened.close()
        #expect(try SQLiteTestAccess.frameCount(path: path) == 2, "nothing was deleted")
    }

    @Test("a snapshot's sequence is covered by its check: a changed seq is corruption; a snapshot written before (payload CRC alone) still loads")
    func sqliteSnapshotSequenceIsChecked() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 2 << 20, kind: .snapshot, payload: [1, 9])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 3 << 20, kind: .input, payload: [1, 3])])
        await store.close()
        func load(after sql: String) async throws -> Result<JournalContents, JournalError> {
            let queue = try DatabaseQueue(path: path)
            try await queue.write { try $0.execute(sql: sql) }
            try queue.close()
            let reopened = try SQLiteJournalStore(path: path)
            let result: Result<JournalContents, JournalError>
            do { result = .success(try await reopened.load(notices: { _ in })) } catch { result = .failure(error) }
            await reopened.close()
            return result
        }
        // The snapshot made to cover the record after it: that record would be skipped unseen.
        if case .failure(let error) = try await load(after: "UPDATE snapshots SET seq = seq + (2 << 20)") {
            #expect(error.code == .corrupted && error.message.contains("snapshot of AAA fails its checksum"), "\(error)")
        } else {
            Issue.record("a snapshot whose seq changed was trusted")
        }
        // A journal written before the sequence was covered: the payload's CRC-32 alone.
        let legacy = try await load(after: "UPDATE snapshots SET seq = seq - (2 << 20), crc = \(CRC32.checksum([1, 9]))")
        let contents = try legacy.get()
        #expect(contents.lanes["AAA"]?.snapshot?.sequence == 2 << 20)
        #expect(contents.lanes["AAA"]?.records.map(\.sequence) == [3 << 20])
    }

    @Test("a record kind no FillGuard writes is damage: in the middle of the journal it is corruption")
    func sqliteUnknownKind() async throws {
        // The kind byte follows the 8-byte sequence at the start of the frame body.
        let path = try await Self.threeFramesOfAAA(damagedBy: "UPDATE frames SET body = CAST(substr(body, 1, 8) || x'09' || substr(body, 10) AS BLOB) WHERE id = (SELECT min(id) FROM frames)")
        let reopened = try SQLiteJournalStore(path: path)
        do {
            _ = try await reopened.load(notices: { _ in })
            Issue.record("a record of unknown kind was loaded as an input")
        } catch {
            #expect(error.code == .corrupted && error.message.contains("fails its checksum"), "\(error.message)")
        }
        await reopened.close()
    }
}

import GRDB

/// Notices a store's load reported.
final class NoticeCollector: Sendable {
    private let notices = Mutex<[String]>([])
    func append(_ notice: String) { notices.withLock { $0.append(notice) } }
    var all: [String] { notices.withLock { $0 } }
}

/// Raw access to a journal file, to damage it the way tests need.
enum SQLiteTestAccess {
    static func setFormat(_ version: Int, path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'format'", arguments: ["\(version)"]) }
        try queue.close()
    }

    /// Leaves a torn record at the end of the journal (see `SQLiteJournalStore.simulateTornWrite`).
    static func tearLastRecord(path: String) throws {
        try SQLiteJournalStore.simulateTornWrite(path: path)
    }

    static func frameCount(path: String) throws -> Int {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM frames") ?? 0 }
    }
}

@Suite("Journal codec", .timeLimit(.minutes(5)))
struct JournalCodecTests {
    @Test("every kind of operation outcome survives the journal's encoding", arguments: [
        nil, OperationFailure.transient("throttled"), .permanent("refused"), .tooLate("filled"), .timedOut("no answer"), .unknownOrder("unknown"),
    ])
    func outcomesRoundTrip(failure: OperationFailure?) throws {
        let operation = OrderOperation(id: 7, orderID: "P1-sl3", positionID: "P1", role: .stopLoss,
                                       request: .cancel(CancelOrderRequest(orderID: "P1-sl3", symbol: "GLD")), priority: .cancel, attempt: 2)
        let input = JournalInput.completed(operation, failure: failure)
        #expect(try JournalCodec.decodeInput(JournalCodec.encode(input)) == input)
    }
}
