import FillGuard
import FillGuardCore
import Testing
@testable import FillGuardFIX

/// An ExecutionReport from the broker with the given fields on top of valid defaults.
func report(_ clOrdID: String, execType: String, execID: String, ordStatus: String = "0", extra: [FIXField] = []) -> FIXMessage {
    var message = FIXMessage(msgType: "8", fields: [
        FIXField(37, "B-\(clOrdID)"), FIXField(11, clOrdID), FIXField(17, execID), FIXField(150, execType), FIXField(39, ordStatus),
        FIXField(55, "GLD"), FIXField(54, "1"), FIXField(151, "100"), FIXField(14, "0"), FIXField(6, "0"),
    ])
    for field in extra { message[field.tag] = field.value }
    return message
}

func fill(_ clOrdID: String, execID: String, last: String, price: String, cum: String, leaves: String, status: String = "1") -> FIXMessage {
    report(clOrdID, execType: "F", execID: execID, ordStatus: status, extra: [
        FIXField(32, last), FIXField(31, price), FIXField(14, cum), FIXField(151, leaves), FIXField(6, price),
        FIXField(60, "20240229-12:34:56.789"), FIXField(12, "1.25"),
    ])
}

func sentMessage(_ plan: FIXOrderRouter.Plan) -> FIXMessage? {
    if case .send(let message, _) = plan { return message }
    return nil
}

@Suite("FIX order routing", .timeLimit(.minutes(5)))
struct RouterTests {
    let buy = NewOrderRequest(orderID: "O1", symbol: "GLD", side: .buy, type: .limit(Price("248.10")!), quantity: Quantity("100.5")!,
                              timeInForce: .goodTillCancel)

    @Test func newOrderSingleFields() throws {
        var router = FIXOrderRouter(configuration: FIXApplicationConfiguration(account: "ACC"))
        let message = try #require(sentMessage(router.submit(buy, transactTime: 0)))
        #expect(message.msgType == "D")
        #expect(message[11] == "O1" && message[1] == "ACC" && message[55] == "GLD" && message[54] == "1")
        #expect(message[38] == "100.5" && message[40] == "2" && message[44] == "248.1" && message[59] == "1")
        #expect(message[60] == "19700101-00:00:00.000")
        let stopLimit = NewOrderRequest(orderID: "O2", symbol: "GLD", side: .sell, type: .stopLimit(stop: Price("245")!, limit: Price("244.5")!),
                                        quantity: 10, timeInForce: .day)
        let second = try #require(sentMessage(router.submit(stopLimit, transactTime: 0)))
        #expect(second[40] == "4" && second[99] == "245" && second[44] == "244.5" && second[54] == "2" && second[59] == "0")
        let stop = NewOrderRequest(orderID: "O3", symbol: "GLD", side: .sell, type: .stop(Price("245")!), quantity: 10, timeInForce: .day)
        #expect(sentMessage(router.submit(stop, transactTime: 0))?[99] == "245")
        let market = NewOrderRequest(orderID: "O4", symbol: "GLD", side: .buy, type: .market, quantity: 10, timeInForce: .immediateOrCancel)
        let marketMessage = try #require(sentMessage(router.submit(market, transactTime: 0)))
        #expect(marketMessage[40] == "1" && marketMessage[44] == nil && marketMessage[59] == "3")
    }

