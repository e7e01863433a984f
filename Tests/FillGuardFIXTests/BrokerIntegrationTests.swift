import FillGuard
import FillGuardCore
import Foundation
import Logging
import Testing
@testable import FillGuardFIX

/// A FIXBroker wired to a freshly launched test exchange.
struct Harness {
    let peer: FIXPeerProcess
    let broker: FIXBroker

    static func start(store: FIXSessionStore = InMemoryFIXSessionStore(), reset: Bool = false, requestTimeout: Int64 = 10_000_000_000,
                      startBroker: Bool = true, peer existing: FIXPeerProcess? = nil) async throws -> Harness {
        let peer: FIXPeerProcess
        if let existing { peer = existing } else { peer = try await FIXPeerProcess.launch() }
        let broker = FIXBroker(configuration: configuration(port: peer.port, reset: reset, requestTimeout: requestTimeout), store: store,
                               logger: quietLogger)
        if startBroker { try await broker.start() }
        return Harness(peer: peer, broker: broker)
    }

    static func configuration(port: Int, reset: Bool = false, requestTimeout: Int64 = 10_000_000_000) -> FIXBrokerConfiguration {
        FIXBrokerConfiguration(
            host: "127.0.0.1", port: port,
            session: FIXSessionConfiguration(senderCompID: "FG", targetCompID: "EX", heartbeatInterval: 5, resetSeqNumOnLogon: reset),
            reconnect: FIXReconnectPolicy(initialDelayNanoseconds: 50_000_000, maximumDelayNanoseconds: 1_000_000_000),
            requestTimeoutNanoseconds: requestTimeout)
    }

    func stop() async {
        await broker.stop()
        peer.stop()
    }

    /// Fails the test if QuickFIX rejected anything we sent (its data-dictionary validation).
    func expectNoRejectsFromPeer(sourceLocation: SourceLocation = #_sourceLocation) {
        let rejects = peer.events.filter { $0.hasPrefix("sent-reject") || $0.hasPrefix("sent-business-reject") }
        #expect(rejects.isEmpty, "QuickFIX rejected: \(rejects)", sourceLocation: sourceLocation)
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "fillguard.fix.tests")
    logger.logLevel = .critical
    return logger
}()

@Suite("FIXBroker against the QuickFIX test exchange", .serialized, .timeLimit(.minutes(5)))
struct BrokerIntegrationTests {
    let limitBuy = NewOrderRequest(orderID: "T1", symbol: "GLD", side: .buy, type: .limit(Price("248.10")!), quantity: Quantity("100.5")!,
                                   timeInForce: .goodTillCancel)

    @Test("why the session last closed is the latest reason: a new Logon clears it; a request while down is not sent")
    func lastCloseReasonIsCurrent() async throws {
        let harness = try await Harness.start()
        #expect(await harness.broker.statistics.lastCloseReason == nil)
        // The connection drops and the next Logon is refused (a reason); the one after succeeds.
        try await harness.peer.command("reject-logon on")
        let mark = harness.peer.lines.count
        try await harness.peer.command("drop")
        try await harness.peer.waitFor(from: mark) { $0 == "EVENT logon-rejected" }
        // While it is down, a request never leaves: `notSent` (no try used), saying why.
        do {
            try await harness.broker.submit(limitBuy)
            Issue.record("a submit went through while the session was down")
        } catch {
            #expect(error.kind == .notSent, "\(error)")
            #expect(error.message.contains("not logged on (it last closed: "), "\(error)")
        }
        try await harness.peer.command("reject-logon off")
        try await harness.broker.waitForLogons(2)
        #expect(await harness.broker.statistics.lastCloseReason == nil, "a new session has not closed")
        #expect(try await harness.peer.orders()["T1"] == nil, "the exchange never got it")
        await harness.stop()
    }

    @Test("once the reconnect attempts are used up, or the broker is stopped, a request fails transient: no session is coming back to send it")
    func noSessionComingBackIsTransient() async throws {
        let peer = try await FIXPeerProcess.launch()
        var configuration = Harness.configuration(port: peer.port)
        configuration.reconnect = FIXReconnectPolicy(initialDelayNanoseconds: 50_000_000, maximumAttempts: 0)
        let broker = FIXBroker(configuration: configuration, logger: quietLogger)
        try await broker.start()
        try await peer.command("drop")
        try await broker.waitUntil { $0.reconnectsUsedUp }
        do {
            try await broker.submit(limitBuy)
            Issue.record("a submit went through with no session")
        } catch {
            #expect(error.kind == .transient, "\(error)")
            #expect(error.message.contains("reconnect attempts are used up"), "\(error)")
        }
        await broker.stop()
        do {
            try await broker.submit(limitBuy)
            Issue.record("a submit went through a stopped broker")
        } catch {
            #expect(error.kind == .transient, "\(error)")
            #expect(error.message.contains("FIX broker stopped"), "\(error)")
        }
        #expect(try await peer.orders()["T1"] == nil, "the exchange never got it")
        peer.stop()
    }

