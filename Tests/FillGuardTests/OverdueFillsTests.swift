import FillGuard
import FillGuardCore
import Synchronization
import Testing

/// A `TestBroker` that also answers queries: its executions are whatever the test says the
/// broker made (including fills whose reports the test never delivers).
final class QueryingTestBroker: Broker, BrokerQueries, Sendable {
    let orders = TestBroker()
    private let made = Mutex<[ExecutionReport]>([])
    private let asked = Atomic<Int>(0)
    /// Per order, how many more modifies are answered "too late".
    private let tooLate = Mutex<[OrderID: Int]>([:])
    private let works = Mutex<[OrderID: BrokerOrderState]>([:])
    private let stateQueries = Atomic<Int>(0)
    private let statesUnreadable = Atomic<Bool>(false)

    var capabilities: BrokerCapabilities { orders.capabilities }
    func submit(_ request: NewOrderRequest) async throws(BrokerError) { try await orders.submit(request) }
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        let late = tooLate.withLock { answers -> Bool in
            guard let left = answers[request.orderID], left > 0 else { return false }
            answers[request.orderID] = left - 1
            return true
        }
        if late { throw BrokerError(.tooLate, "order already filled") }
        try await orders.modify(request)
    }

    /// The next `times` modifies of `id` (every one by default) are answered "too late" (the order filled at the broker, it says).
    func answerTooLate(_ id: OrderID, times: Int = .max) { tooLate.withLock { $0[id] = times } }
    /// The broker lists this order as it says (`orderState`), whatever it answered before.
    func lists(_ state: BrokerOrderState) { works.withLock { $0[state.orderID] = state } }
    /// How many times `orderState(_:symbol:)` was asked.
    var orderStateQueries: Int { stateQueries.load(ordering: .sequentiallyConsistent) }
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) { try await orders.cancel(request) }
    func events() -> AsyncStream<BrokerEvent> { orders.events() }

    /// The broker made this execution (its report may or may not be delivered).
    func made(_ execution: ExecutionReport) { made.withLock { $0.append(execution) } }
    /// How many times `executions(of:)` was asked.
    var executionQueries: Int { asked.load(ordering: .sequentiallyConsistent) }

    /// From now on `orderState(_:symbol:)` fails (transient): the broker cannot say where an order stands.
    func failStateQueries() { statesUnreadable.store(true, ordering: .sequentiallyConsistent) }

    func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState? {
        stateQueries.add(1, ordering: .sequentiallyConsistent)
        if statesUnreadable.load(ordering: .sequentiallyConsistent) { throw BrokerError(.transient, "order state unavailable") }
        return works.withLock { $0[id] }
    }
    func openOrders() async throws(BrokerError) -> [BrokerOrderState] { [] }
    func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport] {
        asked.add(1, ordering: .sequentiallyConsistent)
        // Read now: what the broker makes while the answer is held back is not in it.
        let answer = made.withLock { $0.filter { $0.symbol == symbol } }
        if heldQueries.withLock({ $0.holding }) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiters = heldQueries.withLock { held -> [CheckedContinuation<Void, Never>] in
                    held.holding = false
                    held.release = continuation
                    defer { held.waiters = [] }
                    return held.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
        }
        return answer
    }

    /// The held back query and those waiting for one to be held.
    private struct HeldQueries {
        var holding = false
        var release: CheckedContinuation<Void, Never>?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let heldQueries = Mutex(HeldQueries())
    /// The next `executions(of:)` answer is read at once but held back until `releaseHeldQuery()`.
    func holdNextExecutionQuery() { heldQueries.withLock { $0.holding = true } }
    /// Waits until a query is held back.
    func waitForHeldQuery() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = heldQueries.withLock { held -> Bool in
                if held.release != nil { return true }
                held.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
    /// Lets the held back query answer.
    func releaseHeldQuery() { heldQueries.withLock { held in defer { held.release = nil }; return held.release }?.resume() }
    func positions() async throws(BrokerError) -> [Symbol: Quantity] { [:] }
}

@Suite("Overdue and lost fills are asked of the broker", .timeLimit(.minutes(5)))
struct OverdueFillsTests {
    private static let retry = RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))

    /// Long 100 with its stop and target working.
    private static func opened(_ broker: QueryingTestBroker, grace: Duration = .milliseconds(500)) async throws -> (FillManager, PositionSnapshot) {
        var configuration = FillGuardConfiguration(retry: retry)
        configuration.unreportedFillGrace = grace
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        try await manager.open(.long("P1", "KO"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        var fills = FillMaker()
        manager.receive(fills.fill(entry, 100, at: "100"))
        await manager.waitUntilIdle()
        return (manager, try #require(await manager.position("P1")))
    }

    @Test("a stop the broker answers 'too late' whose fill report never comes: after the tries the broker's executions are read and the fill applied")
    func overdueFillIsFetched() async throws {
        let broker = QueryingTestBroker()
        let (manager, position) = try await Self.opened(broker)
        let stop = try #require(position.liveOrder(.stopLoss))
        let scaleIn = try #require(position.liveOrder(.scaleIn(0)))
        let corrections = manager.corrections()
        // The stop filled whole at the broker; its report is lost. Then the scale-in fills 50: the
        // stop's resize is answered "too late", every try.
        broker.made(ExecutionReport(executionID: "LOST-1", orderID: stop.id, symbol: "KO", side: .sell, lastQuantity: 100, lastPrice: Price("95")!,
                                    cumulativeQuantity: 100, leavesQuantity: 0))
        broker.answerTooLate(stop.id)
        manager.receive(.execution(ExecutionReport(executionID: "SI-1", orderID: scaleIn.id, symbol: "KO", side: .buy, lastQuantity: 50,
                                                   lastPrice: Price("98")!)))
        // The retry and the reconciliation that follows the alert are work: idle covers them.
        await manager.waitUntilIdle()
        #expect(manager.statistics.alertsByKind[.fillsOverdue] == 1)
        #expect(broker.executionQueries >= 1)
        let after = try #require(await manager.position("P1"))
        #expect(after.netQuantity == 50, "100 bought, 50 more, 100 sold by the stop")
        #expect(after.orders.first { $0.id == stop.id }?.status == .filled)
        #expect(after.liveOrder(.stopLoss)?.openQuantity == 50, "a new stop for the 50 left")
        #expect(after.liveOrder(.takeProfit)?.openQuantity == 50)
        #expect(await manager.invariantViolations().isEmpty)
        manager.finishSubscriptions() // the stream ends after what it holds: no wait for one that never comes
        var correctionIterator = corrections.makeAsyncIterator()
        let correction = try #require(await correctionIterator.next())
        #expect(correction.kind == .adoptedFill && correction.orderID == stop.id, "\(correction)")
        #expect(correction.message.contains("its report never came"), "\(correction.message)")
        #expect(manager.statistics.correctionsByKind == [.adoptedFill: 1], "counted too (simulate reports it)")
    }

    @Test("a broker's correction of an order's size (a replace sent before a restart that lands late): the order is read, taken at the broker's size and brought back to the position")
    func correctedSizeIsReadAndBroughtBack() async throws {
        let broker = QueryingTestBroker()
        let (manager, position) = try await Self.opened(broker)
        let stop = try #require(position.liveOrder(.stopLoss))
        let corrections = manager.corrections()
        let modifiesBefore = broker.orders.count(.modify)
        // The broker now works the stop at 120 over a long of 100, and says so as a correction.
        broker.lists(BrokerOrderState(orderID: stop.id, symbol: "KO", side: .sell, type: stop.type, quantity: 120, filled: 0, status: .working))
        manager.receive(.correction(stop.id, symbol: "KO", message: "order \(stop.id) was replaced at the broker from 100 to 120"))
        await manager.waitUntilIdle()
        #expect(manager.statistics.alertsByKind[.brokerCorrection] == 1, "a person is still told")
        #expect(broker.orderStateQueries == 1)
        #expect(broker.orders.count(.modify) == modifiesBefore + 1, "the stop is brought back down")
        let after = try #require(await manager.position("P1"))
        #expect(after.liveOrder(.stopLoss)?.openQuantity == 100)
        #expect(await manager.invariantViolations().isEmpty)
        manager.finishSubscriptions()
        var seen: [ReconciliationCorrection] = []
        for await correction in corrections { seen.append(correction) }
        #expect(seen.contains { $0.kind == .sizeDiffers && $0.orderID == stop.id && $0.message.contains("the broker has 120, FillGuard had 100") }, "\(seen)")
        // A correction that leaves the size as FillGuard has it (a trade bust, say) changes nothing.
        broker.lists(BrokerOrderState(orderID: stop.id, symbol: "KO", side: .sell, type: stop.type, quantity: 100, filled: 0, status: .working))
        manager.receive(.correction(stop.id, symbol: "KO", message: "a fill was busted"))
        await manager.waitUntilIdle()
        #expect(broker.orderStateQueries == 2)
        #expect(broker.orders.count(.modify) == modifiesBefore + 1)
        // While a modify of FillGuard's own is in flight, its answer decides the size: a
        // correction then neither asks nor takes the broker's size (which may be older).
        broker.orders.hold()
        let scaleIn = try #require(after.liveOrder(.scaleIn(0)))
        manager.receive(.execution(ExecutionReport(executionID: "SI-9", orderID: scaleIn.id, symbol: "KO", side: .buy, lastQuantity: 20,
                                                   lastPrice: Price("98")!)))
        await broker.orders.waitForHeld(1)
        broker.lists(BrokerOrderState(orderID: stop.id, symbol: "KO", side: .sell, type: stop.type, quantity: 90, filled: 0, status: .working))
        manager.receive(.correction(stop.id, symbol: "KO", message: "a fill was busted"))
        broker.orders.releaseAll()
        await manager.waitUntilIdle()
        let settled = try #require(await manager.position("P1"))
        #expect(settled.liveOrder(.stopLoss)?.openQuantity == 120, "the stop follows the position, not the older size: \(settled.orders)")
        #expect(await manager.invariantViolations().isEmpty)
        await manager.shutdown()
    }

    @Test("a stop answered 'too late' that the broker still works, with no fills: after the tries it is asked for, taken as live, and resized; once per order")
    func wrongTooLateIsResolved() async throws {
        for forever in [false, true] {
            let broker = QueryingTestBroker()
            let (manager, position) = try await Self.opened(broker)
            let stop = try #require(position.liveOrder(.stopLoss))
            let target = try #require(position.liveOrder(.takeProfit))
            let corrections = manager.corrections()
            // The stop's resize to 60 is answered "too late" for both tries (or for ever), yet the
            // broker has no fill of it and lists it working at 100.
            broker.answerTooLate(stop.id, times: forever ? .max : 2)
            broker.lists(BrokerOrderState(orderID: stop.id, symbol: "KO", side: .sell, type: stop.type, quantity: 100, filled: 0, status: .working))
            manager.receive(.execution(ExecutionReport(executionID: "TP-1", orderID: target.id, symbol: "KO", side: .sell, lastQuantity: 40,
                                                       lastPrice: Price("110")!)))
            await manager.waitUntilIdle()
            let after = try #require(await manager.position("P1"))
            #expect(after.netQuantity == 60)
            #expect(broker.orderStateQueries == 1, "asked once: \(broker.orderStateQueries)")
            if forever {
                // A broker that answers "too late" again for the order it lists as live: not asked
                // again (no loop), the stop waits and the alert says so.
                #expect(after.liveOrder(.stopLoss)?.status == .awaitingFills)
                #expect(manager.statistics.alertsByKind[.fillsOverdue] == 2)
                #expect(broker.orders.count(.modify) == 0, "every modify answered 'too late' (four: two tries, twice)")
            } else {
                #expect(after.liveOrder(.stopLoss)?.openQuantity == 60, "resized once taken as live: \(after.orders)")
                #expect(after.liveOrder(.stopLoss)?.status == .working)
                #expect(broker.orders.count(.modify) == 1, "the third modify went through")
                #expect(await manager.invariantViolations().isEmpty)
            }
            manager.finishSubscriptions()
            var seen: [ReconciliationCorrection] = []
            for await correction in corrections { seen.append(correction) }
            #expect(seen.contains { $0.kind == .resolvedOperation && $0.orderID == stop.id && $0.message.contains("answered \"too late\"") }, "\(seen)")
            await manager.shutdown()
        }
    }

    @Test("a report whose cumulative quantity is above the fills booked (an earlier report lost): alerted once the grace passed, the lost fill read from the broker, the position flat")
    func cumulativeGapFetchesTheLostFill() async throws {
        let broker = QueryingTestBroker()
        let (manager, position) = try await Self.opened(broker, grace: .milliseconds(20))
        let stop = try #require(position.liveOrder(.stopLoss))
        let target = try #require(position.liveOrder(.takeProfit))
        let corrections = manager.corrections()
        // The stop fills 80, then 20; the first report is lost. The second says 100 of 100, done.
        let lost = ExecutionReport(executionID: "GAP-1", orderID: stop.id, symbol: "KO", side: .sell, lastQuantity: 80, lastPrice: Price("95")!,
                                   cumulativeQuantity: 80, leavesQuantity: 20)
        broker.made(lost)
        let last = ExecutionReport(executionID: "GAP-2", orderID: stop.id, symbol: "KO", side: .sell, lastQuantity: 20, lastPrice: Price("95")!,
                                   cumulativeQuantity: 100, leavesQuantity: 0)
        broker.made(last)
        manager.receive(.execution(last))
        // The alert's reconciliation is work: idle covers it.
        await manager.waitUntilIdle()
        #expect(manager.statistics.alertsByKind[.fillsOverdue] == 1)
        #expect(broker.executionQueries >= 1)
        let after = try #require(await manager.position("P1"))
        #expect(after.netQuantity == 0 && after.status == .closed, "100 bought, 100 sold by the stop: \(after)")
        #expect(after.liveOrders.isEmpty, "nothing left over a flat position: \(after.liveOrders)")
        #expect(after.orders.first { $0.id == target.id }?.status == .cancelled)
        #expect(await manager.invariantViolations().isEmpty)
        manager.finishSubscriptions()
        var correctionIterator = corrections.makeAsyncIterator()
        let correction = try #require(await correctionIterator.next())
        #expect(correction.kind == .adoptedFill && correction.orderID == stop.id, "\(correction)")
        // The lost report comes after all: a repeat, not counted again.
        manager.receive(.execution(lost))
        await manager.waitUntilIdle()
        #expect(await manager.position("P1")?.netQuantity == 0)
        #expect(manager.statistics.rejected[.duplicateExecution] == 1)
    }

    @Test("fills overdue on a second order while the first order's reconciliation waits for the broker: read once more after it, not dropped")
    func secondGapWhileReconcilingIsReadAgain() async throws {
        let broker = QueryingTestBroker()
        let (manager, position) = try await Self.opened(broker, grace: .zero)
        let stop = try #require(position.liveOrder(.stopLoss))
        let target = try #require(position.liveOrder(.takeProfit))
        func fill(_ id: String, _ order: OrderSnapshot, _ quantity: Quantity, cumulative: Quantity, price: String) -> ExecutionReport {
            ExecutionReport(executionID: ExecutionID(id), orderID: order.id, symbol: "KO", side: .sell, lastQuantity: quantity, lastPrice: Price(price)!,
                            cumulativeQuantity: cumulative, leavesQuantity: 100 - cumulative)
        }
        // The stop fills 20 (report lost) then 10: the reconciliation reads the broker, whose
        // answer is held back.
        broker.made(fill("A", stop, 20, cumulative: 20, price: "95"))
        broker.made(fill("B", stop, 10, cumulative: 30, price: "95"))
        broker.holdNextExecutionQuery()
        manager.receive(.execution(fill("B", stop, 10, cumulative: 30, price: "95")))
        await broker.waitForHeldQuery()
        // Meanwhile the target fills 10 (report lost) then 5: its gap comes after that read.
        broker.made(fill("C", target, 10, cumulative: 10, price: "110"))
        broker.made(fill("D", target, 5, cumulative: 15, price: "110"))
        manager.receive(.execution(fill("D", target, 5, cumulative: 15, price: "110")))
        // Its check runs while the first reconciliation waits (a lane event, then the alert).
        while manager.statistics.alertsByKind[.fillsOverdue, default: 0] < 2 { await Task.yield() }
        broker.releaseHeldQuery()
        await manager.waitUntilIdle()
        #expect(broker.executionQueries == 2, "read once more after the first")
        #expect(await manager.position("P1")?.netQuantity == 55, "100 bought, 30 sold by the stop, 15 by the target")
        #expect(manager.statistics.correctionsByKind[.adoptedFill] == 2)
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("reports of one order out of order: the earlier one comes within the grace, so nothing is alerted and the broker is not asked")
    func reorderedReportsAskNothing() async throws {
        let broker = QueryingTestBroker()
        let (manager, position) = try await Self.opened(broker, grace: .seconds(1))
        let stop = try #require(position.liveOrder(.stopLoss))
        let early = ExecutionReport(executionID: "R-1", orderID: stop.id, symbol: "KO", side: .sell, lastQuantity: 80, lastPrice: Price("95")!,
                                    cumulativeQuantity: 80, leavesQuantity: 20)
        let later = ExecutionReport(executionID: "R-2", orderID: stop.id, symbol: "KO", side: .sell, lastQuantity: 20, lastPrice: Price("95")!,
                                    cumulativeQuantity: 100, leavesQuantity: 0)
        // Queued in this order ahead of the check, which comes a second after the first.
        manager.receive(.execution(later))
        manager.receive(.execution(early))
        await manager.waitUntilIdle()
        #expect(manager.statistics.alertsByKind[.fillsOverdue] == nil)
        #expect(broker.executionQueries == 0)
        #expect(await manager.position("P1")?.status == .closed)
    }

    @Test("reconcileFills(of:) applies a fill whose report was lost, once; a second call finds nothing")
    func lostFillIsApplied() async throws {
        let broker = QueryingTestBroker()
        let (manager, position) = try await Self.opened(broker)
        let target = try #require(position.liveOrder(.takeProfit))
        broker.made(ExecutionReport(executionID: "LOST-2", orderID: target.id, symbol: "KO", side: .sell, lastQuantity: 30, lastPrice: Price("110")!,
                                    cumulativeQuantity: 30, leavesQuantity: 70))
        let first = await manager.reconcileFills(of: "KO")
        #expect(first.map(\.kind) == [.adoptedFill], "\(first)")
        await manager.waitUntilIdle()
        let after = try #require(await manager.position("P1"))
        #expect(after.netQuantity == 70)
        #expect(after.liveOrder(.stopLoss)?.openQuantity == 70, "rule 4: the other protective order resized")
        #expect(after.liveOrder(.takeProfit)?.openQuantity == 70)
        #expect(await manager.reconcileFills(of: "KO").isEmpty, "nothing new: the fill is not counted twice")
        await manager.waitUntilIdle()
        #expect(await manager.position("P1")?.netQuantity == 70)
        #expect(await manager.reconcileFills(of: "NOPE").isEmpty, "a symbol FillGuard does not trade")
    }

    @Test("a broker that answers no queries: the overdue alert stands, nothing is asked")
    func withoutQueriesNothingIsAsked() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: Self.retry), logger: .quiet)
        try await manager.open(.long("P1", "KO"))
        await manager.waitUntilIdle()
        #expect(await manager.reconcileFills(of: "KO").isEmpty)
    }
}
