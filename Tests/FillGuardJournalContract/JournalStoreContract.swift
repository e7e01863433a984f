import FillGuard
import FillGuardCore
import Synchronization
import Testing

/// The contract every `JournalStore` passes. `newStorage` makes a new, empty storage and returns
/// how to open it; opening again must reopen the same storage (a restart).
public struct JournalStoreContract: Sendable {
    /// Opens (or reopens) one storage.
    public typealias Opener = @Sendable () async throws -> any JournalStore
    /// Leaves in a closed storage what a crash during the write of a record after its last leaves.
    public typealias Tearer = @Sendable () async throws -> Void
    /// Makes a new, empty storage and returns how to open it, and how to tear its last write
    /// (nil: a record whose checksum fails, appended, is how the store shows a torn write).
    public let newStorage: @Sendable () async throws -> (open: Opener, tear: Tearer?)

    /// A contract run over the storages `newStorage` makes; a torn write is appended as a record
    /// whose checksum fails.
    public init(newStorage: @escaping @Sendable () async throws -> Opener) {
        self.newStorage = { (try await newStorage(), nil) }
    }

    /// A contract run over the storages `newStorage` makes, each with its own way to tear a write
    /// (a store that writes whole records or none, and tells a record cut short from a damaged one).
    public init(newStorage: @escaping @Sendable () async throws -> (open: Opener, tear: Tearer?)) {
        self.newStorage = newStorage
    }

    private static func input(_ symbol: Symbol, _ number: UInt64, _ text: String) -> JournalRecord {
        JournalRecord(symbol: symbol, sequence: number << 20, kind: .input, payload: [1, 6] + Array(text.utf8))
    }

    private static func intent(_ symbol: Symbol, _ number: UInt64, _ index: UInt64) -> JournalRecord {
        JournalRecord(symbol: symbol, sequence: number << 20 | index, kind: .intent, payload: [1, UInt8(index)])
    }

    private func load(_ store: any JournalStore) async throws -> (JournalContents, [String]) {
        let notices = Mutex<[String]>([])
        let contents = try await store.load(notices: { notice in notices.withLock { $0.append(notice) } })
        return (contents, notices.withLock { $0 })
    }

    /// Every check, in order, on a fresh store.
    public func run() async throws {
        try await recordsComeBackPerSymbolInSequenceOrder()
        try await snapshotsReplaceAndPrune()
        try await tornTailIsDroppedWithANotice()
        try await damageInTheMiddleIsRefused()
        try await newerFormatIsRefused()
    }

    private func recordsComeBackPerSymbolInSequenceOrder() async throws {
        let open = try await newStorage().open
        let store = try await open()
        // Inputs are journaled a pass before the intents they lead to: append order differs from sequence order.
        try await store.append([Self.input("AAA", 1, "a1"), Self.input("BBB", 1, "b1"), Self.input("AAA", 2, "a2")])
        try await store.append([Self.intent("AAA", 1, 1), Self.intent("AAA", 1, 2), Self.input("AAA", 3, "a3")])
        await store.close()
        let reopened = try await open()
        let (contents, notices) = try await load(reopened)
        #expect(notices.isEmpty)
        let aaa = try #require(contents.lanes["AAA"])
        #expect(aaa.snapshot == nil)
        #expect(aaa.records.map(\.sequence) == [1 << 20, 1 << 20 | 1, 1 << 20 | 2, 2 << 20, 3 << 20])
        #expect(aaa.records.map(\.kind) == [.input, .intent, .intent, .input, .input])
        #expect(aaa.records[0].payload == [1, 6] + Array("a1".utf8))
        #expect(aaa.records.allSatisfy { $0.isIntact })
        #expect(contents.lanes["BBB"]?.records.count == 1)
        await reopened.close()
    }

    private func snapshotsReplaceAndPrune() async throws {
        let open = try await newStorage().open
        let store = try await open()
        try await store.append([Self.input("SNP", 1, "x"), Self.input("SNP", 2, "y")])
        try await store.append([JournalRecord(symbol: "SNP", sequence: 1 << 20, kind: .snapshot, payload: [1, 7, 7]), Self.input("SNP", 3, "z")])
        try await store.append([JournalRecord(symbol: "SNP", sequence: 2 << 20, kind: .snapshot, payload: [1, 8, 8])])
        await store.close()
        let reopened = try await open()
        let (contents, _) = try await load(reopened)
        let lane = try #require(contents.lanes["SNP"])
        #expect(lane.snapshot?.payload == [1, 8, 8], "the newest snapshot replaces the older")
        #expect(lane.snapshot?.sequence == 2 << 20)
        #expect(lane.records.map(\.sequence) == [3 << 20], "records the snapshot covers are not replayed")
        await reopened.close()
    }

    private func tornTailIsDroppedWithANotice() async throws {
        let (open, tear) = try await newStorage()
        let store = try await open()
        try await store.append([Self.input("TRN", 1, "ok")])
        if let tear {
            await store.close()
            try await tear()
        } else {
            var torn = Self.input("TRN", 2, "torn")
            torn.payload = Array(torn.payload.prefix(3)) // the checksum was computed over the whole payload
            try await store.append([torn])
            await store.close()
        }
        let reopened = try await open()
        let (contents, notices) = try await load(reopened)
        #expect(contents.lanes["TRN"]?.records.map(\.sequence) == [1 << 20])
        #expect(notices.count == 1)
        #expect(notices.first?.contains("torn") == true)
        await reopened.close()
        // The repair is durable: the next load finds nothing to repair.
        let again = try await open()
        let (_, secondNotices) = try await load(again)
        #expect(secondNotices.isEmpty)
        // New records after the repair load normally.
        try await again.append([Self.input("TRN", 2, "retry")])
        let (after, _) = try await load(again)
        #expect(after.lanes["TRN"]?.records.map(\.sequence) == [1 << 20, 2 << 20])
        await again.close()
    }

    private func damageInTheMiddleIsRefused() async throws {
        let open = try await newStorage().open
        let store = try await open()
        var damaged = Self.input("MID", 1, "damaged")
        damaged.payload[2] ^= 0xFF
        try await store.append([damaged, Self.input("MID", 2, "fine")])
        await store.close()
        let reopened = try await open()
        await #expect(throws: JournalError.self) { _ = try await self.load(reopened) }
        do {
            _ = try await load(reopened)
        } catch let error as JournalError {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("middle"))
        }
        await reopened.close()
    }

    private func newerFormatIsRefused() async throws {
        let open = try await newStorage().open
        let store = try await open()
        try await store.append([JournalRecord(symbol: "NEW", sequence: 1 << 20, kind: .input, payload: [99, 1])])
        do {
            _ = try await load(store)
            Issue.record("a record from a newer format was accepted")
        } catch let error as JournalError {
            #expect(error.code == .unsupportedVersion)
            #expect(error.message.contains("newer"))
        }
        await store.close()
    }
}