    @Test func submitModifyCancelAndStatus() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        try await broker.submit(limitBuy)
        var orders = try await harness.peer.orders()
        #expect(orders["T1"]?.quantity == "100.5")
        #expect(orders["T1"]?.status == "0")
        try await broker.modify(ModifyOrderRequest(orderID: "T1", symbol: "GLD", newQuantity: 150))
        orders = try await harness.peer.orders()
        #expect(orders["T1"]?.clOrdID == "T1~1")
        #expect(orders["T1"]?.quantity == "150")
        let status = try await broker.orderStatus("T1")
        #expect(status?.ordStatus == "0")
        #expect(status?.leavesQuantity == 150)
        #expect(status?.clOrdID == "T1~1")
        let stop = NewOrderRequest(orderID: "T2", symbol: "GLD", side: .sell, type: .stopLimit(stop: Price("240")!, limit: Price("239.5")!),
                                   quantity: 10, timeInForce: .day)
        try await broker.submit(stop)
        let all = try await broker.massStatus()
        #expect(Set(all.map(\.orderID)) == ["T1", "T2"])
        try await broker.cancel(CancelOrderRequest(orderID: "T1", symbol: "GLD"))
        orders = try await harness.peer.orders()
        #expect(orders["T1"]?.status == "4")
        #expect(orders["T1"]?.clOrdID == "T1~2")
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test func fillsArriveAsEventsAndDuplicatesAreDropped() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        var events = broker.events().makeAsyncIterator()
        try await broker.submit(limitBuy)
        let first = try await harness.peer.command("fill T1 40.5 248.1")
        let execID = String(first.dropFirst(3))
        try await harness.peer.command("dup \(execID)")
        try await harness.peer.command("fill T1 60 248")
        guard case .execution(let one)? = await events.next(), case .execution(let two)? = await events.next() else {
            Issue.record("expected two fills")
            return
        }
        #expect(one.executionID.rawValue == execID)
        #expect(one.lastQuantity == Quantity("40.5")!)
        #expect(one.lastPrice == Price("248.1")!)
        #expect(two.lastQuantity == 60)
        #expect(two.cumulativeQuantity == Quantity("100.5")!)
        #expect(two.leavesQuantity == .zero)
        // The duplicate was read (it came before the second fill) and dropped.
        #expect(await broker.statistics.duplicateReports == 1)
        #expect(await broker.statistics.fillsDelivered == 2)
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test("a request still unanswered when the broker stops fails as 'timed out': it went out, so it may have taken effect")
    func stopLeavesTheOutcomeUnknown() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        try await broker.submit(limitBuy)
        try await harness.peer.command("hold on")
        let mark = harness.peer.lines.count
        let cancel = Task { () -> BrokerError? in
            do throws(BrokerError) {
                try await broker.cancel(CancelOrderRequest(orderID: "T1", symbol: "GLD"))
                return nil
            } catch {
                return error
            }
        }
        try await harness.peer.waitFor(from: mark) { $0.hasPrefix("EVENT held F T1~") }
        await broker.stop()
        let error = try #require(await cancel.value, "the held cancel was answered")
        #expect(error.kind == .timedOut, "\(error)")
        #expect(error.message.contains("broker stopped before the answer came"), "\(error)")
        harness.peer.stop()
    }

    @Test("a request left unanswered times out as 'timed out'; the cancel sent again then succeeds")
    func timedOutCancelIsResentSafely() async throws {
        let harness = try await Harness.start(requestTimeout: 300_000_000)
        let broker = harness.broker
        try await broker.submit(limitBuy)
        try await harness.peer.command("hold on")
        let mark = harness.peer.lines.count
        do {
            try await broker.cancel(CancelOrderRequest(orderID: "T1", symbol: "GLD"))
            Issue.record("the held cancel was answered")
        } catch {
            #expect(error.kind == .timedOut, "no answer means the outcome is unknown, not that nothing happened: \(error)")
        }
        try await harness.peer.waitFor(from: mark) { $0.hasPrefix("EVENT held F T1~") }
        // The exchange acts on the cancel after FillGuard stopped waiting for it.
        try await harness.peer.command("hold off")
        try await harness.peer.command("release")
        try await broker.cancel(CancelOrderRequest(orderID: "T1", symbol: "GLD"))
        #expect(try await harness.peer.orders()["T1"]?.status == "4")
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test func rejectedOrderAndTooLateCancel() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        try await harness.peer.command("reject-orders 1")
        await #expect(throws: BrokerError(.permanent, "rejected by the test exchange")) { try await broker.submit(limitBuy) }
        var second = limitBuy
        second.orderID = "T2"
        try await broker.submit(second)
        try await harness.peer.command("fill T2 100.5 248")
        // The exchange filled T2 before the cancel reached it. Which side notices first is a race
        // (the fill report may be read before the cancel is sent, while it is in flight, or the
        // exchange's reject may say so), but the answer is always "too late", never a success.
        let tooLate = await #expect(throws: BrokerError.self) {
            try await broker.cancel(CancelOrderRequest(orderID: "T2", symbol: "GLD"))
        }
        #expect(tooLate?.kind == .tooLate, "a cancel of a filled order is too late, not \(String(describing: tooLate))")
        var third = limitBuy
        third.orderID = "T3"
        try await broker.submit(third)
        // "Too late" while the exchange still shows the order working (OrdStatus 0): it has not
        // ended, so it is asked again (transient), not taken as done; the next try takes.
        try await harness.peer.command("too-late 1")
        await #expect(throws: BrokerError(.transient, "too late to cancel")) {
            try await broker.modify(ModifyOrderRequest(orderID: "T3", symbol: "GLD", newQuantity: 50))
        }
        try await broker.modify(ModifyOrderRequest(orderID: "T3", symbol: "GLD", newQuantity: 50))
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test func logonRejectIsATypedStartError() async throws {
        let peer = try await FIXPeerProcess.launch()
        try await peer.command("reject-logon on")
        let harness = try await Harness.start(startBroker: false, peer: peer)
        await #expect(throws: FIXBrokerError.sessionClosed(.logonRejected("Rejected Logon Attempt: logon refused by the test exchange"))) {
            try await harness.broker.start()
        }
        // The broker is done: its events() ends, so a loop over it does not wait for ever (were it
        // to go on, the suite's time limit would cancel the loop and fail the test).
        for await _ in harness.broker.events() {}
        #expect(!Task.isCancelled, "events() went on after a failed start")
        await harness.stop()
    }

    @Test func malformedMessageGetsASessionRejectAndTheSessionGoesOn() async throws {
        let harness = try await Harness.start()
        try await harness.peer.command("malformed")
        let reject = try await harness.peer.waitFor { $0.hasPrefix("EVENT reject ") }
        #expect(reject.contains("reason=13"))
        #expect(reject.contains("tag=58"))
        #expect(await harness.broker.statistics.rejectsSent == 1)
        try await harness.broker.submit(limitBuy)
        #expect(await harness.broker.statistics.logons == 1)
        await harness.stop()
    }

    @Test func peerResendRequestIsAnsweredWithPossDupAndGapFills() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        try await broker.submit(limitBuy)
        try await broker.modify(ModifyOrderRequest(orderID: "T1", symbol: "GLD", newQuantity: 120))
        // QuickFIX counts a message only after its callback returned, and the modify's answer is
        // sent from that callback: wait until the G (our message 3) is counted, or the count would
        // overwrite the change below.
        while try await harness.peer.command("seqnums").split(separator: " ").last != "4" {}
        // The exchange pretends it last saw our message 1: our next message reveals a gap.
        try await harness.peer.command("expect-target 2")
        var second = limitBuy
        second.orderID = "T2"
        try await broker.submit(second)
        try await harness.peer.waitFor { $0.hasPrefix("EVENT sent-resend-request 2") }
        try await harness.peer.waitFor { $0.hasPrefix("EVENT app D T1 possdup") }
        try await harness.peer.waitFor { $0.hasPrefix("EVENT app G T1~1 possdup") }
        let orders = try await harness.peer.orders()
        #expect(orders["T1"]?.quantity == "120")
        #expect(orders["T2"]?.status == "0")
        #expect(await broker.statistics.logons == 1)
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test func resetSeqNumFlagStartsANewSequenceWithQuickFIX() async throws {
        let first = try await Harness.start()
        try await first.broker.submit(limitBuy)
        await first.broker.stop()
        try await first.peer.waitFor { $0 == "EVENT logout" }
        // A restart without a store: only ResetSeqNumFlag=Y makes QuickFIX accept MsgSeqNum 1 again.
        let second = try await Harness.start(reset: true, peer: first.peer)
        try await second.peer.waitFor { $0 == "EVENT logon 2" }
        #expect(try await second.peer.command("seqnums") == "OK 2 2")
        var another = limitBuy
        another.orderID = "T2"
        try await second.broker.submit(another)
        second.expectNoRejectsFromPeer()
        await second.stop()
    }

    @Test func sequenceNumbersSurviveARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fix-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await Harness.start(store: try FileFIXSessionStore(directory: directory))
        try await first.broker.submit(limitBuy)
        await first.broker.stop()
        try await first.peer.waitFor { $0 == "EVENT logout" }
        let before = try await first.peer.command("seqnums")
        // A new broker on the same store continues the sequence: QuickFIX (no reset on logout)
        // would log it out with "MsgSeqNum too low" if it started again at 1.
        let second = try await Harness.start(store: try FileFIXSessionStore(directory: directory), peer: first.peer)
        try await second.peer.waitFor { $0 == "EVENT logon 2" }
        var another = limitBuy
        another.orderID = "T2"
        try await second.broker.submit(another)
        let after = try await second.peer.command("seqnums")
        #expect(before != after)
        second.expectNoRejectsFromPeer()
        await second.stop()
    }
}