    @Test func newAckAndReject() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        #expect(router.received(report("O1", execType: "A", execID: "X0", ordStatus: "A")).count == 1)
        #expect(router.received(report("O1", execType: "0", execID: "X1")) == [.completed(key: "O1", error: nil)])
        // Submitting the same order again after its ack succeeds without sending.
        #expect(router.submit(buy, transactTime: 0) == .succeeded)
        var other = buy
        other.orderID = "O9"
        _ = router.submit(other, transactTime: 0)
        let rejected = router.received(report("O9", execType: "8", execID: "X2", ordStatus: "8", extra: [FIXField(58, "no liquidity")]))
        #expect(rejected == [.completed(key: "O9", error: BrokerError(.permanent, "no liquidity"))])
    }

    @Test func submitRetryWhileInFlightIsAPossResend() throws {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        let again = try #require(sentMessage(router.submit(buy, transactTime: 0)))
        #expect(again[11] == "O1" && again[97] == "Y")
    }

    @Test func replaceChainsClOrdIDs() throws {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        let first = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 150), transactTime: 0)))
        #expect(first.msgType == "G" && first[41] == "O1" && first[11] == "O1~1" && first[38] == "150" && first[37] == "B-O1")
        #expect(first[40] == "2" && first[44] == "248.1")
        _ = router.received(report("O1~1", execType: "E", execID: "X2", ordStatus: "E"))
        #expect(router.received(report("O1~1", execType: "5", execID: "X3", extra: [FIXField(41, "O1")])) == [.completed(key: "O1~1", error: nil)])
        #expect(router.currentClOrdID(of: "O1") == "O1~1")
        let second = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 80), transactTime: 0)))
        #expect(second[41] == "O1~1" && second[11] == "O1~2")
        _ = router.received(report("O1~2", execType: "5", execID: "X4"))
        let cancel = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0)))
        #expect(cancel.msgType == "F" && cancel[41] == "O1~2" && cancel[11] == "O1~3" && cancel[38] == "80")
        #expect(router.received(report("O1~3", execType: "4", execID: "X5", ordStatus: "4")) == [.completed(key: "O1~3", error: nil)])
        // Done: a modify is too late without a round trip; a cancel sent again has nothing left to do.
        #expect(router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 90), transactTime: 0)
                == .failed(BrokerError(.tooLate, "order O1 is done")))
        #expect(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0) == .succeeded)
    }

    @Test("Commission (12) is read as CommType (13) says: absolute, per unit, or a percentage of the fill's value",
          arguments: [(nil, "1.25", "1.25"), ("3", "1.25", "1.25"), ("1", "0.005", "0.2025"), ("6", "0.005", "0.2025"),
                      ("2", "0.1", "10.04805"), ("4", "0.1", "0"), ("1", "0.00000001", "0.000000405")] as [(String?, String, String)])
    func commissionFollowsCommType(type: String?, amount: String, booked: String) {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        var message = fill("O1", execID: "F1", last: "40.5", price: "248.1", cum: "40.5", leaves: "60")
        message[12] = amount
        if let type { message[13] = type }
        // 40.5 at 248.1: 10,048.05 traded; per unit 40.5 × 0.005 = 0.2025; 0.1 % of it 10.04805.
        guard case .event(.execution(let execution))? = router.received(message).first else {
            Issue.record("the fill was not passed on")
            return
        }
        #expect(execution.commission == Money(booked)!, "CommType \(type ?? "-"), Commission \(amount): \(execution.commission)")
    }

    @Test func unknownCommTypeIsRefused() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        var message = fill("O1", execID: "F1", last: "40.5", price: "248.1", cum: "40.5", leaves: "60")
        message[13] = "9"
        guard case .refused(let error, _, _, _)? = router.received(message).first else { Issue.record("not refused"); return }
        #expect(error.code == .malformed && error.message.contains("CommType"))
    }

    @Test func fillsMapToExecutionReportsAndDuplicatesAreDropped() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        let outputs = router.received(fill("O1", execID: "F1", last: "40.5", price: "248.1", cum: "40.5", leaves: "60"))
        let expected = ExecutionReport(executionID: "F1", orderID: "O1", symbol: "GLD", side: .buy, lastQuantity: Quantity("40.5")!,
                                       lastPrice: Price("248.1")!, cumulativeQuantity: Quantity("40.5")!, leavesQuantity: 60,
                                       transactTime: 1_709_210_096_789_000_000, commission: Money("1.25")!)
        #expect(outputs == [.event(.execution(expected))])
        #expect(router.received(fill("O1", execID: "F1", last: "40.5", price: "248.1", cum: "40.5", leaves: "60")) == [.duplicate("F1")])
        // The same ExecID with other numbers is the broker contradicting itself, not a repeat to drop quietly.
        for (last, price) in [("100.5", "248.1"), ("40.5", "249")] {
            let outputs = router.received(fill("O1", execID: "F1", last: last, price: price, cum: "100.5", leaves: "0", status: "2"))
            guard case .event(.correction(let order, _, let message))? = outputs.first, outputs.count == 1 else {
                Issue.record("not a correction: \(outputs)")
                continue
            }
            #expect(order == "O1" && message.contains("again as \(Quantity(last)!) at \(Price(price)!), after 40.5 at 248.1"), "\(message)")
        }
    }

    @Test("an Order Status (ExecType I) answering a resent NewOrderSingle settles the submit: accepted, rejected or ended")
    func statusAnswersAResentSubmit() {
        for (ordStatus, expected) in [("0", "accepted"), ("1", "accepted"), ("8", "rejected"), ("4", "ended"), ("C", "ended")] {
            var router = FIXOrderRouter()
            _ = router.submit(buy, transactTime: 0)
            let again = router.submit(buy, transactTime: 0)
            #expect(sentMessage(again)?[97] == "Y", "the repeat is resent with PossResend")
            // No status request (790/584): the broker answering the resend with the order's status.
            let outputs = router.received(report("O1", execType: "I", execID: "S1", ordStatus: ordStatus, extra: [FIXField(37, "B-7")]))
            switch expected {
            case "accepted":
                #expect(outputs == [.completed(key: "O1", error: nil)], "OrdStatus \(ordStatus): \(outputs)")
                #expect(router.submit(buy, transactTime: 0) == .succeeded, "the order is acknowledged")
            case "rejected":
                guard case .completed("O1", let error?)? = outputs.first else { Issue.record("OrdStatus 8: \(outputs)"); continue }
                #expect(error.kind == .permanent)
            default:
                #expect(outputs.first == .completed(key: "O1", error: nil), "OrdStatus \(ordStatus): \(outputs)")
                #expect(outputs.contains { if case .event(.orderStatus) = $0 { true } else { false } }, "OrdStatus \(ordStatus): the end is reported")
            }
            // The order is known by the broker's OrderID from then on.
            let bare = { var message = fill("O1", execID: "F\(ordStatus)", last: "1", price: "248", cum: "1", leaves: "99.5"); message[11] = nil; message[37] = "B-7"; return message }()
            if expected == "accepted" {
                guard case .event(.execution)? = router.received(bare).first else { Issue.record("not mapped by OrderID"); continue }
            }
        }
        // A status whose Side does not fit the order answers nothing; nor does Pending New (its New comes later).
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        let outputs = router.received(report("O1", execType: "I", execID: "S1", extra: [FIXField(54, "2")]))
        guard case .refused(let error, _, _, .businessReject(_, "8", _, 0, _)?)? = outputs.first, outputs.count == 1 else {
            Issue.record("a sell status was not refused and answered: \(outputs)")
            return
        }
        #expect(error.code == .sideMismatch)
        guard case .refused(let other, _, _, _)? = router.received(report("O1", execType: "I", execID: "S3", extra: [FIXField(55, "SLV")])).first else {
            Issue.record("a status for another symbol was not refused")
            return
        }
        #expect(other.code == .symbolMismatch)
        guard case .ignored? = router.received(report("O1", execType: "I", execID: "S2", ordStatus: "A")).first else {
            Issue.record("pending new settled the submit")
            return
        }
        #expect(router.received(report("O1", execType: "0", execID: "X1")) == [.completed(key: "O1", error: nil)], "the New still settles it")
    }

    @Test("a cancel goes beside a submit the broker never answered; its answer settles both (cancelled: the submit took; unknown: it never did)")
    func cancelBesideAnUnansweredSubmit() throws {
        for answer in ["canceled", "unknown"] {
            var router = FIXOrderRouter()
            _ = router.submit(buy, transactTime: 0)
            #expect(router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 50), transactTime: 0)
                    == .failed(BrokerError(.transient, "order O1 has a request in flight")), "a modify still waits for the submit")
            let cancel = try #require(sentMessage(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0)))
            #expect(cancel.msgType == "F" && cancel[41] == "O1" && cancel[11] == "O1~1" && cancel[37] == nil)
            // Asked again (a timeout), the same cancel is resent, not a third request.
            #expect(sentMessage(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0))?[97] == "Y")
            if answer == "canceled" {
                let outputs = router.received(report("O1~1", execType: "4", execID: "X1", ordStatus: "4", extra: [FIXField(41, "O1")]))
                #expect(outputs.prefix(2) == [.completed(key: "O1", error: nil), .completed(key: "O1~1", error: nil)], "\(outputs)")
                #expect(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0) == .succeeded)
            } else {
                var reject = FIXMessage(msgType: "9", fields: [
                    FIXField(37, "NONE"), FIXField(11, "O1~1"), FIXField(41, "O1"), FIXField(39, "8"), FIXField(434, "1"), FIXField(102, "1"),
                ])
                reject[58] = "unknown order"
                let outputs = router.received(reject)
                #expect(outputs.first == .completed(key: "O1~1", error: BrokerError(.unknownOrder, "unknown order")), "\(outputs)")
                guard case .completed("O1", let error?)? = outputs.dropFirst().first else { Issue.record("the submit stays pending: \(outputs)"); continue }
                #expect(error.kind == .permanent)
                #expect(router.submit(buy, transactTime: 0) == .failed(BrokerError(.permanent, "order O1 was rejected")))
            }
        }
    }

    @Test("a fill under the ExecID of an earlier report of another kind is a new fill, never dropped as a repeat")
    func fillReusingTheExecIDOfANewIsApplied() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        let outputs = router.received(fill("O1", execID: "X1", last: "40", price: "248", cum: "40", leaves: "60.5"))
        guard case .event(.execution(let execution))? = outputs.first else {
            Issue.record("the fill was not passed on: \(outputs)")
            return
        }
        #expect(execution.executionID == "X1" && execution.lastQuantity == 40 && execution.cumulativeQuantity == 40)
        // Now a fill took X1: its exact repeat is a duplicate.
        #expect(router.received(fill("O1", execID: "X1", last: "40", price: "248", cum: "40", leaves: "60.5")) == [.duplicate("X1")])
        // A bust under the fill's own ExecID is not its repeat: a broker correction, alerted (once).
        let bust = report("O1", execType: "H", execID: "X1", extra: [FIXField(19, "X1")])
        guard case .event(.correction(let order, _, _))? = router.received(bust).first else { Issue.record("the bust was dropped"); return }
        #expect(order == "O1")
        #expect(router.received(bust) == [.duplicate("X1")])
        // The fill's numbers stay: its repeat after the bust is still a duplicate, not a new fill.
        var repeated = fill("O1", execID: "X1", last: "40", price: "248", cum: "40", leaves: "60.5")
        repeated[43] = "Y"
        #expect(router.received(repeated) == [.duplicate("X1")])
        // And a correction (G) under it is taken once too.
        let correction = report("O1", execType: "G", execID: "X1", extra: [FIXField(19, "X1")])
        guard case .event(.correction)? = router.received(correction).first else { Issue.record("the correction was dropped"); return }
        #expect(router.received(correction) == [.duplicate("X1")])
    }

    @Test("a fill without ClOrdID maps by the broker's OrderID; one naming no known order is refused and answered, never dropped")
    func fillWithoutClOrdIDMapsByOrderID() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))   // OrderID (37) B-O1
        var known = fill("O1", execID: "F1", last: "40", price: "248", cum: "40", leaves: "60.5")
        known[11] = nil
        let outputs = router.received(known)
        guard case .event(.execution(let execution))? = outputs.first else { Issue.record("no fill: \(outputs)"); return }
        #expect(execution.orderID == "O1" && execution.lastQuantity == 40)
        var unknown = fill("O1", execID: "F2", last: "40", price: "248", cum: "80", leaves: "20.5")
        unknown[11] = nil
        unknown[37] = "B-ELSEWHERE"
        guard case .refused(let error, _, _, let answer)? = router.received(unknown).first else { Issue.record("not refused"); return }
        #expect(error.code == .unknownOrder && error.message.contains("B-ELSEWHERE"))
        #expect(answer?.message.msgType == "j" && answer?.message[380] == "1" && answer?.message[379] == "F2")
        // Refused, so its ExecID is not used up.
        unknown[37] = "B-O1"
        guard case .event(.execution)? = router.received(unknown).first else { Issue.record("the good report with F2 was not taken"); return }
    }

    @Test("a Replaced or Canceled without ClOrdID answers the order's request in flight, found by the broker's OrderID")
    func replacedAndCanceledWithoutClOrdID() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))   // OrderID (37) B-O1
        _ = router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 150), transactTime: 0)
        var replaced = report("O1", execType: "5", execID: "X2", extra: [FIXField(38, "150")])
        replaced[11] = nil
        #expect(router.received(replaced) == [.completed(key: "O1~1", error: nil)])
        _ = router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0)
        var canceled = report("O1", execType: "4", execID: "X3", ordStatus: "4")
        canceled[11] = nil
        #expect(router.received(canceled).first == .completed(key: "O1~2", error: nil))
    }

    @Test("a FIX float with a bare point (.5, 5.) is read as FIX allows; a plus sign is not a FIX float")
    func fixFloatsWithABarePoint() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        let outputs = router.received(fill("O1", execID: "F1", last: ".5", price: "248.", cum: "0.5", leaves: "100."))
        guard case .event(.execution(let execution))? = outputs.first else { Issue.record("no fill: \(outputs)"); return }
        #expect(execution.lastQuantity == Quantity("0.5") && execution.lastPrice == 248 && execution.leavesQuantity == 100)
        guard case .refused(let error, _, _, _)? = router.received(fill("O1", execID: "F2", last: "+1", price: "248", cum: "1.5", leaves: "99")).first else {
            Issue.record("a plus sign was taken")
            return
        }
        #expect(error.code == .malformed)
    }

    @Test func fillOnAnOlderClOrdIDStillMapsToTheOrder() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        _ = router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 150), transactTime: 0)
        let outputs = router.received(fill("O1", execID: "F1", last: "10", price: "248", cum: "10", leaves: "90"))
        guard case .event(.execution(let execution))? = outputs.first else { Issue.record("no fill: \(outputs)"); return }
        #expect(execution.orderID == "O1")
    }

    @Test func immediateFillAcknowledgesTheSubmit() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        let outputs = router.received(fill("O1", execID: "F1", last: "100.5", price: "248", cum: "100.5", leaves: "0", status: "2"))
        #expect(outputs.first == .completed(key: "O1", error: nil))
        #expect(outputs.count == 2)
    }

    @Test func cancelRejectTooLateAndOtherReasons() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        _ = router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0)
        let tooLate = FIXMessage(msgType: "9", fields: [FIXField(37, "B"), FIXField(11, "O1~1"), FIXField(41, "O1"), FIXField(39, "2"),
                                                        FIXField(434, "1"), FIXField(102, "0"), FIXField(58, "order filled")])
        #expect(router.received(tooLate) == [.completed(key: "O1~1", error: BrokerError(.tooLate, "order filled"))])
        var second = buy
        second.orderID = "O2"
        _ = router.submit(second, transactTime: 0)
        _ = router.received(report("O2", execType: "0", execID: "X2"))
        _ = router.modify(ModifyOrderRequest(orderID: "O2", symbol: "GLD", newQuantity: 1), transactTime: 0)
        let refused = FIXMessage(msgType: "9", fields: [FIXField(37, "B"), FIXField(11, "O2~1"), FIXField(41, "O2"), FIXField(39, "0"),
                                                        FIXField(434, "2"), FIXField(102, "2"), FIXField(58, "market closed")])
        #expect(router.received(refused) == [.completed(key: "O2~1", error: BrokerError(.permanent, "market closed"))])
        // "Too late" (0) while the OrdStatus says the order still works: it has not ended, so it
        // is not "too late" to FillGuard (which would take the order as done); asked again.
        cancelling("W1", in: &router)
        #expect(router.received(cancelReject("W1", ordStatus: "1", reason: "0", "too late"))
                == [.completed(key: "W1~1", error: BrokerError(.transient, "too late"))])
        // Already pending cancel or replace (3) and a duplicate ClOrdID (6) can take when asked
        // again (a new ClOrdID, the other request answered): transient, not refused for good.
        for (index, reason) in ["3", "6"].enumerated() {
            let id = "R\(index)"
            cancelling(OrderID(id), in: &router)
            #expect(router.received(cancelReject(id, ordStatus: "0", reason: reason, "busy"))
                    == [.completed(key: "\(id)~1", error: BrokerError(.transient, "busy"))], "CxlRejReason \(reason)")
            let again = sentMessage(router.cancel(CancelOrderRequest(orderID: OrderID(id), symbol: "GLD"), transactTime: 0))
            #expect(again?[11] == "\(id)~2", "CxlRejReason \(reason)")
        }
    }

    /// Places `id` (acknowledged) and sends a cancel for it: the cancel's ClOrdID is "\(id)~1".
    private func cancelling(_ id: OrderID, in router: inout FIXOrderRouter) {
        var request = buy
        request.orderID = id
        _ = router.submit(request, transactTime: 0)
        _ = router.received(report(id.rawValue, execType: "0", execID: "X-\(id)"))
        _ = router.cancel(CancelOrderRequest(orderID: id, symbol: "GLD"), transactTime: 0)
    }

    /// An OrderCancelReject of "\(id)~1" with this OrdStatus, CxlRejReason and text.
    private func cancelReject(_ id: String, ordStatus: String, reason: String, _ text: String) -> FIXMessage {
        FIXMessage(msgType: "9", fields: [FIXField(37, ordStatus == "8" ? "NONE" : "B"), FIXField(11, "\(id)~1"), FIXField(41, id),
                                          FIXField(39, ordStatus), FIXField(434, "1"), FIXField(102, reason), FIXField(58, text)])
    }

    @Test("a cancel sent again after a timeout succeeds once the order is cancelled; orders the broker does not hold say so, orders this session does not know are not taken as gone")
    func cancelAfterATimeout() {
        var router = FIXOrderRouter()
        cancelling("O1", in: &router)
        // The cancel's answer comes after FillGuard gave up waiting; the resend then succeeds.
        _ = router.received(report("O1~1", execType: "4", execID: "X2", ordStatus: "4", extra: [FIXField(41, "O1")]))
        #expect(router.cancel(CancelOrderRequest(orderID: "O1", symbol: "GLD"), transactTime: 0) == .succeeded)

        // A cancel the broker answers "already cancelled" (OrdStatus 4) did what it asked.
        cancelling("O2", in: &router)
        #expect(router.received(cancelReject("O2", ordStatus: "4", reason: "0", "too late to cancel")) == [.completed(key: "O2~1", error: nil)])

        // CxlRejReason 1 with OrdStatus rejected: the broker does not hold the order.
        cancelling("O3", in: &router)
        #expect(router.received(cancelReject("O3", ordStatus: "8", reason: "1", "unknown order"))
                == [.completed(key: "O3~1", error: BrokerError(.unknownOrder, "unknown order"))])
        // Reason 1 about a live order (a stale OrigClOrdID) is not "unknown": it stays a refusal.
        cancelling("O4", in: &router)
        #expect(router.received(cancelReject("O4", ordStatus: "0", reason: "1", "not the current ClOrdID"))
                == [.completed(key: "O4~1", error: BrokerError(.permanent, "not the current ClOrdID"))])

        // A submit the broker rejected: cancelling it has nothing to do.
        var fifth = buy
        fifth.orderID = "O5"
        _ = router.submit(fifth, transactTime: 0)
        _ = router.received(report("O5", execType: "8", execID: "X6", ordStatus: "8"))
        #expect(router.cancel(CancelOrderRequest(orderID: "O5", symbol: "GLD"), transactTime: 0)
                == .failed(BrokerError(.unknownOrder, "order O5 was never accepted")))
        // An order this session never sent nor learnt (a restart whose mass status failed): the
        // broker may well work it, so not "unknown order" (the runtime would take it as gone and
        // place the role's order again beside it) but transient, for both a cancel and a modify.
        let notKnown = BrokerError(.transient, "order O6 is not known to this FIX session (not sent by it, nor listed by the broker since it logged on); nothing sent")
        #expect(router.cancel(CancelOrderRequest(orderID: "O6", symbol: "GLD"), transactTime: 0) == .failed(notKnown))
        #expect(router.modify(ModifyOrderRequest(orderID: "O6", symbol: "GLD", newQuantity: 50), transactTime: 0) == .failed(notKnown))
    }

    @Test func unsolicitedCancelAndExpiryBecomeOrderStatusEvents() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        _ = router.received(report("O1", execType: "0", execID: "X1"))
        _ = router.modify(ModifyOrderRequest(orderID: "O1", symbol: "GLD", newQuantity: 150), transactTime: 0)
        let outputs = router.received(report("O1", execType: "4", execID: "X2", ordStatus: "4", extra: [FIXField(58, "halted")]))
        #expect(outputs.contains(.completed(key: "O1~1", error: BrokerError(.tooLate, "order O1 canceled"))))
        #expect(outputs.contains(.event(.orderStatus(OrderStatusReport(orderID: "O1", symbol: "GLD", outcome: .cancelled, reason: "halted")))))
        var second = buy
        second.orderID = "O2"
        _ = router.submit(second, transactTime: 0)
        _ = router.received(report("O2", execType: "0", execID: "X3"))
        #expect(router.received(report("O2", execType: "C", execID: "X4", ordStatus: "C"))
                == [.event(.orderStatus(OrderStatusReport(orderID: "O2", symbol: "GLD", outcome: .expired)))])
    }

    @Test func sessionAndBusinessRejectsFailTheRequest() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        router.sent(key: "O1", seq: 7)
        let reject = FIXMessage(msgType: "3", fields: [FIXField(45, "7"), FIXField(373, "5"), FIXField(58, "Value is incorrect")])
        #expect(router.received(reject) == [.completed(key: "O1", error: BrokerError(.permanent, "session reject (5): Value is incorrect"))])
        var second = buy
        second.orderID = "O2"
        _ = router.submit(second, transactTime: 0)
        let business = FIXMessage(msgType: "j", fields: [FIXField(45, "8"), FIXField(372, "D"), FIXField(379, "O2"), FIXField(380, "3"),
                                                         FIXField(58, "unsupported")])
        #expect(router.received(business) == [.completed(key: "O2", error: BrokerError(.permanent, "business reject (3): unsupported"))])
    }

    @Test func malformedFillIsRefusedNotCrashed() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        let outputs = router.received(fill("O1", execID: "F1", last: "abc", price: "248", cum: "1", leaves: "1"))
        guard case .refused(let error, _, _, _)? = outputs.first, outputs.count == 1 else { Issue.record("expected a refusal: \(outputs)"); return }
        #expect(error.code == .malformed)
        #expect(router.received(report("ZZ", execType: "0", execID: "Q")).count == 1)
    }

    @Test func statusAndMassStatus() throws {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        guard case .send(let request, let key) = router.statusRequest("O1") else { Issue.record("no H"); return }
        #expect(request.msgType == "H" && request[11] == "O1" && request[790] == key && request[54] == "1")
        let answer = report("O1", execType: "I", execID: "S", ordStatus: "1", extra: [FIXField(790, key), FIXField(14, "40"), FIXField(151, "60.5"),
                                                                                     FIXField(6, "248.1")])
        let outputs = router.received(answer)
        let status = FIXOrderStatus(orderID: "O1", clOrdID: "O1", brokerOrderID: "B-O1", symbol: "GLD", side: .buy, ordStatus: "1",
                                    cumulativeQuantity: 40, leavesQuantity: Quantity("60.5")!, averagePrice: Price("248.1")!)
        #expect(outputs == [.status(key: key, status, last: true)])
        guard case .send(let mass, let massKey) = router.massStatusRequest() else { Issue.record("no AF"); return }
        #expect(mass.msgType == "AF" && mass[584] == massKey && mass[585] == "7")
        let part = router.received(report("O1", execType: "I", execID: "S", extra: [FIXField(584, massKey), FIXField(911, "2"), FIXField(912, "N")]))
        guard case .status(_, _, let last)? = part.first else { Issue.record("no status"); return }
        #expect(!last)
        let end = router.received(report("O7~2", execType: "I", execID: "S", extra: [FIXField(584, massKey), FIXField(911, "2"), FIXField(912, "Y")]))
        guard case .status(_, let unknownOrder, true)? = end.first else { Issue.record("no last status"); return }
        #expect(unknownOrder?.orderID == "O7")
    }
}

