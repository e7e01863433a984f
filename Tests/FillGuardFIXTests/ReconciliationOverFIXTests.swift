import FillGuard
import FillGuardCore
import FillGuardSimulator
import FillGuardSQLite
import Foundation
import Testing
@testable import FillGuardFIX

/// One FillGuard "process" over FIX: a FIXBroker on a session store, a FillManager on a journal,
/// recovered from the journal and reconciled with the exchange before it consumes reports.
private struct FIXProcess {
    let broker: FIXBroker
    let manager: FillManager
    let journalStore: InMemoryJournalStore
    let journal: Journal
    let report: RecoveryReport
    let feed: Task<Void, Never>

    /// Logs on with `store`, then recovers from `journalStore` (reports wait in the stream meanwhile).
    static func start(peer: FIXPeerProcess, store: FIXSessionStore, journalStore: InMemoryJournalStore, reset: Bool = false) async throws -> FIXProcess {
        let broker = FIXBroker(configuration: Harness.configuration(port: peer.port, reset: reset), store: store, logger: quietLogger)
        try await broker.start()
        let journal = Journal(store: journalStore)
        let retry = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), multiplier: 2, maxDelay: .milliseconds(200), jitter: 0)
        let manager = FillManager(broker: broker, journal: journal, configuration: FillGuardConfiguration(retry: retry), logger: quietLogger)
        let events = broker.events()
        let report = try await manager.recover()
        let feed = Task { await manager.run(events) }
        return FIXProcess(broker: broker, manager: manager, journalStore: journalStore, journal: journal, report: report, feed: feed)
    }

    /// Dies as a killed process would: what the journal had written is what survives (a copy of
    /// the store now), the FIX connection drops without a Logout, nothing else is flushed or sent.
    func kill() async -> InMemoryJournalStore {
        let survivor = journalStore.fork()
        await broker.abort()
        feed.cancel()
        return survivor
    }
}

