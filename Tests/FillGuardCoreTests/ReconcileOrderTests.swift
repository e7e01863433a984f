import FillGuardCore
import Testing

/// Fills the broker made while FillGuard was down are applied in the order they happened, across
/// orders, not order by order.
@Suite("Reconciliation keeps the broker's order")
struct ReconcileOrderTests {
    @Test("fills of two orders made while down interleave as at the broker: the position never passes through flat")
    func missedFillsKeepTheBrokersOrder() throws {
        var model = ModelBroker("GLD")
        try model.open(.test(.buy, 100))
        model.settle()
        try model.fill("P1", .entry, 100, at: "100")
        model.settle()
        let target = try #require(model.live("P1", .takeProfit))
        let scaleIn = try #require(model.live("P1", .scaleIn(0)))
        // While down: the target fills 50, the scale-in 50, the target 50 (net 100, 50, 100, 50).
        let first = model.fillUnreported(target.id, 50, at: Price("110")!)
        let second = model.fillUnreported(scaleIn.id, 50, at: Price("98")!)
        let third = model.fillUnreported(target.id, 50, at: Price("110")!)
        let missed = [try #require(first), try #require(second), try #require(third)]
        let sorted = model.machine.reconcile(brokerExecutions: missed)
        #expect(sorted.missing.map(\.executionID) == missed.map(\.executionID), "applied as they happened: \(sorted.missing.map(\.executionID))")
        for report in sorted.missing { try model.deliver(report) }
        let position = model.snapshot("P1")
        #expect(position.netQuantity == 50)
        // 50 closed at 110 against 100, then 50 at 110 against the average (5,000 + 4,900) / 100 = 99.
        #expect(position.realizedPnL == Money("1050"))
        #expect(position.averagePrice == Price("99"))
        #expect(position.status == .open)
        #expect(model.live("P1", .scaleIn(0))?.id == scaleIn.id, "the scale-in still works for its other 50 (it is not cancelled as by a close)")
        model.settle()
        #expect(model.brokerLive("P1", .scaleIn(0)).count == 1)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 50)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }
}
