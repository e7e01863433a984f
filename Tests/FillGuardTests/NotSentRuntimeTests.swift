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

    @Test("an entry not sent eight times (three tries allowed) goes once the broker is back: one operationHeld, nothing refused",
          .timeLimit(.minutes(1)))
    func outageLongerThanTheTries() async throws {
        let broker = TestBroker()
        broker.fail(8, nil, with: BrokerError(.notSent, "FIX session not logged on"))
        let store = InMemoryJournalStore()
        let manager = FillManager(broker: broker, journal: Journal(store: store), configuration: Self.configuration, logger: .quiet)
        _ = try await manager.recover()
        var fills = FillMaker()
        let position = try await manager.openLongAndFillEntry("P1", "NSN", fills: &fills)
        #expect(position.netQuantity == 100)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 100)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 100)
        #expect(manager.statistics.alertsByKind == [.operationHeld: 1], "\(manager.statistics.alertsByKind)")
        #expect(manager.statistics.retries == 8)
        #expect(manager.statistics.breakerTrips >= 1, "the breaker paced the outage")
        #expect(broker.count(.submit) == 8 + 4, "eight unsent tries of the entry, then the entry, scale-in, stop and target")
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
}
