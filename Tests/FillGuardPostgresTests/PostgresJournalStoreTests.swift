import FillGuard
import FillGuardCore
import FillGuardJournalContract
@testable import FillGuardPostgres
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The server the tests use, from the variables `scripts/postgres-start` prints. Missing
/// variables fail the test that asked, with a message saying how to start a server: these tests
/// never skip silently.
enum TestServer {
    struct Missing: Error, CustomStringConvertible {
        let names: [String]
        var description: String {
            "the PostgreSQL journal tests need a server: \(names.joined(separator: ", ")) \(names.count == 1 ? "is" : "are") not set. Start one with: eval \"$(scripts/postgres-start)\""
        }
    }

    /// A configuration for a new namespace (unique per call, so runs and tests never collide).
    static func configuration(durability: JournalDurability = .fsync, label: String = "test") throws -> PostgresJournalStore.Configuration {
        let environment = ProcessInfo.processInfo.environment
        let names = ["FILLGUARD_PG_HOST", "FILLGUARD_PG_PORT", "FILLGUARD_PG_USER", "FILLGUARD_PG_DATABASE"]
        let missing = names.filter { (environment[$0] ?? "").isEmpty }
        guard missing.isEmpty else { throw Missing(names: missing) }
        guard let port = Int(environment["FILLGUARD_PG_PORT"]!) else {
            throw Missing(names: ["FILLGUARD_PG_PORT (a number)"])
        }
        return PostgresJournalStore.Configuration(
            host: environment["FILLGUARD_PG_HOST"]!, port: port, username: environment["FILLGUARD_PG_USER"]!,
            password: environment["FILLGUARD_PG_PASSWORD"], database: environment["FILLGUARD_PG_DATABASE"]!,
            namespace: "\(label)-\(UUID().uuidString.lowercased())", durability: durability)
    }

    /// The seed of a namespace lock's key (`PostgresJournalStore`'s, "FGNS").
    static let namespaceLockSeed: Int64 = 0x4647_4E53

    /// The first column of the first row of a query returning one integer, outside any store.
    static func integer(_ query: PostgresQuery, on configuration: PostgresJournalStore.Configuration) async throws -> Int64 {
        try await withConnection(to: configuration) { connection, logger in
            var value: Int64 = 0
            for try await number in try await connection.query(query, logger: logger).decode(Int64.self) { value = number }
            return value
        }
    }

    /// Runs one statement on the test server outside any store (to damage what tests need damaged).
    static func execute(_ query: PostgresQuery, on configuration: PostgresJournalStore.Configuration) async throws {
        try await withConnection(to: configuration) { connection, logger in _ = try await connection.query(query, logger: logger) }
    }

    /// Runs `body` on a connection of its own to the test server, closed after it.
    private static func withConnection<Result>(to configuration: PostgresJournalStore.Configuration,
                                               _ body: (PostgresConnection, Logger) async throws -> Result) async throws -> Result {
        let logger = Logger(label: "fillguard.tests.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let connection = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: configuration.host, port: configuration.port, username: configuration.username,
                password: configuration.password, database: configuration.database, tls: .disable),
            id: 1, logger: logger)
        let result: Result
        do {
            result = try await body(connection, logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return result
    }
}

@Suite("PostgreSQL journal store", .timeLimit(.minutes(5)))
struct PostgresJournalStoreTests {
    @Test("Postgres passes the journal contract (fsync)")
    func contractFsync() async throws {
        try await JournalStoreContract(newStorage: {
            let configuration = try TestServer.configuration(durability: .fsync, label: "contract")
            return { try await PostgresJournalStore(configuration: configuration) }
        }).run()
    }

    @Test("Postgres passes the journal contract (synchronous_commit off)")
    func contractOff() async throws {
        try await JournalStoreContract(newStorage: {
            let configuration = try TestServer.configuration(durability: .off, label: "contract-off")
            return { try await PostgresJournalStore(configuration: configuration) }
        }).run()
    }