@Suite("Recovery reconciled over FIX against the QuickFIX test exchange", .serialized, .timeLimit(.minutes(5)))
struct ReconciliationOverFIXTests {
    let bracket = BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market, stopLoss: Price("245"),
                              takeProfit: Price("250"), scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("246")!))])

    /// A bracket long 300 with its stop and target at the exchange, journal written; then killed.
    private func tradeThenKill(_ peer: FIXPeerProcess, store: FIXSessionStore, reset: Bool = false) async throws
        -> (survivor: InMemoryJournalStore, scaleIn: OrderID, stop: OrderID, target: OrderID) {
        let first = try await FIXProcess.start(peer: peer, store: store, journalStore: InMemoryJournalStore(), reset: reset)
        #expect(first.report.corrections.isEmpty)
        try await first.manager.open(bracket)
        await first.manager.waitUntilIdle()
        let opened = try #require(await first.manager.position("P1"))
        let entry = try #require(opened.liveOrder(.entry))
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        try await peer.command("fill \(entry.id) 300 248.1")
        let open = try await settle(first.manager, "P1") { position in
            position.netQuantity == 300 && position.liveOrder(.stopLoss)?.openQuantity == 300 && position.liveOrder(.takeProfit)?.openQuantity == 300
        }
        await first.journal.flush()
        let stop = try #require(open.liveOrder(.stopLoss)).id
        let target = try #require(open.liveOrder(.takeProfit)).id
        let mark = peer.lines.count
        let survivor = await first.kill()
        try await peer.waitFor(from: mark) { $0 == "EVENT logout" }
        return (survivor, scaleIn.id, stop, target)
    }

    @Test func restartAdoptsFillsMadeWhileDownAndReprotectsTheNetAtTheExchange() async throws {
        let peer = try await FIXPeerProcess.launch()
        defer { peer.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fix-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (survivor, scaleIn, stop, target) = try await tradeThenKill(peer, store: try FileFIXSessionStore(directory: directory))

        // While FillGuard is down: the scale-in fills, the stop partly fills, the exchange cancels the target.
        try await peer.command("fill \(scaleIn) 300 246")
        try await peer.command("fill \(stop) 100 245")
        try await peer.command("cancel \(target)")

        // A new process on the same session store and journal: the exchange's Logon is ahead, our
        // ResendRequest brings the three reports back (PossDup), and recovery reconciles.
        let mark = peer.lines.count
        let second = try await FIXProcess.start(peer: peer, store: try FileFIXSessionStore(directory: directory), journalStore: survivor)
        #expect(peer.lines[mark...].contains { $0.hasPrefix("EVENT resend-request ") }, "FillGuard asked for what it missed")
        let corrections = second.report.corrections
        let adopted = corrections.filter { $0.kind == .adoptedFill }
        #expect(Set(adopted.compactMap(\.orderID)) == [scaleIn, stop], "\(corrections)")
        #expect(adopted.count == 2)
        #expect(corrections.contains { $0.kind == .orderEndedAtBroker && $0.orderID == target }, "\(corrections)")
        #expect(!corrections.contains { [.notReconciled, .positionMismatch, .unreportedFill, .orderMissingAtBroker].contains($0.kind) },
                "\(corrections)")
        let received = try await second.broker.executions(of: "GLD")
        #expect(received.count == 3 && received.first?.orderID.rawValue.hasPrefix("P1-en") == true,
                "the entry's fill, kept by the session store from the first run, comes first: \(received.map(\.orderID))")
        #expect(Array(received.map(\.orderID).dropFirst()) == [scaleIn, stop], "then the resent fills, under FillGuard's order ids")

        // Long 600 - 100 = 500: the stop (100 of it filled) is resized to leave 500, a new target of 500 replaces the cancelled one.
        let position = try await settle(second.manager, "P1") { position in
            position.netQuantity == 500 && position.liveOrder(.stopLoss)?.openQuantity == 500 && position.liveOrder(.takeProfit)?.openQuantity == 500
        }
        #expect(position.liveOrder(.stopLoss)?.id == stop, "the same stop, modified through its ClOrdID chain")
        #expect(position.liveOrder(.takeProfit)?.id != target)
        #expect(try await peer.positions().nets["GLD"] == "500", "FillGuard's net equals the exchange's")
        #expect(try await second.broker.positions() == ["GLD": 500])
        let orders = try await peer.orders()
        let live = orders.values.filter(\.isLive)
        #expect(live.count == 2, "\(live)")
        #expect(Set(live.map(\.leaves)) == ["500"], "the protective orders cover exactly the open quantity: \(live)")
        #expect(Set(live.map(\.side)) == ["2"])
        #expect(orders[stop.rawValue]?.clOrdID == "\(stop)~1", "the chain continued after the restart")
        #expect(await second.manager.invariantViolations().isEmpty)
        #expect(peer.events.allSatisfy { !$0.hasPrefix("sent-reject") && !$0.hasPrefix("sent-business-reject") }, "\(peer.events)")
        second.feed.cancel()
        await second.broker.stop()
    }

    /// A fill the session took in but the journal never got, the process killed in between: it is
    /// found in the session store and applied once on restart. Killed after the store recorded the
    /// message's sequence number, the exchange does not resend it; killed before, it does, and the
    /// resent copy is neither kept nor applied a second time.
    @Test("a fill the session took in but the journal never got is found in the session store on restart",
          arguments: [false, true])
    func fillTakenInButNotJournaledIsFoundInTheStore(killedBeforeTheSequenceNumber: Bool) async throws {
        let peer = try await FIXPeerProcess.launch()
        defer { peer.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fix-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await FIXProcess.start(peer: peer, store: try FileFIXSessionStore(directory: directory), journalStore: InMemoryJournalStore())
        try await first.manager.open(bracket)
        await first.manager.waitUntilIdle()
        let entry = try #require(await first.manager.position("P1")?.liveOrder(.entry))
        try await peer.command("fill \(entry.id) 300 248.1")
        let open = try await settle(first.manager, "P1") { position in
            position.netQuantity == 300 && position.liveOrder(.stopLoss)?.openQuantity == 300 && position.liveOrder(.takeProfit)?.openQuantity == 300
        }
        let stop = try #require(open.liveOrder(.stopLoss)).id
        let target = try #require(open.liveOrder(.takeProfit)).id
        await first.journal.flush()
        // The process stops taking reports off the stream, so the next fill reaches the FIX session
        // (which records its sequence number) but never the journal: the window a kill -9 can hit.
        first.feed.cancel()
        await first.feed.value
        let survivor = first.journalStore.fork()
        let delivered = await first.broker.statistics.fillsDelivered
        let sequenceNumbers = try String(contentsOfFile: directory + "/seqnums", encoding: .utf8)
        try await peer.command("fill \(stop) 100 245")
        try await first.broker.waitUntil { $0.fillsDelivered > delivered }
        let mark = peer.lines.count
        await first.broker.abort()
        try await peer.waitFor(from: mark) { $0 == "EVENT logout" }
        if killedBeforeTheSequenceNumber {
            try sequenceNumbers.write(toFile: directory + "/seqnums", atomically: true, encoding: .utf8)
        }

        let restart = peer.lines.count
        let second = try await FIXProcess.start(peer: peer, store: try FileFIXSessionStore(directory: directory), journalStore: survivor)
        #expect(peer.lines[restart...].contains { $0.hasPrefix("EVENT resend-request ") } == killedBeforeTheSequenceNumber)
        let received = try await second.broker.executions(of: "GLD")
        #expect(received.filter { $0.orderID == stop }.count == 1, "kept once, resent or not: \(received)")
        let corrections = second.report.corrections
        let adopted = corrections.filter { $0.kind == .adoptedFill }
        #expect(adopted.map(\.orderID) == [stop], "\(corrections)")
        #expect(adopted.first?.message.contains("of 100 at 245") == true, "\(adopted)")
        #expect(!corrections.contains { [.notReconciled, .positionMismatch, .unreportedFill, .orderMissingAtBroker].contains($0.kind) },
                "\(corrections)")
        // Long 300 - 100 = 200: the stop has 200 left at the exchange, the target comes down to 200.
        let position = try await settle(second.manager, "P1") { position in
            position.netQuantity == 200 && position.liveOrder(.stopLoss)?.openQuantity == 200 && position.liveOrder(.takeProfit)?.openQuantity == 200
        }
        #expect(position.liveOrder(.takeProfit)?.id == target)
        #expect(try await peer.positions().nets["GLD"] == "200", "FillGuard's net equals the exchange's")
        let live = try await peer.orders().values.filter(\.isLive)
        let protective = live.filter { $0.side == "2" }
        #expect(protective.count == 2 && live.count == 3, "the stop, the target and the scale-in: \(live)")
        #expect(Set(protective.map(\.leaves)) == ["200"], "the protective orders cover exactly the open quantity: \(live)")
        #expect(await second.manager.invariantViolations().isEmpty)
        #expect(position.liveOrder(.stopLoss)?.filledQuantity == 100, "applied once")
        await second.manager.waitUntilIdle()
        #expect(await second.manager.position("P1")?.netQuantity == 200, "the resent copy, if any, changed nothing")
        second.feed.cancel()
        await second.broker.stop()
    }

    @Test func fillsTheExchangeDidNotResendAreReportedNotInvented() async throws {
        let peer = try await FIXPeerProcess.launch()
        defer { peer.stop() }
        // ResetSeqNumFlag on every start: the exchange's copies of the reports sent while FillGuard
        // was down are discarded with the sequence, so they never come back.
        let (survivor, scaleIn, stop, _) = try await tradeThenKill(peer, store: InMemoryFIXSessionStore(), reset: true)
        try await peer.command("fill \(scaleIn) 300 246")
        try await peer.command("fill \(stop) 100 245")

        let second = try await FIXProcess.start(peer: peer, store: InMemoryFIXSessionStore(), journalStore: survivor, reset: true)
        let corrections = second.report.corrections
        let unreported = corrections.filter { $0.kind == .unreportedFill }
        #expect(Set(unreported.compactMap(\.orderID)) == [scaleIn, stop], "\(corrections)")
        #expect(unreported.first { $0.orderID == scaleIn }?.message.contains("the other 300 came with no execution report") == true)
        #expect(!corrections.contains { $0.kind == .adoptedFill }, "no fill is made up: \(corrections)")
        let mismatch = try #require(corrections.first { $0.kind == .positionMismatch })
        #expect(mismatch.message.contains("the broker's net is 500, FillGuard's 300"), "\(mismatch)")
        await second.manager.waitUntilIdle()
        #expect(await second.manager.position("P1")?.netQuantity == 300)
        #expect(peer.events.allSatisfy { !$0.hasPrefix("sent-reject") && !$0.hasPrefix("sent-business-reject") }, "\(peer.events)")
        second.feed.cancel()
        await second.broker.stop()
    }
}

