import Foundation
import FillGuard
@testable import FillGuardCore
@testable import FillGuardSimulator
import Synchronization
import Testing

@Suite("Simulated exchange", .timeLimit(.minutes(5)))
struct SimulatedExchangeTests {
    private func exchange(_ configure: (inout SimulatorConfiguration) -> Void = { _ in }) -> SimulatedExchange {
        var configuration = SimulatorConfiguration(seed: 42)
        configuration.partialFillAbove = nil
        configure(&configuration)
        return SimulatedExchange(configuration: configuration, symbols: ["AAA": Price("100")!])
    }

    private func request(_ id: OrderID, _ side: Side, _ type: OrderType, _ quantity: Quantity) -> NewOrderRequest {
        NewOrderRequest(orderID: id, symbol: "AAA", side: side, type: type, quantity: quantity, timeInForce: .goodTillCancel)
    }

    private func reports(_ exchange: SimulatedExchange, _ count: Int) async -> [ExecutionReport] {
        var result: [ExecutionReport] = []
        guard count > 0 else { return result }
        for await event in exchange.events() {
            if case .execution(let report) = event { result.append(report) }
            if result.count == count { break }
        }
        return result
    }

    @Test("a stop asked for during the downtime's catch-up ends it there (Ctrl-C waited for the whole catch-up: minutes at 100,000 symbols)")
    func downtimeEndsWhenAStopIsAskedFor() {
        let exchange = exchange()
        let asked = Mutex(0)
        // Ten seconds of ticks (10,000 steps); the stop comes at the second look.
        exchange.runDisconnected(for: .seconds(10)) { asked.withLock { $0 += 1; return $0 < 2 } }
        #expect(asked.withLock { $0 } == 2)
        let whole = Mutex(0)
        exchange.runDisconnected(for: .milliseconds(100)) { whole.withLock { $0 += 1 }; return true }
        #expect(whole.withLock { $0 } == 7, "asked every 16 of the 100 ticks")
    }

    /// The final check against the exchange's truth finds what a check of quantities alone
    /// missed: a closed short's target (a buy limit) left live, with FillGuard agreeing it is
    /// live (its cancel failed for good); a stop at another price than FillGuard's; a fill booked
    /// to another order of the same side.
    @Test("the ground truth check finds orders of a closed position left live, prices that differ and fills booked to the wrong order")
    func groundTruthFindsWhatQuantitiesHide() async throws {
        let exchange = exchange { $0.faultRate = 0 }
        try await exchange.submit(request("C-en0", .sell, .market, 100))
        try await exchange.submit(request("C-sl1", .buy, .stop(Price("105")!), 100))
        try await exchange.submit(request("C-tp1", .buy, .limit(Price("90")!), 100))
        exchange.setPrice(Price("106")!, of: "AAA")
        exchange.step()
        #expect(exchange.netPosition(of: "AAA") == 0)
        #expect(exchange.liveOrders(of: "AAA").map(\.id) == ["C-tp1"])
        func order(_ id: OrderID, _ role: OrderRole, _ side: Side, _ type: OrderType, filled: Quantity, open: Quantity, _ status: OrderStatus) -> OrderSnapshot {
            OrderSnapshot(id: id, positionID: "C", symbol: "AAA", role: role, side: side, type: type, quantity: filled + open, filledQuantity: filled,
                          openQuantity: open, averageFillPrice: nil, status: status, failure: status.isLive ? "cancel refused" : nil)
        }
        func closed(_ orders: [OrderSnapshot]) -> PositionSnapshot {
            PositionSnapshot(id: "C", symbol: "AAA", side: .sell, status: .closed, netQuantity: 0, averagePrice: nil, realizedPnL: .zero,
                             commissions: .zero, orders: orders, stopLoss: Price("105"), takeProfit: Price("90"))
        }
        let entry = order("C-en0", .entry, .sell, .market, filled: 100, open: 0, .filled)
        let stop = order("C-sl1", .stopLoss, .buy, .stop(Price("105")!), filled: 100, open: 0, .filled)
        let target = order("C-tp1", .takeProfit, .buy, .limit(Price("90")!), filled: 0, open: 100, .working)
        let found = GroundTruth.problems([closed([entry, stop, target])], exchange)
        #expect(found.contains("AAA: order C-tp1 of closed position C is live at the exchange (buy 100)"), "\(found)")
        #expect(found.contains("AAA: flat but protective orders are live at the exchange: [C-tp1]"), "\(found)")
        // FillGuard has the target at another price than the exchange.
        var moved = target
        moved.type = .limit(Price("91")!)
        let price = GroundTruth.problems([closed([entry, stop, moved])], exchange)
        #expect(price.contains { $0.hasPrefix("AAA: order C-tp1 is buy") && $0.contains("in FillGuard") }, "\(price)")
        // The stop's fill booked to the entry: every total agrees, the orders do not.
        var overbooked = entry
        overbooked.filledQuantity = 200
        var unbooked = stop
        unbooked.filledQuantity = 0
        let booked = GroundTruth.problems([closed([overbooked, unbooked, target])], exchange, protection: false)
        #expect(booked.contains { $0.contains("booked to another order") && $0.contains("C-en0 100 vs 200") && $0.contains("C-sl1 100 vs 0") }, "\(booked)")
    }

