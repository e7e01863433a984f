import FillGuard
import FillGuardCore
import FillGuardSimulator
import Testing

@Suite("README")
struct ReadmeExampleTests {
    @Test("the library example in the README works as written")
    func libraryExample() async throws {
        var market = SimulatorConfiguration(seed: 7)
        market.partialFillAbove = nil
        let exchange = SimulatedExchange(configuration: market, symbols: ["GLD": Price("248.00")!])
        let manager = FillManager(broker: exchange)
        let feed = Task { await manager.run() }
        let alerts = manager.alerts()

        try await manager.open(BracketSpec(
            positionID: "P1", symbol: "GLD", side: .buy, quantity: Quantity("300")!, entryType: .market,
            stopLoss: Price("245.00"), takeProfit: Price("250.00"),
            scaleIns: [.init(quantity: Quantity("300")!, type: .limit(Price("246.00")!))]))

        await exchange.settle(manager)
        let position = await manager.position("P1")
        // What the README's print shows: "300 300", every time.
        #expect("\(position?.netQuantity ?? 0) \(position?.liveOrder(.stopLoss)?.openQuantity ?? 0)" == "300 300")
        #expect(position?.liveOrder(.takeProfit)?.openQuantity == 300)
        #expect(exchange.netPosition(of: "GLD") == 300)
        feed.cancel()
        manager.finishSubscriptions()
        var alertCount = 0
        for await _ in alerts { alertCount += 1 }
        #expect(alertCount == 0)
    }
}
