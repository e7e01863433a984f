import FillGuardCore
import Testing

/// Each failure measured on the Python original (BRIEF section 7), shown not to happen here.
@Suite("Known failures of the original cannot happen")
struct KnownFailuresTests {
    private func opened(_ configuration: SymbolStateMachine.Configuration = .init()) throws -> ModelBroker {
        var model = ModelBroker("GLD", configuration)
        try model.open(.test(.buy))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        return model
    }

    @Test("no protection gap on resize: native modify keeps the stop live throughout")
    func noGapOnResize() throws {
        var model = try opened()
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        let work = model.pull()
        #expect(work.map(\.kind) == [.modify, .modify], "resize is one modify per protective order, not cancel + sleep + create: \(work)")
        #expect(model.brokerLive("P1", .stopLoss).count == 1, "the stop stays live while the modify travels")
        model.settle()
        expectProtected(model)
    }

    @Test("stale queued sizes: three fills during an in-flight modify lead to one modify to the latest size")
    func coalescesToLatestSize() throws {
        var model = try opened()
        try model.fill("P1", .scaleIn(0), 50, at: "98")
        let first = model.pull()
        #expect(first.count == 2) // stop and target modifies to 350, in flight
        try model.fill("P1", .scaleIn(0), 50, at: "98")
        try model.fill("P1", .scaleIn(0), 50, at: "98")
        try model.fill("P1", .scaleIn(0), 50, at: "98")
        #expect(model.pull().isEmpty, "one operation in flight per order: nothing queued behind it")
        model.complete(0)
        model.complete(0)
        let next = model.pull()
        #expect(next.count == 2)
        for operation in next {
            guard case .modify(let request) = operation.request else { Issue.record("expected modify"); continue }
            #expect(request.newQuantity == 500, "straight to the latest size")
        }
        model.settle()
        #expect(model.sent.filter { $0.kind == .modify }.count == 4)
        expectProtected(model)
    }

    @Test("a replace aimed at an already-cancelled order does not create anyway")
    func noReplaceOfCancelledOrder() throws {
        var model = try opened(.init(nativeModify: false))
        // The broker itself ends the stop; FillGuard re-protects once, with a new order.
        let stop = try #require(model.live("P1", .stopLoss))
        model.truth[stop.id]?.live = false
        var actions: [SymbolStateMachine.Action] = []
        try model.machine.apply(OrderStatusReport(orderID: stop.id, symbol: "GLD", outcome: .cancelled, reason: "exchange"), emitting: &actions)
        #expect(actions.contains { if case .alert = $0 { return true } else { return false } })
        model.settle()
        #expect(model.sent.filter { $0.orderID == stop.id && $0.kind == .cancel }.isEmpty, "no cancel for an order already gone")
        expectProtected(model)
    }