    @Test("a market order fills at once; the net position follows")
    func marketFills() async throws {
        let exchange = exchange()
        try await exchange.submit(request("M1", .buy, .market, 10))
        let fills = await reports(exchange, 1)
        #expect(fills.first?.lastQuantity == 10)
        #expect(fills.first?.cumulativeQuantity == 10)
        #expect(fills.first?.leavesQuantity == 0)
        #expect(exchange.netPosition(of: "AAA") == 10)
        #expect(exchange.liveOrders(of: "AAA").isEmpty)
    }

    @Test("each request that takes effect is timed from its arrival, never under the configured latency; a refused one is not")
    func appliedDelays() async throws {
        let exchange = exchange { $0.latency = .milliseconds(2) ... .milliseconds(2) }
        try await exchange.submit(request("S", .sell, .stop(Price("90")!), 5))
        try await exchange.modify(ModifyOrderRequest(orderID: "S", symbol: "AAA", newQuantity: 7))
        await #expect(throws: BrokerError.self) {
            try await exchange.modify(ModifyOrderRequest(orderID: "missing", symbol: "AAA", newQuantity: 7))
        }
        let applied = exchange.statistics.applied
        #expect(applied["submit"]?.count == 1)
        #expect(applied["modify"]?.count == 1, "the refused modify is not counted")
        #expect(applied["cancel"] == nil)
        #expect(try #require(applied["modify"]?.meanNanoseconds) >= 2_000_000)
        #expect(exchange.statistics.requests["modify"] == 2)
    }

    @Test("settling delivers a report a reorder fault still holds (late, never lost); once faults stop, none is held or repeated")
    func settleDeliversHeldReports() async throws {
        let exchange = exchange { $0.reorderRate = 1; $0.duplicateRate = 1 }
        let manager = FillManager(broker: exchange)
        let feed = Task { await manager.run() }
        defer { feed.cancel() }
        let spec = BracketSpec(positionID: "P1", symbol: "AAA", side: .buy, quantity: 10, entryType: .market,
                               stopLoss: Price("90"), takeProfit: Price("110"), scaleIns: [])
        try await manager.open(spec)
        await exchange.settle(manager)
        #expect(exchange.statistics.reorders >= 1, "the entry's fill was held back")
        #expect(!exchange.holdsReport)
        #expect(await manager.position("P1")?.netQuantity == 10, "and delivered by the settle")
        #expect(await manager.position("P1")?.liveOrders.count == 2)

        exchange.stopFaults()
        let reorders = exchange.statistics.reorders
        let duplicates = exchange.statistics.duplicates
        try await exchange.submit(request("M2", .buy, .market, 5))
        #expect(!exchange.holdsReport, "sent at once")
        #expect(exchange.statistics.reorders == reorders && exchange.statistics.duplicates == duplicates)
    }

    @Test("settling with nothing consuming the reports: settle(_:atMost:) gives up at its limit, a cancelled settle returns; once the manager runs, it settles")
    func settleIsBoundedAndCancellable() async throws {
        let exchange = exchange()
        let manager = FillManager(broker: exchange)
        let spec = BracketSpec(positionID: "P1", symbol: "AAA", side: .buy, quantity: 10, entryType: .market,
                               stopLoss: Price("90"), takeProfit: Price("110"), scaleIns: [])
        // The entry fills at once, but no `run()` takes the report to the manager.
        try await manager.open(spec)
        #expect(await manager.waitUntilIdle(atMost: .seconds(30)))
        #expect(exchange.reportsOnCurrentConnection > manager.eventsReceived, "a report waits in the stream")
        #expect(await exchange.settle(manager, atMost: .milliseconds(100)) == false)
        // Started at once, up to its first wait: the cancellation ends a settle that has begun.
        let cancelled = Task.immediate { await exchange.settle(manager) }
        cancelled.cancel()
        #expect(await finishes { await cancelled.value }, "a cancelled settle kept waiting")
        let feed = Task { await manager.run() }
        defer { feed.cancel() }
        #expect(await exchange.settle(manager, atMost: .seconds(30)))
        #expect(await manager.position("P1")?.netQuantity == 10)
        #expect(await manager.position("P1")?.liveOrders.count == 2)
    }

    @Test("a state file that is not the exchange's is refused; a torn last line is skipped")
    func stateFileChecks() async throws {
        let path = try temporaryStatePath()
        do {
            let first = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path)
            try await first.submit(request("M1", .buy, .market, 10))
        }
        let torn = try #require(FileManager.default.contents(atPath: path)) + Data("{\"order\":".utf8)
        _ = FileManager.default.createFile(atPath: path, contents: torn)
        let again = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path)
        #expect(again.netPosition(of: "AAA") == 10, "restored, the torn tail skipped")
        _ = FileManager.default.createFile(atPath: path, contents: Data("garbage\n".utf8) + torn)
        #expect(throws: (any Error).self) {
            _ = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path)
        }
    }

    @Test("a symbol the saved exchange listed, with no order yet, is still listed when reopened with no symbols of its own (recover)")
    func listedSymbolWithoutOrdersSurvivesReopening() async throws {
        let path = try temporaryStatePath()
        do {
            let first = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!, "BBB": Price("42.5")!], statePath: path)
            try await first.submit(request("M1", .buy, .market, 10))
            first.recordClock()
        }
        // `fillguard recover` opens the exchange with no symbols: an entry on BBB that the killed
        // session journaled but never sent is sent now, not refused as "unknown symbol".
        let reopened = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: [:], statePath: path)
        #expect(reopened.price(of: "BBB") == Price("42.5"))
        try await reopened.submit(NewOrderRequest(orderID: "B1", symbol: "BBB", side: .buy, type: .market, quantity: 5, timeInForce: .goodTillCancel))
        #expect(reopened.netPosition(of: "BBB") == 5)
        #expect(reopened.netPosition(of: "AAA") == 10)
    }

    @Test("a torn last line is cut off on reopening, so what is written next reads back (it was glued to the torn line)")
    func tornLastLineIsCut() async throws {
        let path = try temporaryStatePath()
        do {
            let first = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path)
            try await first.submit(request("M1", .buy, .market, 10))
        }
        let torn = try #require(FileManager.default.contents(atPath: path)) + Data("{\"order\":".utf8)
        _ = FileManager.default.createFile(atPath: path, contents: torn)
        do {
            let second = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path)
            try await second.submit(request("M2", .buy, .market, 5))
        }
        let third = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path)
        #expect(third.netPosition(of: "AAA") == 15, "both sessions' fills read back")
    }

    @Test("a saved state is its session's: another journal's, or other settings, are refused before anything is read into it")
    func stateFileBelongsToItsSession() async throws {
        let path = try temporaryStatePath()
        let mine = ExchangeSession(journalID: "J1", nativeModify: false, strategy: "createThenCancel")
        do {
            let first = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: ["AAA": Price("100")!], statePath: path, session: mine)
            try await first.submit(request("M1", .buy, .market, 10))
        }
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        for other in [ExchangeSession(journalID: "J2", nativeModify: false, strategy: "createThenCancel"),
                      ExchangeSession(journalID: "J1", nativeModify: true, strategy: "createThenCancel"),
                      ExchangeSession(journalID: "J1", nativeModify: false, strategy: "cancelThenCreate")] {
            #expect(throws: ExchangeLogError.self, "\(other)") {
                _ = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: [:], statePath: path, session: other)
            }
        }
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == size, "nothing written into it")
        let same = try SimulatedExchange(configuration: SimulatorConfiguration(seed: 1), symbols: [:], statePath: path, session: mine)
        #expect(same.netPosition(of: "AAA") == 10)
    }

    @Test("limits and stops fill when the price crosses, on both sides")
    func limitsAndStops() async throws {
        let exchange = exchange()
        try await exchange.submit(request("BL", .buy, .limit(Price("99")!), 1))
        try await exchange.submit(request("SS", .sell, .stop(Price("98")!), 2))
        try await exchange.submit(request("SL", .sell, .limit(Price("101")!), 3))
        try await exchange.submit(request("BS", .buy, .stop(Price("102")!), 4))
        #expect(exchange.liveOrders(of: "AAA").count == 4)
        exchange.setPrice(Price("97")!, of: "AAA") // buy limit 99 and sell stop 98
        exchange.setPrice(Price("103")!, of: "AAA") // sell limit 101 and buy stop 102
        let fills = await reports(exchange, 4)
        #expect(fills.map(\.orderID) == ["BL", "SS", "SL", "BS"])
        #expect(exchange.netPosition(of: "AAA").units == 0, "\(exchange.netPosition(of: "AAA").units)")
        #expect(fills.map(\.lastQuantity) == [1, 2, 3, 4])
    }

    @Test("partial fills add up with consistent cumulative and leaves quantities")
    func partialFills() async throws {
        let exchange = exchange { $0.partialFillAbove = Quantity(10); $0.partialFillChance = 1 }
        try await exchange.submit(request("B", .buy, .limit(Price("100")!), 1000))
        for _ in 0..<50 where !exchange.liveOrders(of: "AAA").isEmpty { exchange.setPrice(Price("100")!, of: "AAA") }
        #expect(exchange.liveOrders(of: "AAA").isEmpty)
        let count = exchange.statistics.fills
        #expect(count > 1, "split into partial fills")
        let fills = await reports(exchange, count)
        var cumulative = Quantity.zero
        for fill in fills {
            cumulative += fill.lastQuantity
            #expect(fill.cumulativeQuantity == cumulative)
            #expect(fill.leavesQuantity == 1000 - cumulative)
        }
        #expect(cumulative == 1000)
    }

    @Test("modify changes the open quantity; modify and cancel of a filled order are too late")
    func modifyAndTooLate() async throws {
        let exchange = exchange()
        try await exchange.submit(request("S", .sell, .stop(Price("90")!), 100))
        try await exchange.modify(ModifyOrderRequest(orderID: "S", symbol: "AAA", newQuantity: 40))
        #expect(exchange.order("S", of: "AAA")?.openQuantity == 40)
        exchange.setPrice(Price("89")!, of: "AAA")
        await #expect(throws: BrokerError(.tooLate, "order S already filled")) {
            try await exchange.modify(ModifyOrderRequest(orderID: "S", symbol: "AAA", newQuantity: 50))
        }
        await #expect(throws: BrokerError.self) { try await exchange.cancel(CancelOrderRequest(orderID: "S", symbol: "AAA")) }
        try await exchange.submit(request("L", .sell, .limit(Price("200")!), 5))
        try await exchange.cancel(CancelOrderRequest(orderID: "L", symbol: "AAA"))
        // A second cancel (a resend after a timeout) finds it cancelled, as asked.
        try await exchange.cancel(CancelOrderRequest(orderID: "L", symbol: "AAA"))
        #expect(exchange.order("L", of: "AAA")?.state == .cancelled)
        await #expect(throws: BrokerError(.unknownOrder, "unknown order NEVER")) {
            try await exchange.cancel(CancelOrderRequest(orderID: "NEVER", symbol: "AAA"))
        }
    }

    @Test("a submit sent again is the same order; other terms under a held id are refused; an ended order is not revived")
    func resentSubmitIsIdempotent() async throws {
        let exchange = exchange()
        try await exchange.submit(request("S", .sell, .stop(Price("90")!), 100))
        try await exchange.submit(request("S", .sell, .stop(Price("90")!), 100))
        #expect(exchange.liveOrders(of: "AAA").map(\.id) == ["S"])
        await #expect(throws: BrokerError(.permanent, "duplicate client order id S with other terms")) {
            try await exchange.submit(request("S", .sell, .stop(Price("90")!), 120))
        }
        try await exchange.cancel(CancelOrderRequest(orderID: "S", symbol: "AAA"))
        await #expect(throws: BrokerError(.permanent, "order S was already cancelled")) {
            try await exchange.submit(request("S", .sell, .stop(Price("90")!), 100))
        }
        #expect(exchange.liveOrders(of: "AAA").isEmpty, "still cancelled")
        try await exchange.submit(request("M", .buy, .market, 10))
        await #expect(throws: BrokerError(.tooLate, "order M already filled")) {
            try await exchange.submit(request("M", .buy, .market, 10))
        }
        #expect(exchange.netPosition(of: "AAA") == 10, "filled once")
    }

    @Test("without native modify, modify is refused")
    func noNativeModify() async throws {
        let exchange = exchange { $0.nativeModify = false }
        #expect(!exchange.capabilities.nativeModify)
        try await exchange.submit(request("S", .sell, .stop(Price("90")!), 100))
        do {
            try await exchange.modify(ModifyOrderRequest(orderID: "S", symbol: "AAA", newQuantity: 40))
            Issue.record("modify accepted")
        } catch {
            #expect(error.kind == .permanent)
        }
    }

    @Test("duplicate injection repeats the same execution id")
    func duplicates() async throws {
        let exchange = exchange { $0.duplicateRate = 1 }
        try await exchange.submit(request("M", .buy, .market, 10))
        var ids: [ExecutionID] = []
        for await event in exchange.events() {
            if case .execution(let report) = event { ids.append(report.executionID) }
            if ids.count == 2 { break }
        }
        #expect(ids[0] == ids[1])
        #expect(exchange.statistics.duplicates == 1)
    }

    @Test("the same seed gives the same prices")
    func deterministic() {
        let first = exchange { $0.volatilityBasisPoints = 20 }
        let second = exchange { $0.volatilityBasisPoints = 20 }
        var a: [Price] = []
        var b: [Price] = []
        for _ in 0..<100 {
            first.step()
            second.step()
            a.append(first.price(of: "AAA"))
            b.append(second.price(of: "AAA"))
        }
        #expect(a == b)
        #expect(Set(a).count > 1)
    }

    @Test("exposure: an unprotected position accrues share-seconds; a matching stop stops it")
    func exposure() async throws {
        let exchange = exchange { $0.volatilityBasisPoints = 0 }
        try await exchange.submit(request("M", .buy, .market, 10))
        exchange.step(tick: .seconds(1)) // 10 shares unprotected for 1 s
        #expect(exchange.exposure.unprotected == "10.000")
        try await exchange.submit(request("S", .sell, .stop(Price("50")!), 10))
        exchange.step(tick: .seconds(1))
        #expect(exchange.exposure.unprotected == "10.000")
        #expect(exchange.exposure.overCovered == "0.000")
        try await exchange.submit(request("T", .sell, .limit(Price("150")!), 15))
        exchange.step(tick: .milliseconds(500)) // target 5 above the position for 0.5 s
        #expect(exchange.exposure.overCovered == "2.500")
        #expect(exchange.exposure.naked == "10.000", "naked only during the first second, before the stop")
    }

    @Test("an order the exchange ends on its own is cancelled there and said with an order status; nothing is ended once the faults stop")
    func unsolicitedCancelIsReported() async throws {
        let exchange = exchange {
            $0.volatilityBasisPoints = 0
            $0.unsolicitedCancelRate = 1
        }
        try await exchange.submit(request("R", .buy, .limit(Price("90")!), 10)) // rests below the market
        exchange.step()
        #expect(exchange.order("R", of: "AAA")?.state == .cancelled)
        var said: OrderStatusReport?
        for await event in exchange.events() {
            if case .orderStatus(let report) = event { said = report; break }
        }
        #expect(said?.orderID == "R" && said?.outcome == .cancelled, "\(String(describing: said))")
        #expect(exchange.statistics.faults["unsolicitedCancel"] == 1)
        exchange.stopFaults()
        try await exchange.submit(request("Q", .buy, .limit(Price("90")!), 10))
        exchange.step()
        #expect(exchange.order("Q", of: "AAA")?.state == .live)
    }

    @Test("exposure: a stop-loss or take-profit left live on a flat symbol, or on the side that adds to the position, is over-covered in full")
    func leftoverProtectionIsOverCovered() async throws {
        let exchange = exchange { $0.volatilityBasisPoints = 0 }
        try await exchange.submit(request("P1-en1", .buy, .market, 10))
        try await exchange.submit(request("P1-sl2", .sell, .stop(Price("50")!), 10))
        try await exchange.submit(request("P1-tp3", .sell, .limit(Price("150")!), 10))
        exchange.step(tick: .seconds(1))
        #expect(exchange.exposure.overCovered == "0.000", "covered exactly")
        try await exchange.submit(request("X", .sell, .market, 10)) // flat: both are left over
        exchange.step(tick: .seconds(1))
        #expect(exchange.exposure.overCovered == "20.000")
        try await exchange.submit(request("Y", .sell, .market, 5)) // short 5: the sell stop and target would add to it
        exchange.step(tick: .seconds(1))
        #expect(exchange.exposure.overCovered == "40.000")
        // A bracket's scale-in on the covering side is no target: 10 of it against a short of 5
        // is not 5 over-covered (it is cancelled, not counted).
        try await exchange.submit(request("P1-si0-4", .buy, .limit(Price("90")!), 10))
        exchange.step(tick: .seconds(1))
        #expect(exchange.exposure.overCovered == "60.000", "the two leftovers only")
        #expect(SymbolStateMachine.isProtectiveOrder("S000-1-sl12") && SymbolStateMachine.isProtectiveOrder("P-tp1"))
        #expect(!SymbolStateMachine.isProtectiveOrder("P-si0-3") && !SymbolStateMachine.isProtectiveOrder("P-en1") && !SymbolStateMachine.isProtectiveOrder("P-sl") && !SymbolStateMachine.isProtectiveOrder("sl1"))
    }

    @Test("real-time exposure: integrated over wall time at every change; nothing accrues once a matching stop is live")
    func realTimeExposure() async throws {
        let exchange = exchange {
            $0.volatilityBasisPoints = 0
            $0.exposureInRealTime = true
        }
        func seconds(_ text: String) -> Double { Double(text) ?? -1 }
        let start = ContinuousClock.now
        try await exchange.submit(request("M", .buy, .market, 10))
        let naked = exchange.exposure
        let elapsed = ContinuousClock.now - start
        let bound = 10 * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        #expect(seconds(naked.unprotected) >= 0 && seconds(naked.unprotected) <= bound + 0.001, "at most 10 shares × the time since the fill")
        #expect(naked.naked == naked.unprotected)
        try await exchange.submit(request("S", .sell, .stop(Price("50")!), 10))
        let covered = exchange.exposure
        exchange.step(tick: .seconds(5)) // simulated ticks add nothing in real-time mode
        let later = exchange.exposure
        #expect(later.unprotected == covered.unprotected, "the stop covers the position: no more unprotected time")
        #expect(later.naked == covered.naked)
        #expect(later.overCovered == "0.000")
    }
}

