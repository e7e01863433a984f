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
    private let tooLate = Mutex<Set<OrderID>>([])

    var capabilities: BrokerCapabilities { orders.capabilities }
    func submit(_ request: NewOrderRequest) async throws(BrokerError) { try await orders.submit(request) }
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        if tooLate.withLock({ $0.contains(request.orderID) }) { throw BrokerError(.tooLate, "order already filled") }
        try await orders.modify(request)
    }

    /// Every modify of `id` is answered "too late" (the order filled at the broker).
    func answerTooLate(_ id: OrderID) { tooLate.withLock { _ = $0.insert(id) } }
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) { try await orders.cancel(request) }
    func events() -> AsyncStream<BrokerEvent> { orders.events() }

    /// The broker made this execution (its report may or may not be delivered).
    func made(_ execution: ExecutionReport) { made.withLock { $0.append(execution) } }
    /// How many times `executions(of:)` was asked.
    var executionQueries: Int { asked.load(ordering: .sequentiallyConsistent) }

    func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState? { nil }
    func openOrders() async throws(BrokerError) -> [BrokerOrderState] { [] }
    func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport] {
        asked.add(1, ordering: .sequentiallyConsistent)
        return made.withLock { $0.filter { $0.symbol == symbol } }
    }
    func positions() async throws(BrokerError) -> [Symbol: Quantity] { [:] }
}

@Suite("Overdue and lost fills are asked of the broker")
struct OverdueFillsTests {
    private static let retry = RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))

    /// Long 100 with its stop and target working.
    private static func opened(_ broker: QueryingTestBroker) async throws -> (FillManager, PositionSnapshot) {
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: retry), logger: .quiet)
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
