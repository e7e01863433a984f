@testable import FillGuard
import FillGuardCore
import FillGuardJournalContract
import FillGuardSQLite
import Foundation
import GRDB
import Synchronization
import Testing

/// A fresh directory under the system's temporary directory.
func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("fillguard-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Journal stores pass the contract")
struct JournalStoreTests {
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
            return { try SQLiteJournalStore(path: path, durability: .fsync) }
        }).run()
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

    @Test("SQLite refuses a file from a newer FillGuard")
    func sqliteNewerFile() async throws {
        let path = try temporaryDirectory() + "/journal.sqlite"
        let store = try SQLiteJournalStore(path: path)
        await store.close()
        // Simulate a newer writer.
        let raw = try SQLiteJournalStore(path: path)
        await raw.close()
        try SQLiteTestAccess.setFormat(99, path: path)
        #expect(throws: JournalError.self) { _ = try SQLiteJournalStore(path: path) }
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

@Suite("Journal codec")
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
