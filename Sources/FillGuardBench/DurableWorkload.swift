import FillGuard
import FillGuardCore

/// A journal store the `durable` workload can measure: how to open it at a location, where a
/// run's journal goes, and how to remove it afterwards. The CLI supplies SQLite and, when a
/// server is configured, PostgreSQL.
public struct DurableStore: Sendable {
    /// The store's name in the results ("sqlite", "postgres").
    public var name: String
    /// When an appended batch counts as written.
    public var durability: JournalDurability
    /// A fresh location for one run (a file path, a namespace).
    public var newLocation: @Sendable () -> String
    /// Opens (or reopens, after a restart) the store at a location.
    public var open: @Sendable (String) async throws(JournalError) -> any JournalStore
    /// Removes what a run left at a location.
    public var remove: @Sendable (String) async -> Void

    /// A store description.
    public init(name: String, durability: JournalDurability, newLocation: @escaping @Sendable () -> String,
                open: @escaping @Sendable (String) async throws(JournalError) -> any JournalStore,
                remove: @escaping @Sendable (String) async -> Void) {
        self.name = name
        self.durability = durability
        self.newLocation = newLocation
        self.open = open
        self.remove = remove
    }
}

/// Durable fills/s: the `throughput` workload's scale-in mix through a `FillManager` whose
/// journal is on a real store (group commit), then the time a new manager takes to rebuild
/// its state from that journal.
public enum DurableWorkload {
    /// Feeds `fills` one-share scale-in fills round-robin over `symbols` (each journals its input,
    /// two intents and two acknowledgements before and after it resizes both protective orders),
    /// waits until every one is applied, closes the journal, and recovers a new manager from it.
    public static func run(store: DurableStore, symbols: Int, fills: Int, snapshotInterval: Int,
                           window: Int = 16_384) async -> Measurement {
        let location = store.newLocation()
        let parameters = ["store": store.name, "durability": store.durability.rawValue, "symbols": "\(symbols)", "fills": "\(fills)",
                          "mix": Mix.scalein.rawValue, "snapshotInterval": "\(snapshotInterval)"]
        do {
            let measurement = try await measure(store: store, location: location, symbols: symbols, fills: fills,
                                                snapshotInterval: snapshotInterval, window: window, parameters: parameters)
            await store.remove(location)
            return measurement
        } catch {
            await store.remove(location)
            return Measurement(workload: "durable", implementation: "fillguard", parameters: parameters, metrics: [:],
                               notes: ["the \(store.name) journal failed: \(error)"])
        }
    }

    private static func measure(store: DurableStore, location: String, symbols: Int, fills: Int, snapshotInterval: Int,
                                window: Int, parameters: [String: String]) async throws(JournalError) -> Measurement {
        let journal = Journal(store: try await store.open(location), snapshotInterval: snapshotInterval)
        let broker = BenchBroker()
        let manager = FillManager(broker: broker, journal: journal, configuration: FillGuardConfiguration(rearmDelay: nil),
                                  logger: BenchUniverse.quietLogger)
        _ = try await manager.recover() // a new journal: nothing to rebuild, but inputs wait for it
        let perSymbol = (fills + symbols - 1) / symbols
        let universe = await BenchUniverse.setUp(manager, symbols: symbols, scaleInShares: perSymbol + 1)
        let startFills = manager.statistics.fills
        let written = journal.statistics
        let cpuStart = BenchClock.processCPU()
        let start = BenchClock.now()
        let books = universe.books
        await FeedThread.run(name: "bench-durable-feed") { () -> Void in
            for sent in 0..<fills {
                let book = books[sent % symbols]
                manager.receive(BenchUniverse.fill(sent, order: book.scaleIn, symbol: book.symbol, side: .buy, shares: 1))
                if sent & 1023 == 1023 {
                    // Backpressure for the benchmark only: keep at most `window` reports queued.
                    while sent + 1 - (manager.statistics.fills - startFills) > window, manager.journalFailure == nil {
                        BenchClock.backOff()
                    }
                }
            }
        }
        await manager.waitUntilIdle()
        let elapsed = BenchClock.now() - start
        let cpu = BenchClock.processCPU() - cpuStart
        let applied = manager.statistics.fills - startFills
        let after = journal.statistics
        let failure = manager.journalFailure
        let violations = symbols <= 10_000 ? await manager.invariantViolations().count : 0
        await journal.close()
        if let failure { throw failure }

        let reopened = Journal(store: try await store.open(location), snapshotInterval: snapshotInterval)
        let restarted = FillManager(broker: BenchBroker(), journal: reopened, configuration: FillGuardConfiguration(rearmDelay: nil),
                                    logger: BenchUniverse.quietLogger)
        let report = try await restarted.recover()
        await restarted.waitUntilIdle()
        var recoveredNet = Quantity.zero
        for position in await restarted.positions() { recoveredNet = recoveredNet + position.netQuantity }
        await reopened.close()

        let records = after.records - written.records
        let batches = after.batches - written.batches
        let expectedNet = Quantity(symbols * BenchUniverse.baseShares + applied)
        var notes: [String] = []
        if applied != fills { notes.append("\(fills - applied) fills were not applied: the workload is wrong") }
        if recoveredNet != expectedNet { notes.append("recovered net \(recoveredNet), expected \(expectedNet): recovery is wrong") }
        return Measurement(
            workload: "durable", implementation: "fillguard", parameters: parameters,
            metrics: [
                "fills": Double(applied),
                "fillsPerSecond": Double(applied) / FillGuardWorkloads.seconds(elapsed),
                "cpuMicrosPerFill": Double(cpu) / 1_000 / Double(max(1, applied)),
                "recordsWritten": Double(records),
                "recordsPerCommit": batches == 0 ? 0 : Double(records) / Double(batches),
                "recoverySeconds": FillGuardWorkloads.seconds(BenchClock.nanos(report.rebuildDuration)),
                "recordsReplayed": Double(report.recordsReplayed),
                "snapshotsLoaded": Double(report.snapshotsLoaded),
                "violations": Double(violations + (recoveredNet == expectedNet ? 0 : 1)),
            ],
            notes: notes)
    }
}