@Suite("FIX order routing edge cases", .timeLimit(.minutes(5)))
struct RouterEdgeTests {
    let buy = NewOrderRequest(orderID: "O1", symbol: "GLD", side: .buy, type: .market, quantity: 10, timeInForce: .day)

    @Test func fillForAnUnknownOrderGoesToTheRuntimeUnderItsRoot() {
        var router = FIXOrderRouter()
        let outputs = router.received(fill("P9-sl4~2", execID: "F1", last: "5", price: "245", cum: "5", leaves: "5"))
        guard case .event(.execution(let execution))? = outputs.first else { Issue.record("no event: \(outputs)"); return }
        #expect(execution.orderID == "P9-sl4")
        #expect(execution.symbol == "GLD" && execution.side == .buy)
        // Other reports for unknown orders are only logged.
        guard case .ignored? = router.received(report("ZZ", execType: "4", execID: "X9", ordStatus: "4")).first else {
            Issue.record("expected ignored")
            return
        }
    }

    @Test func aRequestThatWentOutIsNeverAbandoned() {
        var router = FIXOrderRouter()
        _ = router.submit(buy, transactTime: 0)
        router.sent(key: "O1", seq: 3)
        // A retry that cannot go out (disconnected) must not forget the order: its ack may come.
        router.abandon(key: "O1")
        #expect(router.received(report("O1", execType: "0", execID: "X1")) == [.completed(key: "O1", error: nil)])
        // One that never went out is forgotten.
        var other = buy
        other.orderID = "O2"
        _ = router.submit(other, transactTime: 0)
        router.abandon(key: "O2")
        #expect(router.pendingCount == 0)
        #expect(router.currentClOrdID(of: "O2") == nil)
    }
}