@Suite("Simulated session", .timeLimit(.minutes(5)))
struct SimulationSessionTests {
    @Test("a short session with faults and no native modify ends with zero invariant violations", arguments: [true, false])
    func shortSession(nativeModify: Bool) async throws {
        var options = SimulationOptions()
        options.symbols = 8
        options.duration = .milliseconds(1500)
        options.faultRate = 0.2
        options.nativeModify = nativeModify
        options.volatilityBasisPoints = 10
        let report = try await SimulationSession(options: options).run()
        #expect(report.invariantViolations == 0, "\(report.continuousViolations + report.finalViolations)")
        #expect(report.fills > 0)
        #expect(report.fillsApplied == report.fills, "every unique fill applied once")
        #expect(report.positionsOpened >= 8)
        // Each request the exchange answered "not sent" is counted apart, as the manager saw it.
        #expect(report.operationsNotSent == report.faultsInjected["notSent", default: 0], "\(report.faultsInjected)")
        #expect(report.json.contains("\"operationsNotSent\":\(report.operationsNotSent)"))
    }

    @Test("a journal that fails mid-session ends trading at once, and the report says why")
    func journalFailureEndsTrading() async throws {
        /// Takes a few batches, then fails as a full disk does.
        final class FillsUp: JournalStore {
            let inner = InMemoryJournalStore()
            let batches = Mutex(0)
            func append(_ batch: [JournalRecord]) async throws(JournalError) {
                guard batches.withLock({ count in count += 1; return count <= 5 }) else {
                    throw JournalError(.storage, "disk is full")
                }
                try await inner.append(batch)
            }
            func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
                try await inner.load(notices: notices)
            }
            func close() async { await inner.close() }
        }
        var options = SimulationOptions()
        options.symbols = 4
        options.duration = .seconds(600)   // ended by the failure, long before
        options.journal = Journal(store: FillsUp())
        let report = try await SimulationSession(options: options).run()
        #expect(report.seconds < .seconds(300), "trading ended when the journal failed")
        #expect(report.journal?.failure?.contains("disk is full") == true)
        #expect(report.finalViolations.contains { $0.hasPrefix("the journal failed") })
        #expect(report.text.contains("the journal failed: journal storage: disk is full"))
        #expect(report.json.contains("\"failure\":\"journal storage: disk is full\""))
    }

    @Test("a journal that fails while the clean stop writes its snapshots is said too: the stop was not clean")
    func journalFailureAtTheStopIsReported() async throws {
        /// Takes every record, and fails the first batch with a snapshot (the stop's, in a short session).
        final class FailsSnapshots: JournalStore {
            let inner = InMemoryJournalStore()
            func append(_ batch: [JournalRecord]) async throws(JournalError) {
                if batch.contains(where: { $0.kind == .snapshot }) { throw JournalError(.storage, "disk is full") }
                try await inner.append(batch)
            }
            func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
                try await inner.load(notices: notices)
            }
            func close() async { await inner.close() }
        }
        var options = SimulationOptions()
        options.symbols = 3
        options.duration = .milliseconds(300)
        options.faultRate = 0
        options.journal = Journal(store: FailsSnapshots(), snapshotInterval: 1_000_000)
        let report = try await SimulationSession(options: options).run()
        #expect(report.journal?.failure?.contains("disk is full") == true, "\(report.text)")
        #expect(report.finalViolations.contains { $0.hasPrefix("the journal failed while stopping") })
        #expect(report.invariantViolations == 1)
    }

    @Test("a session where nearly every request fails still converges once the broker recovers: no fill lost, one position per symbol, every order as the exchange has it", arguments: [0.9, 1.0])
    func sessionUnderHeavyFaults(faultRate: Double) async throws {
        var options = SimulationOptions()
        options.symbols = 4
        options.duration = .milliseconds(1000)
        options.faultRate = faultRate
        options.volatilityBasisPoints = 10
        let report = try await SimulationSession(options: options).run()
        #expect(report.invariantViolations == 0, "\(report.continuousViolations + report.finalViolations)")
        #expect(report.fillsApplied == report.fills, "every unique fill applied once")
        #expect(report.retries > 0 && report.faultsInjected.values.reduce(0, +) > 0, "the faults were felt")
        // Alerts are counted by kind, and the first ones are shown, in text and JSON alike.
        #expect(report.alerts > 0, "some faults are permanent refusals")
        #expect(report.alertsByKind.values.reduce(0, +) == report.alerts)
        #expect(report.alertSamples.count == min(report.alerts, SimulationReport.alertSampleLimit))
        if let first = report.alertSamples.first {
            #expect(report.text.contains("    ! \(first)"))
            #expect(report.json.contains("\"alertSamples\":[" + JSONText.quote(first)))
        }
    }

    @Test("exposure counts while the session settles: entries that fill after trading ends, with slow stops, are unprotected for a while")
    func exposureWhileSettling() async throws {
        var options = SimulationOptions()
        options.symbols = 2
        options.duration = .milliseconds(100)
        options.faultRate = 0
        options.latency = .milliseconds(300) ... .milliseconds(300)
        let report = try await SimulationSession(options: options).run()
        #expect(report.invariantViolations == 0)
        #expect(report.fills > 0, "the entries filled (after trading time, on arrival)")
        let unprotected = try #require(Quantity(report.unprotectedShareSeconds))
        #expect(unprotected > .zero, "each entry was unprotected for a stop's round trip, while settling: \(report.unprotectedShareSeconds)")
    }

    @Test("a stop request ends trading early; the session still winds down, checks and says it was interrupted")
    func stopRequested() async throws {
        var options = SimulationOptions()
        options.symbols = 3
        options.duration = .seconds(3_600)
        let stop = SimulationStop()
        #expect(stop.request(), "the first request")
        #expect(!stop.request(), "a second one is told apart (the CLI then quits at once)")
        options.stop = stop
        let report = try await SimulationSession(options: options).run()
        #expect(report.interrupted)
        #expect(report.fills == 0, "no trading after the request")
        #expect(report.invariantViolations == 0)
        #expect(report.json.contains("\"interrupted\":true"))
        #expect(report.text.contains("interrupted"))
    }

    @Test("the report says how flipped positions were covered: in the JSON always, in the text when it is not the default")
    func reportNamesTheFlippedCover() async throws {
        var options = SimulationOptions()
        options.symbols = 1
        options.duration = .zero
        let plain = try await SimulationSession(options: options).run()
        #expect(plain.json.contains("\"strategy\":\"cancelThenCreate\",\"flippedCover\":\"bracket\""))
        #expect(!plain.text.contains("flipped cover"))
        options.flippedPositionCover = .stopLossOnly
        let stopOnly = try await SimulationSession(options: options).run()
        #expect(stopOnly.json.contains("\"flippedCover\":\"stopLossOnly\""))
        #expect(stopOnly.text.contains("native modify (replacing by cancelThenCreate), flipped cover stopLossOnly"))
    }

    @Test("a short session with faults on two dedicated runner threads ends with zero invariant violations")
    func shortSessionOnRunnerThreads() async throws {
        let runners = RunnerThreads(count: 2, spin: .microseconds(50), name: "sim-runner")
        defer { runners.shutdown() }
        var options = SimulationOptions()
        options.symbols = 8
        options.duration = .milliseconds(1500)
        options.faultRate = 0.2
        options.volatilityBasisPoints = 10
        options.runnerThreads = runners
        let report = try await SimulationSession(options: options).run()
        #expect(report.invariantViolations == 0, "\(report.continuousViolations + report.finalViolations)")
        #expect(report.fills > 0)
        #expect(report.fillsApplied == report.fills, "every unique fill applied once")
        #expect(runners.passesRun > 0, "the lanes ran on the runner threads")
    }
}

