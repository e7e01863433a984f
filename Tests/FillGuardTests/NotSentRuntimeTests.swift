import FillGuard
import Logging
import FillGuardCore
import Testing

/// Requests the broker adapter could not send (its connection down) through the whole runtime:
/// they use no tries, the breaker paces them, a person is told once, and a journal keeps them.
@Suite("Requests never sent, in the runtime")
struct NotSentRuntimeTests {
    private static let configuration = FillGuardConfiguration(
        retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
        circuitBreaker: CircuitBreakerPolicy(failureThreshold: 2, openDuration: .milliseconds(5), probeWait: .milliseconds(1)))

    @Test("a stop's resize not sent eight times (three tries allowed) goes as a modify once the broker is back: one operationHeld, no replacement",
          .timeLimit(.minutes(1)))
    func outageLongerThanTheTries() async throws {
        let broker = TestBroker()
        let store = InMemoryJournalStore()
        let manager = FillManager(broker: broker, journal: Journal(store: store), configuration: Self.configuration, logger: .quiet)
        _ = try await manager.recover()
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "NSN", side: .buy, quantity: 100, stopLoss: Price("95"), takeProfit: nil,
                                           scaleIns: [BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("98")!))]))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        manager.receive(fills.fill(entry, 100, at: "100"))
        await manager.waitUntilIdle()
        let opened = try #require(await manager.position("P1"))
        let stop = try #require(opened.liveOrder(.stopLoss))
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        // The session goes down; the scale-in fills: the stop's resize to 200 cannot be sent.
        broker.fail(8, .modify, with: BrokerError(.notSent, "FIX session not logged on"))
        manager.receive(fills.fill(scaleIn, 100, at: "98"))
        await manager.waitUntilIdle()
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == 200)
        #expect(position.liveOrder(.stopLoss)?.id == stop.id, "the same stop, not a replacement")
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 200)
        #expect(manager.statistics.alertsByKind == [.operationHeld: 1], "\(manager.statistics.alertsByKind)")
        #expect(manager.statistics.retries == 8)
        #expect(manager.statistics.operationsNotSent == 8)
        #expect(manager.statistics.breakerTrips >= 1, "the breaker paced the outage")
        #expect(broker.count(.modify) == 9, "eight unsent tries, then the modify")
        #expect(broker.count(.submit) == 3, "entry, scale-in and stop: nothing replaced")
        #expect(await manager.invariantViolations().isEmpty)
        // The journal holds the unsent tries: a restart re-derives the same state from them.
        let killed = store.fork()
        let before = await manager.positions()
        await manager.shutdown()
        let restarted = FillManager(broker: TestBroker(), journal: Journal(store: killed), configuration: Self.configuration, logger: .quiet)
        let report = try await restarted.recover()
        #expect(report.recordsReplayed > 8)
        #expect(await restarted.positions() == before)
        await restarted.shutdown()
    }

    @Test("an outage the breaker holds both protective orders through: each is alerted once, the one its probes carry and the one it holds back",
          .timeLimit(.minutes(1)))
    func heldBackWorkIsAlertedToo() async throws {
        let broker = TestBroker()
        let configuration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 1, openDuration: .milliseconds(20), probeWait: .milliseconds(1)))
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        let alerts = manager.alerts()
        var fills = FillMaker()
        let opened = try await manager.openLongAndFillEntry("P1", "HLD", fills: &fills)
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        // The session goes down for 30 requests; the scale-in fills: both resizes must wait.
        broker.fail(30, .modify, with: BrokerError(.notSent, "FIX session not logged on"))
        manager.receive(fills.fill(scaleIn, 100, at: "98"))
        await manager.waitUntilIdle()
        let position = try #require(await manager.position("P1"))
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 200 && position.liveOrder(.takeProfit)?.openQuantity == 200)
        #expect(manager.statistics.alertsByKind == [.operationHeld: 2], "\(manager.statistics.alertsByKind)")
        var iterator = alerts.makeAsyncIterator()
        var roles: [OrderRole] = []
        for _ in 0..<min(2, manager.statistics.alerts) { if let alert = await iterator.next() { roles.append(alert.role ?? .entry) } }
        #expect(Set(roles) == [.stopLoss, .takeProfit], "\(roles)")
        #expect(broker.count(.modify) == 32, "thirty unsent tries, then the two modifies")
        #expect(await manager.invariantViolations().isEmpty)
    }
    @Test("an entry the circuit breaker holds back (its probe out on another symbol) for maxAttempts open times is refused, never sent: not sent late once the broker is back",
          .timeLimit(.minutes(1)))
    func heldBackEntryIsRefused() async throws {
        let broker = TestBroker()
        let store = InMemoryJournalStore()
        let configuration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 1, openDuration: .milliseconds(20), probeWait: .milliseconds(1)))
        let manager = FillManager(broker: broker, journal: Journal(store: store), configuration: configuration, logger: .quiet)
        _ = try await manager.recover()
        let alerts = manager.alerts()
        var fills = FillMaker()
        let opened = try await manager.openLongAndFillEntry("P1", "HLA", fills: &fills)
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        // Neither resize is sent (the breaker opens); the probe that carries one of them again is
        // held unanswered, so the breaker lets nothing else through meanwhile.
        broker.hold()
        broker.fail(2, .modify, with: BrokerError(.notSent, "FIX session not logged on"))
        manager.receive(fills.fill(scaleIn, 100, at: "98"))
        await broker.waitForHeld(2)
        broker.releaseFirst()
        broker.releaseFirst()
        await broker.waitForHeld(1)
        // A new bracket on another symbol: its entry waits behind the breaker, and is refused.
        let opened2 = ContinuousClock.now
        try await manager.open(.long("P2", "HLB"))
        var iterator = alerts.makeAsyncIterator()
        var refusal: Alert?
        while let alert = await iterator.next() {
            if alert.positionID == "P2" { refusal = alert; break }
        }
        let alert = try #require(refusal)
        // Not before it had waited maxAttempts (3) open times (20 ms) from its bracket's open.
        #expect(ContinuousClock.now - opened2 >= .milliseconds(60), "refused too early")
        #expect(alert.kind == .entryRejected && alert.role == .entry, "\(alert)")
        #expect(alert.message.contains("held back by the circuit breaker for "), "\(alert.message)")
        // Refused once it had waited maxAttempts (3) open times (20 ms), not before.
        let waited = alert.message.split(separator: "held back by the circuit breaker for ").last?.split(separator: " ").first.flatMap { Price(String($0)) }
        #expect(waited.map { $0 >= Price("0.060")! } == true, "\(alert.message)")
        // The broker is back: the stop's resize goes; P2's entry does not.
        broker.releaseAll()
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P2")?.orders.first { $0.role == .entry })
        #expect(!broker.requests.contains { $0.orderID == entry.id }, "the refused entry never reached the broker")
        #expect(await manager.position("P2")?.liveOrders.isEmpty == true)
        #expect(await manager.position("P2")?.status == .closed)
        #expect(await manager.position("P1")?.liveOrder(.stopLoss)?.openQuantity == 200)
        #expect(await manager.invariantViolations().isEmpty)
        // The refusal is journaled like a broker's answer: a restart re-derives the same state.
        let killed = store.fork()
        let before = await manager.positions()
        await manager.shutdown()
        let restarted = FillManager(broker: TestBroker(), journal: Journal(store: killed), configuration: configuration, logger: .quiet)
        _ = try await restarted.recover()
        #expect(await restarted.positions() == before)
        await restarted.shutdown()
    }
}
