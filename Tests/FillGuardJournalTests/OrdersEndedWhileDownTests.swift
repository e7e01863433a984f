import FillGuard
import FillGuardCore
import FillGuardSimulator
import Synchronization
import Testing

/// A simulated exchange whose prices move only when a test sets them; orders fill whole unless
/// `partialFillAbove` is given (then every fill above it is split in half).
private func calmExchange(_ prices: [Symbol: Price], partialFillAbove: Quantity? = nil) -> SimulatedExchange {
    var market = SimulatorConfiguration(seed: 7)
    market.partialFillAbove = partialFillAbove
    market.partialFillChance = 1
    market.volatilityBasisPoints = 0
    return SimulatedExchange(configuration: market, symbols: prices)
}

/// Orders whose operation was unanswered when the process died, and that the broker ended (or
/// lost) before the restart: recovery books the end, so the role gets a new order, rather than
/// showing a stop the broker no longer has.
@Suite("Recovery: orders ended while down", .timeLimit(.minutes(5)))
struct OrdersEndedWhileDownTests {
    static let symbol: Symbol = "GLD"

    private func exchange() -> SimulatedExchange { calmExchange([Self.symbol: Price("248")!]) }

    private func bracket() -> BracketSpec {
        BracketSpec(positionID: "P1", symbol: Self.symbol, side: .buy, quantity: 300, entryType: .market,
                    stopLoss: Price("240"), takeProfit: Price("260"),
                    scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("246")!)),
                               BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("244")!))])
    }

    private static func isStop(_ order: SimulatedOrder) -> Bool {
        if case .stop = order.type { return true } else { return false }
    }

    /// Long 300 with stop and target; the scale-in fills (600) and the stop's and the target's
    /// modifies to 600 reach the exchange, unanswered; the process dies; while it is down the
    /// exchange cancels the stop. Returns the stop and what the journal kept.
    private func modifyUnansweredThenStopCancelled(on exchange: SimulatedExchange) async throws -> (SimulatedOrder, InMemoryJournalStore) {
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let stop = try #require(exchange.liveOrders(of: Self.symbol).first(where: Self.isStop))
        first.connection.holdAcknowledgements()
        exchange.setPrice(Price("246")!, of: Self.symbol)
        await first.connection.waitForHeldRequests(2) // the stop's and the target's modifies to 600
        await first.journal.flush()
        let survivor = first.kill()
        try await exchange.cancel(CancelOrderRequest(orderID: stop.id, symbol: Self.symbol))
        return (stop, survivor)
    }

    /// The stop's submit reached the exchange and the process died before its answer; while it
    /// was down the exchange ended the stop (a day order expiring, an exchange cancel).
    @Test("a stop whose submit was unanswered and that the broker ended while down gets a new stop")
    func endedAfterAnUnansweredSubmit() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        first.connection.holdAcknowledgements()
        try await first.manager.open(bracket())
        await first.connection.waitForHeldRequests(5)
        await first.journal.flush()
        let stop = try #require(exchange.liveOrders(of: Self.symbol).first(where: Self.isStop))
        let survivor = first.kill()
        try await exchange.cancel(CancelOrderRequest(orderID: stop.id, symbol: Self.symbol))

        let second = try await Process(exchange: exchange, store: survivor)
        await second.settle()
        let position = try #require(await second.manager.position("P1"))
        #expect(position.netQuantity == 300)
        #expect(second.report.corrections.contains { $0.kind == .orderEndedAtBroker && $0.orderID == stop.id })
        #expect(position.orders.first { $0.id == stop.id }?.status == .cancelled)
        let newStop = try #require(position.liveOrder(.stopLoss))
        #expect(newStop.id != stop.id && newStop.openQuantity == 300)
        #expect(exchange.liveOrders(of: Self.symbol).filter(Self.isStop).map(\.id) == [newStop.id])
        #expect(await second.manager.invariantViolations().isEmpty)
    }

    /// Long 300 with stop and target; while the process is down someone else sells the 300 on the
    /// account (the broker is flat) and the exchange cancels the stop. Returns the stop and what
    /// the journal kept.
    private func flattenedElsewhereWhileDown(on exchange: SimulatedExchange) async throws -> (SimulatedOrder, InMemoryJournalStore) {
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let stop = try #require(exchange.liveOrders(of: Self.symbol).first(where: Self.isStop))
        let survivor = first.kill()
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-1", symbol: Self.symbol, side: .sell, type: .market, quantity: 300,
                                                  timeInForce: .immediateOrCancel))
        try await exchange.cancel(CancelOrderRequest(orderID: stop.id, symbol: Self.symbol))
        #expect(exchange.netPosition(of: Self.symbol) == 0)
        return (stop, survivor)
    }

    @Test("the broker flat where the journal holds a position: the new stop FillGuard plans is held, not sent, until a person releases it")
    func mismatchThatOrdersCouldWorsenIsHeld() async throws {
        let exchange = exchange()
        let (stop, survivor) = try await flattenedElsewhereWhileDown(on: exchange)
        let alerts = Mutex<AsyncStream<Alert>?>(nil)
        let second = try await Process(exchange: exchange, store: survivor, recoverBeforeReconciling: { manager in
            alerts.withLock { $0 = manager.alerts() }
        })
        await second.settle()
        #expect(second.report.heldSymbols == [Self.symbol])
        // The stop cancelled while down is told, and so is that its replacement waits (it is not sent).
        var ended: Alert?
        for await alert in try #require(alerts.withLock { $0 }) where alert.kind == .protectiveEndedByBroker {
            ended = alert
            break
        }
        #expect(ended?.message.contains("re-protecting 300") == true && ended?.message.contains("held while recovery compares GLD's position") == true,
                "\(ended?.message ?? "no alert")")
        let mismatch = try #require(second.report.corrections.first { $0.kind == .positionMismatch })
        #expect(mismatch.message.contains("the broker's net is 0, FillGuard's 300") && mismatch.message.contains("nothing is sent for GLD"),
                "\(mismatch.message)")
        let position = try #require(await second.manager.position("P1"))
        let newStop = try #require(position.liveOrder(.stopLoss), "the stop is planned again")
        #expect(newStop.id != stop.id && newStop.status == .pendingNew, "and not sent: \(newStop)")
        #expect(exchange.liveOrders(of: Self.symbol).filter(Self.isStop).isEmpty, "no stop that would open a short on a flat account")
        #expect(exchange.netPosition(of: Self.symbol) == 0)

        // A new bracket on the held symbol is refused, not taken and left unsent.
        let spec = BracketSpec(positionID: "P2", symbol: Self.symbol, side: .buy, quantity: 100, entryType: .market,
                               stopLoss: Price("240"), takeProfit: Price("260"))
        await #expect(throws: InputError.self) { try await second.manager.open(spec) }
        #expect(second.manager.statistics.rejected[.symbolHeld] == 1)

        #expect(second.manager.releaseHeldOperations(of: Self.symbol))
        await second.settle()
        #expect(exchange.liveOrders(of: Self.symbol).filter(Self.isStop).map(\.id) == [newStop.id], "released: sent as FillGuard's state says")
        #expect(!second.manager.releaseHeldOperations(of: Self.symbol), "released already")
        #expect(!second.manager.releaseHeldOperations(of: "SLV"), "no such symbol")
    }

    @Test("a release asked for while recovery still compares the positions releases nothing: the hold stands, and nothing goes out")
    func releaseDuringRecoveryReleasesNothing() async throws {
        let exchange = exchange()
        let (_, survivor) = try await flattenedElsewhereWhileDown(on: exchange)
        let released = Mutex<Bool?>(nil)
        let second = try await Process(exchange: exchange, store: survivor, recoverBeforeReconciling: { manager in
            released.withLock { $0 = manager.releaseHeldOperations(of: Self.symbol) }
        })
        await second.settle()
        #expect(released.withLock { $0 } == false)
        #expect(second.report.heldSymbols == [Self.symbol])
        #expect(exchange.liveOrders(of: Self.symbol).filter(Self.isStop).isEmpty, "nothing sent onto the flat account")
        #expect(second.manager.releaseHeldOperations(of: Self.symbol), "once recovered, the hold can be released")
    }

    @Test("with positionMismatch .proceed, and where the broker holds more on the same side, the work goes out as before")
    func mismatchPolicyProceedAndLargerBrokerPosition() async throws {
        let exchange = exchange()
        let (stop, survivor) = try await flattenedElsewhereWhileDown(on: exchange)
        let second = try await Process(exchange: exchange, store: survivor, configure: { $0.positionMismatch = .proceed })
        await second.settle()
        #expect(second.report.heldSymbols.isEmpty)
        #expect(second.report.corrections.contains { $0.kind == .positionMismatch && !$0.message.contains("nothing is sent") })
        #expect(exchange.liveOrders(of: Self.symbol).filter(Self.isStop).count == 1 && exchange.liveOrders(of: Self.symbol).allSatisfy { $0.id != stop.id })

        // The broker holds 305 where the journal has 300 (someone else bought 5): a stop of 300
        // cannot over-cover it, so nothing is held.
        let other = calmExchange([Self.symbol: Price("248")!])
        let first = try await Process(exchange: other, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let kept = first.kill()
        try await other.submit(NewOrderRequest(orderID: "MANUAL-2", symbol: Self.symbol, side: .buy, type: .market, quantity: 5,
                                               timeInForce: .immediateOrCancel))
        let third = try await Process(exchange: other, store: kept)
        await third.settle()
        #expect(third.report.corrections.contains { $0.kind == .positionMismatch })
        #expect(third.report.heldSymbols.isEmpty)
    }

    /// The stop's modify (up, after a scale-in fill) was unanswered at the crash, and the exchange
    /// cancelled the stop while the process was down: it is not left waiting for fills.
    @Test("a stop whose modify was unanswered and that the broker cancelled while down gets a new stop")
    func cancelledAfterAnUnansweredModify() async throws {
        let exchange = exchange()
        let (stop, survivor) = try await modifyUnansweredThenStopCancelled(on: exchange)
        let second = try await Process(exchange: exchange, store: survivor)
        await second.settle()
        let position = try #require(await second.manager.position("P1"))
        #expect(position.netQuantity == 600 && exchange.netPosition(of: Self.symbol) == 600)
        let newStop = try #require(position.liveOrder(.stopLoss))
        #expect(newStop.id != stop.id && newStop.openQuantity == 600 && newStop.failure == nil)
        #expect(exchange.liveOrders(of: Self.symbol).filter(Self.isStop).map(\.openQuantity) == [600])
        #expect(await second.manager.invariantViolations().isEmpty)
    }

    /// The stop's modify was unanswered at the crash and the broker, asked after the restart, does
    /// not know the order: as when a live modify is answered so, the order is taken as ended and
    /// the role gets a new one at once (not blocked as refused until a re-arm, which this
    /// configuration never does).
    @Test("a stop whose modify was unanswered and that the broker no longer knows is replaced at once")
    func unknownAfterAnUnansweredModify() async throws {
        let exchange = exchange()
        let (stop, survivor) = try await modifyUnansweredThenStopCancelled(on: exchange)
        let second = try await Process(exchange: exchange, store: survivor, prepare: { $0.lose(stop.id) })
        await second.settle()
        #expect(second.report.corrections.contains { $0.kind == .resolvedOperation && $0.orderID == stop.id && $0.message.contains("does not know the order") })
        let position = try #require(await second.manager.position("P1"))
        let newStop = try #require(position.liveOrder(.stopLoss))
        #expect(newStop.id != stop.id && newStop.openQuantity == 600 && newStop.failure == nil)
        #expect(await second.manager.invariantViolations().isEmpty)
    }
}