@Suite("FIX order routing: a submit repeated at another size", .timeLimit(.minutes(5)))
struct RouterResubmitTests {
    let stop = NewOrderRequest(orderID: "S1", symbol: "GLD", side: .sell, type: .stop(Price("245")!), quantity: 50, timeInForce: .day)

    @Test func resubmitAtAnotherSizeWhileUnansweredIsTransient() {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        router.sent(key: "S1", seq: 2)
        var bigger = stop
        bigger.quantity = 850
        #expect(router.submit(bigger, transactTime: 0) == .failed(BrokerError(.transient, "order S1: first submit still unanswered")))
        // The same size is a PossResend of the same message.
        guard case .send(let again, "S1") = router.submit(stop, transactTime: 0) else { Issue.record("expected a resend"); return }
        #expect(again[97] == "Y" && again[38] == "50")
    }

    @Test func resubmitAtAnotherSizeAfterTheAckIsAReplace() throws {
        var router = FIXOrderRouter()
        _ = router.submit(stop, transactTime: 0)
        _ = router.received(report("S1", execType: "0", execID: "X1", extra: [FIXField(54, "2")]))
        #expect(router.submit(stop, transactTime: 0) == .succeeded)
        var bigger = stop
        bigger.quantity = 850
        let replace = try #require(sentMessage(router.submit(bigger, transactTime: 0)))
        #expect(replace.msgType == "G" && replace[41] == "S1" && replace[11] == "S1~1" && replace[38] == "850")
        _ = router.received(report("S1~1", execType: "5", execID: "X2", extra: [FIXField(54, "2")]))
        #expect(router.submit(bigger, transactTime: 0) == .succeeded)
        var otherType = bigger
        otherType.type = .market
        guard case .failed(let error) = router.submit(otherType, transactTime: 0) else { Issue.record("expected a refusal"); return }
        #expect(error.kind == .permanent)
    }
}

