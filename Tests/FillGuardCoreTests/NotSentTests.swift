import FillGuardCore
import Testing

/// A request that never left (the broker unreachable: a FIX session down) uses none of its
/// work's tries: an outage of any length ends with the work sent as it was planned, neither given
/// up nor replaced, and a person told once.
@Suite("Requests never sent")
struct NotSentTests {
    private static let down = OperationFailure.notSent("FIX session not logged on")

    /// Fails the stop's work `times` times as never sent, each after its backoff.
    private static func failUnsent(_ model: inout ModelBroker, _ stop: OrderID, times: Int) throws {
        for _ in 0..<times {
            model.fireRetries()
            model.pull()
            let index = try #require(model.inFlight.firstIndex { $0.orderID == stop }, "the stop's work is asked again after its backoff")
            model.complete(index, failing: down)
        }
    }

    /// The stop's resize up to 600 not sent, then `times` more of its tries not sent either.
    private static func stopResizeUnsent(_ side: Side = .buy, _ configuration: SymbolStateMachine.Configuration = .init(),
                                         times: Int) throws -> (ModelBroker, OrderSnapshot) {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(side, configuration)
        model.complete(modify, failing: down)
        try failUnsent(&model, stop.id, times: times)
        return (model, stop)
    }

    /// The target fills `quantity` while the broker is down: the stop's reduce is not sent, three times.
    private static func reduceUnsent(_ model: inout ModelBroker, _ stop: OrderID, targetFills quantity: Quantity) throws {
        try model.fill("P1", .takeProfit, quantity, at: "110")
        model.pull()
        let reduce = try #require(model.inFlight.firstIndex { $0.orderID == stop })
        model.complete(reduce, failing: down)
        try failUnsent(&model, stop, times: 2)
    }

    /// The target fills whole (flat): `order`'s cancel is not sent, then `times` more of its tries.
    private static func flatCancelUnsent(_ model: inout ModelBroker, _ order: OrderID, times: Int) throws {
        try model.fill("P1", .takeProfit, 600, at: "110")
        model.pull()
        let cancel = try #require(model.inFlight.firstIndex { $0.orderID == order && $0.kind == .cancel })
        model.complete(cancel, failing: down)
        try failUnsent(&model, order, times: times)
    }

    /// How many `operationHeld` alerts the model has seen.
    private static func held(_ model: ModelBroker) -> Int { model.alerts.filter { $0.kind == .operationHeld }.count }

    @Test("a resize up not sent ten times (three tries allowed) is held, alerted once, and goes as a modify once the broker is back",
          arguments: [Side.buy, .sell])
    func longOutageKeepsTheResize(side: Side) throws {
        var (model, stop) = try Self.stopResizeUnsent(side, times: 0)
        #expect(model.retries == [stop.id], "retried after a backoff, not at once")
        #expect(model.pull().isEmpty, "nothing goes before the backoff is over")
        try Self.failUnsent(&model, stop.id, times: 9)
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "no try was used: \(model.alerts)")
        let held = model.alerts.filter { $0.kind == .operationHeld }
        #expect(held.count == 1, "told once, after maxAttempts in a row: \(model.alerts)")
        #expect(held.first?.orderID == stop.id && held.first?.role == .stopLoss)
        #expect(held.first?.message.contains("not sent 3 times in a row") == true, "\(held)")
        #expect(model.live("P1", .stopLoss)?.id == stop.id, "the stop is neither given up nor replaced")
        // The broker is back: the retry goes, as the same modify.
        model.fireRetries()
        let sent = model.pull()
        #expect(sent.count == 1 && sent.first?.orderID == stop.id && sent.first?.kind == .modify, "\(sent)")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.id == stop.id && model.live("P1", .stopLoss)?.openQuantity == 600)
        #expect(model.brokerLive("P1", .stopLoss).count == 1, "one stop at the broker")
        #expect(Self.held(model) == 1)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("tries that never left leave the work all its tries: two real failures after a long outage are not its last")
    func unsentTriesDoNotCount() throws {
        var (model, stop) = try Self.stopResizeUnsent(times: 5)
        for _ in 0..<2 {
            model.fireRetries()
            model.pull()
            let index = try #require(model.inFlight.firstIndex { $0.orderID == stop.id })
            model.complete(index, failing: .transient("throttled"))
        }
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "two of three tries used: \(model.alerts)")
        #expect(model.retries == [stop.id])
        model.settle()
        #expect(model.live("P1", .stopLoss)?.id == stop.id && model.live("P1", .stopLoss)?.openQuantity == 600)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a run of unsent tries ends once a request reaches the broker: the next outage is told again")
    func nextOutageIsToldAgain() throws {
        var (model, stop) = try Self.stopResizeUnsent(times: 2)
        #expect(Self.held(model) == 1)
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 600)
        // The target fills 200: the stop comes down to 400, and the broker is down again.
        try Self.reduceUnsent(&model, stop.id, targetFills: 200)
        #expect(Self.held(model) == 2, "\(model.alerts)")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 400)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("the count of unsent tries survives a restart: a held order is not alerted again for the same outage")
    func countSurvivesTheImage() throws {
        var (model, stop) = try Self.stopResizeUnsent(times: 3)
        #expect(Self.held(model) == 1)
        try model.restoreFromImage()
        try Self.failUnsent(&model, stop.id, times: 3)
        #expect(Self.held(model) == 1, "\(model.alerts)")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 600)
    }