@Suite("QuickFIX's data-dictionary validation of what FillGuard sends", .serialized, .timeLimit(.minutes(5)))
struct PeerValidationTests {
    @Test func anInvalidMessageIsRefusedByQuickFIXAndSeenAsASessionReject() async throws {
        let harness = try await Harness.start()
        // OrdType "Z" does not exist in FIX44.xml: QuickFIX must answer with a Reject (3),
        // proving that the validation the other tests rely on is on.
        let invalid = FIXMessage(msgType: "D", fields: [
            FIXField(11, "BAD1"), FIXField(55, "GLD"), FIXField(54, "1"), FIXField(60, FIXTimestamp.format(epochNanoseconds: 0)),
            FIXField(38, "10"), FIXField(40, "Z"),
        ])
        let seq = try await harness.broker.sendUnchecked(invalid)
        let reject = try await harness.peer.waitFor { $0.hasPrefix("EVENT sent-reject refseq=\(seq) ") }
        #expect(reject.contains("reason=5"))
        #expect(reject.contains("tag=40"))
        try await harness.broker.waitUntil { $0.rejectsReceived == 1 }
        // The session survives the reject.
        try await harness.broker.submit(NewOrderRequest(orderID: "OK1", symbol: "GLD", side: .buy, type: .market, quantity: 1, timeInForce: .day))
        await harness.stop()
    }
}