@Suite("FIX order routing: reconciliation queries", .timeLimit(.minutes(5)))
struct RouterQueryTests {
    @Test func unknownOrderStatusIsNoStatus() throws {
        var router = FIXOrderRouter()
        guard case .send(let request, let key) = router.statusRequest("GONE", symbol: "GLD", side: .sell) else { Issue.record("no H"); return }
        #expect(request[11] == "GONE" && request[54] == "2")
        let answer = report("GONE", execType: "I", execID: "S", ordStatus: "8", extra: [FIXField(790, key), FIXField(103, "5"), FIXField(37, "NONE")])
        #expect(router.received(answer) == [.status(key: key, nil, last: true)])
    }

    @Test func anOrderLearntFromAMassStatusIsModifiedDownItsChain() throws {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no AF"); return }
        let listed = report("O7~2", execType: "I", execID: "S", extra: [
            FIXField(584, key), FIXField(911, "1"), FIXField(912, "Y"), FIXField(54, "2"), FIXField(38, "300"), FIXField(40, "3"),
            FIXField(99, "245"), FIXField(59, "1"), FIXField(151, "300"),
        ])
        guard case .status(_, let status?, true)? = router.received(listed).first else { Issue.record("no status"); return }
        #expect(try status.brokerOrderState() == BrokerOrderState(orderID: "O7", symbol: "GLD", side: .sell, type: .stop(Price("245")!),
                                                                  quantity: 300, filled: 0, status: .working))
        let replace = try #require(sentMessage(router.modify(ModifyOrderRequest(orderID: "O7", symbol: "GLD", newQuantity: 400), transactTime: 0)))
        #expect(replace[41] == "O7~2" && replace[11] == "O7~3" && replace[37] == "B-O7~2" && replace[38] == "400")
        #expect(replace[40] == "3" && replace[99] == "245" && replace[54] == "2" && replace[59] == "1")
        guard case .send(let ask, _) = router.statusRequest("O7") else { Issue.record("no H"); return }
        #expect(ask[11] == "O7~2" && ask[37] == "B-O7~2", "asked by its current ClOrdID and the broker's OrderID")
    }

    @Test("a mass status listing another program's sell-short order (Side 5) counts it without reading it: the answer is not refused whole (one such order cost the whole reconciliation), and the order is never taken for one of ours")
    func foreignSideInAStatusIsSkipped() throws {
        var router = FIXOrderRouter()
        guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no AF"); return }
        let foreign = report("MANUAL-1", execType: "I", execID: "S", extra: [
            FIXField(584, key), FIXField(911, "2"), FIXField(54, "5"), FIXField(38, "50"), FIXField(40, "2"),
            FIXField(44, "260"), FIXField(59, "1"), FIXField(151, "50"),
        ])
        let skipped = router.received(foreign)
        #expect(skipped.contains(.status(key: key, nil, last: false)), "\(skipped)")
        #expect(router.side(of: "MANUAL-1") == nil, "not learnt")
        var ours = foreign
        ours[11] = "P1-sl4"
        ours[54] = "2"
        ours[912] = "Y"
        guard case .status(_, let status?, true)? = router.received(ours).first else { Issue.record("ours not read"); return }
        #expect(status.orderID == "P1-sl4" && status.side == .sell)
        // Outside a mass status (an answer to our own question about one of ours), a side we
        // never send is still malformed.
        guard case .send(_, let single) = router.statusRequest("P1-sl4") else { Issue.record("no H"); return }
        var odd = ours
        odd[584] = nil
        odd[790] = single
        odd[54] = "5"
        guard case .malformedStatus? = router.received(odd).first else { Issue.record("read a side we never send"); return }
    }

    @Test("query ids differ from one process to the next: an earlier process's mass-status answer, resent after a restart, is not taken for the new query's")
    func queryIdsAreThisProcesssOwn() {
        var earlier = FIXOrderRouter()
        var later = FIXOrderRouter()
        guard case .send(_, let old) = earlier.massStatusRequest(), case .send(_, let new) = later.massStatusRequest() else {
            Issue.record("no AF"); return
        }
        #expect(old != new)
        let resent = report("O7", execType: "I", execID: "S", extra: [
            FIXField(584, old), FIXField(911, "1"), FIXField(912, "Y"), FIXField(54, "2"), FIXField(38, "300"), FIXField(40, "3"),
            FIXField(99, "245"), FIXField(59, "1"), FIXField(151, "300"),
        ])
        let outputs = later.received(resent)
        #expect(!outputs.contains { if case .status = $0 { true } else { false } }, "\(outputs)")
        #expect(later.pendingCount == 1, "the new query still waits for its own answer")
    }

    @Test func positionsComeFromTheAckAndEveryReport() throws {
        var router = FIXOrderRouter()
        let plan = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0)
        guard case .send(let request, let key) = plan else { Issue.record("no AN"); return }
        #expect(request.msgType == "AN" && request[710] == key && request[724] == "0" && request[1] == "ACC" && request[581] == "1")
        #expect(request[453] == "1" && request[448] == "ACC" && request[447] == "D" && request[452] == "24" && request[715] == "20240229")
        func positionReport(_ symbol: String, _ entries: [(String, String, String)]) -> FIXMessage {
            var fields = [FIXField(721, "R-\(symbol)"), FIXField(710, key), FIXField(728, "0"), FIXField(55, symbol), FIXField(702, String(entries.count))]
            for (type, long, short) in entries { fields += [FIXField(703, type), FIXField(704, long), FIXField(705, short)] }
            return FIXMessage(msgType: "AP", fields: fields)
        }
        // A report may overtake the ack; the request completes when the ack's count is reached.
        #expect(router.received(positionReport("GLD", [("SOD", "100", "0"), ("FIN", "250", "20")])).isEmpty)
        let ack = FIXMessage(msgType: "AO", fields: [FIXField(721, "A"), FIXField(710, key), FIXField(727, "2"), FIXField(728, "0"), FIXField(729, "0")])
        #expect(router.received(ack).isEmpty)
        #expect(router.received(positionReport("SLV", [("TQ", "0", "40")])) == [.positions(key: key, ["GLD": 230, "SLV": -40])])

        guard case .send(_, let none) = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0) else { return }
        #expect(router.received(FIXMessage(msgType: "AO", fields: [FIXField(721, "B"), FIXField(710, none), FIXField(728, "2"), FIXField(729, "0")]))
                == [.positions(key: none, [:])])
        guard case .send(_, let refused) = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0) else { return }
        let outputs = router.received(FIXMessage(msgType: "AO", fields: [FIXField(721, "C"), FIXField(710, refused), FIXField(728, "4"),
                                                                         FIXField(729, "2"), FIXField(58, "not supported")]))
        guard case .completed(refused, let error?)? = outputs.first else { Issue.record("not refused: \(outputs)"); return }
        #expect(error.kind == .permanent && error.message.contains("not supported"))

        // An ack without TotalNumPosReports (727, optional there): the answer is not taken as
        // flat at once; the reports' own 727 (FIX 4.4's PositionReport carries it) says how many come.
        guard case .send(_, let open) = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0) else { return }
        #expect(router.received(FIXMessage(msgType: "AO", fields: [FIXField(721, "D"), FIXField(710, open), FIXField(728, "0"), FIXField(729, "0")])).isEmpty)
        func report(_ symbol: String, long: String) -> FIXMessage {
            FIXMessage(msgType: "AP", fields: [FIXField(721, "R-\(symbol)"), FIXField(710, open), FIXField(727, "2"), FIXField(728, "0"), FIXField(55, symbol),
                                               FIXField(702, "1"), FIXField(703, "FIN"), FIXField(704, long), FIXField(705, "0")])
        }
        #expect(router.received(report("GLD", long: "10")).isEmpty)
        #expect(router.received(report("SLV", long: "5")) == [.positions(key: open, ["GLD": 10, "SLV": 5])])

        // Without FIN: the start of day plus the day's total transaction quantity (TOT), not the
        // transaction entries TOT already totals (summed, they counted twice: 500).
        guard case .send(_, let totals) = router.positionsRequest(account: "ACC", clearingBusinessDate: "20240229", transactTime: 0) else { return }
        _ = router.received(FIXMessage(msgType: "AO", fields: [FIXField(721, "E"), FIXField(710, totals), FIXField(727, "1"), FIXField(728, "0"), FIXField(729, "0")]))
        let withTotal = FIXMessage(msgType: "AP", fields: [FIXField(721, "R-T"), FIXField(710, totals), FIXField(728, "0"), FIXField(55, "GLD"), FIXField(702, "3"),
                                                           FIXField(703, "SOD"), FIXField(704, "150"), FIXField(705, "0"),
                                                           FIXField(703, "TQ"), FIXField(704, "100"), FIXField(705, "0"),
                                                           FIXField(703, "TOT"), FIXField(704, "250"), FIXField(705, "0")])
        #expect(router.received(withTotal) == [.positions(key: totals, ["GLD": 400])])
    }
}

