import FillGuard
import FillGuardCore
import FillGuardSimulator
import FillGuardSQLite
import Testing

@Suite("README: the journal example", .timeLimit(.minutes(5)))
struct ReadmeJournalExampleTests {
    @Test("journal, recover, run, shutdown as the README writes them; a restart on the same file finds the position")
    func journalExample() async throws {
        let path = try temporaryDirectory() + "/fillguard.sqlite"
        let exchange = SimulatedExchange(configuration: SimulatorConfiguration(seed: 7), symbols: ["GLD": Price("248.00")!])
        var netAtShutdown = Quantity.zero
        do {
            let store = try SQLiteJournalStore(path: path, durability: .fsync)
            let manager = FillManager(broker: exchange, journal: Journal(store: store), logger: .quiet)
            let events = exchange.events()
            let report = try await manager.recover()
            #expect(report.corrections.isEmpty && report.positions == 0)
            let feed = Task { await manager.run(events) }
            try await manager.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market,
                                               stopLoss: Price("245.00"), takeProfit: Price("250.00")))
            await exchange.settle(manager)
            netAtShutdown = try #require(await manager.position("P1")).netQuantity
            #expect(await manager.shutdown())
            feed.cancel()
        }
        // The shutdown closed the journal: another process (here, another manager) may open it.
        let store = try SQLiteJournalStore(path: path, durability: .fsync, mode: .existingJournal)
        let manager = FillManager(broker: exchange, journal: Journal(store: store), logger: .quiet)
        let events = exchange.events()
        let report = try await manager.recover()
        let feed = Task { await manager.run(events) }
        #expect(report.positions == 1)
        #expect(!report.corrections.contains { $0.kind == .positionMismatch }, "\(report.corrections)")
        await exchange.settle(manager)
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == netAtShutdown && netAtShutdown == exchange.netPosition(of: "GLD"))
        #expect(position.liveOrder(.stopLoss)?.openQuantity == position.netQuantity)
        #expect(await manager.shutdown())
        feed.cancel()
    }
}