@Suite("Recovery: retired position ids", .timeLimit(.minutes(5)))
struct RetiredPositionIDsAfterRestartTests {
    /// A retired position's id, reused after a restart on another symbol, would give the new
    /// position the old one's order ids, which the broker still holds (and would take a submit of
    /// as the old, filled order: nothing placed).
    @Test("after a restart a retired position's id is refused on another symbol too")
    func retiredIDIsRefusedEverywhere() async throws {
        let exchange = calmExchange(["AAA": Price("248")!, "BBB": Price("50")!])
        let retireAtOnce: (inout FillGuardConfiguration) -> Void = { $0.retainedClosedPositions = 0 }
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore(), configure: retireAtOnce)
        try await first.manager.open(BracketSpec(positionID: "P1", symbol: "AAA", side: .buy, quantity: 100, entryType: .market,
                                                 stopLoss: Price("240"), takeProfit: Price("250")))
        await first.settle()
        exchange.setPrice(Price("251")!, of: "AAA")
        await first.settle()
        #expect(await first.manager.position("P1")?.status == .closed)
        // The next input on AAA retires P1.
        try await first.manager.open(BracketSpec(positionID: "P2", symbol: "AAA", side: .buy, quantity: 100, entryType: .market,
                                                 stopLoss: Price("240"), takeProfit: Price("260")))
        await first.settle()
        #expect(await first.manager.position("P1") == nil, "retired")
        await #expect { try await first.manager.open(BracketSpec(positionID: "P1", symbol: "BBB", side: .sell, quantity: 10, entryType: .market)) } throws: {
            ($0 as? InputError)?.code == .positionExists
        }
        let survivor = first.kill()

        let second = try await Process(exchange: exchange, store: survivor, configure: retireAtOnce)
        await #expect { try await second.manager.open(BracketSpec(positionID: "P1", symbol: "BBB", side: .sell, quantity: 10, entryType: .market)) } throws: {
            ($0 as? InputError)?.code == .positionExists
        }
        await #expect { try await second.manager.open(BracketSpec(positionID: "P1", symbol: "AAA", side: .sell, quantity: 10, entryType: .market)) } throws: {
            ($0 as? InputError)?.code == .positionExists
        }
        try await second.manager.open(BracketSpec(positionID: "P3", symbol: "BBB", side: .sell, quantity: 10, entryType: .market))
        await second.settle()
        #expect(await second.manager.position("P3")?.netQuantity == -10)
    }
}