    /// A role (or database, or server) whose default is `synchronous_commit = off` must not
    /// turn `fsync` durability into `off`: acknowledged batches would be lost to a crash of the
    /// server's machine. The store's session says what it needs itself.
    @Test("Postgres: fsync durability holds when the server's default is synchronous_commit = off, and off is off")
    func durabilityIsTheStoresOwn() async throws {
        let configuration = try TestServer.configuration()
        try await TestServer.execute("ALTER ROLE CURRENT_USER SET synchronous_commit = off", on: configuration)
        do {
            let store = try await PostgresJournalStore(configuration: configuration)
            #expect(try await store.sessionSetting("synchronous_commit") == "on")
            await store.close()
            // A stronger default is kept.
            try await TestServer.execute("ALTER ROLE CURRENT_USER SET synchronous_commit = remote_apply", on: configuration)
            var stronger = try TestServer.configuration()
            stronger.namespace += "-strong"
            let strong = try await PostgresJournalStore(configuration: stronger)
            #expect(try await strong.sessionSetting("synchronous_commit") == "remote_apply")
            // A killed FillGuard's lock is let go once the server finds its connection dead.
            #expect(try await strong.sessionSetting("tcp_keepalives_idle") == "30")
            await strong.close()
            var off = try TestServer.configuration(durability: .off)
            off.namespace += "-off"
            let unflushed = try await PostgresJournalStore(configuration: off)
            #expect(try await unflushed.sessionSetting("synchronous_commit") == "off")
            await unflushed.close()
        } catch {
            try await TestServer.execute("ALTER ROLE CURRENT_USER RESET synchronous_commit", on: configuration)
            throw error
        }
        try await TestServer.execute("ALTER ROLE CURRENT_USER RESET synchronous_commit", on: configuration)
    }