/// Where this process's state files go: removed when the process exits, unless `scripts/test`
/// runs it (its TMPDIR is a scratch directory it removes, or keeps after a failure).
private let stateScratchRoot: String = {
    atexit {
        let temporary = FileManager.default.temporaryDirectory.path
        guard !temporary.contains("/fillguard-test.") else { return }
        try? FileManager.default.removeItem(atPath: temporary + "/fillguard-exchange-tests-\(getpid())")
    }
    return FileManager.default.temporaryDirectory.path + "/fillguard-exchange-tests-\(getpid())"
}()

/// A state file path in a directory of its own.
private func temporaryStatePath() throws -> String {
    let directory = stateScratchRoot + "/\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory + "/run.exchange"
}

@Suite("Simulation report", .timeLimit(.minutes(5)))
struct SimulationReportTests {
    @Test("reaction percentiles are null without samples, numbers with them")
    func reactionWithoutSamples() {
        var samples = LatencySamples()
        #expect(samples.summary().jsonFields.map(\.1) == ["0", "null", "null", "null", "null", "null"])
        #expect(samples.summary().text == "no samples")
        samples.record(.microseconds(40))
        #expect(samples.summary().jsonFields.map(\.1) == ["1", "40", "40", "40", "40", "40"])
    }
}