@Suite("Recovery: a broker that fails a query", .timeLimit(.minutes(5)))
struct ReconcilingThroughTransientFailuresTests {
    /// Every query fails once as transient (a connection reset at start-up): each is asked again,
    /// as the retry policy says, and the fill the broker made while FillGuard was down is found.
    @Test("queries that fail once as transient are asked again: reconciliation still finds the stop's fill made while down")
    func transientQueryFailuresAreRetried() async throws {
        let exchange = calmExchange(["GLD": Price("248")!])
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .market,
                                                 stopLoss: Price("240"), takeProfit: Price("260")))
        await first.settle()
        let survivor = first.kill()
        // While down: the stop fills.
        exchange.setPrice(Price("239")!, of: "GLD")
        #expect(exchange.netPosition(of: "GLD") == 0)

        let second = try await Process(exchange: exchange, store: survivor, prepare: { $0.failNextQueries(1) })
        await second.settle()
        #expect(!second.report.corrections.contains { $0.kind == .notReconciled }, "\(second.report.corrections)")
        #expect(second.report.corrections.contains { $0.kind == .adoptedFill }, "\(second.report.corrections)")
        let position = try #require(await second.manager.position("P1"))
        #expect(position.netQuantity == 0 && position.status == .closed)
        #expect(exchange.liveOrders(of: "GLD").isEmpty, "the target is cancelled once the position is flat")
    }
}

