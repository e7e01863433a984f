import FillGuard
import FillGuardCore
import Testing
@testable import FillGuardFIX

/// How the broker ends, keeps or changes an order on its own: rejects, done for day,
/// restatements, trade busts, and a chain continued across a restart.
@Suite("FIX order routing: the broker's own endings and corrections", .timeLimit(.minutes(5)))
struct RouterLifecycleTests {
    let stop = NewOrderRequest(orderID: "O1", symbol: "GLD", side: .buy, type: .stop(Price("250")!), quantity: 100, timeInForce: .goodTillCancel)

    /// The router's outputs that tell the runtime an order ended, by outcome.
    private func endings(_ outputs: [FIXOrderRouter.Output]) -> [OrderStatusReport.Outcome] {
        outputs.compactMap { output in
            if case .event(.orderStatus(let status)) = output { return status.outcome }
            return nil
        }
    }

    private func isIgnored(_ outputs: [FIXOrderRouter.Output]) -> Bool {
        guard outputs.count == 1, case .ignored = outputs[0] else { return false }
        return true
    }

    @Test("a submit rejected after it timed out fails when sent again; it never 'succeeds'")
    func rejectedSubmitSentAgainFails() {
        var router = FIXOrderRouter()
        #expect(sentMessage(router.submit(stop, transactTime: 0))?[11] == "O1")
        // FillGuard stopped waiting (a timeout); the broker's reject comes afterwards.
        let rejected = router.received(report("O1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "3")]))
        #expect(rejected == [.completed(key: "O1", error: BrokerError(.permanent, "order rejected (OrdRejReason 3)"))])
        #expect(router.submit(stop, transactTime: 0) == .failed(BrokerError(.permanent, "order O1 was rejected")))
        // Learnt rejected from a status answer after a restart: the same.
        var restarted = FIXOrderRouter()
        guard case .send(_, let key) = restarted.massStatusRequest() else { Issue.record("no AF"); return }
        _ = restarted.received(report("O1", execType: "I", execID: "S", ordStatus: "8", extra: [
            FIXField(584, key), FIXField(911, "1"), FIXField(912, "Y"), FIXField(40, "3"), FIXField(99, "250"), FIXField(59, "1"),
            FIXField(38, "100"), FIXField(151, "0"),
        ]))
        #expect(restarted.submit(stop, transactTime: 0) == .failed(BrokerError(.permanent, "order O1 was rejected")))
    }

    @Test("a reject of a submit's repeat, after the order was accepted, leaves the order live")
    func rejectOfARepeatKeepsTheOrder() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        // Sent again after a timeout (PossResend), then the first is accepted...
        #expect(sentMessage(router.submit(stop, transactTime: 0))?[97] == "Y")
        #expect(router.received(report("O1", execType: "0", execID: "A1")) == [.completed(key: "O1", error: nil)])
        // ...and the repeat is rejected as a duplicate ClOrdID.
        #expect(isIgnored(router.received(report("O1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "6")]))))
        let replace = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 150), transactTime: 0)))
        #expect(replace.msgType == "G" && replace[41] == "O1")
        #expect(router.submit(stop, transactTime: 0) != .failed(BrokerError(.permanent, "order O1 was rejected")))
    }

    @Test("a duplicate-ClOrdID reject of a resent submit that comes before the first submit's New does not end the order: the New completes the submit")
    func duplicateRejectBeforeTheFirstAnswer() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        #expect(sentMessage(router.submit(stop, transactTime: 0))?[97] == "Y")
        // The broker answers the resend first (it holds O1 already)...
        #expect(isIgnored(router.received(report("O1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "6")]))))
        #expect(router.pendingCount == 1)
        // ...then the first submit's New: the submit succeeds and the order is live.
        #expect(router.received(report("O1", execType: "0", execID: "A1")) == [.completed(key: "O1", error: nil)])
        let cancel = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0)))
        #expect(cancel.msgType == "F" && cancel[41] == "O1")
        // Without a resend, a duplicate ClOrdID is an id the broker holds for another order: refused.
        var fresh = FIXOrderRouter()
        _ = fresh.submit(stop, transactTime: 0)
        #expect(fresh.received(report("O1", execType: "8", execID: "R2", ordStatus: "8", extra: [FIXField(103, "6")]))
            == [.completed(key: "O1", error: BrokerError(.permanent, "order rejected (OrdRejReason 6)"))])
    }

    @Test("a submit's resend answered with a second New, or with an order status, is not awaited any more: a later reject of the accepted order ends it", arguments: ["0", "I"])
    func resendAnsweredIsNotAwaited(answer: String) {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        #expect(sentMessage(router.submit(stop, transactTime: 0))?[97] == "Y")
        #expect(router.received(report("O1", execType: "0", execID: "A1")) == [.completed(key: "O1", error: nil)])
        // The broker answers the resend with the order again (a New, or its status, as FIX 4.4 allows).
        _ = router.received(report("O1", execType: answer, execID: "A2", extra: answer == "I" ? [FIXField(38, "100"), FIXField(40, "3"), FIXField(99, "250")] : []))
        // Hours later the venue rejects the working order: it ends (the runtime re-protects).
        #expect(endings(router.received(report("O1", execType: "8", execID: "R1", ordStatus: "8"))) == [.rejected])
    }

    @Test("a submit's resend that could not go out (the session was down) is not awaited: a later reject of the accepted order ends it")
    func resendNotSentIsNotAwaited() {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        router.sent(key: "O1", seq: 2)
        // The runtime asks again after a timeout, but the session is down: nothing goes out.
        #expect(sentMessage(router.submit(stop, transactTime: 0))?[97] == "Y")
        router.abandon(key: "O1")
        #expect(router.received(report("O1", execType: "0", execID: "A1")) == [.completed(key: "O1", error: nil)])
        // The venue rejects the working order later (a risk check): it ends, not "a resend's answer".
        #expect(endings(router.received(report("O1", execType: "8", execID: "R1", ordStatus: "8"))) == [.rejected])
    }

    @Test("an order whose submit was answered with a reject, then shown live (New) all the same, is cancelled, and the runtime is told when it is; one shown live by a fill is left to the runtime, which takes it back on that fill")
    func rejectedSubmitShownLiveIsCancelled() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(report("O1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "0")]))
        let outputs = router.received(report("O1", execType: "0", execID: "A1"))
        let orphan = try #require(outputs.compactMap { if case .cancelOrphan(let request) = $0 { request } else { nil } }.first, "\(outputs)")
        #expect(orphan.orderID == "O1")
        // The broker's own cancel goes out; its Canceled is passed on (a fill may have had the
        // runtime take the order back meanwhile).
        let cancel = try #require(sentMessage(router.cancel(orphan, transactTime: 0)))
        let canceled = router.received(report(try #require(cancel[11]), execType: "4", execID: "C1", ordStatus: "4", extra: [FIXField(41, "O1")]))
        #expect(endings(canceled) == [.cancelled], "\(canceled)")
        // Shown live by a fill instead: passed on, not cancelled here.
        var other = FIXOrderRouter()
        _ = other.submit(stop, transactTime: 0)
        _ = other.received(report("O1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "0")]))
        let filled = other.received(fill("O1", execID: "F1", last: "10", price: "250", cum: "10", leaves: "90"))
        #expect(!filled.contains { if case .cancelOrphan = $0 { true } else { false } }, "\(filled)")
        #expect(filled.contains { if case .event(.execution) = $0 { true } else { false } }, "\(filled)")
    }

    @Test("a replace in flight at a restart: its answer and later fills map, and the chain goes on after it")
    func chainContinuesPastARestart() throws {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no AF"); return }
        // The status shows O7~1 pending replace: the process died with O7~2 in flight.
        _ = router.received(report("O7~1", execType: "I", execID: "S", ordStatus: "E", extra: [
            FIXField(584, key), FIXField(911, "1"), FIXField(912, "Y"), FIXField(54, "2"), FIXField(40, "3"), FIXField(99, "245"),
            FIXField(59, "1"), FIXField(38, "300"), FIXField(151, "300"),
        ]))
        let replaced = router.received(report("O7~2", execType: "5", execID: "P1", extra: [FIXField(41, "O7~1"), FIXField(54, "2"), FIXField(38, "400")]))
        #expect(refusal(replaced) == nil)
        // FillGuard's own replace, sent before the restart, leaves another size than recovery
        // learnt (300): passed on, so that the runtime reads the order and plans it again (it may
        // have settled that replace as not applied, and the position moved since).
        let corrections = replaced.compactMap { if case .event(.correction(let id, _, let message)) = $0 { (id, message) } else { nil } }
        #expect(corrections.count == 1 && corrections.first?.0 == "O7" && corrections.first?.1.contains("from 300 to 400") == true, "\(replaced)")
        var later = fill("O7~2", execID: "P2", last: "40", price: "245", cum: "40", leaves: "360")
        later[54] = "2"
        guard case .event(.execution(let execution))? = router.received(later).first else { Issue.record("the fill was not taken"); return }
        #expect(execution.orderID == "O7" && execution.lastQuantity == 40)
        let next = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "O7", symbol: "GLD", newQuantity: 360), transactTime: 0)))
        #expect(next[41] == "O7~2" && next[11] == "O7~3")
        // An id further on than anything sent or shown is still refused.
        var unknown = fill("O7~9", execID: "P3", last: "1", price: "245", cum: "41", leaves: "359")
        unknown[54] = "2"
        #expect(refusal(router.received(unknown))?.error.code == .unknownOrder)
    }

    @Test("after a restart, an order a desk replaced is listed under the desk's ClOrdID with ours as OrigClOrdID: it is our order (it was a stranger, ours 'missing' and placed again)")
    func deskReplacedOrderIsOursAfterARestart() throws {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no AF"); return }
        let listed = report("DESK-7", execType: "I", execID: "S", extra: [
            FIXField(584, key), FIXField(911, "1"), FIXField(912, "Y"), FIXField(41, "P1-sl4~2"), FIXField(54, "2"), FIXField(40, "3"),
            FIXField(99, "245"), FIXField(59, "1"), FIXField(38, "500"), FIXField(151, "500"),
        ])
        guard case .status(_, let status?, true)? = router.received(listed).first else { Issue.record("no status"); return }
        #expect(status.orderID == "P1-sl4")
        // Our chain goes on after the number the desk replaced (~1 and ~2 were issued: reused,
        // the broker refuses them as duplicates).
        let replace = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "P1-sl4", symbol: "GLD", newQuantity: 400), transactTime: 0)))
        #expect(replace[41] == "DESK-7" && replace[11] == "P1-sl4~3", "\(replace)")
        // Our own chain listed under a later number of it is still its root's.
        var other = FIXOrderRouter()
        guard case .send(_, let otherKey) = other.massStatusRequest() else { Issue.record("no AF"); return }
        var chained = listed
        chained[584] = otherKey
        chained[11] = "P1-sl4~2"
        chained[41] = "P1-sl4~1"
        guard case .status(_, let own?, true)? = other.received(chained).first else { Issue.record("no status"); return }
        #expect(own.orderID == "P1-sl4")
    }

    @Test("ClOrdIDs sent before a restart (read from the FIX store) are never issued again: the chain goes on after the highest, for an order learnt from a status answer and for one submitted again")
    func idsSentBeforeARestartAreNotReused() throws {
        var router = FIXOrderRouter()
        // Before the restart: O7's replaces up to ~5 went out (refused, so the status shows ~2).
        for id in ["O7", "O7~1", "O7~2", "O7~3", "O7~4", "O7~5", "N1", "N1~1"] { router.noteIssued(id) }
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no AF"); return }
        _ = router.received(report("O7~2", execType: "I", execID: "S", extra: [
            FIXField(584, key), FIXField(911, "1"), FIXField(912, "Y"), FIXField(54, "2"), FIXField(40, "3"), FIXField(99, "245"),
            FIXField(59, "1"), FIXField(38, "300"), FIXField(151, "300"),
        ]))
        let replace = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "O7", symbol: "GLD", newQuantity: 400), transactTime: 0)))
        #expect(replace[41] == "O7~2" && replace[11] == "O7~6", "\(replace)")
        // N1, not listed (it had ended), submitted again under its id: its chain starts after ~1.
        let again = NewOrderRequest(orderID: "N1", symbol: "GLD", side: .buy, type: .limit(Price("240")!), quantity: 10, timeInForce: .goodTillCancel)
        _ = router.submit(again, transactTime: 0)
        _ = router.received(report("N1", execType: "0", execID: "A1"))
        let cancel = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "N1", symbol: "GLD"), transactTime: 0)))
        #expect(cancel[11] == "N1~2", "\(cancel)")
    }

    @Test("done for day ends a day order and not one good till cancel; a status answer reads it the same way")
    func doneForDayByTimeInForce() throws {
        var router = FIXOrderRouter()
        var day = stop
        day.orderID = "D1"
        day.timeInForce = .day
        for request in [stop, day] {
            _ = router.submit(request, transactTime: 0)
            _ = router.received(report(request.orderID.rawValue, execType: "0", execID: "A-\(request.orderID)"))
        }
        #expect(endings(router.received(report("D1", execType: "3", execID: "E1", ordStatus: "3"))) == [.expired])
        #expect(router.cancel(CancelOrderRequest(orderID: "D1", symbol: "GLD"), transactTime: 0) == .failed(BrokerError(.tooLate, "order D1 is done")))
        #expect(isIgnored(router.received(report("O1", execType: "3", execID: "E2", ordStatus: "3"))))
        #expect(sentMessage(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0))?.msgType == "F")

        func status(_ timeInForce: String?) -> FIXOrderStatus {
            FIXOrderStatus(orderID: "O1", clOrdID: "O1", brokerOrderID: "B", symbol: "GLD", side: .buy, ordStatus: "3",
                           cumulativeQuantity: 10, leavesQuantity: 90, averagePrice: nil, timeInForce: timeInForce)
        }
        #expect(!status("1").isTerminal && status("1").orderStatus == .partiallyFilled)
        #expect(!status("6").isTerminal)
        #expect(status("0").isTerminal && status("0").orderStatus == .expired)
        #expect(status(nil).isTerminal, "TimeInForce absent is Day")
    }

    @Test("an order ended before its New came (an IOC that found nothing): the submit succeeded, then the order ended")
    func endedBeforeItsNew() {
        for (execType, outcome) in [("4", OrderStatusReport.Outcome.cancelled), ("C", .expired)] {
            var router = FIXOrderRouter()
            var ioc = stop
            ioc.type = .market
            ioc.timeInForce = .immediateOrCancel
            _ = router.submit(ioc, transactTime: 0)
            let outputs = router.received(report("O1", execType: execType, execID: "E1", ordStatus: execType, extra: [FIXField(151, "0")]))
            #expect(outputs.first == .completed(key: "O1", error: nil), "ExecType \(execType): \(outputs)")
            #expect(endings(outputs) == [outcome])
        }
    }

    /// A router that learnt, from a mass status after a restart, order O7 (a sell stop for 300)
    /// with this OrdStatus and TimeInForce.
    private func learnt(ordStatus: String, timeInForce: String?) -> FIXOrderRouter {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else {
            Issue.record("no mass status request")
            return router
        }
        var fields = [FIXField(584, key), FIXField(911, "1"), FIXField(912, "Y"), FIXField(54, "2"), FIXField(40, "3"), FIXField(99, "245"),
                      FIXField(38, "300"), FIXField(151, "300")]
        if let timeInForce { fields.append(FIXField(59, timeInForce)) }
        _ = router.received(report("O7", execType: "I", execID: "S", ordStatus: ordStatus, extra: fields))
        return router
    }

    @Test("after a restart: a reject of an order learnt pending new ends it; a learnt good-till-date order outlives a done for day")
    func learntOrders() {
        var pending = learnt(ordStatus: "A", timeInForce: "1")
        let rejected = pending.received(report("O7", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(54, "2"), FIXField(103, "3")]))
        #expect(endings(rejected) == [.rejected], "the broker never accepted it: the reject ends it")
        var accepted = learnt(ordStatus: "0", timeInForce: "1")
        #expect(isIgnored(accepted.received(report("O7", execType: "8", execID: "R2", ordStatus: "8", extra: [FIXField(54, "2"), FIXField(103, "6")]))))

        var tillDate = learnt(ordStatus: "0", timeInForce: "6")
        #expect(isIgnored(tillDate.received(report("O7", execType: "3", execID: "D1", ordStatus: "3", extra: [FIXField(54, "2")]))))
        var day = learnt(ordStatus: "0", timeInForce: nil)
        #expect(endings(day.received(report("O7", execType: "3", execID: "D2", ordStatus: "3", extra: [FIXField(54, "2")]))) == [.expired])
    }

    @Test("a trade bust for an order the router does not know (after a restart) still reaches the runtime, under its root")
    func bustOfAnUnknownOrder() {
        var router = FIXOrderRouter()
        let bust = report("P1-en1", execType: "H", execID: "B1", extra: [FIXField(19, "F1")])
        #expect(correction(router.received(bust))?.orderID == "P1-en1")
    }

    @Test("the ExecIDs remembered against repeats are bounded: the newest generation at least, never more than two")
    func execIDMemoryIsBounded() {
        var ids = RecentExecIDs()
        let size = RecentExecIDs.generationSize
        for number in 0..<(2 * size + 10) { ids.insert("E\(number)") }
        #expect(ids.count <= 2 * size)
        #expect(ids.contains("E\(2 * size + 9)") && ids.contains("E\(size + 10)"), "the newest generation is kept")
        #expect(!ids.contains("E0"), "the oldest is forgotten")
        ids.remove("E\(2 * size + 9)")
        #expect(!ids.contains("E\(2 * size + 9)"))
    }

    /// The message of the single broker correction in `outputs`, if that is what they are.
    private func correction(_ outputs: [FIXOrderRouter.Output]) -> (orderID: OrderID, message: String)? {
        guard outputs.count == 1, case .event(.correction(let orderID, _, let message)) = outputs[0] else { return nil }
        return (orderID, message)
    }

    @Test("a trade cancel or correct reaches the runtime as a broker correction (not a fill), once")
    func tradeBustIsACorrection() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "A1"))
        guard case .event(.execution)? = router.received(fill("O1", execID: "F1", last: "40", price: "250", cum: "40", leaves: "60")).first else {
            Issue.record("the fill was not taken"); return
        }
        for execType in ["H", "G"] {
            let bust = report("O1", execType: execType, execID: "B\(execType)", ordStatus: "0", extra: [FIXField(19, "F1"), FIXField(14, "0"), FIXField(151, "100")])
            let taken = try #require(correction(router.received(bust)))
            #expect(taken.orderID == "O1" && taken.message.contains("fill F1 of order O1"))
            #expect(router.received(bust) == [.duplicate(ExecutionID("B\(execType)"))], "a repeat is a duplicate")
        }
    }

    @Test("a restatement: an end is taken; a new size reaches the runtime as a broker correction and changes nothing")
    func restatements() throws {
        var router = FIXOrderRouter()
        var second = stop
        second.orderID = "O2"
        for request in [stop, second] {
            _ = router.submit(request, transactTime: 0)
            _ = router.received(report(request.orderID.rawValue, execType: "0", execID: "A-\(request.orderID)"))
        }
        let resized = report("O1", execType: "D", execID: "D1", extra: [FIXField(38, "60"), FIXField(151, "60"), FIXField(378, "5")])
        let taken = try #require(correction(router.received(resized)))
        #expect(taken.orderID == "O1" && taken.message.contains("from 100 to 60"))
        #expect(sentMessage(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0))?[38] == "100")
        #expect(isIgnored(router.received(report("O2", execType: "D", execID: "D2", extra: [FIXField(38, "100")]))))
        #expect(endings(router.received(report("O2", execType: "D", execID: "D3", ordStatus: "4", extra: [FIXField(151, "0")]))) == [.cancelled])
    }
}