@Suite("FIXBroker with pending states and unsolicited ends", .serialized, .timeLimit(.minutes(5)))
struct PendingStatesIntegrationTests {
    @Test func pendingNewReplaceCancelThenTheFinalAnswer() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        try await harness.peer.command("pending on")
        let order = NewOrderRequest(orderID: "PN1", symbol: "GLD", side: .sell, type: .stop(Price("245")!), quantity: 30, timeInForce: .day)
        try await broker.submit(order)
        try await broker.modify(ModifyOrderRequest(orderID: "PN1", symbol: "GLD", newQuantity: 40))
        try await broker.cancel(CancelOrderRequest(orderID: "PN1", symbol: "GLD"))
        let orders = try await harness.peer.orders()
        #expect(orders["PN1"]?.status == "4")
        #expect(orders["PN1"]?.quantity == "40")
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test func exchangeCancelIsAnOrderStatusEvent() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        var events = broker.events().makeAsyncIterator()
        try await broker.submit(NewOrderRequest(orderID: "X1", symbol: "GLD", side: .buy, type: .limit(Price("240")!), quantity: 5,
                                                timeInForce: .day))
        try await harness.peer.command("cancel X1")
        let event = await events.next()
        #expect(event == .orderStatus(OrderStatusReport(orderID: "X1", symbol: "GLD", outcome: .cancelled, reason: "cancelled by the exchange")))
        await #expect(throws: BrokerError(.tooLate, "order X1 is done")) {
            try await broker.modify(ModifyOrderRequest(orderID: "X1", symbol: "GLD", newQuantity: 6))
        }
        await harness.stop()
    }
}