    @Test("two concurrent scale-in fills leave exactly one stop and one target")
    func concurrentScaleInsLeaveOneOfEach() throws {
        var model = ModelBroker("GLD", .init(nativeModify: false, replaceStrategy: .createThenCancel))
        var spec = BracketSpec.test(.buy)
        spec.scaleIns.append(.init(quantity: 100, type: .limit(Price("97")!)))
        try model.open(spec)
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        try model.fill("P1", .scaleIn(0), 300, at: "98")
        _ = model.pull()
        try model.fill("P1", .scaleIn(1), 100, at: "97")
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).count == 1)
        #expect(model.brokerLive("P1", .takeProfit).count == 1)
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 700)
    }

    @Test("a fill landing while its order's cancel is in flight is counted")
    func fillDuringCancelCounts() throws {
        var model = try opened()
        try model.fill("P1", .stopLoss, 300, at: "95")
        let cancels = model.pull()
        let cancelTarget = try #require(cancels.first { $0.role == .takeProfit })
        // The take-profit fills 40 at the broker while its cancel travels.
        try model.fill(cancelTarget.orderID, 40, at: Price("110")!)
        model.settle()
        #expect(model.snapshot("P1").netQuantity == -40)
        #expect(model.brokerNet("P1") == -40)
        expectProtected(model)
    }

    @Test("a repeated report does not duplicate the protective orders")
    func duplicateReportDoesNotDuplicateOrders() throws {
        var model = ModelBroker("GLD")
        try model.open(.test(.buy))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        let report = try #require(model.reports.last)
        #expect(throws: InputError.self) { try model.deliver(report) }
        model.settle()
        #expect(model.sent.filter { $0.role == .stopLoss && $0.kind == .submit }.count == 1)
        #expect(model.sent.filter { $0.role == .takeProfit && $0.kind == .submit }.count == 1)
        expectProtected(model)
    }

    @Test("transient errors are retried with a schedule and then alerted, never swallowed")
    func retriesThenAlerts() throws {
        var model = try opened(.init(maxAttempts: 3))
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        for attempt in 1...3 {
            let work = model.pull()
            let stop = try #require(work.first { $0.role == .stopLoss })
            #expect(stop.attempt == attempt)
            let index = try #require(model.inFlight.firstIndex(of: stop))
            model.complete(index, failing: .transient("timeout"))
            if attempt < 3 { #expect(model.retries.contains(stop.orderID)) }
            // Release retries (the runtime waits out the backoff here).
            var actions: [SymbolStateMachine.Action] = []
            for id in model.retries { model.machine.retryDue(id, emitting: &actions) }
            model.retries.removeAll()
            while let index = model.inFlight.firstIndex(where: { $0.role != .stopLoss }) { model.complete(index) }
        }
        #expect(model.alerts.count == 1)
        #expect(model.alerts.first?.kind == .operationFailed)
        #expect(model.alerts.first?.message.contains("modify failed 3 times, last: timeout") == true, "\(model.alerts)")
        // The resize up could not be made: a new stop of the position's size replaces the short
        // one (which goes once the new one is live), instead of waiting for the next fill.
        model.settle()
        expectProtected(model)
        #expect(model.sent.filter { $0.role == .stopLoss && $0.kind == .submit }.count == 2)
        // The next fill resizes the new stop as usual.
        try model.fill("P1", .scaleIn(0), 10, at: "98")
        model.settle()
        expectProtected(model)
    }

    @Test("tries count per operation: a cancel after two failed modifies gets its own tries, not the modify's last")
    func cancelAfterFailedModifiesGetsItsOwnTries() throws {
        var model = try opened(.init(maxAttempts: 3))
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        for round in 1...2 {
            model.pull()
            let stop = try #require(model.inFlight.firstIndex { $0.role == .stopLoss && $0.kind == .modify })
            model.complete(stop, failing: .transient("busy"))
            while let other = model.inFlight.firstIndex(where: { $0.role != .stopLoss }) { model.complete(other) }
            #expect(model.retries.count == 1)
            if round == 1 { model.fireRetries() }
        }
        // The target fills whole while the stop's modify waits for its third try: the position is
        // flat and the stop's work is now a cancel.
        try model.fill("P1", .takeProfit, 400, at: "110")
        model.fireRetries()
        let cancel = try #require(model.pull().first { $0.role == .stopLoss })
        #expect(cancel.kind == .cancel)
        #expect(cancel.attempt == 1, "the cancel's first try")
        model.complete(try #require(model.inFlight.firstIndex(of: cancel)), failing: .transient("busy"))
        #expect(model.alerts.isEmpty, "one transient failure of the cancel is retried, not alerted")
        model.settle()
        #expect(model.alerts.isEmpty)
        #expect(model.snapshot("P1").status == .closed)
        #expect(model.brokerLive("P1", .stopLoss).isEmpty, "the stop is cancelled at the broker")
    }

    @Test("create-then-cancel: when the old stop's cancel is refused, its replacement is cancelled, so the role is never covered twice")
    func refusedCancelNeverLeavesTwoStops() throws {
        var model = try opened(.init(nativeModify: false, replaceStrategy: .createThenCancel))
        let old = try #require(model.live("P1", .stopLoss)).id
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        // The replacement (400) is placed first; then the old stop's cancel is refused.
        model.pull()
        while let submit = model.inFlight.firstIndex(where: { $0.kind == .submit }) { model.complete(submit) }
        model.pull()
        let cancel = try #require(model.inFlight.firstIndex { $0.orderID == old && $0.kind == .cancel })
        model.complete(cancel, failing: .permanent("not now"))
        model.settle()
        let stops = model.brokerLive("P1", .stopLoss)
        #expect(stops.map(\.0) == [old], "only the stop that could not be cancelled is live")
        #expect(stops.reduce(Quantity.zero) { $0 + $1.1.open } == 300, "300 of 400 covered, never 700")
        let alert = try #require(model.alerts.last)
        #expect(alert.kind == .operationFailed && alert.message.contains("is being cancelled so that the role is not covered twice"))
        // Re-armed, the old stop's cancel goes through and one stop of the whole position follows.
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        #expect(model.brokerLive("P1", .stopLoss).count == 1)
        expectProtected(model)
    }

    @Test("a modify answered 'unknown order': the stop is taken as gone and the role gets a new one, not left showing as working")
    func modifyOfAnOrderTheBrokerDoesNotKnow() throws {
        var model = try opened()
        let old = try #require(model.live("P1", .stopLoss)).id
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        model.pull()
        let modify = try #require(model.inFlight.firstIndex { $0.orderID == old && $0.kind == .modify })
        model.truth[old]?.live = false // the broker lost it
        model.complete(modify, failing: .unknownOrder("unknown order"))
        model.settle()
        let stop = try #require(model.live("P1", .stopLoss))
        #expect(stop.id != old && stop.openQuantity == 400)
        #expect(model.alerts.map(\.kind) == [.protectiveEndedByBroker])
        #expect(model.brokerLive("P1", .stopLoss).map(\.0) == [stop.id])
        expectProtected(model)
    }

    @Test("small fills never vanish: exact fixed-point, no float tolerance")
    func tinyFillsAddUp() throws {
        var model = ModelBroker("BTC")
        try model.open(BracketSpec(positionID: "P1", symbol: "BTC", side: .buy, quantity: Quantity("0.001")!,
                                   stopLoss: Price("90000"), takeProfit: Price("110000")))
        model.settle()
        for _ in 0..<100 { try model.fill("P1", .entry, Quantity("0.00001")!, at: "100000.12345678") }
        model.settle()
        #expect(model.snapshot("P1").netQuantity == Quantity("0.001")!)
        #expect(model.snapshot("P1").averagePrice == Price("100000.12345678"))
        #expect(model.live("P1", .stopLoss)?.openQuantity == Quantity("0.001")!)
        expectProtected(model)
    }

    @Test("broker calls per fill are bounded: no re-reading of orders, at most one call per protective order")
    func callsPerFillAreBounded() throws {
        var model = try opened()
        let before = model.sent.count
        for _ in 0..<10 {
            try model.fill("P1", .scaleIn(0), 10, at: "98")
            model.settle()
        }
        #expect(model.sent.count - before == 20, "two modifies per scale-in fill, nothing else")
    }

    @Test("a rejected stop is alerted and tried again after the cool-down, not left missing")
    func rejectedStopIsRearmed() throws {
        var model = ModelBroker("GLD")
        try model.open(.test(.buy))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        let work = model.pull()
        let stop = try #require(work.first { $0.role == .stopLoss })
        model.complete(try #require(model.inFlight.firstIndex(of: stop)), failing: .permanent("price band"))
        model.settle()
        #expect(model.alerts.count == 1)
        #expect(model.live("P1", .stopLoss) == nil)
        #expect(model.rearms == ["P1"], "the runtime is asked to try again later")
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 300)
    }
}