@Suite("FIXBroker's reconciliation queries against the QuickFIX test exchange", .serialized, .timeLimit(.minutes(5)))
struct BrokerQueriesOverFIXTests {
    @Test func orderStateIsNilForAnOrderTheExchangeDoesNotKnow() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        #expect(try await broker.orderState("NOPE", symbol: "GLD") == nil, "unknown to this session and absent from the mass status")
        try await broker.submit(NewOrderRequest(orderID: "K1", symbol: "GLD", side: .buy, type: .limit(Price("240")!), quantity: 10,
                                                timeInForce: .goodTillCancel))
        #expect(try await broker.orderStatus("GHOST", symbol: "GLD", side: .sell) == nil, "OrdStatus 8 with OrdRejReason 5 is no order")
        let known = try #require(try await broker.orderState("K1", symbol: "GLD"))
        #expect(known == BrokerOrderState(orderID: "K1", symbol: "GLD", side: .buy, type: .limit(Price("240")!), quantity: 10, filled: 0,
                                          status: .working))
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }

    @Test func aRestartedBrokerLearnsOrdersFromTheExchangeAndContinuesTheirClOrdIDChains() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fix-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await Harness.start(store: try FileFIXSessionStore(directory: directory))
        try await first.broker.submit(NewOrderRequest(orderID: "C1", symbol: "GLD", side: .sell, type: .stop(Price("240")!), quantity: 50,
                                                      timeInForce: .goodTillCancel))
        try await first.broker.modify(ModifyOrderRequest(orderID: "C1", symbol: "GLD", newQuantity: 60))
        try await first.broker.submit(NewOrderRequest(orderID: "C2", symbol: "GLD", side: .buy, type: .market, quantity: 5, timeInForce: .day))
        try await first.peer.command("fill C2 5 248")
        try await first.broker.waitUntil { $0.fillsDelivered == 1 }
        let mark = first.peer.lines.count
        await first.broker.abort()
        try await first.peer.waitFor(from: mark) { $0 == "EVENT logout" }

        let second = try await Harness.start(store: try FileFIXSessionStore(directory: directory), peer: first.peer)
        let broker = second.broker
        let open = try await broker.openOrders()
        #expect(open == [BrokerOrderState(orderID: "C1", symbol: "GLD", side: .sell, type: .stop(Price("240")!), quantity: 60, filled: 0,
                                          status: .working)])
        let filled = try #require(try await broker.orderState("C2", symbol: "GLD"))
        #expect(filled.status == .filled && filled.filled == 5)
        #expect(try await broker.executions(of: "GLD").map(\.orderID) == ["C2"],
                "the fill came on the first session; the store kept it, and it was not resent")
        try await broker.modify(ModifyOrderRequest(orderID: "C1", symbol: "GLD", newQuantity: 70))
        try await broker.cancel(CancelOrderRequest(orderID: "C1", symbol: "GLD"))
        let orders = try await second.peer.orders()
        #expect(orders["C1"]?.clOrdID == "C1~3", "C1~1 was the first session's; the chain went on with ~2 and ~3")
        #expect(orders["C1"]?.status == "4")
        #expect(orders["C1"]?.quantity == "70")
        #expect(try await broker.orderState("C1", symbol: "GLD")?.status == .cancelled)
        second.expectNoRejectsFromPeer()
        await second.stop()
    }

    @Test func positionsAreTheExchangesNetPerSymbol() async throws {
        let harness = try await Harness.start()
        let broker = harness.broker
        #expect(try await broker.positions() == [:], "no fills yet: PosReqResult 2, no positions")
        let orders: [(OrderID, Symbol, Side, Quantity)] = [("Q1", "GLD", .buy, 300), ("Q2", "GLD", .sell, 120), ("Q3", "SLV", .sell, 40),
                                                           ("Q4", "USO", .buy, 10), ("Q5", "USO", .sell, 10)]
        for (id, symbol, side, quantity) in orders {
            try await broker.submit(NewOrderRequest(orderID: id, symbol: symbol, side: side, type: .market, quantity: quantity, timeInForce: .day))
            try await harness.peer.command("fill \(id) \(quantity) 100.5")
        }
        try await broker.waitUntil { $0.fillsDelivered == orders.count }
        let positions = try await broker.positions()
        #expect(positions == ["GLD": 180, "SLV": -40], "USO is flat and left out: \(positions)")
        #expect(harness.peer.events.contains { $0.hasPrefix("app AN ") })
        harness.expectNoRejectsFromPeer()
        await harness.stop()
    }
}