/// The refusal in `outputs` when it is the only output; nil otherwise.
/// The messages of the corrections the router passed on for `order`.
func correctionMessages(_ outputs: [FIXOrderRouter.Output], of order: OrderID) -> [String] {
    outputs.compactMap { output -> String? in
        if case .event(.correction(let id, _, let message)) = output, id == order { return message }
        return nil
    }
}

func refusal(_ outputs: [FIXOrderRouter.Output]) -> (error: InputError, answer: FIXRefusalAnswer?)? {
    guard outputs.count == 1, case .refused(let error, _, _, let answer) = outputs[0] else { return nil }
    return (error, answer)
}

/// The (tag, SessionRejectReason) of a session Reject answer.
func sessionRejectOf(_ answer: FIXRefusalAnswer?) -> (tag: Int, reason: Int)? {
    guard case .sessionReject(_, "8", let tag, let reason, _)? = answer else { return nil }
    return (tag, reason)
}

@Suite("FIX order routing: refused execution reports change nothing", .timeLimit(.minutes(5)))
struct RouterRefusalTests {
    /// A live sell stop for 680, acknowledged as B4.
    func liveStop() -> FIXOrderRouter {
        var router = FIXOrderRouter()
        let stop = NewOrderRequest(orderID: "P1-sl4", symbol: "GLD", side: .sell, type: .stop(Price("101.5")!), quantity: 680,
                                   timeInForce: .goodTillCancel)
        _ = router.submit(stop, transactTime: 0)
        let ack = router.received(report("P1-sl4", execType: "0", execID: "X1", extra: [FIXField(54, "2"), FIXField(37, "B4"), FIXField(151, "680")]))
        precondition(ack == [.completed(key: "P1-sl4", error: nil)])
        return router
    }

    /// The stop's fill "done" (39=2, 151=0) with `fields` on top.
    func doneFill(_ execID: String, _ fields: [FIXField]) -> FIXMessage {
        var message = fill("P1-sl4", execID: execID, last: "10", price: "100", cum: "10", leaves: "0", status: "2")
        message[54] = "2"
        message[37] = "B4"
        for field in fields { message[field.tag] = field.value }
        return message
    }

    /// The stop can still be resized: the router sends the replace instead of failing it as too late.
    func expectReplaceable(_ router: inout FIXOrderRouter, sourceLocation: SourceLocation = #_sourceLocation) {
        let plan = router.modify(ModifyOrderRequest(orderID: "P1-sl4", symbol: "GLD", newQuantity: 1020), transactTime: 0)
        #expect(sentMessage(plan)?.msgType == "G", "after the refused report: \(plan)", sourceLocation: sourceLocation)
    }

    @Test("finding 2: a refused 'done' fill (negative LastQty, wrong Symbol) leaves the stop live in the router")
    func refusedDoneFillLeavesTheOrderLive() {
        var negative = liveStop()
        let refused = refusal(negative.received(doneFill("N1", [FIXField(32, "-10")])))
        #expect(refused?.error.code == .invalidQuantity)
        #expect(sessionRejectOf(refused?.answer)?.tag == 32 && sessionRejectOf(refused?.answer)?.reason == 5)
        expectReplaceable(&negative)

        var symbol = liveStop()
        let wrongSymbol = refusal(symbol.received(doneFill("N2", [FIXField(55, "XYZ")])))
        #expect(wrongSymbol?.error.code == .symbolMismatch)
        #expect(wrongSymbol?.answer?.message.msgType == "j" && wrongSymbol?.answer?.message[379] == "N2")
        expectReplaceable(&symbol)
    }

