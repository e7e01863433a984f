import FillGuardCore
import Testing

/// A transient failure's backoff holds back a retry of the work that failed, never risk-reducing
/// work that became due since (rule 6: over-coverage lasts at most one round trip).
@Suite("Backoff and risk-reducing work")
struct BackoffTests {
    private static let sides: [Side] = [.buy, .sell]

    @Test("a stop whose resize up failed transiently is cancelled at once when the position goes flat", arguments: sides)
    func flatDuringBackoffCancelsAtOnce(side: Side) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(side)
        model.complete(modify, failing: .transient("throttled"))
        #expect(model.retries == [stop.id], "the resize up waits for its backoff")
        #expect(model.pull().isEmpty, "nothing goes before the backoff is over")
        // The target fills whole: flat, and a stop for 300 is still working at the broker.
        try model.fill("P1", .takeProfit, 600, at: side == .buy ? "110" : "90")
        #expect(model.snapshot("P1").netQuantity == .zero)
        let sent = model.pull()
        #expect(sent.contains { $0.orderID == stop.id && $0.kind == .cancel },
                "the stop's cancel went before the backoff's retry came due: \(sent)")
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).isEmpty, "nothing is left working at the broker")
        #expect(model.machine.isQuiescent)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a stop whose resize up failed transiently is reduced at once when the target fills partly below it", arguments: sides)
    func reduceDuringBackoffGoesAtOnce(side: Side) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(side)
        model.complete(modify, failing: .transient("throttled"))
        #expect(model.pull().isEmpty)
        // The target fills 450 of 600: net 150, while the stop still works for 300.
        try model.fill("P1", .takeProfit, 450, at: side == .buy ? "110" : "90")
        let sent = model.pull()
        let reduce = try #require(sent.first { $0.orderID == stop.id }, "the stop's reduce went at once: \(sent)")
        #expect(reduce.priority == .reduce)
        if case .modify(let request) = reduce.request { #expect(request.newQuantity == 150) } else { Issue.record("not a modify: \(reduce)") }
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 150)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("the position goes flat while the stop's resize up is out; the resize then fails: the cancel goes at once",
          arguments: [OperationFailure.transient("throttled"), .timedOut("no answer")])
    func flatWhileTheResizeIsOut(failure: OperationFailure) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy)
        try model.fill("P1", .takeProfit, 600, at: "110")
        #expect(model.snapshot("P1").netQuantity == .zero)
        let index = try #require(model.inFlight.firstIndex { $0.orderID == stop.id }, "\(modify)")
        model.complete(index, failing: failure)
        #expect(model.retries.isEmpty, "no backoff for a cancel that never failed")
        let sent = model.pull()
        #expect(sent.contains { $0.orderID == stop.id && $0.kind == .cancel }, "\(sent)")
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).isEmpty)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("the target fills partly while the stop's resize up is out; the resize then fails: the reduce goes at once, with tries of its own")
    func shrinkWhileTheResizeIsOut() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy)
        model.complete(modify, failing: .transient("throttled"))
        model.fireRetries()
        model.pull()
        // The resize up is out again (its second try); the target fills 450: net 150.
        try model.fill("P1", .takeProfit, 450, at: "110")
        let index = try #require(model.inFlight.firstIndex { $0.orderID == stop.id })
        model.complete(index, failing: .transient("throttled"))
        let reduce = try #require(model.pull().first { $0.orderID == stop.id }, "the reduce goes at once")
        #expect(reduce.priority == .reduce)
        let out = try #require(model.inFlight.firstIndex { $0.orderID == stop.id })
        model.complete(out, failing: .transient("throttled"))
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "its first failure is not its last try")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 150)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a failed reduce still waits out its backoff when a further reduce becomes due (no hammering)")
    func sameClassWorkKeepsTheBackoff() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy)
        model.complete(modify)
        // The target fills 300 of 600: the stop's reduce to 300 fails transiently.
        try model.fill("P1", .takeProfit, 300, at: "110")
        let reduce = try #require(model.pull().firstIndex { $0.orderID == stop.id })
        model.complete(model.inFlight.firstIndex { $0.orderID == stop.id } ?? reduce, failing: .transient("throttled"))
        #expect(model.retries == [stop.id])
        try model.fill("P1", .takeProfit, 100, at: "110")
        #expect(!model.pull().contains { $0.orderID == stop.id }, "a further reduce waits for the failed one's backoff")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 200)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }
}

/// Tries count per operation: a reduce after failed resizes up gets its own.
@Suite("Tries of risk-reducing work")
struct ReduceTriesTests {
    @Test("a resize up that failed twice does not use up the tries of the reduce that follows it")
    func reduceGetsItsOwnTries() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy)
        model.complete(modify, failing: .transient("throttled"))
        model.fireRetries()
        model.pull()
        let again = try #require(model.inFlight.firstIndex { $0.orderID == stop.id })
        model.complete(again, failing: .transient("throttled"))
        // Two tries of three used by the resize up; the target fills 450: the stop must come down to 150.
        try model.fill("P1", .takeProfit, 450, at: "110")
        model.pull()
        let reduce = try #require(model.inFlight.firstIndex { $0.orderID == stop.id })
        model.complete(reduce, failing: .transient("throttled"))
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "one failure of the reduce is not its last try: \(model.alerts)")
        #expect(model.retries.contains(stop.id))
        model.settle()
        #expect(model.live("P1", .stopLoss)?.id == stop.id && model.live("P1", .stopLoss)?.openQuantity == 150)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }
}