@Suite("Recovery: a journal that lost its tail", .timeLimit(.minutes(5)))
struct LostTailTests {
    /// The journal lost everything after the entry was placed (a torn write-ahead log): it knows
    /// neither the entry's fill nor the stop and target placed after it. While down, the scale-in
    /// filled too, so the broker's stop and target (300) are half the position (600).
    /// Reconciliation adopts both fills and plans the stop and target again, under the ids the
    /// broker already works: they are taken as placed at the broker's 300 and resized to 600,
    /// not resubmitted as if new.
    @Test("orders planned again under ids the broker already works are taken as placed at the broker's size, then resized")
    func replannedOrdersTakeTheBrokersSize() async throws {
        let exchange = calmExchange(["GLD": Price("248")!])
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, entryType: .limit(Price("247")!),
                                                 stopLoss: Price("240"), takeProfit: Price("260"),
                                                 scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("245")!))]))
        await first.settle()
        let beforeTheFill = first.store.fork()
        exchange.setPrice(Price("247")!, of: "GLD")
        await first.settle()
        let stop = try #require(await first.manager.position("P1")?.liveOrder(.stopLoss))
        #expect(stop.openQuantity == 300)
        _ = first.kill()
        exchange.setPrice(Price("245")!, of: "GLD")
        #expect(exchange.netPosition(of: "GLD") == 600)

        let second = try await Process(exchange: exchange, store: beforeTheFill)
        await second.settle()
        #expect(second.report.corrections.contains { $0.kind == .resolvedOperation && $0.orderID == stop.id && $0.message.contains("taken as placed") },
                "\(second.report.corrections)")
        let position = try #require(await second.manager.position("P1"))
        #expect(position.netQuantity == 600)
        #expect(position.liveOrder(.stopLoss)?.id == stop.id && position.liveOrder(.stopLoss)?.openQuantity == 600)
        #expect(position.liveOrder(.stopLoss)?.failure == nil && position.liveOrder(.takeProfit)?.failure == nil)
        let live = exchange.liveOrders(of: "GLD")
        #expect(live.count == 2 && live.allSatisfy { $0.openQuantity == 600 }, "\(live.map { "\($0.id) \($0.openQuantity)" })")
        #expect(await second.manager.invariantViolations().isEmpty)
    }
}

