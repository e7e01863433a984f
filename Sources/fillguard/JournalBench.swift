import FillGuard
import FillGuardCore
import FillGuardSQLite
import Foundation
import Logging

/// Whole-system figures for the journal: durable fills per second through a `FillManager` with
/// a SQLite journal (group commit), and the time to recover from the journal afterwards.
struct JournalBench {
    /// One run's figures.
    struct Result {
        var fills: Int
        var seconds: Double
        var records: Int
        var batches: Int
        var recoverySeconds: Double
        var recordsReplayed: Int
        var snapshotsLoaded: Int
        var fillsPerSecond: Double { Double(fills) / seconds }
    }

    var symbols: Int
    var fills: Int
    var durability: JournalDurability
    var snapshotInterval: Int
    var directory: String

    /// (Recovery time is the rebuild: reading the journal and replaying it into state. The
    /// broker here knows nothing, so reconciliation afterwards is not representative.)
    /// Opens a bracket per symbol with a large scale-in, then feeds `fills` one-share fills of the
    /// scale-ins round-robin (each resizes both protective orders: 1 input, 2 intents and 2
    /// acknowledgements journaled), waits until all are applied, then recovers a new manager
    /// from the same file.
    func run() async throws -> Result {
        let path = directory + "/bench-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var logger = Logger(label: "fillguard.bench")
        logger.logLevel = .critical
        let broker = InstantBroker()
        let journal = Journal(store: try SQLiteJournalStore(path: path, durability: durability), snapshotInterval: snapshotInterval)
        let manager = FillManager(broker: broker, journal: journal, configuration: FillGuardConfiguration(rearmDelay: nil), logger: logger)
        let names = (0..<symbols).map { Symbol("B\($0)") }
        var scaleIns: [Symbol: OrderID] = [:]
        for symbol in names {
            let id = PositionID("\(symbol)-1")
            try await manager.open(BracketSpec(positionID: id, symbol: symbol, side: .buy, quantity: 1, entryType: .market,
                                               stopLoss: Price("90"), takeProfit: Price("110"),
                                               scaleIns: [BracketSpec.ScaleIn(quantity: Quantity(10_000_000), type: .limit(Price("99")!))]))
        }
        await manager.waitUntilIdle()
        for symbol in names {
            let position = await manager.position(PositionID("\(symbol)-1"))
            let entry = position?.orders.first { $0.role == .entry }
            scaleIns[symbol] = position?.orders.first { $0.role == .scaleIn(0) }?.id
            if let entry {
                manager.receive(.execution(ExecutionReport(executionID: ExecutionID("E-\(symbol)"), orderID: entry.id, symbol: symbol, side: .buy,
                                                           lastQuantity: 1, lastPrice: Price("100")!)))
            }
        }
        await manager.waitUntilIdle()
        let before = manager.statistics.fills
        let written = journal.statistics
        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<fills {
            let symbol = names[index % names.count]
            guard let order = scaleIns[symbol] else { continue }
            manager.receive(.execution(ExecutionReport(executionID: ExecutionID("F\(index)"), orderID: order, symbol: symbol, side: .buy,
                                                       lastQuantity: 1, lastPrice: Price("99")!)))
        }
        await manager.waitUntilIdle()
        let elapsed = clock.now - start
        let applied = manager.statistics.fills - before
        let after = journal.statistics
        await journal.close()

        let reopened = Journal(store: try SQLiteJournalStore(path: path, durability: durability), snapshotInterval: snapshotInterval)
        let restarted = FillManager(broker: InstantBroker(), journal: reopened, configuration: FillGuardConfiguration(rearmDelay: nil), logger: logger)
        let report = try await restarted.recover()
        await restarted.waitUntilIdle()
        await reopened.close()
        return Result(fills: applied, seconds: elapsed.seconds, records: after.records - written.records, batches: after.batches - written.batches,
                      recoverySeconds: report.rebuildDuration.seconds, recordsReplayed: report.recordsReplayed, snapshotsLoaded: report.snapshotsLoaded)
    }
}

/// A broker that accepts every request at once and reports nothing: the runtime's own cost.
struct InstantBroker: Broker, BrokerQueries {
    var capabilities: BrokerCapabilities { BrokerCapabilities(nativeModify: true) }
    func submit(_ request: NewOrderRequest) async throws(BrokerError) {}
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {}
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {}
    func events() -> AsyncStream<BrokerEvent> { AsyncStream { $0.finish() } }
    func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState? { nil }
    func openOrders() async throws(BrokerError) -> [BrokerOrderState] { [] }
    func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport] { [] }
    func positions() async throws(BrokerError) -> [Symbol: Quantity] { [:] }
}

extension Duration {
    /// As a floating-point number of seconds (for reporting rates only).
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