    @Test("finding 2: a 'done' fill the runtime refuses as an overfill does not end the order in the router")
    func overfillingDoneFillLeavesTheOrderLive() {
        var router = liveStop()
        let outputs = router.received(doneFill("N3", [FIXField(32, "1000"), FIXField(14, "1000")]))
        guard case .event(.execution(let execution))? = outputs.first else { Issue.record("expected the fill for the runtime: \(outputs)"); return }
        #expect(execution.lastQuantity == 1000)
        expectReplaceable(&router)
    }

    @Test("a replace FillGuard did not send that changes the order's size is passed on as a correction (a person must look); one at the same size is not")
    func unaskedReplaceOfTheSizeIsACorrection() {
        var router = liveStop()
        let resized = report("DESK-8", execType: "5", execID: "D1", ordStatus: "0",
                             extra: [FIXField(54, "2"), FIXField(41, "P1-sl4"), FIXField(37, "B4"), FIXField(38, "500")])
        let outputs = router.received(resized)
        let corrections = correctionMessages(outputs, of: "P1-sl4")
        #expect(corrections.count == 1 && corrections[0].contains("from 680 to 500"), "\(outputs)")
        // The same size again (a desk moving the price): nothing to correct.
        let repriced = report("DESK-9", execType: "5", execID: "D2", ordStatus: "0",
                              extra: [FIXField(54, "2"), FIXField(41, "DESK-8"), FIXField(37, "B4"), FIXField(38, "500")])
        #expect(!router.received(repriced).contains { if case .event(.correction) = $0 { true } else { false } })
    }

    @Test("a replace of FillGuard's own chain answered with nothing pending (sent before a restart) that leaves another size than the router knows is passed on as a correction; one at the known size is not")
    func lateOwnReplaceOfAnotherSizeIsACorrection() {
        var router = liveStop()
        // Recovery learnt the stop at 680; the replace to 800 sent before the restart lands now.
        let late = report("P1-sl4~2", execType: "5", execID: "L1", ordStatus: "0",
                          extra: [FIXField(54, "2"), FIXField(41, "P1-sl4"), FIXField(37, "B4"), FIXField(38, "800")])
        let outputs = router.received(late)
        let corrections = correctionMessages(outputs, of: "P1-sl4")
        #expect(corrections.count == 1 && corrections[0].contains("from 680 to 800") && corrections[0].contains("answered only now"), "\(outputs)")
        // Its answer again (a resend): the size is the one the router now knows, nothing to say.
        let again = report("P1-sl4~2", execType: "5", execID: "L2", ordStatus: "0",
                           extra: [FIXField(54, "2"), FIXField(41, "P1-sl4"), FIXField(37, "B4"), FIXField(38, "800")])
        #expect(!router.received(again).contains { if case .event(.correction) = $0 { true } else { false } })
    }

    @Test("a desk's replace under its own ClOrdID: the fills that carry only that id are the order's, and our next replace chains from it")
    func deskReplaceKeepsItsFills() throws {
        var router = liveStop()
        // The broker's desk replaces the stop with a ClOrdID of its own; OrigClOrdID names ours.
        let replaced = report("DESK-7", execType: "5", execID: "D1", ordStatus: "0",
                              extra: [FIXField(54, "2"), FIXField(41, "P1-sl4"), FIXField(37, "B4"), FIXField(38, "680")])
        #expect(refusal(router.received(replaced)) == nil)
        // Fills report the desk's ClOrdID alone (no OrigClOrdID): they are the stop's fills.
        var partial = fill("DESK-7", execID: "D2", last: "30", price: "100", cum: "30", leaves: "650")
        partial[54] = "2"
        partial[37] = "B4"
        let outputs = router.received(partial)
        guard case .event(.execution(let execution))? = outputs.first else { Issue.record("the desk's fill was not taken: \(outputs)"); return }
        #expect(execution.orderID == "P1-sl4" && execution.lastQuantity == 30)
        // Our next replace names the desk's ClOrdID as the one it replaces.
        let plan = router.modify(ModifyOrderRequest(orderID: "P1-sl4", symbol: "GLD", newQuantity: 650), transactTime: 0)
        let message = try #require(sentMessage(plan))
        #expect(message.msgType == "G" && message[41] == "DESK-7" && message[11] == "P1-sl4~1")
        // A desk id that looks like one of another order of ours acts on the order OrigClOrdID
        // names, but is not made that order's: a later fill under it is refused.
        var other = FIXOrderRouter()
        for order in ["P1-sl4", "P1-tp4"] {
            _ = other.submit(NewOrderRequest(orderID: OrderID(order), symbol: "GLD", side: .sell, type: .limit(Price("120")!), quantity: 650,
                                             timeInForce: .goodTillCancel), transactTime: 0)
        }
        let lookalike = report("P1-tp4~3", execType: "5", execID: "D3", extra: [FIXField(54, "2"), FIXField(41, "P1-sl4"), FIXField(38, "650")])
        #expect(refusal(other.received(lookalike)) == nil)
        var lookalikeFill = fill("P1-tp4~3", execID: "D4", last: "1", price: "120", cum: "1", leaves: "649")
        lookalikeFill[54] = "2"
        let lookalikeRefusal = refusal(other.received(lookalikeFill))
        #expect(lookalikeRefusal?.error.code == .unknownOrder)
        #expect(lookalikeRefusal?.answer?.message.msgType == "j" && lookalikeRefusal?.answer?.message[380] == "1")
    }

    @Test("finding 3: a fill with Side 7 is refused, not applied with the order's side")
    func invalidSideIsRefused() {
        var router = liveStop()
        #expect(refusal(router.received(doneFill("S1", [FIXField(54, "7")])))?.error.code == .sideMismatch)
        let wrongSide = refusal(router.received(doneFill("S2", [FIXField(54, "1")])))
        #expect(wrongSide?.error.code == .sideMismatch)
        #expect(wrongSide?.answer?.message.msgType == "j" && wrongSide?.answer?.message[380] == "0", "the counterparty is told")
        let outOfEnum = refusal(router.received(doneFill("S3", [FIXField(54, "X")])))
        #expect(outOfEnum?.error.code == .malformed)
        #expect(sessionRejectOf(outOfEnum?.answer)?.tag == 54 && sessionRejectOf(outOfEnum?.answer)?.reason == 5)
        // An order the router does not know: an unusable side is malformed, not replaced by a guess.
        var empty = FIXOrderRouter()
        var unknown = fill("P9-sl1", execID: "S4", last: "1", price: "100", cum: "1", leaves: "0")
        unknown[54] = "7"
        #expect(refusal(empty.received(unknown))?.error.code == .malformed)
        expectReplaceable(&router)
    }