    @Test("Postgres namespaces keep two journals in one database apart")
    func namespacesAreSeparate() async throws {
        let first = try await PostgresJournalStore(configuration: TestServer.configuration(label: "ns-a"))
        let second = try await PostgresJournalStore(configuration: TestServer.configuration(label: "ns-b"))
        try await first.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 1])])
        try await second.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 2]),
                                 JournalRecord(symbol: "AAA", sequence: 2, kind: .input, payload: [1, 3])])
        try await second.append([JournalRecord(symbol: "AAA", sequence: 2, kind: .snapshot, payload: [1, 9])])
        let firstContents = try await first.load(notices: { _ in })
        let secondContents = try await second.load(notices: { _ in })
        #expect(firstContents.lanes["AAA"]?.records.map(\.payload) == [[1, 1]])
        #expect(firstContents.lanes["AAA"]?.snapshot == nil, "a snapshot in another namespace does not prune this one")
        #expect(secondContents.lanes["AAA"]?.snapshot?.payload == [1, 9])
        #expect(secondContents.lanes["AAA"]?.records.isEmpty == true)
        try await first.erase()
        #expect(try await first.load(notices: { _ in }).lanes.isEmpty)
        #expect(try await second.load(notices: { _ in }).lanes["AAA"]?.snapshot != nil, "erasing one namespace leaves the other")
        try await second.erase()
        await first.close()
        await second.close()
    }

    @Test("Postgres: one writer per namespace: a second store on it is refused until the first closes")
    func oneWriterPerNamespace() async throws {
        let configuration = try TestServer.configuration(label: "lock")
        let first = try await PostgresJournalStore(configuration: configuration)
        try await first.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 1])])
        do {
            let second = try await PostgresJournalStore(configuration: configuration)
            await second.close()
            Issue.record("a second store opened a namespace the first one holds")
        } catch {
            #expect(error.code == .inUse)
            #expect(error.message.contains(configuration.namespace))
            // The holder named, so a person can tell a live FillGuard from a dead one's session.
            #expect(error.message.contains("server process ") && error.message.contains(", client "), "\(error.message)")
        }
        // The refused open changed nothing: the holder still writes and reads its journal.
        try await first.append([JournalRecord(symbol: "AAA", sequence: 2, kind: .input, payload: [1, 2])])
        #expect(try await first.load(notices: { _ in }).lanes["AAA"]?.records.map(\.payload) == [[1, 1], [1, 2]])
        let other = try await PostgresJournalStore(configuration: TestServer.configuration(label: "lock-other"))
        await other.close()
        await first.close()
        let reopened = try await PostgresJournalStore(configuration: configuration)
        #expect(try await reopened.load(notices: { _ in }).lanes["AAA"]?.records.count == 2)

        // The holder's lock connection dies (as when its process is killed): the server frees the
        // lock, a new writer may take the namespace, and the old store refuses to write any more.
        try await TestServer.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_locks
            WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND granted AND objsubid = 1
              AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(\(configuration.namespace), \(TestServer.namespaceLockSeed))
            """, on: configuration)
        let next = try #require(await Self.openOnceFree(configuration), "the namespace stayed locked after its holder's connection died")
        do {
            try await reopened.append([JournalRecord(symbol: "AAA", sequence: 3, kind: .input, payload: [1, 3])])
            Issue.record("a store that lost its lock appended")
        } catch {
            #expect(error.code == .storage)
            #expect(error.message.contains("lost the lock"))
        }
        // Nor does it erase (the namespace is another store's now) or read.
        do {
            try await reopened.erase()
            Issue.record("a store that lost its lock erased the namespace")
        } catch {
            #expect(error.code == .storage && error.message.contains("lost the lock"), "\(error)")
        }
        await #expect(throws: JournalError.self) { _ = try await reopened.load(notices: { _ in }) }
        #expect(try await next.load(notices: { _ in }).lanes["AAA"]?.records.count == 2)
        await reopened.close()
        try await next.erase()
        await next.close()
    }

    @Test("Postgres: a store let go without close() closes its connections: no assertion, and the namespace is free again")
    func storeLetGoWithoutClose() async throws {
        let configuration = try TestServer.configuration(label: "dropped")
        do {
            let dropped = try await PostgresJournalStore(configuration: configuration)
            try await dropped.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 1])])
        }
        let next = try #require(await Self.openOnceFree(configuration), "the namespace stayed locked after its store was let go")
        #expect(try await next.load(notices: { _ in }).lanes["AAA"]?.records.count == 1)
        try await next.erase()
        await next.close()
    }

    /// Opens a store on the namespace once its lock is free: the server frees it when it has
    /// ended the holder's backend, so `inUse` is retried, a bounded number of times.
    private static func openOnceFree(_ configuration: PostgresJournalStore.Configuration) async throws -> PostgresJournalStore? {
        for _ in 0..<500 {
            do {
                return try await PostgresJournalStore(configuration: configuration)
            } catch {
                guard error.code == .inUse else { throw error }
            }
        }
        return nil
    }

    @Test("Postgres: two namespaces whose 32-bit hashes collide are separate journals; an open refused as in use writes nothing")
    func namespaceLocksAreSeparate() async throws {
        // hashtext() gives these two the same 32-bit value: one lock held the other.
        var first = try TestServer.configuration(label: "collide")
        var second = first
        first.namespace = "ns23643"
        second.namespace = "ns156407"
        let one = try await PostgresJournalStore(configuration: first)
        let two = try await PostgresJournalStore(configuration: second)
        try await one.erase()
        try await two.erase()
        await two.close()
        await one.close()

        // A namespace held (here by a bare connection's lock, as another store would): refused,
        // with nothing written for it, not even its format row.
        let held = try TestServer.configuration(label: "held")
        let logger = Logger(label: "fillguard.tests.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let holder = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(host: held.host, port: held.port, username: held.username,
                                                            password: held.password, database: held.database, tls: .disable),
            id: 9, logger: logger)
        try await holder.query("SELECT pg_advisory_lock(hashtextextended(\(held.namespace), \(TestServer.namespaceLockSeed)))", logger: logger)
        do {
            let store = try await PostgresJournalStore(configuration: held)
            await store.close()
            Issue.record("a held namespace was opened")
        } catch {
            #expect(error.code == .inUse, "\(error)")
        }
        try await holder.close()
        #expect(try await TestServer.integer("SELECT count(*) FROM fillguard_journal_meta WHERE namespace = \(held.namespace)", on: held) == 0)
    }

    /// The server process serving the namespace's lock connection (the store's only one).
    private static func lockBackend(of configuration: PostgresJournalStore.Configuration) async throws -> pid_t {
        let backend = try await TestServer.integer("""
            SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(\(configuration.namespace), \(TestServer.namespaceLockSeed))
            """, on: configuration)
        // Only ever a server process: kill(0, SIGSTOP) would stop this test process and its group.
        try #require(backend > 0 && backend != Int64(getpid()), "the lock's server process was not found (\(backend))")
        let command = (try? String(contentsOfFile: "/proc/\(backend)/cmdline", encoding: .utf8)) ?? ""
        try #require(command.hasPrefix("postgres"), "process \(backend) is not a PostgreSQL backend: \(command)")
        return pid_t(backend)
    }

    /// Runs `body` while the store's server process is stopped (SIGSTOP), as a hung server or a
    /// half-open connection would look; resumes it after `body`, and in 20 s at the latest even if
    /// `body` never returned (a failure guard: the server then answers, and the test fails
    /// instead of waiting for ever; a stopped backend left behind would hold its lock for ever).
    private static func whileServerHangs(_ configuration: PostgresJournalStore.Configuration, _ body: () async throws -> Void) async throws {
        let backend = try await lockBackend(of: configuration)
        #expect(kill(backend, SIGSTOP) == 0)
        defer { kill(backend, SIGCONT) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 20) { _ = kill(backend, SIGCONT) }
        try await body()
        #expect(kill(backend, SIGCONT) == 0)
    }

    /// Lets the tests with short answer timeouts run one at a time: the hung-open test holds the
    /// lock that every store's opening takes, which would time out another one's open.
    actor OneAtATime {
        private var held = false
        private var waiting: [CheckedContinuation<Void, Never>] = []

        /// Runs `body` once no other caller's body is running.
        func run(_ body: @Sendable () async throws -> Void) async throws {
            if held {
                await withCheckedContinuation { waiting.append($0) }
            } else {
                held = true
            }
            defer {
                if waiting.isEmpty { held = false } else { waiting.removeFirst().resume() }
            }
            try await body()
        }
    }

    /// The gate of the tests with short answer timeouts.
    static let shortTimeouts = OneAtATime()

    /// Opens a store whose short `answerTimeout` is meant for what the test does after the open:
    /// an open that a busy machine did not answer in time (the other tests, not gated, take the
    /// lock that serialises table creation in turn, on two cores shared with the rest of the
    /// suite) is tried again, up to three times. (A CI run once took more than 5 s.)
    static func openTryingAgainWhenBusy(_ configuration: PostgresJournalStore.Configuration) async throws -> PostgresJournalStore {
        var tries = 0
        while true {
            tries += 1
            do {
                return try await PostgresJournalStore(configuration: configuration)
            } catch {
                guard tries < 3, error.message.contains("while preparing its tables") else { throw error }
            }
        }
    }

    @Test("Postgres: a server that stops answering fails the append after writeTimeout instead of stalling for ever; nothing of it is stored")
    func hungServerFailsTheAppend() async throws {
        try await Self.shortTimeouts.run { try await Self.hungServerFailsTheAppend() }
    }

    private static func hungServerFailsTheAppend() async throws {
        var configuration = try TestServer.configuration(label: "hung")
        // Short, yet long enough for the first append, an fsync commit, on a busy machine.
        configuration.writeTimeout = .seconds(5)
        let store = try await PostgresJournalStore(configuration: configuration)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 1])])
        try await Self.whileServerHangs(configuration) {
            do {
                try await store.append([JournalRecord(symbol: "AAA", sequence: 2, kind: .input, payload: [1, 2])])
                Issue.record("an append to a stopped server returned")
            } catch let error as JournalError {
                #expect(error.code == .storage && error.message.contains("no answer"), "\(error)")
            }
        }
        await #expect(throws: JournalError.self) {
            try await store.append([JournalRecord(symbol: "AAA", sequence: 3, kind: .input, payload: [1, 3])])
        }
        await store.close()
        let next = try #require(await Self.openOnceFree(configuration), "the namespace stayed locked")
        #expect(try await next.load(notices: { _ in }).lanes["AAA"]?.records.map(\.sequence) == [1], "the unanswered batch was not stored")
        try await next.erase()
        await next.close()
    }

    /// A store call that reads or deletes, for the hung-server tests.
    enum UnansweredCall: String, CaseIterable, Sendable {
        case load, erase
    }

    @Test("Postgres: a server that stops answering fails a load or an erase after answerTimeout instead of stalling for ever; the journal is kept",
          arguments: UnansweredCall.allCases)
    func hungServerFailsLoadAndErase(_ call: UnansweredCall) async throws {
        try await Self.shortTimeouts.run { try await Self.hungServerFails(call) }
    }

    private static func hungServerFails(_ call: UnansweredCall) async throws {
        var configuration = try TestServer.configuration(label: "hung-\(call.rawValue)")
        // Short, yet long enough for a busy machine's open (the same configuration opens the
        // store; 2 s was once too short with both cores taken); under the 20 s safety resume.
        configuration.answerTimeout = .seconds(5)
        let store = try await Self.openTryingAgainWhenBusy(configuration)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 1])])
        try await Self.whileServerHangs(configuration) {
            do {
                switch call {
                case .load: _ = try await store.load(notices: { _ in })
                case .erase: try await store.erase()
                }
                Issue.record("a \(call.rawValue) on a stopped server returned")
            } catch let error as JournalError {
                let doing = call == .load ? "while loading" : "while erasing"
                #expect(error.code == .storage && error.message.contains("no answer") && error.message.contains(doing), "\(error)")
            }
        }
        // The store gave up its connection, and with it the namespace's lock: it does nothing more.
        await #expect(throws: JournalError.self) { _ = try await store.load(notices: { _ in }) }
        await #expect(throws: JournalError.self) {
            try await store.append([JournalRecord(symbol: "AAA", sequence: 2, kind: .input, payload: [1, 2])])
        }
        await store.close()
        configuration.answerTimeout = .seconds(60)
        let next = try #require(await Self.openOnceFree(configuration), "the namespace stayed locked")
        #expect(try await next.load(notices: { _ in }).lanes["AAA"]?.records.map(\.sequence) == [1], "the journal was kept whole")
        try await next.erase()
        await next.close()
    }

    @Test("Postgres: a load waiting on a server that stops answering ends as soon as its task is cancelled, not at answerTimeout")
    func cancelledLoadEndsAtOnce() async throws {
        try await Self.shortTimeouts.run { try await Self.cancelledLoadEndsAtOnce() }
    }

    private static func cancelledLoadEndsAtOnce() async throws {
        var configuration = try TestServer.configuration(label: "cancel-load")
        // Far beyond the safety resume: a load that waited on would end with the server's
        // answer, successfully, not with the cancellation's error.
        configuration.answerTimeout = .seconds(3_600)
        let store = try await PostgresJournalStore(configuration: configuration)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1, 1])])
        try await Self.whileServerHangs(configuration) {
            // Started at once, up to its wait for the server; then cancelled.
            let load = Task.immediate { () -> JournalError? in
                do throws(JournalError) {
                    _ = try await store.load(notices: { _ in })
                    return nil
                } catch {
                    return error
                }
            }
            load.cancel()
            let error = await load.value
            #expect(error?.code == .storage, "the cancelled load waited for the server's answer: \(String(describing: error))")
        }
        await store.close()
    }

    @Test("Postgres: opening a store that waits for ever on the server (another opener holds the tables' lock and hangs) fails after answerTimeout and leaves the namespace free")
    func hungOpenFails() async throws {
        try await Self.shortTimeouts.run { try await Self.hungOpenFails() }
    }

    private static func hungOpenFails() async throws {
        var configuration = try TestServer.configuration(label: "hung-open")
        // Short, yet long enough for a busy machine's open (the same configuration opens the
        // store; 2 s was once too short with both cores taken); under the 20 s safety resume.
        configuration.answerTimeout = .seconds(5)
        // Another process opening a store holds the lock that serialises table creation, and never
        // ends its transaction.
        let logger = Logger(label: "fillguard.tests.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let holder = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: configuration.host, port: configuration.port, username: configuration.username,
                password: configuration.password, database: configuration.database, tls: .disable),
            id: 9, logger: logger)
        do {
            try await holder.query("BEGIN", logger: logger)
            try await holder.query("SELECT pg_advisory_xact_lock(\(Self.schemaLock))", logger: logger)
            do {
                let store = try await PostgresJournalStore(configuration: configuration)
                await store.close()
                Issue.record("a store opened while its tables could not be prepared")
            } catch {
                #expect(error.code == .storage && error.message.contains("no answer") && error.message.contains("while preparing its tables"), "\(error)")
            }
            try await holder.query("ROLLBACK", logger: logger)
        } catch {
            try? await holder.close()
            throw error
        }
        try await holder.close()
        // The failed open gave the namespace's lock back: a store opens on it at once (with the
        // default timeout: the server may still be ending the failed open's session).
        configuration.answerTimeout = .seconds(60)
        let store = try #require(await Self.openOnceFree(configuration), "the namespace stayed locked")
        #expect(try await store.load(notices: { _ in }).lanes.isEmpty)
        try await store.erase()
        await store.close()
    }

    /// The advisory lock key that serialises table creation (`PostgresJournalStore`'s, "FGJN").
    static let schemaLock: Int64 = 0x4647_4A4E

    @Test("Postgres: a port that is no TCP port is refused, not wrapped round to another")
    func portOutOfRange() async throws {
        var configuration = try TestServer.configuration(label: "port")
        for port in [0, 70_000, -1] {
            configuration.port = port
            do {
                _ = try await PostgresJournalStore(configuration: configuration)
                Issue.record("port \(port) was used")
            } catch {
                #expect(error.code == .storage && error.message.contains("not a TCP port"), "\(error)")
            }
        }
    }

    @Test("Postgres: a snapshot's check covers its seq: a changed seq is corruption")
    func snapshotSequenceIsChecked() async throws {
        let configuration = try TestServer.configuration(label: "snapseq")
        let store = try await PostgresJournalStore(configuration: configuration)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 2 << 20, kind: .snapshot, payload: [1, 9])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 3 << 20, kind: .input, payload: [1, 3])])
        #expect(try await store.load(notices: { _ in }).lanes["AAA"]?.records.map(\.sequence) == [3 << 20])
        try await TestServer.execute(
            "UPDATE fillguard_journal_snapshots SET seq = seq + \(Int64(2 << 20)) WHERE namespace = \(configuration.namespace)", on: configuration)
        do {
            _ = try await store.load(notices: { _ in })
            Issue.record("a snapshot whose seq changed was trusted")
        } catch {
            #expect(error.code == .corrupted && error.message.contains("snapshot of AAA fails its checksum"), "\(error)")
        }
        try await store.erase()
        await store.close()
    }

    @Test("Postgres: a record whose seq or kind was changed is corruption: an intent moved to another input, an input made a snapshot (never skipped unseen)",
          arguments: ["seq", "kind"])
    func recordHeaderDamageIsFound(_ damage: String) async throws {
        let configuration = try TestServer.configuration(label: "recseq")
        let namespace = configuration.namespace
        let store = try await PostgresJournalStore(configuration: configuration)
        let records = [UInt64(1 << 20), 2 << 20, 2 << 20 | 1, 3 << 20, 4 << 20].enumerated().map { index, sequence in
            JournalRecord(symbol: "AAA", sequence: sequence, kind: sequence & 0xFFFFF == 0 ? .input : .intent, payload: [1, UInt8(index)])
        }
        try await store.append(records)
        await store.close()
        if damage == "seq" {
            // The intent of input 2 made an intent of input 3: sorted by seq, the order would still read as whole.
            try await TestServer.execute(
                "UPDATE fillguard_journal_records SET seq = \(Int64(3 << 20 | 1)) WHERE namespace = \(namespace) AND seq = \(Int64(2 << 20 | 1))",
                on: configuration)
        } else {
            // Input 2 made a snapshot: stores keep snapshots apart, so it is damage.
            try await TestServer.execute(
                "UPDATE fillguard_journal_records SET kind = 3 WHERE namespace = \(namespace) AND seq = \(Int64(2 << 20))", on: configuration)
        }
        let reopened = try await PostgresJournalStore(configuration: configuration)
        do {
            let contents = try await reopened.load(notices: { _ in })
            Issue.record("a damaged \(damage) was trusted: \(contents.lanes["AAA"]?.records.map(\.sequence) ?? [])")
        } catch {
            #expect(error.code == .corrupted, "\(error)")
        }
        try await reopened.erase()
        await reopened.close()
    }

    @Test("Postgres refuses a namespace written by a newer FillGuard")
    func newerFormatIsRefused() async throws {
        let configuration = try TestServer.configuration(label: "newer")
        let store = try await PostgresJournalStore(configuration: configuration)
        await store.close()
        try await TestServer.execute(
            "UPDATE fillguard_journal_meta SET value = '99' WHERE namespace = \(configuration.namespace) AND key = 'format'",
            on: configuration)
        do {
            _ = try await PostgresJournalStore(configuration: configuration)
            Issue.record("a namespace of format 99 was opened")
        } catch {
            #expect(error.code == .unsupportedVersion)
            #expect(error.message.contains("newer"))
            #expect(error.message.contains(configuration.namespace))
        }
    }

    @Test("Postgres finds a record missing from the middle of a symbol's journal, even the last intent of an input; the chain holds across snapshots and reopening")
    func missingMiddleRecord() async throws {
        let configuration = try TestServer.configuration(label: "chain")
        let store = try await PostgresJournalStore(configuration: configuration)
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20, kind: .input, payload: [1, 1])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 1 << 20 | 1, kind: .intent, payload: [1, 2]),
                                JournalRecord(symbol: "BBB", sequence: 1 << 20, kind: .input, payload: [1, 3])])
        try await store.append([JournalRecord(symbol: "AAA", sequence: 2 << 20, kind: .input, payload: [1, 4]),
                                JournalRecord(symbol: "BBB", sequence: 1 << 20, kind: .snapshot, payload: [1, 9])])
        await store.close()
        // Intact: it loads, and a new store carries the chain on.
        let again = try await PostgresJournalStore(configuration: configuration)
        #expect(try await again.load(notices: { _ in }).lanes["AAA"]?.records.count == 3)
        try await again.append([JournalRecord(symbol: "BBB", sequence: 2 << 20, kind: .input, payload: [1, 5]),
                                JournalRecord(symbol: "AAA", sequence: 3 << 20, kind: .input, payload: [1, 6])])
        await again.close()
        let check = try await PostgresJournalStore(configuration: configuration)
        let contents = try await check.load(notices: { _ in })
        #expect(contents.lanes["AAA"]?.records.count == 4)
        #expect(contents.lanes["BBB"]?.records.count == 1)
        await check.close()

        try await TestServer.execute(
            "DELETE FROM fillguard_journal_records WHERE namespace = \(configuration.namespace) AND symbol = 'AAA' AND seq = \(Int64(1 << 20 | 1))",
            on: configuration)
        let damaged = try await PostgresJournalStore(configuration: configuration)
        do {
            _ = try await damaged.load(notices: { _ in })
            Issue.record("a journal with a record gone from the middle loaded")
        } catch {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("is gone"), "\(error)")
        }
        await damaged.close()
    }

    @Test("Postgres: appends after close fail with closed")
    func appendAfterClose() async throws {
        let store = try await PostgresJournalStore(configuration: TestServer.configuration(label: "closed"))
        await store.close()
        do {
            try await store.append([JournalRecord(symbol: "AAA", sequence: 1, kind: .input, payload: [1])])
            Issue.record("an append after close succeeded")
        } catch {
            #expect(error.code == .closed)
        }
        await store.close() // closing twice is harmless
    }

    @Test("Postgres: an unreachable server is a storage error naming host, port and database")
    func unreachableServer() async throws {
        var configuration = try TestServer.configuration(label: "unreachable")
        configuration.port = try Self.closedPort()
        do {
            _ = try await PostgresJournalStore(configuration: configuration)
            Issue.record("a store opened on a closed port")
        } catch {
            #expect(error.code == .storage)
            #expect(error.message.contains("\(configuration.host):\(configuration.port)"))
            #expect(error.message.contains(configuration.database))
            #expect(error.message.contains("cannot connect"))
        }
    }

    @Test("Postgres: a timeout of 'for ever' (.seconds(Int64.max)) is brought down to Duration.longestWait, at init and when set (it trapped at connect)")
    func hugeTimeoutsAreBroughtIntoRange() {
        let forever = Duration.seconds(Int64.max)
        var configuration = PostgresJournalStore.Configuration(host: "localhost", username: "u", database: "d", namespace: "n",
                                                               connectTimeout: forever, writeTimeout: forever, answerTimeout: forever)
        #expect(configuration.connectTimeout == .longestWait && configuration.writeTimeout == .longestWait && configuration.answerTimeout == .longestWait)
        configuration.writeTimeout = forever
        configuration.answerTimeout = .seconds(-5)
        #expect(configuration.writeTimeout == .longestWait && configuration.answerTimeout == .zero)
    }

    @Test("Postgres: a bad namespace is refused before connecting")
    func badNamespace() async throws {
        var configuration = try TestServer.configuration(label: "bad")
        for namespace in ["", "a b", "x;DROP TABLE y", String(repeating: "n", count: 64)] {
            configuration.namespace = namespace
            await #expect(throws: JournalError.self) { _ = try await PostgresJournalStore(configuration: configuration) }
        }
    }

    @Test("Postgres: a batch is atomic: a failing statement stores none of it")
    func batchIsAtomic() async throws {
        let configuration = try TestServer.configuration(label: "atomic")
        let store = try await PostgresJournalStore(configuration: configuration)
        try await store.append([JournalRecord(symbol: "ATM", sequence: 1, kind: .input, payload: [1, 1])])
        // A symbol with a NUL byte is refused by PostgreSQL's text type, after the first insert ran.
        let bad = JournalRecord(symbol: Symbol("BAD\u{0}"), sequence: 3, kind: .snapshot, payload: [1, 3])
        await #expect(throws: JournalError.self) {
            try await store.append([JournalRecord(symbol: "ATM", sequence: 2, kind: .input, payload: [1, 2]), bad])
        }
        let contents = try await store.load(notices: { _ in })
        #expect(contents.lanes["ATM"]?.records.map(\.sequence) == [1])
        // The pool's connection is usable again after the rolled-back transaction.
        try await store.append([JournalRecord(symbol: "ATM", sequence: 2, kind: .input, payload: [1, 2])])
        #expect(try await store.load(notices: { _ in }).lanes["ATM"]?.records.map(\.sequence) == [1, 2])
        try await store.erase()
        await store.close()
    }

    @Test("Postgres: append throughput is measured")
    func throughputIsMeasured() async throws {
        let configuration = try TestServer.configuration(label: "throughput")
        let result = try await measureAppendThroughput(configuration: configuration, batchSize: 100, batches: 3, runs: 3)
        #expect(result.runs.count == 3)
        #expect(result.medianRecordsPerSecond > 0)
    }

    /// A loopback port nothing listens on (bound, then released).
    private static func closedPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EBADF) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(descriptor, socketAddress, length) == 0 && getsockname(descriptor, socketAddress, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