@Suite("fillguard recover --broker fix against the QuickFIX test exchange", .serialized, .timeLimit(.minutes(5)))
struct RecoverCommandOverFIXTests {
    @Test func recoverReconcilesAJournalAgainstTheFIXEndpoint() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch()
        defer { peer.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fix-recover-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let journalPath = directory.appendingPathComponent("journal.sqlite").path
        let storePath = directory.appendingPathComponent("fix").path

        // A journaled manager over FIX trades a bracket, then dies without a Logout.
        let fixStore = try FileFIXSessionStore(directory: storePath)
        let broker = FIXBroker(configuration: Harness.configuration(port: peer.port), store: fixStore, logger: quietLogger)
        try await broker.start()
        let journal = Journal(store: try SQLiteJournalStore(path: journalPath, durability: .fsync))
        let manager = FillManager(broker: broker, journal: journal, logger: quietLogger)
        let events = broker.events()
        _ = try await manager.recover()
        let feed = Task { await manager.run(events) }
        // A position id with a dash, and a scale-in that stays live: its id "P-1-si0-N" once lost its
        // order in the check ("P-1-si0" taken for the position).
        try await manager.open(BracketSpec(positionID: "P-1", symbol: "GLD", side: .buy, quantity: 200, entryType: .market,
                                           stopLoss: Price("235"), takeProfit: Price("250"),
                                           scaleIns: [BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("240")!))]))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P-1")?.liveOrder(.entry))
        let scaleIn = try #require(await manager.position("P-1")?.liveOrder(.scaleIn(0))).id
        try await peer.command("fill \(entry.id) 200 248")
        let open = try await settle(manager, "P-1") { $0.netQuantity == 200 && $0.liveOrder(.takeProfit)?.openQuantity == 200 }
        await journal.flush()
        let target = try #require(open.liveOrder(.takeProfit)).id
        let mark = peer.lines.count
        await broker.abort()
        feed.cancel()
        // The process is gone: the kernel would drop its locks on the journal file and the store.
        await journal.close()
        fixStore.closeFiles()
        try await peer.waitFor(from: mark) { $0 == "EVENT logout" }

        // While down, the target partly fills.
        try await peer.command("fill \(target) 50 250")

        let run = try await runChild(binary, ["recover", "--journal", journalPath, "--broker", "fix", "--fix-port", String(peer.port),
                                              "--fix-sender", "FG", "--fix-target", "EX", "--fix-store", storePath,
                                              "--fix-heartbeat", "5", "--fix-settle-timeout", "20"])
        #expect(run.status == 0, "stdout: \(run.standardOutput)\nstderr: \(run.standardError)")
        #expect(run.standardError.contains("corrected: adoptedFill GLD \(target)"), "\(run.standardError)")
        #expect(!run.standardError.contains("check failed"), "\(run.standardError)")
        let orders = try await peer.orders()
        let live = orders.filter { $0.value.isLive && $0.key != scaleIn.rawValue }.map(\.value)
        #expect(Set(live.map(\.leaves)) == ["150"], "stop and target cover the 150 left: \(live)")
        #expect(live.count == 2)
        #expect(orders[scaleIn.rawValue]?.isLive == true && orders[scaleIn.rawValue]?.leaves == "100")
        #expect(try await peer.positions().nets["GLD"] == "150")
        #expect(peer.events.allSatisfy { !$0.hasPrefix("sent-reject") && !$0.hasPrefix("sent-business-reject") }, "\(peer.events)")
    }
}