    @Test("finding 4: a present but unreadable number in an execution report is a refusal, never 'absent'")
    func malformedNumbersAreRefused() {
        var router = liveStop()
        let cases: [(FIXField, Int, InputError.Code, Int)] = [
            (FIXField(14, "NaN"), 14, .malformed, 6), (FIXField(151, "NaN"), 151, .malformed, 6), (FIXField(6, "abc"), 6, .malformed, 6),
            (FIXField(14, "-5"), 14, .invalidQuantity, 5), (FIXField(151, "-1"), 151, .invalidQuantity, 5),
            (FIXField(38, "1e3"), 38, .malformed, 6), (FIXField(38, "0"), 38, .invalidQuantity, 5), (FIXField(6, "-1"), 6, .invalidPrice, 5),
            (FIXField(12, "x"), 12, .malformed, 6), (FIXField(60, "yesterday"), 60, .malformed, 6),
        ]
        for (index, (field, tag, code, reason)) in cases.enumerated() {
            let refused = refusal(router.received(doneFill("M\(index)", [field])))
            #expect(refused?.error.code == code, "\(field)")
            #expect(sessionRejectOf(refused?.answer)?.tag == tag && sessionRejectOf(refused?.answer)?.reason == reason, "\(field)")
        }
        // A Replaced report with an unreadable OrderQty changes nothing either.
        _ = router.modify(ModifyOrderRequest(orderID: "P1-sl4", symbol: "GLD", newQuantity: 700), transactTime: 0)
        var replaced = report("P1-sl4~1", execType: "5", execID: "R1", extra: [FIXField(54, "2"), FIXField(41, "P1-sl4"), FIXField(38, "NaN")])
        #expect(refusal(router.received(replaced))?.error.code == .malformed)
        // Nothing was consumed: the same ExecID, well formed, is taken.
        replaced[38] = "700"
        #expect(router.received(replaced) == [.completed(key: "P1-sl4~1", error: nil)])
        #expect(router.currentClOrdID(of: "P1-sl4") == "P1-sl4~1")
    }

    @Test("finding 5: end-of-order reports and fills for a ClOrdID never issued do not map to the order by prefix")
    func foreignClOrdIDsDoNotMapByPrefix() {
        for (execType, status) in [("4", "4"), ("8", "8"), ("C", "C"), ("F", "2")] {
            var router = liveStop()
            var message = execType == "F" ? doneFill("T\(execType)", []) : report("P1-sl4", execType: execType, execID: "T\(execType)", ordStatus: status,
                                                                                 extra: [FIXField(54, "2")])
            message[11] = "P1-sl4~9"
            message[37] = "B999"
            let refused = refusal(router.received(message))
            #expect(refused?.error.code == .unknownOrder, "ExecType \(execType)")
            #expect(refused?.answer?.message.msgType == "j" && refused?.answer?.message[380] == "1", "the counterparty is told")
            // Not a padded or signed spelling of an issued number either.
            message[11] = "P1-sl4~+0"
            #expect(refusal(router.received(message))?.error.code == .unknownOrder)
            expectReplaceable(&router)
            // The ids it did issue still map: the replace's answer completes it.
            let answer = router.received(report("P1-sl4~1", execType: "5", execID: "OK\(execType)", extra: [FIXField(54, "2"), FIXField(41, "P1-sl4")]))
            #expect(answer == [.completed(key: "P1-sl4~1", error: nil)])
        }
    }

    @Test("finding 7: malformed LastQty/LastPx, a fill without LastQty, an unknown ExecType are refused and answered")
    func malformedFillFieldsAreRefusedAndAnswered() {
        var router = liveStop()
        let fields: [(FIXField, Int, InputError.Code, Int)] = [
            (FIXField(32, "NaN"), 32, .malformed, 6), (FIXField(32, "1e9999"), 32, .malformed, 6),
            (FIXField(32, String(repeating: "9", count: 40)), 32, .invalidQuantity, 5), (FIXField(31, "abc"), 31, .malformed, 6),
            (FIXField(31, "0"), 31, .invalidPrice, 5),
        ]
        for (index, (field, tag, code, reason)) in fields.enumerated() {
            let refused = refusal(router.received(doneFill("L\(index)", [field])))
            #expect(refused?.error.code == code, "\(field)")
            #expect(sessionRejectOf(refused?.answer)?.tag == tag && sessionRejectOf(refused?.answer)?.reason == reason, "\(field)")
        }
        var missing = doneFill("L9", [])
        missing[32] = nil
        let refused = refusal(router.received(missing))
        #expect(refused?.error.code == .malformed)
        guard case .businessReject(_, "8", "L9", 5, _)? = refused?.answer else { Issue.record("expected a business reject: \(String(describing: refused))"); return }
        for execType in ["Z", "2", "1"] {
            let unknown = refusal(router.received(doneFill("E\(execType)", [FIXField(150, execType)])))
            #expect(unknown?.error.code == .malformed, "ExecType \(execType)")
            #expect(sessionRejectOf(unknown?.answer)?.tag == 150 && sessionRejectOf(unknown?.answer)?.reason == 5)
        }
        expectReplaceable(&router)
        // The answers encode as valid messages.
        #expect(throws: Never.self) { try FIXCodec.encode(FIXRefusalAnswer.businessReject(refSeqNum: 3, refMsgType: "8", refID: "L9", reason: 5, text: "x").message) }
    }
}

@Suite("FIX order routing: duplicates", .timeLimit(.minutes(5)))
struct RouterDuplicateTests {
    @Test("a repeat of a taken fill is a duplicate even when the repeat lacks fields; a refused report's ExecID is not taken")
    func duplicatesAreCheckedBeforeFields() {
        var router = FIXOrderRouter()
        _ = router.submit(NewOrderRequest(orderID: "O1", symbol: "GLD", side: .buy, type: .market, quantity: 100, timeInForce: .day), transactTime: 0)
        let taken = fill("O1", execID: "F1", last: "40", price: "248", cum: "40", leaves: "60")
        guard case .event? = router.received(taken).last else { Issue.record("fill not taken"); return }
        var bare = taken
        bare[32] = nil
        bare[31] = nil
        #expect(router.received(bare) == [.duplicate("F1")])
        #expect(refusal(router.received(fill("O1", execID: "F2", last: "NaN", price: "248", cum: "80", leaves: "20"))) != nil)
        guard case .event(.execution(let second))? = router.received(fill("O1", execID: "F2", last: "40", price: "248", cum: "80", leaves: "20")).first else {
            Issue.record("the well-formed F2 was not taken")
            return
        }
        #expect(second.lastQuantity == 40)
    }
}

@Suite("FIX order routing: malformed status reports are typed errors", .timeLimit(.minutes(5)))
struct RouterStatusRefusalTests {
    @Test("finding 7: CumQty/LeavesQty NaN, a negative CumQty, a Side that is no FIX side in a mass status fail it with the order named (a FIX side FillGuard never sends is another program's order: skipped, see foreignSideInAStatusIsSkipped)")
    func malformedMassStatusReports() {
        let cases: [(FIXField, String)] = [
            (FIXField(14, "NaN"), "CumQty"), (FIXField(151, "NaN"), "LeavesQty"), (FIXField(14, "-5"), "CumQty"), (FIXField(54, "X"), "Side"),
            (FIXField(38, "abc"), "OrderQty"), (FIXField(99, "x"), "StopPx"),
        ]
        for (field, name) in cases {
            var router = FIXOrderRouter()
            guard case .send(_, let key) = router.massStatusRequest() else { Issue.record("no AF"); return }
            let first = router.received(report("O1", execType: "I", execID: "S", extra: [FIXField(584, key), FIXField(911, "2"), FIXField(912, "N"), field]))
            guard case .malformedStatus(key, let reason, false)? = first.first, first.count == 1 else {
                Issue.record("expected a malformed status for \(field): \(first)")
                continue
            }
            #expect(reason.hasPrefix("malformed status report for order O1") && reason.contains(name), "\(reason)")
            // Nothing learnt from it: the order stays unknown to the router.
            #expect(router.side(of: "O1") == nil)
            let end = router.received(report("O2", execType: "I", execID: "S", extra: [FIXField(584, key), FIXField(911, "2"), FIXField(912, "Y")]))
            guard case .status(key, _, true)? = end.first else { Issue.record("expected the last status: \(end)"); continue }
            #expect(router.pendingCount == 0)
        }
    }
}
