import FillGuardCore
import Testing

/// Checks rule 2 on the machine and on the broker's truth: each protective order is on the
/// opposite side with open quantity |net| (or absent when flat).
func expectProtected(_ model: ModelBroker, _ position: PositionID = "P1", sourceLocation: SourceLocation = #_sourceLocation) {
    let snapshot = model.snapshot(position)
    let net = snapshot.netQuantity
    #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty, "\(model.machine.invariantViolations(atQuiescence: true))", sourceLocation: sourceLocation)
    #expect(model.brokerNet(position) == net, "broker net equals FillGuard net", sourceLocation: sourceLocation)
    for role in [OrderRole.stopLoss, .takeProfit] {
        let atBroker = model.brokerLive(position, role)
        if net.isZero {
            #expect(atBroker.isEmpty, "flat: no live \(role) at the broker", sourceLocation: sourceLocation)
        } else {
            #expect(atBroker.count == 1, "exactly one live \(role) at the broker, found \(atBroker.count)", sourceLocation: sourceLocation)
            #expect(atBroker.first?.1.open == net.magnitude, "\(role) covers |net| at the broker", sourceLocation: sourceLocation)
            #expect(atBroker.first?.1.side == (net.units > 0 ? .sell : .buy), sourceLocation: sourceLocation)
        }
    }
}

@Suite("Rules of BRIEF section 2, long and short")
struct RuleTests {
    static let sides: [Side] = [.buy, .sell]

