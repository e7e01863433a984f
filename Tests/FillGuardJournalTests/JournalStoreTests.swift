import FillGuard
import FillGuardCore
import FillGuardJournalContract
import FillGuardSQLite
import Foundation
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
}

import GRDB

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

    static func recordCount(path: String) throws -> Int {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM records") ?? 0 }
    }
}
