import FillGuard
import FillGuardCore
import Testing
@testable import FillGuardFIX

/// Reports and answers from a white-box review of the router: each once lost a fill, stuck an
/// order, or trapped; each test states what must hold.
@Suite("FIX router: reports that were lost or stuck", .timeLimit(.minutes(5)))
struct RouterHardeningTests {
    let stop = NewOrderRequest(orderID: "P1-sl1", symbol: "GLD", side: .sell, type: .stop(Price("245")!), quantity: 100,
                               timeInForce: .goodTillCancel)

    func sellReport(_ clOrdID: String, execType: String, execID: String, ordStatus: String = "0", extra: [FIXField] = []) -> FIXMessage {
        report(clOrdID, execType: execType, execID: execID, ordStatus: ordStatus,
               extra: [FIXField(54, "2"), FIXField(37, "B1"), FIXField(151, "100")] + extra)
    }

    /// A cancel beside an unanswered submit is rejected "unknown order" (the venue had not booked
    /// the order yet), then the broker's New for the submit arrives: the order is live, and the
    /// runtime has it as never taken. The router asks for it to be cancelled, and can cancel it.
    @Test func lateNewAfterAnUnknownOrderCancelRejectIsCancelled() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)))
        let reject = FIXMessage(msgType: "9", fields: [
            FIXField(37, "NONE"), FIXField(11, "P1-sl1~1"), FIXField(41, "P1-sl1"), FIXField(39, "8"), FIXField(434, "1"),
            FIXField(102, "1"), FIXField(58, "unknown order"),
        ])
        _ = router.received(reject)
        // The venue's acknowledgement of the NewOrderSingle comes after all: the stop is working.
        let late = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        #expect(late.contains(.cancelOrphan(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"))), "\(late)")
        // A fill of it is still passed on (the stop triggers): the runtime counts it.
        var stopFill = fill("P1-sl1", execID: "F1", last: "10", price: "245", cum: "10", leaves: "90")
        stopFill[54] = "2"
        stopFill[37] = "B1"
        let filled = router.received(stopFill)
        #expect(filled.contains { if case .event(.execution) = $0 { return true } else { return false } }, "\(filled)")
        // The position is flat / the runtime wants the stop gone: a cancel must go out.
        let plan = router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)
        #expect(sentMessage(plan)?.msgType == "F", "the live order cannot be cancelled: \(plan)")
    }

    /// A PositionReport quantity that is unreadable (5e2) or negative fails the request: the net
    /// would be a guess.
    @Test func unreadablePositionQuantitiesFailTheRequest() {
        for (long, short) in [("5e2", "40"), ("500", "-40")] {
            var router = FIXOrderRouter()
            guard case .send(_, let key) = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0) else {
                Issue.record("no positions request")
                return
            }
            _ = router.received(FIXMessage(msgType: "AO", fields: [FIXField(721, "A"), FIXField(710, key), FIXField(727, "1"), FIXField(728, "0"), FIXField(729, "0")]))
            let outputs = router.received(FIXMessage(msgType: "AP", fields: [
                FIXField(721, "R"), FIXField(710, key), FIXField(728, "0"), FIXField(55, "GLD"), FIXField(702, "1"),
                FIXField(703, "FIN"), FIXField(704, long), FIXField(705, short),
            ]))
            guard case .completed(key, let error?)? = outputs.first else {
                Issue.record("LongQty \(long) / ShortQty \(short) did not fail the request: \(outputs)")
                continue
            }
            #expect(error.kind == .permanent && error.message.contains("is not a quantity"), "\(error)")
        }
    }

    /// A PositionReport whose entries add up beyond any quantity fails the request (it trapped).
    @Test func hugePositionReportsFailTheRequest() async {
        await #expect(processExitsWith: .success) {
            var router = FIXOrderRouter()
            guard case .send(_, let key) = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0) else {
                fatalError("no positions request")
            }
            _ = router.received(FIXMessage(msgType: "AO", fields: [FIXField(721, "A"), FIXField(710, key), FIXField(727, "1"), FIXField(728, "0"), FIXField(729, "0")]))
            var fields = [FIXField(721, "R"), FIXField(710, key), FIXField(728, "0"), FIXField(55, "GLD"), FIXField(702, "50")]
            for _ in 0..<50 { fields += [FIXField(703, "TQ"), FIXField(704, "1000000000"), FIXField(705, "0")] }
            let outputs = router.received(FIXMessage(msgType: "AP", fields: fields))
            // Failed, not trusted (and not trapped): the exit status says which.
            guard case .completed(key, let error?)? = outputs.first, error.message.contains("beyond") else { fatalError("not failed: \(outputs)") }
        }
    }

    /// A fill whose AvgPx (6) is the average of fills at different prices, printed with more than
    /// 8 places as brokers do, is taken (it was refused whole, and its fill lost).
    @Test func fillsWithALongAvgPxAreTaken() {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        for (execID, last, price, cum, leaves, avg) in [("E1", "10", "245", "10", "90", "245"),
                                                         ("E2", "20", "244.5", "30", "70", "244.66666666666666")] {
            var message = fill("P1-sl1", execID: execID, last: last, price: price, cum: cum, leaves: leaves)
            message[54] = "2"
            message[37] = "B1"
            message[6] = avg
            let outputs = router.received(message)
            guard case .event(.execution(let execution))? = outputs.first else {
                Issue.record("fill \(execID) (LastQty \(last) at \(price)) was not passed on: \(outputs)")
                continue
            }
            #expect(execution.lastQuantity == Quantity(last)!)
        }
    }

    /// A modify whose answer never comes (the counterparty gap-filled its Replaced, or answered
    /// its PossResend repeat with an Order Status): a cancel still goes out (it was refused as
    /// "request in flight" for ever, keeping a stop live on a flat position).
    @Test func cancelGoesBesideAnUnansweredModify() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        let modify = ModifyOrderRequest(orderID: "P1-sl1", symbol: "GLD", newQuantity: 60)
        _ = try #require(sentMessage(router.modify(modify, transactTime: 0)))
        // Timed out; the runtime asks again: the same G goes with PossResend=Y.
        let again = try #require(sentMessage(router.modify(modify, transactTime: 0)))
        #expect(again[97] == "Y")
        // The broker had it and answers the repeat with the order's status (ExecType I, no 790/584).
        _ = router.received(sellReport("P1-sl1~1", execType: "I", execID: "S1", ordStatus: "0",
                                                extra: [FIXField(41, "P1-sl1"), FIXField(38, "60"), FIXField(151, "60")]))
        // The position went flat: the stop must be cancelled.
        var plans: [FIXOrderRouter.Plan] = []
        for _ in 0..<3 { plans.append(router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)) }
        #expect(plans.contains { sentMessage($0)?.msgType == "F" }, "no cancel can ever go out: \(plans)")
    }

    /// A status query whose answer did not come in time is forgotten (the table of requests in
    /// flight grew with every one over a long session); its late answer is ignored. An order
    /// request stays: its answer still says what the broker did.
    @Test func timedOutQueriesAreForgotten() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        guard case .send(_, let key) = router.statusRequest("P1-sl1") else { Issue.record("no status request"); return }
        #expect(router.queriesInFlight == 1)
        router.queryTimedOut(key: key)
        router.queryTimedOut(key: "P1-sl1") // the submit: not a query
        #expect(router.queriesInFlight == 0)
        let late = router.received(sellReport("P1-sl1", execType: "I", execID: "S1", ordStatus: "0", extra: [FIXField(790, key)]))
        #expect(late.allSatisfy { if case .ignored = $0 { return true } else { return false } }, "\(late)")
        // The submit is still answered.
        let new = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        #expect(new.contains(.completed(key: "P1-sl1", error: nil)), "\(new)")
    }

    /// A Rejected (8) of an order the broker accepted ends it when nothing asked for it (a late
    /// reject by the venue: the stop is gone, and the runtime re-protects); it answers a resent
    /// submit (a duplicate ClOrdID) only when one was resent, or when OrdRejReason says so (6).
    @Test func unsolicitedRejectOfAnAcceptedOrderEndsIt() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        let late = router.received(sellReport("P1-sl1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "99")]))
        #expect(late.contains { if case .event(.orderStatus(let status)) = $0 { return status.outcome == .rejected } else { return false } }, "\(late)")

        var resent = FIXOrderRouter()
        _ = resent.submit(stop, transactTime: 0)
        let again = try #require(sentMessage(resent.submit(stop, transactTime: 0)))
        #expect(again[97] == "Y")
        _ = resent.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        let duplicate = resent.received(sellReport("P1-sl1", execType: "8", execID: "R1", ordStatus: "8", extra: [FIXField(103, "99")]))
        #expect(duplicate.allSatisfy { if case .ignored = $0 { return true } else { return false } }, "the resend's answer: \(duplicate)")
        // Once the resend is answered, the next one is the broker's own.
        let own = resent.received(sellReport("P1-sl1", execType: "8", execID: "R2", ordStatus: "8"))
        #expect(own.contains { if case .event(.orderStatus(let status)) = $0 { return status.outcome == .rejected } else { return false } }, "\(own)")
    }

    /// The broker takes a replace, then refuses the cancel sent beside it as "unknown order"
    /// (its OrigClOrdID is no longer current), whatever OrdStatus it gives (FIX 4.4 says
    /// Rejected, 8, for an unknown order; others give the order's status), and whether or not
    /// the Replaced came first: the order still works, so the cancel goes again under the
    /// replace's ClOrdID. (A permanent failure left a stop live on a flat position until a
    /// re-arm; an 8 ended the order here while it worked at the broker.)
    @Test(arguments: [(replacedFirst: true, ordStatus: "0"), (replacedFirst: true, ordStatus: "8"),
                      (replacedFirst: false, ordStatus: "8"), (replacedFirst: false, ordStatus: "0")])
    func cancelBesideATakenReplaceGoesAgainUnderIt(replacedFirst: Bool, ordStatus: String) throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        let replace = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "P1-sl1", symbol: "GLD", newQuantity: 60), transactTime: 0)))
        let replaceID = try #require(replace[11])
        let cancel = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)))
        #expect(cancel[41] == "P1-sl1")
        if replacedFirst {
            let replaced = router.received(sellReport(replaceID, execType: "5", execID: "R1",
                                                      extra: [FIXField(41, "P1-sl1"), FIXField(38, "60")]))
            #expect(replaced.contains { if case .completed(replaceID, nil) = $0 { true } else { false } }, "\(replaced)")
        }
        let refused = router.received(FIXMessage(msgType: "9", fields: [
            FIXField(37, "B1"), FIXField(11, cancel[11]!), FIXField(41, "P1-sl1"), FIXField(39, ordStatus), FIXField(434, "1"),
            FIXField(102, "1"), FIXField(58, "OrigClOrdID is not the current ClOrdID"),
        ]))
        #expect(refused.contains { if case .completed(let key, let error?) = $0 { return key == cancel[11] && error.kind == .transient } else { return false } },
                "\(refused)")
        #expect(router.currentClOrdID(of: "P1-sl1") == replaceID)
        let again = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)),
                                 "the order is not taken as ended")
        #expect(again[41] == replaceID && again[38] == "60", "\(again)")
        let canceled = router.received(sellReport(again[11]!, execType: "4", execID: "C1", ordStatus: "4", extra: [FIXField(41, replaceID)]))
        #expect(canceled.contains { if case .completed(let key, nil) = $0 { key == again[11] } else { false } }, "\(canceled)")
    }

    /// With a cancel in flight beside a replace, a Canceled or Replaced that names the order by
    /// OrderID (37) alone answers the request of its kind, never the other one (the request was
    /// picked from a set: a Replaced could be taken as a desk's replace, a Canceled as unsolicited).
    @Test(arguments: ["4", "5"])
    func reportByOrderIDAnswersTheRequestOfItsKind(execType: String) throws {
        for _ in 0..<20 {
            var router = FIXOrderRouter()
            _ = router.submit(stop, transactTime: 0)
            _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
            let replace = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "P1-sl1", symbol: "GLD", newQuantity: 60), transactTime: 0)))
            let cancel = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)))
            var answer = sellReport("X", execType: execType, execID: "A\(execType)", ordStatus: execType, extra: execType == "5" ? [FIXField(38, "60")] : [])
            answer[11] = nil
            let outputs = router.received(answer)
            let expected = execType == "4" ? cancel[11]! : replace[11]!
            #expect(outputs.contains { if case .completed(expected, nil) = $0 { true } else { false } }, "\(outputs)")
        }
    }

    /// What the router keeps of sent requests (for a Reject naming one by MsgSeqNum) stays
    /// bounded in a long session: answered requests are forgotten, pending ones never.
    @Test func sentRequestsAreForgottenOnceAnswered() throws {
        var router = FIXOrderRouter()
        var seq = 1
        _ = router.submit(stop, transactTime: 0)
        router.sent(key: "P1-sl1", seq: seq)
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        let open = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "P1-sl1", symbol: "GLD", newQuantity: 99), transactTime: 0)))
        seq += 1
        router.sent(key: open[11]!, seq: seq)   // never answered: stays
        for i in 0..<(3 * FIXOrderRouter.sentMemoryFloor) {
            let id = OrderID("P\(i + 2)-sl1")
            _ = router.submit(NewOrderRequest(orderID: id, symbol: "GLD", side: .sell, type: .stop(Price("245")!), quantity: 100, timeInForce: .goodTillCancel), transactTime: 0)
            seq += 1
            router.sent(key: id.rawValue, seq: seq)
            _ = router.received(sellReport(id.rawValue, execType: "0", execID: "N\(i + 2)"))
        }
        let remembered = router.sentRequestsRemembered
        #expect(remembered.bySequence <= 2 * FIXOrderRouter.sentMemoryFloor + 2 && remembered.sent <= 2 * FIXOrderRouter.sentMemoryFloor + 2, "\(remembered)")
        // The pending replace is still found by its MsgSeqNum.
        let reject = router.received(FIXMessage(msgType: "3", fields: [FIXField(45, "2"), FIXField(373, "5"), FIXField(58, "bad")]))
        #expect(reject.contains { if case .completed(open[11]!, _?) = $0 { true } else { false } }, "\(reject)")
    }

    /// The router forgets the oldest ended orders beyond what it keeps, never a live one: memory
    /// stays flat in a long session, and a late fill of a forgotten order still reaches the runtime.
    @Test func oldEndedOrdersAreForgottenLiveOnesKept() throws {
        var router = FIXOrderRouter()
        router.endedOrdersKept = 10
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N-live"))
        for i in 0..<3_000 {
            let id = OrderID("P\(i + 2)-sl1")
            _ = router.submit(NewOrderRequest(orderID: id, symbol: "GLD", side: .sell, type: .stop(Price("245")!), quantity: 100, timeInForce: .goodTillCancel), transactTime: 0)
            _ = router.received(sellReport(id.rawValue, execType: "0", execID: "N\(i)"))
            _ = router.received(sellReport(id.rawValue, execType: "4", execID: "C\(i)", ordStatus: "4"))
        }
        #expect(router.ordersKnown <= 10 + 1 + 1_024 + 1, "\(router.ordersKnown) orders kept")
        // The live order still maps, by ClOrdID, and can be cancelled.
        var live = fill("P1-sl1", execID: "F-live", last: "10", price: "245", cum: "10", leaves: "90")
        live[54] = "2"
        live[37] = "B1"
        #expect(router.received(live).contains { if case .event(.execution(let e)) = $0 { e.orderID == "P1-sl1" } else { false } })
        #expect(sentMessage(router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0))?.msgType == "F")
        // A late fill of a forgotten order still goes to the runtime (under its id), never dropped.
        var late = fill("P2-sl1", execID: "F-late", last: "10", price: "245", cum: "10", leaves: "0")
        late[54] = "2"
        #expect(router.received(late).contains { if case .event(.execution(let e)) = $0 { e.orderID == "P2-sl1" } else { false } })
        // The newest ended ones are still known: a repeat of a Canceled is taken as such.
        #expect(router.ordersKnown > 10)
    }

    /// A mass status answer whose reports carry LastRptRequested (912) on the last one only is
    /// read to its end by TotNumReports (911) (it ended at the first report).
    @Test func massStatusEndsAtTotNumReports() {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no mass status request"); return }
        func status(_ clOrdID: String, _ last: String?) -> FIXMessage {
            var message = report(clOrdID, execType: "I", execID: "I-\(clOrdID)", ordStatus: "0", extra: [
                FIXField(584, key), FIXField(911, "2"), FIXField(40, "3"), FIXField(99, "245"), FIXField(38, "100"), FIXField(54, "2"),
            ])
            if let last { message[912] = last }
            return message
        }
        let first = router.received(status("P1-sl1", nil))
        let second = router.received(status("P2-sl1", "Y"))
        #expect(first.count == 1 && { if case .status(_, _, last: false) = first[0] { return true } else { return false } }(),
                "the first of two reports (TotNumReports 2) ended the mass status: \(first)")
        #expect(second.count == 1 && { if case .status(_, _?, last: true) = second[0] { return true } else { return false } }(),
                "the second order is lost: \(second)")
    }

    /// A mass status answer whose reports carry neither 912 nor 911 (both optional) is not cut
    /// short at its first report (recovery took the other orders as missing at the broker and
    /// placed them again beside them): every report is collected, and the answer is complete when
    /// the request's time is up. Other queries that time out are forgotten, not completed.
    @Test func massStatusWithoutCountsIsTakenWholeWhenTimeIsUp() {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no mass status request"); return }
        var outputs: [FIXOrderRouter.Output] = []
        for id in ["P1-sl1", "P2-sl1", "P3-sl1"] {
            outputs += router.received(report(id, execType: "I", execID: "I-\(id)", ordStatus: "0", extra: [
                FIXField(584, key), FIXField(40, "3"), FIXField(99, "245"), FIXField(38, "100"), FIXField(54, "2"),
            ]))
        }
        let statuses = outputs.compactMap { output -> (FIXOrderStatus?, Bool)? in
            if case .status(key, let status, let last) = output { return (status, last) }
            return nil
        }
        #expect(statuses.count == 3 && statuses.allSatisfy { $0.0 != nil && !$0.1 }, "no report ended the answer: \(outputs)")
        #expect(router.queriesInFlight == 1)
        let complete = router.queryTimedOut(key: key)
        #expect(complete, "complete with what came")
        #expect(router.queriesInFlight == 0)
        guard case .send(_, let statusKey) = router.massStatusRequest() else { Issue.record("no mass status request"); return }
        let answered = router.queryTimedOut(key: statusKey)
        #expect(!answered, "no report came: a timeout, not an answer")

        // 912=N on every report: complete when as many as TotNumReports said have come, not before.
        for (count, sent) in [(2, 2), (3, 2)] {
            guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no mass status request"); return }
            for index in 0..<sent {
                let outputs = router.received(report("Q\(index)-sl1", execType: "I", execID: "I-\(count)-\(index)", ordStatus: "0", extra: [
                    FIXField(584, key), FIXField(911, "\(count)"), FIXField(912, "N"), FIXField(40, "3"), FIXField(99, "245"), FIXField(38, "100"), FIXField(54, "2"),
                ]))
                #expect(outputs.allSatisfy { if case .status(_, _, last: false) = $0 { return true } else { return false } }, "\(outputs)")
            }
            let complete = router.queryTimedOut(key: key)
            #expect(complete == (sent >= count), "\(sent) of \(count) reports with 912=N")
        }
    }

    /// A TotNumReports (911) that cannot be read fails the mass status (it cut the answer short at
    /// its first report, and the orders after it were missing from `openOrders()`).
    @Test func unreadableTotNumReportsFailsTheMassStatus() {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no mass status request"); return }
        let first = router.received(report("P1-sl1", execType: "I", execID: "I1", ordStatus: "0", extra: [
            FIXField(584, key), FIXField(911, "x3"), FIXField(40, "3"), FIXField(99, "245"), FIXField(38, "100"), FIXField(54, "2"),
        ]))
        #expect(first.count == 1 && { if case .malformedStatus(key, _, last: true) = first[0] { return true } else { return false } }(), "\(first)")
    }

    /// A replace of a good-till-cancel stop refused after the close (OrderCancelReject with
    /// OrdStatus 3, done for day) leaves the order live for the next session, as the router's
    /// own done-for-day handling does (it was marked done for good).
    @Test func doneForDayCancelRejectKeepsAGoodTillCancelOrder() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)  // TimeInForce GTC
        _ = router.received(sellReport("P1-sl1", execType: "0", execID: "N1"))
        // The broker's own done-for-day report keeps the GTC order live (control).
        #expect(router.received(sellReport("P1-sl1", execType: "3", execID: "D1", ordStatus: "3")).count == 1)
        _ = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "P1-sl1", symbol: "GLD", newQuantity: 60), transactTime: 0)))
        let reject = FIXMessage(msgType: "9", fields: [
            FIXField(37, "B1"), FIXField(11, "P1-sl1~1"), FIXField(41, "P1-sl1"), FIXField(39, "3"), FIXField(434, "2"),
            FIXField(102, "2"), FIXField(58, "market closed"),
        ])
        let refused = router.received(reject)
        #expect(refused.count == 1, "\(refused)")
        // Next morning the stop works again: it must still be resizable and cancellable.
        let modify = router.modify(ModifyOrderRequest(orderID: "P1-sl1", symbol: "GLD", newQuantity: 60), transactTime: 0)
        let cancel = router.cancel(CancelOrderRequest(orderID: "P1-sl1", symbol: "GLD"), transactTime: 0)
        #expect(sentMessage(modify)?.msgType == "G", "\(modify)")
        #expect(sentMessage(cancel)?.msgType == "F" || sentMessage(modify) != nil, "\(cancel)")
    }

    /// A fill whose LeavesQty is 0 while OrdStatus says the order still works (1): the 0 is not
    /// taken (the runtime ended the order short, and refused its next fill as an overfill).
    @Test func leavesZeroWithAWorkingOrdStatusIsNotTaken() async throws {
        let broker = AcceptingBroker()
        let manager = FillManager(broker: broker, logger: quietLogger)
        try await manager.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 100, entryType: .market,
                                           stopLoss: Price("245"), takeProfit: nil))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        var router = FIXOrderRouter()
        _ = router.submit(NewOrderRequest(orderID: entry.id, symbol: "GLD", side: .buy, type: .market, quantity: 100, timeInForce: .day),
                          transactTime: 0)
        _ = router.received(report(entry.id.rawValue, execType: "0", execID: "N1"))
        // 40 of 100, OrdStatus 1 (partially filled, working) but LeavesQty 0.
        for message in [fill(entry.id.rawValue, execID: "E1", last: "40", price: "248", cum: "40", leaves: "0", status: "1"),
                        fill(entry.id.rawValue, execID: "E2", last: "60", price: "248", cum: "100", leaves: "0", status: "2")] {
            let outputs = router.received(message)
            for case .event(let event) in outputs { manager.receive(event) }
            await manager.waitUntilIdle()
        }
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == 100, "the broker filled 100; FillGuard booked \(position.netQuantity)")
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 100)
    }
}