    @Test("an entry not sent is not held through the outage: its tries count, and it is refused when they are used up")
    func entryNotSentIsNotHeld() throws {
        var model = ModelBroker("GLD")
        try model.open(.test(.buy))
        let entry = try #require(model.pull().first { $0.role == .entry })
        let index = try #require(model.inFlight.firstIndex(of: entry))
        model.complete(index, failing: Self.down)
        try Self.failUnsent(&model, entry.orderID, times: 2)
        #expect(model.alerts.contains { $0.kind == .entryRejected }, "FillGuard never adds exposure on its own, hours later: \(model.alerts)")
        #expect(Self.held(model) == 0)
        model.settle()
        #expect(model.truth[entry.orderID] == nil, "the broker never got it")
        #expect(!model.truth.values.contains { $0.live }, "nothing is left working: \(model.truth)")
        #expect(model.sent.filter { $0.orderID == entry.orderID }.count == 3)
        #expect(model.snapshot("P1").netQuantity == .zero)
    }

    @Test("a cancel of a scale-in not sent is held like protective work: the position went flat, and the cancel goes once the broker is back")
    func scaleInCancelIsHeld() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy, spec: BracketSpec(
            positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market, stopLoss: Price("95"), takeProfit: Price("110"),
            scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("98")!)), BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("96")!))]))
        model.complete(modify)
        #expect(model.live("P1", .stopLoss)?.id == stop.id)
        let second = try #require(model.live("P1", .scaleIn(1)))
        // The target fills whole: flat; the second scale-in must go, and the broker is down.
        try Self.flatCancelUnsent(&model, second.id, times: 5)
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "\(model.alerts)")
        #expect(model.alerts.filter { $0.kind == .operationHeld && $0.orderID == second.id }.count == 1, "\(model.alerts)")
        model.settle()
        #expect(model.truth[second.id]?.live == false, "cancelled at the broker")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("held work that goes away (the position back at the order's size) ends the run: the next outage is told again")
    func workThatGoesAwayEndsTheRun() throws {
        var (model, stop) = try Self.stopResizeUnsent(times: 2)
        #expect(Self.held(model) == 1)
        // The target fills 300 before the retry: net 300 again, the stop's size; nothing to send.
        try model.fill("P1", .takeProfit, 300, at: "110")
        model.fireRetries()
        #expect(model.pull().isEmpty)
        // The target fills 100 more while the broker is down again: the stop's reduce is held.
        try Self.reduceUnsent(&model, stop.id, targetFills: 100)
        #expect(Self.held(model) == 2, "\(model.alerts)")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 200)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("with maxAttempts past 255 the count saturates and the alert is raised once, never again", arguments: [255, 300])
    func saturatedCountAlertsOnce(maxAttempts: Int) throws {
        var (model, stop) = try Self.stopResizeUnsent(.buy, SymbolStateMachine.Configuration(maxAttempts: maxAttempts), times: 299)
        #expect(Self.held(model) == 1, "\(model.alerts.count) alerts")
        #expect(model.live("P1", .stopLoss)?.id == stop.id)
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 600)
    }

    @Test("risk-reducing work that became due while a resize up was out goes at once when the resize comes back not sent")
    func reduceGoesAtOnceAfterNotSent() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy)
        // The target fills whole while the stop's resize up is out: flat; then the resize's answer.
        try model.fill("P1", .takeProfit, 600, at: "110")
        let index = try #require(model.inFlight.firstIndex { $0.orderID == stop.id }, "\(modify)")
        model.complete(index, failing: Self.down)
        #expect(model.retries.isEmpty, "no backoff for the cancel")
        #expect(model.pull().contains { $0.orderID == stop.id && $0.kind == .cancel })
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).isEmpty)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a flat position's cancel not sent goes as soon as the broker is back, without a try used")
    func cancelNotSent() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy)
        model.complete(modify)
        try Self.flatCancelUnsent(&model, stop.id, times: 6)
        #expect(!model.alerts.contains { $0.kind == .operationFailed }, "\(model.alerts)")
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).isEmpty, "nothing is left working at the broker")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("heldWorkAlerts names every order with work waiting, in a backoff too, but not one in flight or alerted by its own unsent tries")
    func heldWorkAlertsNamesWaitingWork() throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy, answeringTheTarget: false)
        #expect(model.machine.heldWorkAlerts { "held" }.isEmpty, "both resizes are in flight: \(model.inFlight)")
        let target = try #require(model.inFlight.firstIndex { $0.role == .takeProfit })
        model.complete(target, failing: Self.down)
        let waiting = model.machine.heldWorkAlerts { "held back by the circuit breaker for 3.0 s" }
        #expect(waiting.map(\.role) == [.takeProfit] && waiting.allSatisfy { $0.kind == .operationHeld }, "\(waiting)")
        #expect(waiting.first?.message.hasPrefix("modify of ") == true && waiting.first?.message.contains("held back by the circuit breaker for 3.0 s") == true)
        let index = try #require(model.inFlight.firstIndex { $0.orderID == stop.id }, "\(modify)")
        model.complete(index, failing: Self.down)
        try Self.failUnsent(&model, stop.id, times: 2)
        // (The target's retries went out beside the stop's: not sent either.)
        while let index = model.inFlight.firstIndex(where: { $0.role == .takeProfit }) { model.complete(index, failing: Self.down) }
        #expect(model.machine.heldWorkAlerts { "held" }.map(\.role) == [.takeProfit], "the stop was alerted by its own tries: \(model.alerts)")
        model.settle()
        #expect(model.machine.heldWorkAlerts { "held" }.isEmpty)
    }

    @Test("held work replaced by a reduce that goes away too ends the run when the old backoff comes due: the next outage is told again")
    func runEndsAfterTheReduceWentAwayToo() throws {
        let spec = BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market, stopLoss: Price("95"), takeProfit: Price("110"),
                               scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("98")!)), BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("96")!))])
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy, spec: spec)
        model.complete(modify, failing: Self.down)
        try Self.failUnsent(&model, stop.id, times: 2)
        #expect(Self.held(model) == 1)
        while let index = model.inFlight.firstIndex(where: { $0.orderID != stop.id }) { model.complete(index) }
        // In the backoff the target fills 400: net 200, below the stop's 300: its work is now a
        // reduce, due at once (the backoff cleared) but held back (not pulled here). Then the
        // second scale-in fills 100: net 300, the stop's size: no work left at all.
        try model.fill("P1", .takeProfit, 400, at: "110")
        try model.fill("P1", .scaleIn(1), 100, at: "96")
        #expect(model.machine.heldWorkAlerts { "held" }.allSatisfy { $0.orderID != stop.id })
        model.fireRetries() // the resize's old backoff comes due: nothing to do, the run is over
        model.settle()
        #expect(model.live("P1", .stopLoss)?.id == stop.id && model.live("P1", .stopLoss)?.openQuantity == 300)
        // A new outage: the target fills 100, the stop's reduce to 200 is not sent.
        try Self.reduceUnsent(&model, stop.id, targetFills: 100)
        #expect(Self.held(model) == 2, "the new outage is told: \(model.alerts)")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 200)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }
    @Test("nextOpeningSubmit takes the entry and scale-in submits only, oldest first, each in flight; never protective work, and a refusal of one is the broker's")
    func nextOpeningSubmitTakesOpeningsOnly() throws {
        var model = ModelBroker("GLD")
        try model.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market, stopLoss: Price("95"), takeProfit: Price("110"),
                                   scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("98")!)), BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("96")!))]))
        var machine = model.machine
        #expect(machine.heldWorkAlerts { "held" }.isEmpty, "openings are refused when held too long, not alerted as held")
        #expect(machine.waitingOpeningSubmits.count == 3)
        var taken: [OrderOperation] = []
        while let operation = machine.nextOpeningSubmit() { taken.append(operation) }
        #expect(taken.map(\.role) == [.entry, .scaleIn(0), .scaleIn(1)] && taken.allSatisfy { $0.kind == .submit }, "\(taken)")
        #expect(machine.operationsInFlight == 3 && machine.nextOperation() == nil, "each is marked in flight")
        // The second scale-in refused (its submit never sent): it ends as a refused submit does.
        var actions: [SymbolStateMachine.Action] = []
        machine.operationFailed(taken[2], .permanent("never sent: held back"), emitting: &actions)
        #expect(machine.snapshot(of: "P1")?.orders.first { $0.role == .scaleIn(1) }?.status.isLive == false)
        #expect(machine.operationsInFlight == 2)
        // With the entry filled, the stop's and target's submits wait: they are not openings.
        model.pull()
        while !model.inFlight.isEmpty { model.complete() }
        try model.fill("P1", .entry, 300, at: "100")
        #expect(model.machine.hasOperationReady)
        var filled = model.machine
        #expect(filled.nextOpeningSubmit() == nil, "only protective work is waiting")
        #expect(filled.operationsInFlight == 0)
    }
    @Test("nextOpeningSubmit takes an entry waiting out a retry too; one whose earlier try timed out is cancelled when refused, and the alert says it may have been placed")
    func nextOpeningSubmitInBackoffAndMaybePlaced() throws {
        for failure in [OperationFailure.transient("venue busy"), .timedOut("no answer")] {
            var model = ModelBroker("GLD")
            try model.open(.test(.buy))
            let entry = try #require(model.pull().first { $0.role == .entry })
            let index = try #require(model.inFlight.firstIndex(of: entry))
            model.complete(index, failing: failure)
            #expect(model.retries == [entry.orderID], "in its backoff")
            #expect(model.machine.waitingOpeningSubmits == [entry.orderID])
            let taken = model.machine.nextOpeningSubmit()
            let refused = try #require(taken, "taken though its backoff is not over")
            #expect(refused.orderID == entry.orderID && refused.kind == .submit)
            var actions: [SymbolStateMachine.Action] = []
            model.machine.operationFailed(refused, .permanent("not sent: held back by the circuit breaker"), emitting: &actions)
            let alerts = actions.compactMap { action -> Alert? in if case .alert(let alert) = action { return alert } else { return nil } }
            #expect(alerts.map(\.kind) == [.entryRejected], "\(alerts)")
            let next = model.machine.nextOperation()
            if case .timedOut = failure {
                #expect(alerts.first?.message.contains("may have placed it: it is being cancelled") == true, "\(alerts)")
                #expect(next?.orderID == entry.orderID && next?.kind == .cancel, "the first try may be working: cancelled, \(String(describing: next))")
            } else {
                #expect(alerts.first?.message.contains("may have placed it") == false, "\(alerts)")
                #expect(next?.orderID != entry.orderID, "\(String(describing: next))")
            }
            // The backoff's end finds it ended: nothing more.
            model.fireRetries()
            #expect(model.machine.waitingOpeningSubmits.isEmpty)
        }
    }
}
