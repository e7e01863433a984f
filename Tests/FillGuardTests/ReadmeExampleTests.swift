import FillGuard
import FillGuardCore
import FillGuardSimulator
import Testing

@Suite("README")
struct ReadmeExampleTests {
    @Test("the library example in the README works as written")
    func libraryExample() async throws {
        let exchange = SimulatedExchange(configuration: SimulatorConfiguration(seed: 7), symbols: ["GLD": Price("248.00")!])
        let manager = FillManager(broker: exchange)
        let feed = Task { await manager.run() }
        let alerts = manager.alerts()

        try await manager.open(BracketSpec(
            positionID: "P1", symbol: "GLD", side: .buy, quantity: Quantity("300")!, entryType: .market,
            stopLoss: Price("245.00"), takeProfit: Price("250.00"),
            scaleIns: [.init(quantity: Quantity("300")!, type: .limit(Price("246.00")!))]))

        // The market entry fills at once at the exchange; wait for its report to be applied.
        await exchange.settle(manager)
        let position = try #require(await manager.position("P1"))
        // The exchange may split the market fill (the rest fills on later price ticks).
        #expect(position.netQuantity.isPositive && position.netQuantity <= 300)
        #expect(position.netQuantity == exchange.netPosition(of: "GLD"))
        #expect(position.liveOrder(.stopLoss)?.openQuantity == position.netQuantity)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == position.netQuantity)
        feed.cancel()
        manager.finishSubscriptions()
        var alertCount = 0
        for await _ in alerts { alertCount += 1 }
        #expect(alertCount == 0)
    }
}
