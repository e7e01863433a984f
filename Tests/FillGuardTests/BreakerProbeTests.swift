import FillGuard
import FillGuardCore
import Logging
import Testing

/// The circuit breaker's one probe, when what would answer it cannot: a journal that failed, a
/// manager shut down. The probe must be given back (or its answer counted), or the breaker stays
/// half open for good and every lane with work asks again every `probeWait`, for ever.
@Suite("Circuit breaker: the probe's fate", .timeLimit(.minutes(5)))
struct BreakerProbeTests {
    /// A journaled manager whose breaker opens on one transient failure and probes at once.
    private func manager(_ broker: TestBroker, _ store: InMemoryJournalStore) async throws -> FillManager {
        let configuration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 100, baseDelay: .milliseconds(1), maxDelay: .milliseconds(1)),
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 1, openDuration: .zero, probeWait: .milliseconds(1)),
            rearmDelay: nil)
        let manager = FillManager(broker: broker, journal: Journal(store: store), configuration: configuration, logger: .quiet)
        _ = try await manager.recover()
        return manager
    }

    /// A bracket whose only first order is its entry (no scale-ins).
    private func bracket(_ id: PositionID, _ symbol: Symbol) -> BracketSpec {
        BracketSpec(positionID: id, symbol: symbol, side: .buy, quantity: 100, entryType: .market,
                    stopLoss: Price("95"), takeProfit: Price("110"), scaleIns: [])
    }

    /// AAA's entry submit fails (the breaker opens) and its retry goes out as the probe, held
    /// by the broker; BBB's entry waits on the breaker meanwhile.
    private func probeOut(_ broker: TestBroker, _ manager: FillManager) async throws {
        broker.hold()
        broker.fail(1, .submit, with: BrokerError(.transient, "connection down"))
        try await manager.open(bracket("P1", "AAA"))
        await broker.waitForHeld(1)
        broker.releaseFirst()
        await broker.waitForHeld(1)
        try await manager.open(bracket("P2", "BBB"))
    }

    @Test("the journal fails while the probe is out; the probe's answer, which the lane cannot apply, still reaches the breaker: the manager goes quiet (waitUntilIdle hung)")
    func journalFailsWithTheProbeOut() async throws {
        let broker = TestBroker()
        let store = InMemoryJournalStore()
        let manager = try await manager(broker, store)
        try await probeOut(broker, manager)
        store.failNextAppend(with: JournalError(.storage, "disk full"))
        await #expect(throws: InputError.self) { try await manager.open(self.bracket("P3", "AAA")) }
        #expect(manager.journalFailure?.code == .storage)
        broker.releaseAll()
        #expect(await manager.waitUntilIdle(atMost: .seconds(20)), "the breaker stayed half open: BBB kept asking")
        #expect(broker.count(.submit) == 2, "nothing is sent after the journal failed: \(broker.requests)")
    }

    @Test("after shutdown no probe is taken and no lane keeps asking the breaker: the manager goes quiet")
    func shutdownWithTheProbeOut() async throws {
        let broker = TestBroker()
        let manager = try await manager(broker, InMemoryJournalStore())
        try await probeOut(broker, manager)
        #expect(await manager.shutdown(waitingAtMost: .milliseconds(50)) == false, "the probe is still out")
        broker.releaseAll()
        #expect(await manager.waitUntilIdle(atMost: .seconds(20)), "lanes kept asking the breaker after shutdown")
        #expect(broker.count(.submit) == 2, "nothing is sent after shutdown: \(broker.requests)")
    }
}