@Suite("Recovery: a modify that took before its order filled", .timeLimit(.minutes(5)))
struct ModifyThenFilledTests {
    /// Long 200 (stop and target 200). The target fills 100, and the stop's resize to 100
    /// reaches the broker, which applies it, but its answer never comes; the process dies, and
    /// the stop fills its 100 while it is down (the position is flat). The broker says the stop
    /// is filled at 100 (its fills carry no cumulative or leaves quantity): the modify took, and
    /// no more fills are coming. The stop is done, not left waiting for fills for ever (which
    /// kept the symbol from any new position).
    @Test("an unanswered resize down whose order then filled at the new size is settled as done")
    func modifyThatTookBeforeTheFill() async throws {
        let exchange = calmExchange(["GLD": Price("248")!], partialFillAbove: Quantity(100))
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 100, entryType: .market,
                                                 stopLoss: Price("240"), takeProfit: Price("260"),
                                                 scaleIns: [BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("246")!))]))
        await first.settle()
        exchange.setPrice(Price("246")!, of: "GLD")
        await first.settle()
        let stop = try #require(await first.manager.position("P1")?.liveOrder(.stopLoss))
        #expect(stop.openQuantity == 200)
        first.connection.holdAcknowledgements()
        exchange.setPrice(Price("260")!, of: "GLD") // the target fills 100 of 200
        await first.connection.waitForHeldRequests(1) // the stop's resize to 100, applied, unanswered
        #expect(exchange.order(stop.id, of: "GLD")?.quantity == 100)
        await first.journal.flush()
        let survivor = first.kill()
        exchange.setPrice(Price("239")!, of: "GLD") // while down, the stop fills its 100: flat
        #expect(exchange.netPosition(of: "GLD") == 0)

        let second = try await Process(exchange: exchange, store: survivor, prepare: { $0.answerExecutionsWithoutQuantities() })
        await second.settle()
        #expect(second.report.corrections.contains { $0.kind == .resolvedOperation && $0.orderID == stop.id && $0.message.contains("accepted") },
                "\(second.report.corrections)")
        let position = try #require(await second.manager.position("P1"))
        #expect(position.netQuantity == 0 && position.status == .closed)
        let settled = try #require(position.orders.first { $0.id == stop.id })
        #expect(settled.status == .filled && settled.quantity == 100 && settled.filledQuantity == 100, "\(settled)")
        #expect(exchange.liveOrders(of: "GLD").isEmpty, "the target is cancelled")
        // The symbol takes a new position.
        try await second.manager.open(BracketSpec(positionID: "P2", symbol: "GLD", side: .buy, quantity: 10, entryType: .market))
        await second.settle()
        #expect(await second.manager.position("P2")?.netQuantity == 10)
    }
}
