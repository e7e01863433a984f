import FillGuardCore
import Testing

/// A cancel the position stopped wanting while it was out, then refused by the broker, leaves the
/// order as it was: live and wanted, not failed.
@Suite("Refused cancels no longer wanted")
struct UnwantedCancelRefusedTests {
    @Test("flat, the stop's cancel goes; a late scale-in fill reopens the position; the broker refuses the cancel: the stop is resized, no alert")
    func refusedCancelOfAWantedStop() throws {
        var model = ModelBroker("GLD")
        try model.open(.test(.buy, 100))
        model.settle()
        try model.fill("P1", .entry, 100, at: "100")
        model.settle()
        let stop = try #require(model.live("P1", .stopLoss))
        try model.fill("P1", .takeProfit, 100, at: "110")
        let cancels = model.pull()
        #expect(cancels.contains { $0.orderID == stop.id && $0.kind == .cancel }, "\(cancels)")
        // The scale-in fills 50 before its own cancel arrives: long 50 again.
        try model.fill("P1", .scaleIn(0), 50, at: "98")
        #expect(model.snapshot("P1").netQuantity == 50)
        let index = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .cancel })
        let alertsBefore = model.alerts.count
        model.complete(index, failing: .permanent("order is being executed"))
        #expect(model.alerts.count == alertsBefore, "nothing the role needs failed: \(model.alerts.suffix(from: alertsBefore))")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.id == stop.id)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 50)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }
}
