import FillGuardCore
import Testing

/// A protective order the broker may hold larger than the position, and one the broker keeps
/// ending on its own: rule 6 (never over-sell, never left without cover longer than needed)
/// and a bounded pace of new orders.
@Suite("Protective ends and failed resizes")
struct ProtectiveEndsAndFailedResizesTests {
    enum LastFailure: String, CaseIterable, Sendable { case refused, retriesUsedUp }

    /// Long 300; a scale-in fill makes it 600 and the stop's modify to 600 times out after the
    /// broker applied it; the target then fills 300 (net 300) and the stop's resize back down
    /// fails for good. The broker may hold the stop at 600, twice the position: it is cancelled
    /// and replaced, as for any protective order whose resize down failed.
    @Test("a stop that may hold a timed-out increase is cancelled and replaced when its resize down fails for good",
          arguments: LastFailure.allCases)
    func timedOutIncreaseThenFailedReduction(last: LastFailure) throws {
        var (model, stop, stopModify) = try ModelBroker.stopResizeInFlight(answeringTheTarget: false)
        model.complete(stopModify, failing: .timedOut("no answer"), applied: true)
        #expect(model.truth[stop.id]?.quantity == 600)
        let targetModify = try #require(model.inFlight.firstIndex { $0.role == .takeProfit && $0.kind == .modify })
        model.complete(targetModify)
        try model.fill("P1", .takeProfit, 300, at: "110")
        #expect(model.snapshot("P1").netQuantity == 300)
        // The settling modify of the stop (to 300) brings down what the broker may hold: it is
        // risk-reducing work.
        model.fireRetries()
        let retried = model.pull()
        #expect(retried.first { $0.orderID == stop.id }?.priority == .reduce)
        let retry = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
        switch last {
        case .refused:
            model.complete(retry, failing: .permanent("order pending replace"))
        case .retriesUsedUp:
            // The reduce is other work than the increase that timed out: it has tries of its own (3).
            model.complete(retry, failing: .transient("connection down"))
            for _ in 0..<2 {
                #expect(!model.alerts.contains { $0.kind == .operationFailed }, "the reduce still has tries")
                model.fireRetries()
                model.pull()
                let again = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
                model.complete(again, failing: .transient("connection down"))
            }
        }
        #expect(model.alerts.contains { $0.kind == .operationFailed && $0.message.contains("covers 600 of 300, so it is cancelled and replaced") },
                "\(model.alerts.map(\.message))")
        model.settle()
        let stops = model.brokerLive("P1", .stopLoss)
        #expect(model.truth[stop.id]?.live == false, "the stop that may hold 600 is cancelled at the broker")
        #expect(stops.map(\.1.open) == [300], "one stop of the position's 300 at the broker: \(stops.map(\.1.open))")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    /// Long 300; a scale-in makes it 600 and the stop's modify to 600 goes out. The broker applies
    /// it, the stop fills 400 and the exchange cancels the rest; the reports come in another
    /// order: the cancel, then the modify's acknowledgement, then the fill. The fill is real and
    /// within the size the broker accepted: it counts (it was refused as an overfill of 300,
    /// leaving FillGuard at 600 against the broker's 200).
    @Test("a modify acknowledged after the broker ended the order still widens what its late fills may reach",
          arguments: [false, true])
    func modifyAnsweredAfterTheOrderEnded(timedOut: Bool) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight()
        let operation = model.inFlight.remove(at: modify)
        model.truth[stop.id]?.quantity = 600
        model.truth[stop.id]?.filled = 400
        model.truth[stop.id]?.live = false
        var actions: [SymbolStateMachine.Action] = []
        try model.machine.apply(OrderStatusReport(orderID: stop.id, symbol: "GLD", outcome: .cancelled, reason: "exchange cancel"),
                                emitting: &actions)
        if timedOut {
            // No answer at all: the broker may have applied it.
            model.machine.operationFailed(operation, .timedOut("no answer"), emitting: &actions)
        } else {
            model.machine.operationSucceeded(operation, emitting: &actions)
        }
        let fill = ExecutionReport(executionID: "GLD-late", orderID: stop.id, symbol: "GLD", side: .sell,
                                   lastQuantity: 400, lastPrice: Price("95")!, cumulativeQuantity: 400, leavesQuantity: .zero)
        try model.deliver(fill)
        #expect(model.snapshot("P1").netQuantity == 200)
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).map(\.1.open) == [200])
        #expect(model.brokerLive("P1", .takeProfit).map(\.1.open) == [200])
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    /// The broker takes each new stop and then ends it on its own (a late reject: a price band,
    /// a closed market). The first end gets a new stop at once; another before any fill waits
    /// for the re-arm, as a refused submit does, instead of a new order at the broker's pace.
    @Test("a broker that keeps ending the stop gets a new one at once the first time, then after each re-arm")
    func repeatedEndsWaitForTheRearm() throws {
        var model = ModelBroker("GLD")
        try model.open(.test(.buy))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        func endStop(_ model: inout ModelBroker) throws -> [SymbolStateMachine.Action] {
            let stop = try #require(model.live("P1", .stopLoss))
            model.truth[stop.id]?.live = false
            var actions: [SymbolStateMachine.Action] = []
            try model.machine.apply(OrderStatusReport(orderID: stop.id, symbol: "GLD", outcome: .rejected, reason: "price band"), emitting: &actions)
            return actions
        }
        func stopSubmits(_ model: ModelBroker) -> Int { model.sent.filter { $0.role == .stopLoss && $0.kind == .submit }.count }
        func rearms(_ actions: [SymbolStateMachine.Action]) -> Int {
            actions.filter { if case .scheduleRearm = $0 { return true } else { return false } }.count
        }
        #expect(stopSubmits(model) == 1)
        // First end: re-protected at once.
        #expect(rearms(try endStop(&model)) == 0)
        model.settle()
        #expect(stopSubmits(model) == 2)
        #expect(model.brokerLive("P1", .stopLoss).map(\.1.open) == [300])
        // Second end with no fill between: the role waits for the re-arm.
        let second = try endStop(&model)
        #expect(rearms(second) == 1)
        let said = second.compactMap { if case .alert(let alert) = $0 { return alert.message } else { return nil } }
        #expect(said.count == 1 && said[0].hasSuffix("again since the last fill; re-protecting 300 after the re-arm"), "\(said)")
        model.settle()
        #expect(stopSubmits(model) == 2, "no new stop before the re-arm")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty, "a role waiting for its re-arm is not a violation")
        #expect(model.machine.positionsAwaitingRearm == ["P1"])
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        #expect(stopSubmits(model) == 3)
        // And after each re-arm, the next end waits again.
        #expect(rearms(try endStop(&model)) == 1)
        model.settle()
        #expect(stopSubmits(model) == 3)
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        #expect(stopSubmits(model) == 4)
        // A fill starts afresh: the next end is re-protected at once.
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        model.settle()
        #expect(rearms(try endStop(&model)) == 0)
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).map(\.1.open) == [400])
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    /// The stop's resize is in flight when the broker ends the stop on its own; the role gets a
    /// new stop, and the broker then refuses the resize of the ended one. That refusal changes
    /// nothing: the role is not held back for a re-arm, and nothing is alerted as failed.
    @Test("a refused resize of a stop the broker had already ended neither blocks the role nor alerts")
    func refusalForAnEndedOrderChangesNothing() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(answeringTheTarget: false)
        model.truth[stop.id]?.live = false
        var actions: [SymbolStateMachine.Action] = []
        try model.machine.apply(OrderStatusReport(orderID: stop.id, symbol: "GLD", outcome: .cancelled, reason: "exchange cancel"), emitting: &actions)
        model.complete(modify, failing: .permanent("order is cancelled"))
        model.settle()
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "\(model.alerts.map(\.message))")
        #expect(model.rearms.isEmpty)
        #expect(model.machine.positionsAwaitingRearm.isEmpty)
        let stops = model.brokerLive("P1", .stopLoss)
        #expect(stops.count == 1 && stops[0].0 != stop.id && stops[0].1.open == 600)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
        // The new stop follows the position, as any: a target fill resizes it.
        try model.fill("P1", .takeProfit, 100, at: "110")
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).map(\.1.open) == [500])
    }

    /// The entry fills while the bracket's scale-ins still wait to be sent (a rate limit holds
    /// them back): the new stop and target go before them, since they reduce the risk the
    /// scale-ins would add; new orders of one kind keep their order.
    @Test("a new protective order is sent before scale-ins still waiting to be sent")
    func protectiveOrdersGoBeforeWaitingScaleIns() throws {
        var spec = BracketSpec.test(.buy)
        spec.scaleIns = (0..<3).map { BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("\(97 - $0)")!)) }
        var model = ModelBroker("GLD")
        try model.open(spec)
        let next = model.machine.nextOperation()
        let entry = try #require(next)
        #expect(entry.role == .entry)
        model.inFlight.append(entry)
        model.complete(0)
        try model.fill("P1", .entry, 300, at: "100")
        var order: [OrderRole] = []
        while let operation = model.machine.nextOperation() { order.append(operation.role) }
        #expect(order == [.stopLoss, .takeProfit, .scaleIn(0), .scaleIn(1), .scaleIn(2)], "\(order)")
    }

    /// The stop's resize up (300 to 600) fails for good, refused or its tries used up.
    private static func failIncrease(_ model: inout ModelBroker, _ modify: Int, _ stop: OrderSnapshot, _ last: LastFailure) throws {
        switch last {
        case .refused:
            model.complete(modify, failing: .permanent("replace not supported for this order"))
        case .retriesUsedUp:
            model.complete(modify, failing: .transient("no answer"))
            for _ in 2...3 {
                model.fireRetries()
                model.pull()
                let again = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
                model.complete(again, failing: .transient("no answer"))
            }
        }
    }

    @Test("a resize up that fails for good: a new order of the position's size replaces the short one, which goes only once the new one is live",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel], LastFailure.allCases)
    func failedIncreaseIsReplaced(strategy: SymbolStateMachine.ReplaceStrategy, last: LastFailure) throws {
        var (model, stop, _) = try ModelBroker.stopResizeInFlight(.buy, .init(replaceStrategy: strategy))
        while let target = model.inFlight.firstIndex(where: { $0.role == .takeProfit }) { model.complete(target) }
        let modify = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
        try Self.failIncrease(&model, modify, stop, last)
        let alert = try #require(model.alerts.last { $0.kind == .operationFailed })
        #expect(alert.message.contains("it covers 300 of 600, so a new order of 600 replaces it"), "\(alert.message)")
        // Whatever the strategy, the new order goes first: the short stop is still cover.
        let work = model.pull()
        let submit = try #require(work.first { $0.role == .stopLoss && $0.kind == .submit }, "\(work)")
        #expect(!work.contains { $0.orderID == stop.id && $0.kind == .cancel }, "the old stop stays until the new one is live: \(work)")
        #expect(model.truth[stop.id]?.live == true)
        model.complete(try #require(model.inFlight.firstIndex(of: submit)))
        let cancel = model.pull()
        #expect(cancel.contains { $0.orderID == stop.id && $0.kind == .cancel }, "then the old one goes: \(cancel)")
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.id == submit.orderID)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 600)
        #expect(model.alerts.filter { $0.kind == .operationFailed }.count == 1)
    }

    @Test("a resize up that fails for good, and its replacement refused too: the short stop is kept (never cancelled for nothing), alerted, and re-armed")
    func failedIncreaseAndRefusedReplacementKeepTheOldStop() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(answeringTheTarget: false)
        while let target = model.inFlight.firstIndex(where: { $0.role == .takeProfit }) { model.complete(target) }
        try Self.failIncrease(&model, modify, stop, .refused)
        model.pull()
        let submit = try #require(model.inFlight.firstIndex { $0.role == .stopLoss && $0.kind == .submit })
        model.complete(submit, failing: .permanent("stop price outside band"))
        model.settle()
        #expect(model.truth[stop.id]?.live == true, "the short stop still covers 300")
        #expect(model.live("P1", .stopLoss)?.id == stop.id)
        #expect(model.brokerLive("P1", .stopLoss).map(\.1.open) == [300])
        #expect(!model.sent.contains { $0.orderID == stop.id && $0.kind == .cancel })
        #expect(model.alerts.filter { $0.kind == .operationFailed }.count == 2, "\(model.alerts.map(\.message))")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty, "a failed role is alerted, not a violation")
        // The re-arm asks again (the modify first): this time the broker takes it.
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.id == stop.id && model.live("P1", .stopLoss)?.openQuantity == 600)
    }

    /// The stop's resize up is in flight when the target fills the whole position (flat: the stop
    /// is to be cancelled); then the resize fails for good. A failed resize says nothing of a
    /// cancel: the stop's cancel goes at once (it waited for the re-arm: a stop live on a flat
    /// position meanwhile).
    @Test("a resize that fails for good after its order is to be cancelled does not hold up the cancel", arguments: [Side.buy, .sell])
    func failedResizeDoesNotHoldUpTheCancel(side: Side) throws {
        var (model, stop, _) = try ModelBroker.stopResizeInFlight(side)
        let open = try #require(model.live("P1", .takeProfit)).openQuantity
        try model.fill("P1", .takeProfit, open, at: side == .buy ? "110" : "90")
        #expect(model.snapshot("P1").netQuantity.isZero)
        let modify = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
        model.complete(modify, failing: .permanent("replace rejected"))
        let work = model.pull()
        #expect(work.contains { $0.orderID == stop.id && $0.kind == .cancel }, "the cancel goes at once: \(work)")
        model.settle()
        #expect(model.truth[stop.id]?.live == false, "no stop left live on a flat position")
        expectProtected(model)
    }
}