/// A fill the counterparty resends (PossDupFlag=Y) without OrigSendingTime (122) is refused
/// with a session Reject, and reported as a refused application message, so the runtime hears of
/// it (it vanished without a word).
@Suite("FIX session: refused resends", .timeLimit(.minutes(5)))
struct SessionRefusedResendTests {
    @Test func possDupWithoutOrigSendingTimeIsReportedRefused() {
        var machine = FIXSessionStateMachine(configuration: FIXSessionConfiguration(senderCompID: "FG", targetCompID: "EX", heartbeatInterval: 30))
        _ = machine.connected(now: 0)
        let logon = machine.received(peer("A", 1, [FIXField(98, "0"), FIXField(108, "30")]), now: 0)
        #expect(logon.contains(.loggedOn))
        var fields = [FIXField(43, "Y")]
        fields += [FIXField(37, "B1"), FIXField(11, "O1"), FIXField(17, "E1"), FIXField(150, "F"), FIXField(39, "2"), FIXField(55, "GLD"),
                   FIXField(54, "1"), FIXField(151, "0"), FIXField(14, "10"), FIXField(6, "100"), FIXField(32, "10"), FIXField(31, "100")]
        let actions = machine.received(peer("8", 2, fields), now: 0)
        let deliveredOrRefused = actions.contains {
            switch $0 {
            case .deliver, .refusedApplication: return true
            default: return false
            }
        }
        #expect(deliveredOrRefused, "the fill was neither delivered nor reported as refused: \(actions)")
    }
}

/// A broker that accepts every request at once and reports nothing by itself.
final class AcceptingBroker: Broker {
    let capabilities = BrokerCapabilities(nativeModify: true)
    func submit(_ request: NewOrderRequest) async throws(BrokerError) {}
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {}
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {}
    func events() -> AsyncStream<BrokerEvent> { AsyncStream { _ in } }
}