/// The simulator's own brackets are ones FillGuard takes, at any price.
@Suite("Simulated brackets")
struct SimulatedBracketTests {
    @Test("the simulator's brackets pass the open checks at every price, a cent to a million (a stop at a scale-in's price was refused on cheap symbols)")
    func bracketsAreValidAtEveryPrice() throws {
        var random = SplitMix64(seed: 7)
        var withoutScaleIns = 0
        for cents in [1, 2, 3, 50, 99, 133, 134, 135, 200, 1_000, 2_000, 10_000, 100_000_000] as [Int64] {
            for draw in 0..<40 {
                let market = Price(units: cents * 1_000_000)
                let spec = SimulationSession.bracket(PositionID("P\(cents)-\(draw)"), "SYM", market, &random)
                #expect(throws: Never.self, "\(cents) cents: \(spec)") {
                    try spec.validate()
                    try spec.validateSides()
                }
                // Nothing at or through the market, where it would trigger or fill at once.
                let long = spec.side == .buy
                if let stop = spec.stopLoss { #expect(long ? stop < market : stop > market, "\(cents) cents: \(spec)") }
                if let target = spec.takeProfit { #expect(long ? target > market : target < market, "\(cents) cents: \(spec)") }
                if spec.scaleIns.isEmpty { withoutScaleIns += 1 }
            }
        }
        #expect(withoutScaleIns > 0 && withoutScaleIns < 13 * 40, "only the cheapest symbols go without scale-ins")
    }
}