@Suite("the recovery check's order filter", .timeLimit(.minutes(5)))
struct RecoveryOrderFilterTests {
    @Test("an order counts by the core's id grammar or by FillGuard's own orders, never by cutting at the last dash")
    func scaleInOrdersOfDashedPositionsCount() {
        #expect(SymbolStateMachine.positionID(ofOrder: "S000-1-si0-2") == "S000-1")
        #expect(SymbolStateMachine.positionID(ofOrder: "S000-1-sl4") == "S000-1")
        #expect(SymbolStateMachine.positionID(ofOrder: "P1-en1") == "P1")
        #expect(SymbolStateMachine.positionID(ofOrder: "P1-tp12") == "P1")
        for foreign: OrderID in ["P1", "P1-xx1", "P1-sl", "P1-si-2", "-sl1", "P1-sl1a", "P1-si0-"] {
            #expect(SymbolStateMachine.positionID(ofOrder: foreign) == nil, "\(foreign)")
        }
        let positions: Set<PositionID> = ["S000-1"]
        #expect(FIXRecoverySession.counts("S000-1-si0-2", positions: positions, orders: []))
        #expect(FIXRecoverySession.counts("S000-1-sl9", positions: positions, orders: []))
        #expect(!FIXRecoverySession.counts("S000-2-si0-2", positions: positions, orders: []))
        #expect(!FIXRecoverySession.counts("S000-1-si0", positions: positions, orders: []))
        #expect(FIXRecoverySession.counts("adopted-7", positions: positions, orders: ["adopted-7"]))
    }
}