    private func opened(_ side: Side, entryFill: Quantity = 300) throws -> ModelBroker {
        var model = ModelBroker("GLD")
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, entryFill, at: "100")
        model.settle()
        return model
    }

    @Test("a refusal quoting a huge input keeps a bounded message: its start, its end, and how much was cut")
    func hugeInputsGiveBoundedMessages() {
        let id = String(repeating: "x", count: 1_000_000) + "END"
        let error = InputError(.duplicateExecution, "execution \(id) was already applied; the repeat is ignored")
        #expect(error.message.utf8.count < 4_000, "\(error.message.utf8.count) bytes")
        #expect(error.message.hasPrefix("execution xxxx"))
        #expect(error.message.hasSuffix("xxxEND was already applied; the repeat is ignored"))
        #expect(error.message.contains("… (998556 bytes cut) …"), "\(error.message.prefix(40))")
        let longest = String(repeating: "y", count: InputError.maximumMessageLength)
        #expect(InputError(.malformed, longest).message == longest, "a message up to the limit is kept whole")
        // Wide characters (3 bytes each), and one grapheme cluster of a million combining marks:
        // cut by bytes between scalars, never longer than the limit, never repeated.
        for text in [String(repeating: "\u{6F22}", count: 700), "x" + String(repeating: "\u{301}", count: 1_000_000)] {
            let message = InputError(.malformed, "id \(text) refused").message
            #expect(message.utf8.count <= InputError.maximumMessageLength && message.contains(" bytes cut)"), "\(message.utf8.count) bytes")
            #expect(message.hasPrefix("id ") && message.hasSuffix(" refused"))
        }
    }

    @Test("reports out of order: the later one's cumulative quantity is above the fills booked, so the order is to be checked later; the earlier one fills the gap, and the check finds nothing", arguments: sides)
    func cumulativeGapIsCheckedLater(side: Side) throws {
        var model = try opened(side)
        let stop = try #require(model.live("P1", .stopLoss))
        let reported = model.fillUnreported(stop.id, 100, at: Price("95")!)
        let reportedLater = model.fillUnreported(stop.id, 50, at: Price("95")!)
        let first = try #require(reported)
        let second = try #require(reportedLater)
        model.alerts = []
        try model.deliver(second)
        #expect(model.fillChecks == [stop.id])
        #expect(model.alerts.isEmpty, "not at once: the missing report may be on its way: \(model.alerts)")
        let alert = try #require(model.machine.unreportedFillsAlert(for: stop.id))
        #expect(alert.kind == .fillsOverdue && alert.role == .stopLoss)
        #expect(alert.message == "the broker reports 150 of \(stop.id) filled, 50 booked: the reports of 100 have not come; the position counts only the fills reported")
        model.settle()
        try model.deliver(first)
        #expect(model.fillChecks == [stop.id], "the gap is filled: nothing more to check")
        #expect(model.machine.unreportedFillsAlert(for: stop.id) == nil)
        model.settle()
        #expect(model.snapshot("P1").netQuantity.magnitude == 150)
        expectProtected(model)
        // A report that does not go past what its order booked asks for no check.
        let target = try #require(model.live("P1", .takeProfit))
        let reportedThird = model.fillUnreported(target.id, 10, at: Price("110")!)
        try model.deliver(try #require(reportedThird))
        #expect(model.fillChecks == [stop.id])
        #expect(model.machine.unreportedFillsAlert(for: target.id) == nil)
        #expect(model.alerts.isEmpty)
    }

    @Test("rule 1: net is the sum of unique fills; a repeated execution id changes nothing", arguments: sides)
    func duplicatesAreIgnored(side: Side) throws {
        var model = try opened(side)
        let before = model.snapshot("P1")
        let report = try #require(model.reports.last)
        #expect(throws: InputError(.duplicateExecution, "execution \(report.executionID) was already applied; the repeat is ignored")) {
            try model.deliver(report)
        }
        #expect(model.snapshot("P1") == before)
        #expect(model.pull().isEmpty, "a duplicate causes no broker work")
        #expect(before.netQuantity == (side == .buy ? 300 : -300))
        #expect(model.machine.alert(forRefused: report, InputError(.duplicateExecution, "")) == nil, "a true repeat is no trade to alert")
    }

    @Test("an execution id applied before, reported again for a fill its order has not booked (another order, or more than it has), is refused and alerted: the broker may have traded it", arguments: sides)
    func reusedExecutionIDIsAlerted(side: Side) throws {
        var model = try opened(side)
        let before = model.snapshot("P1")
        let entryFill = try #require(model.reports.last)
        let stop = try #require(model.live("P1", .stopLoss))
        // The entry's execution id on a fill of the stop, which has filled nothing.
        let reused = ExecutionReport(executionID: entryFill.executionID, orderID: stop.id, symbol: "GLD", side: stop.side,
                                     lastQuantity: 30, lastPrice: Price("95")!)
        var refusal: InputError?
        do { try model.deliver(reused) } catch { refusal = error }
        let error = try #require(refusal)
        #expect(error.code == .duplicateExecution)
        #expect(error.message == "execution \(entryFill.executionID) was already applied, but not to this fill: order \(stop.id) has 0 filled, less than this report says, so it is no repeat (the broker reused the id?); refused")
        let alert = try #require(model.machine.alert(forRefused: reused, error))
        #expect(alert.kind == .fillRefused && alert.orderID == stop.id && alert.role == .stopLoss)
        // On the same order, a cumulative quantity above what it booked: no repeat either.
        let more = ExecutionReport(executionID: entryFill.executionID, orderID: entryFill.orderID, symbol: "GLD", side: entryFill.side,
                                   lastQuantity: 10, lastPrice: Price("100")!, cumulativeQuantity: 310)
        #expect(model.machine.alert(forRefused: more, InputError(.duplicateExecution, ""))?.kind == .fillRefused)
        #expect(model.snapshot("P1") == before, "nothing changed")
        #expect(model.pull().isEmpty)
    }

    @Test("rule 3: entry and scale-in fills, partial or full, resize both protective orders", arguments: sides)
    func scaleInsResizeBoth(side: Side) throws {
        var model = ModelBroker("GLD")
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 120, at: "100")
        model.settle()
        expectProtected(model)
        try model.fill("P1", .entry, 180, at: "100")
        model.settle()
        expectProtected(model)
        try model.fill("P1", .scaleIn(0), 100, at: side == .buy ? "98" : "102")
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 400)
        #expect(model.live("P1", .takeProfit)?.openQuantity == 400)
        // Average entry price: (300*100 + 100*98) / 400 = 99.5 long; (300*100 + 100*102) / 400 = 100.5 short.
        #expect(model.snapshot("P1").averagePrice == Price(side == .buy ? "99.5" : "100.5"))
    }

    @Test("rule 4: a partial fill of one protective order resizes the other", arguments: sides)
    func partialProtectiveFillResizesTheOther(side: Side) throws {
        var model = try opened(side)
        try model.fill("P1", .stopLoss, 100, at: side == .buy ? "95" : "105")
        let reduce = model.pull()
        #expect(reduce.count == 1)
        #expect(reduce.first?.role == .takeProfit)
        #expect(reduce.first?.priority == .reduce)
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .takeProfit)?.openQuantity == 200)
        // Realized P&L: 100 shares closed 5 against the position.
        #expect(model.snapshot("P1").realizedPnL == Money("-500"))
        // The partially filled stop keeps being resized (BRIEF 7: it was filtered out before).
        try model.fill("P1", .takeProfit, 50, at: side == .buy ? "110" : "90")
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 150)
        #expect(model.live("P1", .stopLoss)?.status == .partiallyFilled)
    }

    @Test("rule 5: flat cancels every remaining order and closes the position", arguments: sides)
    func flatCancelsEverything(side: Side) throws {
        var model = try opened(side, entryFill: 200) // entry remainder 100 still working
        try model.fill("P1", .stopLoss, 200, at: side == .buy ? "95" : "105")
        let work = model.pull()
        #expect(Set(work.map(\.kind)) == [.cancel])
        #expect(Set(work.map(\.role)) == [.entry, .scaleIn(0), .takeProfit])
        model.settle()
        let snapshot = model.snapshot("P1")
        #expect(snapshot.status == .closed)
        #expect(snapshot.liveOrders.isEmpty)
        #expect(snapshot.netQuantity == 0)
        #expect(snapshot.realizedPnL == Money("-1000"))
        expectProtected(model)
    }

    @Test("rule 6: cancels go first, then reductions, before increases and new orders", arguments: sides)
    func riskReducingWorkGoesFirst(side: Side) throws {
        var model = try opened(side)
        // The take-profit partially fills (reduce the stop) in the same instant as a scale-in
        // fill (increase both): net 300 - 100 + 50 = 250.
        try model.fill("P1", .takeProfit, 100, at: side == .buy ? "110" : "90")
        try model.fill("P1", .scaleIn(0), 50, at: side == .buy ? "98" : "102")
        let work = model.pull()
        #expect(work.map(\.priority) == work.map(\.priority).sorted(), "pulled in priority order")
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 250)
    }

    enum RefusedReduction: CaseIterable, Sendable { case permanent, retriesExhausted }

    @Test("rule 6: a protective order whose resize down fails for good is cancelled and replaced, never left over-covering",
          arguments: sides, RefusedReduction.allCases)
    func refusedReductionIsCancelledAndReplaced(side: Side, refusal: RefusedReduction) throws {
        var model = try opened(side)
        let oversized = try #require(model.live("P1", .takeProfit))
        try model.fill("P1", .stopLoss, 100, at: side == .buy ? "95" : "105") // net 200: the target must shrink to 200
        var modify = model.pull()
        #expect(modify.map(\.kind) == [.modify])
        switch refusal {
        case .permanent:
            model.complete(0, failing: .permanent("refused"))
        case .retriesExhausted:
            for attempt in 1...3 {
                model.complete(0, failing: .transient("busy"))
                if attempt < 3 { model.fireRetries(); modify = model.pull(); #expect(modify.map(\.kind) == [.modify]) }
            }
        }
        #expect(model.alerts.last?.kind == .operationFailed)
        #expect(model.alerts.last?.message.hasSuffix("it covers 300 of 200, so it is cancelled and replaced") == true, "\(model.alerts)")
        let cancel = model.pull()
        #expect(cancel.map(\.kind) == [.cancel], "the oversized order is cancelled at once (nothing else first)")
        #expect(cancel.first?.orderID == oversized.id)
        model.complete(0)
        let create = model.pull()
        #expect(create.map(\.kind) == [.submit], "the replacement goes only once the cancel is answered")
        #expect(model.brokerLive("P1", .takeProfit).isEmpty, "never two targets at once")
        if case .submit(let request)? = create.first?.request { #expect(request.quantity == 200) } else { Issue.record("no submit: \(create)") }
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .takeProfit)?.id != oversized.id)
    }

    @Test("rule 6, create-then-cancel: when the smaller replacement cannot be placed, the oversized order is cancelled, not kept",
          arguments: sides)
    func refusedSmallerReplacementCancelsTheOversized(side: Side) throws {
        var model = ModelBroker("GLD", .init(nativeModify: false, replaceStrategy: .createThenCancel))
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        let oversized = try #require(model.live("P1", .takeProfit))
        try model.fill("P1", .stopLoss, 100, at: side == .buy ? "95" : "105") // net 200: the target must shrink
        let submit = model.pull()
        #expect(submit.map(\.kind) == [.submit], "create first")
        model.complete(0, failing: .permanent("refused"))
        #expect(model.alerts.last?.message.hasSuffix("the order it replaced covers 300 of 200, so it is cancelled") == true, "\(model.alerts)")
        let cancel = model.pull()
        #expect(cancel.map(\.kind) == [.cancel])
        #expect(cancel.first?.orderID == oversized.id)
        model.settle()
        #expect(model.brokerLive("P1", .takeProfit).isEmpty, "no order that could over-sell is left; the alert and re-arm take over")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        expectProtected(model)
        #expect(model.live("P1", .takeProfit)?.openQuantity == 200)
    }

    @Test("a refused cancel of an oversized protective order says that it stays live and over-covers", arguments: sides)
    func refusedCancelOfTheOversizedSaysSo(side: Side) throws {
        var model = ModelBroker("GLD", .init(nativeModify: false, replaceStrategy: .createThenCancel))
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        try model.fill("P1", .stopLoss, 100, at: side == .buy ? "95" : "105") // net 200: the target must shrink
        #expect(model.pull().map(\.kind) == [.submit], "create first")
        model.complete(0)
        let cancel = model.pull()
        #expect(cancel.map(\.kind) == [.cancel], "then cancel the old, larger one")
        model.complete(0, failing: .permanent("refused"))
        #expect(model.alerts.last?.message.contains("it stays live and covers 300 of 200, more than the position") == true, "\(model.alerts)")
        model.settle()
        #expect(model.brokerLive("P1", .takeProfit).map(\.1.open) == [300], "its replacement is cancelled: 300 live, not 500")
    }

    @Test("rule 7: a fill after a confirmed cancel counts, and the reopened position is protected again", arguments: sides)
    func lateFillAfterCancelReprotects(side: Side) throws {
        var model = try opened(side)
        // Stop fills completely: flat; the take-profit is cancelled (confirmed).
        let takeProfit = try #require(model.live("P1", .takeProfit))
        try model.fill("P1", .stopLoss, 300, at: side == .buy ? "95" : "105")
        // Before the cancel arrives the take-profit fills 100 at the broker ("too late to cancel").
        try model.fill(takeProfit.id, 100, at: Price(side == .buy ? "110" : "90")!)
        model.settle()
        let snapshot = model.snapshot("P1")
        #expect(snapshot.netQuantity == (side == .buy ? -100 : 100), "the late fill counts")
        #expect(snapshot.status == .open)
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.type.displayPrice == Price(side == .buy ? "95" : "105"), "at the bracket's price")
        // Reopened on the side opposite the bracket's, from flat: a person should look.
        #expect(model.alerts.map(\.kind) == [.positionFlipped], "\(model.alerts)")
    }

    @Test("rule 6 after a flip: a protective order left on the wrong side (its cancel refused) does not keep the new side unprotected",
          arguments: sides, [OrderRole.stopLoss, .takeProfit])
    func wrongSideOrderDoesNotHoldUpTheRightOne(side: Side, role: OrderRole) throws {
        var model = try opened(side) // net 300 either way, stop and target 300
        let stuck = try #require(model.live("P1", role))
        let other: OrderRole = role == .stopLoss ? .takeProfit : .stopLoss
        let bracketPrice = role == .stopLoss ? (side == .buy ? "95" : "105") : (side == .buy ? "110" : "90")
        let otherPrice = role == .stopLoss ? (side == .buy ? "110" : "90") : (side == .buy ? "95" : "105")
        // The other protective fills whole: flat, and the broker refuses to cancel this one.
        try model.fill("P1", other, 300, at: otherPrice)
        let atFlat = model.pull()
        let first = try #require(atFlat.firstIndex { $0.kind == .cancel && $0.orderID == stuck.id })
        model.complete(first, failing: .permanent("refused"))
        model.settle()
        // The order the broker kept fills 100: the position is now 100 the other way, and this
        // order, still live, is on the wrong side; its cancel is refused again.
        try model.fill(stuck.id, 100, at: Price(bracketPrice)!)
        let work = model.pull()
        let cancel = try #require(work.firstIndex { $0.kind == .cancel && $0.orderID == stuck.id })
        model.complete(cancel, failing: .permanent("refused again"))
        model.settle()
        let net = model.snapshot("P1").netQuantity
        #expect(net == (side == .buy ? -100 : 100))
        let rightSide: Side = net.units > 0 ? .sell : .buy
        // Both roles cover the new side at the bracket's prices; the stuck order is alerted.
        for protective in [OrderRole.stopLoss, .takeProfit] {
            let covering = model.brokerLive("P1", protective).filter { $0.1.side == rightSide }
            #expect(covering.map(\.1.open) == [100], "\(protective): \(model.brokerLive("P1", protective))")
        }
        #expect(model.brokerLive("P1", role).contains { $0.0 == stuck.id && $0.1.side != rightSide }, "the broker kept it")
        let alert = try #require(model.alerts.last { $0.kind == .operationFailed })
        #expect(alert.message.contains("it stays live on the wrong side: a \(stuck.side.rawValue) of 200 that would add to the \(net.units > 0 ? "long" : "short") of 100"),
                "\(alert.message)")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a fill that takes the position through flat to the other side cancels the remaining entry and scale-ins; the new side is protected", arguments: sides)
    func crossingFlatCancelsOpeningOrders(side: Side) throws {
        var model = try opened(side, entryFill: 200) // entry remainder 100 and the scale-in still working
        // The take-profit fills 100 (net 100), and before the stop's reduction goes out the stop
        // fills whole at its old size, 200: net -100 in one fill.
        try model.fill("P1", .takeProfit, 100, at: side == .buy ? "110" : "90")
        try model.fill("P1", .stopLoss, 200, at: side == .buy ? "95" : "105")
        let work = model.pull()
        #expect(work.contains { $0.role == .entry && $0.kind == .cancel })
        #expect(work.contains { $0.role == .scaleIn(0) && $0.kind == .cancel })
        model.settle()
        let snapshot = model.snapshot("P1")
        #expect(snapshot.netQuantity == (side == .buy ? -100 : 100))
        #expect(snapshot.liveOrders.allSatisfy { $0.role == .stopLoss || $0.role == .takeProfit }, "\(snapshot.liveOrders.map(\.role))")
        #expect(model.brokerLive("P1", .entry).isEmpty && model.brokerLive("P1", .scaleIn(0)).isEmpty, "nothing left that adds the old way")
        #expect(model.alerts.map(\.kind) == [.positionFlipped] && model.alerts.first?.role == .stopLoss, "\(model.alerts)")
        expectProtected(model)
    }

    /// Answers the in-flight operation on the role's order "too late" without the broker having
    /// filled it (a claim whose fills never come), then lets the retry that follows come due.
    private func answerTooLate(_ model: inout ModelBroker, _ role: OrderRole) throws {
        model.pull()
        let index = try #require(model.inFlight.firstIndex { $0.role == role })
        model.complete(index, failing: .tooLate("too late to modify"))
    }

    @Test("a 'too late' answer whose fills never come: the work goes again at the retry's time; a broker that keeps answering so is alerted", arguments: sides)
    func tooLateWithoutFillsIsCheckedAgain(side: Side) throws {
        var model = try opened(side)
        try model.fill("P1", .scaleIn(0), 100, at: side == .buy ? "98" : "102")
        try answerTooLate(&model, .stopLoss)
        let stop = try #require(model.live("P1", .stopLoss))
        #expect(stop.openQuantity == 300, "not resized yet: waiting for the announced fills")
        #expect(model.retries == [stop.id], "a retry is scheduled for it")
        model.settle()
        #expect(model.live("P1", .stopLoss)?.id == stop.id)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 400, "the modify went again and took effect")
        expectProtected(model)
        #expect(model.alerts.isEmpty)

        // Three "too late" answers in a row (the default maximum) with no fill: alerted, waiting.
        try model.fill("P1", .scaleIn(0), 50, at: side == .buy ? "98" : "102")
        for answer in 1...3 {
            try answerTooLate(&model, .stopLoss)
            #expect(model.retries.count == (answer < 3 ? 1 : 0))
            model.fireRetries()
        }
        let alert = try #require(model.alerts.first)
        #expect(alert.kind == .fillsOverdue)
        #expect(alert.role == .stopLoss && alert.orderID == stop.id)
        #expect(model.alerts.count == 1)
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 400, "still waiting for the fills")
        #expect(model.live("P1", .takeProfit)?.openQuantity == 450)

        // A fill of the stop comes after all (a partial one): it is re-derived at once.
        try model.fill("P1", .stopLoss, 30, at: side == .buy ? "95" : "105")
        model.settle()
        #expect(model.snapshot("P1").netQuantity.magnitude == 420)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 420)
        expectProtected(model)
    }

    @Test("a 'too late' cancel on a flat position whose fills never come: the cancel goes again, nothing is left working", arguments: sides)
    func tooLateCancelWithoutFillsIsSentAgain(side: Side) throws {
        var model = try opened(side)
        try model.fill("P1", .stopLoss, 300, at: side == .buy ? "95" : "105")
        try answerTooLate(&model, .scaleIn(0))
        #expect(model.live("P1", .scaleIn(0)) != nil, "waiting for the announced fills")
        model.settle()
        #expect(model.live("P1", .scaleIn(0)) == nil)
        #expect(model.brokerLive("P1", .scaleIn(0)).isEmpty, "cancelled at the broker")
        #expect(model.snapshot("P1").status == .closed)
        expectProtected(model)
        #expect(model.alerts.isEmpty)
    }

    @Test("rule 7: a fill on an order whose cancel was already acknowledged still counts", arguments: sides)
    func fillAfterCancelAckCounts(side: Side) throws {
        var model = try opened(side, entryFill: 100)
        try model.fill("P1", .stopLoss, 100, at: side == .buy ? "95" : "105")
        model.settle() // entry remainder cancelled and acknowledged
        let entry = try #require(model.snapshot("P1").orders.first { $0.role == .entry })
        #expect(entry.status == .cancelled)
        // The broker reports a fill that happened before the cancel (delivered late).
        var actions: [SymbolStateMachine.Action] = []
        try model.machine.apply(ExecutionReport(executionID: "LATE", orderID: entry.id, symbol: "GLD", side: side,
                                                lastQuantity: 50, lastPrice: Price("100")!), emitting: &actions)
        #expect(model.snapshot("P1").netQuantity == (side == .buy ? 50 : -50))
        #expect(model.snapshot("P1").status == .open)
        model.settle()
        #expect(model.live("P1", .stopLoss)?.openQuantity == 50)
        #expect(model.live("P1", .takeProfit)?.openQuantity == 50)
    }

    @Test("rule 8: invalid input is refused with a typed error and changes nothing", arguments: sides)
    func invalidInputChangesNothing(side: Side) throws {
        var model = try opened(side, entryFill: 200)
        let before = model.snapshot("P1")
        let entry = try #require(model.live("P1", .entry))
        let price = Price("100")!
        func report(_ id: String, order: OrderID? = nil, symbol: Symbol = "GLD", side reportSide: Side? = nil, quantity: Quantity = 10,
                    price: Price = Price("100")!, cumulative: Quantity? = nil) -> ExecutionReport {
            ExecutionReport(executionID: ExecutionID(id), orderID: order ?? entry.id, symbol: symbol, side: reportSide ?? side,
                            lastQuantity: quantity, lastPrice: price, cumulativeQuantity: cumulative)
        }
        let cases: [(ExecutionReport, InputError.Code)] = [
            (report("A", order: "nope"), .unknownOrder),
            (report("B", symbol: "SLV"), .symbolMismatch),
            (report("C", side: side.opposite), .sideMismatch),
            (report("D", quantity: 0), .invalidQuantity),
            (report("E", quantity: Quantity(units: -5)), .invalidQuantity),
            (report("F", price: Price(units: 0)), .invalidPrice),
            (report("G", quantity: 101), .overfill),
            (report("H", quantity: 10, cumulative: 150), .cumulativeWentBackwards),
            (report(model.reports[0].executionID.rawValue), .duplicateExecution),
            (report(""), .malformed),
            ({ var huge = report("I"); huge.commission = Money(units: .max); return huge }(), .invalidCommission),
            ({ var huge = report("J"); huge.commission = -ExecutionReport.maximumCommission - Money(units: 1); return huge }(), .invalidCommission),
            // The most negative amount has no positive counterpart: its message must still print it.
            ({ var huge = report("K"); huge.commission = Money(units: .min); return huge }(), .invalidCommission),
        ]
        for (bad, code) in cases {
            var actions: [SymbolStateMachine.Action] = []
            do {
                try model.machine.apply(bad, emitting: &actions)
                Issue.record("\(bad.executionID) was accepted")
            } catch {
                #expect(error.code == code, "\(bad.executionID)")
                #expect(!error.message.isEmpty)
            }
            #expect(actions.isEmpty)
            #expect(model.snapshot("P1") == before, "\(code) changed nothing")
        }
        _ = price
        // Invalid brackets.
        #expect(throws: InputError.self) { try model.open(.test(side, 0, id: "P2", symbol: "GLD")) }
        var inverted = BracketSpec.test(side, id: "P3", symbol: "GLD")
        swap(&inverted.stopLoss, &inverted.takeProfit)
        var other = ModelBroker("GLD")
        #expect { try other.open(inverted) } throws: { ($0 as? InputError)?.code == .invalidBracket }
        #expect { try model.open(.test(side, id: "P9")) } throws: { ($0 as? InputError)?.code == .positionExists }
        // A bracket whose entry and scale-ins add up beyond a quantity: its net could not be held.
        var fresh = ModelBroker("GLD")
        var oversized = BracketSpec.test(side, id: "P4", symbol: "GLD")
        oversized.quantity = .maximum
        oversized.scaleIns = [BracketSpec.ScaleIn(quantity: .maximum, type: .limit(Price("100")!)),
                              BracketSpec.ScaleIn(quantity: 1, type: .limit(Price("100")!))]
        #expect { try fresh.open(oversized) } throws: { error in
            // The message names the scale-in that goes beyond, the first, not the count.
            (error as? InputError)?.code == .invalidQuantity && (error as? InputError)?.message.hasSuffix("and scaleIns[0] takes them beyond it") == true
        }
        var unnamed = BracketSpec.test(side, id: "P5", symbol: "GLD")
        unnamed.positionID = PositionID("")
        #expect { try fresh.open(unnamed) } throws: { ($0 as? InputError)?.code == .malformed }
        // More scale-ins than a bracket may have; the most it may have is taken.
        var crowded = BracketSpec.test(side, id: "P7", symbol: "GLD")
        crowded.scaleIns = Array(repeating: BracketSpec.ScaleIn(quantity: 1, type: .limit(Price(side == .buy ? "98" : "102")!)), count: BracketSpec.maximumScaleIns + 1)
        #expect { try fresh.open(crowded) } throws: { ($0 as? InputError)?.code == .invalidBracket }
        crowded.scaleIns.removeLast()
        var roomy = ModelBroker("GLD")
        try roomy.open(crowded)
        // A symbol with a control character in it: a store or a protocol could cut it there.
        for symbol in ["B\u{0}B", "A\nB", "\u{1}X"] {
            var model = ModelBroker(Symbol(symbol))
            #expect { try model.open(.test(side, id: "P6", symbol: Symbol(symbol))) } throws: { ($0 as? InputError)?.code == .malformed }
            #expect(model.machine.snapshot(of: PositionID("P6")) == nil)
        }
    }

    @Test("one position per symbol: a new bracket waits until the closed one's orders are done at the broker", arguments: sides)
    func newBracketWaitsForTheOldOnesOrders(side: Side) throws {
        var model = try opened(side)
        try model.fill("P1", .stopLoss, 300, at: side == .buy ? "95" : "105")
        #expect(model.snapshot("P1").status == .closed)
        let cancels = model.pull()
        #expect(Set(cancels.map(\.role)) == [.takeProfit, .scaleIn(0)])
        // The target and scale-in are still working until their cancels are confirmed: a late
        // fill of either would reopen P1 beside P2.
        #expect { try model.open(.test(side, id: "P2")) } throws: { error in
            let error = error as? InputError
            return error?.code == .positionExists && error?.message.contains("closed position P1") == true
        }
        #expect(model.machine.snapshot(of: PositionID("P2")) == nil, "refused: nothing of P2 exists")
        model.settle()
        try model.open(.test(side, id: "P2"))
        #expect(model.snapshot("P2").status == .pending)
    }

    @Test("no native modify, cancel-then-create: never two live protective orders of a role", arguments: sides)
    func cancelThenCreateNeverOverCovers(side: Side) throws {
        var model = ModelBroker("GLD", .init(nativeModify: false, replaceStrategy: .cancelThenCreate))
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        try model.fill("P1", .scaleIn(0), 100, at: side == .buy ? "98" : "102")
        while true {
            let work = model.pull()
            #expect(model.brokerLive("P1", .stopLoss).count <= 1)
            #expect(model.brokerLive("P1", .takeProfit).count <= 1)
            if work.isEmpty && model.inFlight.isEmpty { break }
            if !model.inFlight.isEmpty { model.complete(0) }
        }
        #expect(model.sent.contains { $0.kind == .cancel } && !model.sent.contains { $0.kind == .modify })
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 400)
    }

    @Test("no native modify, create-then-cancel: the role is never left without an order", arguments: sides)
    func createThenCancelNeverUnprotects(side: Side) throws {
        var model = ModelBroker("GLD", .init(nativeModify: false, replaceStrategy: .createThenCancel))
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        try model.fill("P1", .scaleIn(0), 100, at: side == .buy ? "98" : "102")
        while true {
            let work = model.pull()
            #expect(model.brokerLive("P1", .stopLoss).count >= 1, "a stop is always live at the broker")
            if work.isEmpty && model.inFlight.isEmpty { break }
            if !model.inFlight.isEmpty { model.complete(0) }
        }
        expectProtected(model)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 400)
    }
}
