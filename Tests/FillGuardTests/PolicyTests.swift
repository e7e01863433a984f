import FillGuard
import FillGuardCore
import Testing

@Suite("Retry, breaker, rate-limit and configuration policies", .timeLimit(.minutes(5)))
struct PolicyTests {
    @Test("retry delays: the base first, then growth by the multiplier, capped; jitter takes off at most its fraction")
    func retryDelays() {
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(500), multiplier: 2, maxDelay: .seconds(3), jitter: 0.5)
        #expect((1...5).map { policy.delay(beforeRetry: $0, unit: 0) } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3)])
        #expect(policy.delay(beforeRetry: 2, unit: 1) == .milliseconds(500), "full draw: half the delay is jitter")
        #expect(policy.delay(beforeRetry: 2, unit: 0.5) == .milliseconds(750))
        #expect(policy.delay(beforeRetry: 2, unit: .nan) == .seconds(1), "a NaN draw takes nothing off")
        #expect(policy.delay(beforeRetry: 2, unit: 7) == .milliseconds(500), "a draw above 1 counts as 1")
    }

    @Test("retry delays never overflow, however large the cap and the growth")
    func retryDelaysDoNotOverflow() {
        let policy = RetryPolicy(maxAttempts: 100, baseDelay: .longestWait / 4, multiplier: 1_000, maxDelay: .longestWait, jitter: 0)
        #expect(policy.delay(beforeRetry: 1, unit: 0) == .longestWait / 4)
        #expect(policy.delay(beforeRetry: 90, unit: 0) == .longestWait)
        let capped = RetryPolicy(baseDelay: .seconds(20), maxDelay: .seconds(10))
        #expect(capped.delay(beforeRetry: 1, unit: 0) == .seconds(10), "a base above the cap is capped too")
    }

    @Test("policy values set after creation are kept in range, as the initialisers keep them")
    func settersKeepValuesInRange() {
        var retry = RetryPolicy()
        retry.maxAttempts = 0
        retry.multiplier = -3
        retry.baseDelay = .seconds(-1)
        retry.maxDelay = .seconds(-1)
        retry.jitter = .nan
        #expect(retry.maxAttempts == 1 && retry.multiplier == 1 && retry.baseDelay == .zero && retry.maxDelay == .zero && retry.jitter == 0)
        retry.jitter = 4
        #expect(retry.jitter == 1)
        #expect(retry.delay(beforeRetry: 3, unit: 0.5) == .zero)

        var breaker = CircuitBreakerPolicy()
        breaker.failureThreshold = 0
        breaker.openDuration = .seconds(-5)
        breaker.probeWait = .zero
        #expect(breaker.failureThreshold == 1 && breaker.openDuration == .zero && breaker.probeWait == CircuitBreakerPolicy.shortestProbeWait)
        #expect(CircuitBreakerPolicy(probeWait: .nanoseconds(-1)).probeWait == CircuitBreakerPolicy.shortestProbeWait)

        var configuration = FillGuardConfiguration()
        configuration.lanePassLimit = 0
        configuration.subscriberBuffer = -1
        configuration.rejectionHistory = -1
        configuration.executionWindow = 0
        configuration.retainedClosedPositions = -2
        configuration.retiredOrderMemory = -2
        configuration.idleSpin = .seconds(-1)
        configuration.rearmDelay = .zero
        #expect(configuration.lanePassLimit == 1 && configuration.subscriberBuffer == 1 && configuration.rejectionHistory == 0)
        #expect(configuration.executionWindow == 1 && configuration.retainedClosedPositions == 0 && configuration.retiredOrderMemory == 0)
        #expect(configuration.idleSpin == .zero)
        #expect(configuration.rearmDelay == FillGuardConfiguration.shortestRearmDelay)
        #expect(FillGuardConfiguration(rearmDelay: .seconds(-1)).rearmDelay == FillGuardConfiguration.shortestRearmDelay)
        configuration.rearmDelay = nil
        #expect(configuration.rearmDelay == nil, "nil still means never")

        var core = SymbolStateMachine.Configuration()
        core.maxAttempts = -1
        core.executionWindow = 0
        core.retiredOrderMemory = -1
        core.retainedClosedPositions = -1
        #expect(core.maxAttempts == 1 && core.executionWindow == 1 && core.retiredOrderMemory == 0 && core.retainedClosedPositions == 0)
    }

    @Test("a spin of any length is held in range (at most 1 s), never an overflow: a manager and runner threads start with one of ten billion seconds")
    func hugeSpinsAreClamped() async throws {
        #expect(Duration.seconds(10_000_000_000).clampedNanoseconds == .max)
        #expect(Duration.seconds(Int64.max).clampedNanoseconds == .max)
        #expect(Duration.seconds(-5).clampedNanoseconds == 0 && Duration.nanoseconds(-1).clampedNanoseconds == 0)
        #expect(Duration.milliseconds(5).clampedNanoseconds == 5_000_000)
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.idleSpin = .seconds(10_000_000_000)
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        try await manager.open(BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("55"), takeProfit: Price("65")))
        #expect(await manager.position("P1")?.liveOrder(.entry) != nil)
        let runners = RunnerThreads(count: 1, spin: .seconds(10_000_000_000))
        runners.shutdown()
    }

    @Test("a lane pass limit set to zero after creation still lets every lane work")
    func zeroPassLimitStillWorks() async throws {
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.lanePassLimit = 0
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("55"), takeProfit: Price("65")))
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        manager.receive(fills.fill(entry, 100, at: "60"))
        #expect(await finishes(failingAfter: .seconds(30)) { await manager.waitUntilIdle() })
        #expect(await manager.position("P1")?.liveOrder(.stopLoss)?.openQuantity == 100)
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("token bucket: bursts up to its capacity, then waits for the refill, and never overflows")
    func tokenBucket() {
        let start = ContinuousClock.now
        let bucket = TokenBucket(rate: 2, capacity: 3, now: start)
        #expect((0..<3).map { _ in bucket.take(now: start) } == [nil, nil, nil])
        #expect(bucket.take(now: start) == .milliseconds(500), "one token comes every half second")
        #expect(bucket.take(now: start + .milliseconds(500)) == nil)
        bucket.refund()
        #expect(bucket.take(now: start + .milliseconds(500)) == nil, "a refunded token is taken again")

        // A long idle gap refills to the capacity, even one that takes longer than a minute to fill.
        let slow = TokenBucket(rate: 1, capacity: 100, now: start)
        for _ in 0..<100 { _ = slow.take(now: start) }
        let later = start + .seconds(3_600)
        #expect((0..<100).allSatisfy { _ in slow.take(now: later) == nil }, "100 tokens after an hour")
        #expect(slow.take(now: later) == .seconds(1))

        // Values far beyond any broker are brought down, not trapped on.
        let huge = TokenBucket(rate: .max, capacity: .max, now: start)
        #expect(huge.take(now: start) == nil)
        #expect(huge.take(now: start + .seconds(86_400 * 365)) == nil, "a year idle at the highest rate")
        let fast = TokenBucket(rate: 1_000_000_000, capacity: 1, now: start)
        #expect(fast.take(now: start) == nil)
        #expect(fast.take(now: start) == .nanoseconds(1))
        #expect(fast.take(now: start + .seconds(60)) == nil)
    }
}

/// Durations a caller means as "for ever", and sizes too large to hold: brought into range, never a trap.
@Suite("Out-of-range durations and sizes", .timeLimit(.minutes(2)))
struct OutOfRangeTests {
    @Test("durations of .seconds(Int64.max) are brought down to Duration.longestWait in every policy, at init and when set")
    func hugeDurationsAreBroughtIntoRange() {
        let forever = Duration.seconds(Int64.max)
        var retry = RetryPolicy(baseDelay: forever, maxDelay: forever)
        #expect(retry.baseDelay == .longestWait && retry.maxDelay == .longestWait)
        retry.maxDelay = forever * 2
        #expect(retry.maxDelay == .longestWait)
        #expect(retry.delay(beforeRetry: 5, unit: 0.5) <= .longestWait)
        var breaker = CircuitBreakerPolicy(openDuration: forever, probeWait: forever)
        #expect(breaker.openDuration == .longestWait && breaker.probeWait == .longestWait)
        breaker.probeWait = forever
        #expect(breaker.probeWait == .longestWait)
        var configuration = FillGuardConfiguration(rearmDelay: forever)
        #expect(configuration.rearmDelay == .longestWait)
        configuration.brokerAnswerTimeout = forever
        #expect(configuration.brokerAnswerTimeout == .longestWait)
        configuration.rearmDelay = forever
        #expect(configuration.rearmDelay == .longestWait)
    }

    @Test("waiting 'for ever' for quiescence, and a shutdown with no limit, wait for the work and return (they trapped in the clock's arithmetic)")
    func foreverWaitsReturnWhenTheWorkIsDone() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, logger: .quiet)
        broker.hold()
        try await manager.open(.long("P1", "KO"))
        await broker.waitForHeld(1)
        let waiting = Task { await manager.waitUntilIdle(atMost: .seconds(Int64.max)) }
        broker.releaseAll()
        #expect(await waiting.value)
        #expect(await manager.shutdown(waitingAtMost: .seconds(Int64.max)))
    }

    @Test("a whole-share quantity or a price literal too large to hold saturates and is refused where it comes in, no trap")
    func hugeSizesAreRefusedNotTrapped() async throws {
        #expect(Quantity(Int.max).units == Int64.max)
        #expect(Quantity(Int.min).units == -Int64.max)
        #expect(Quantity(100_000_000_000) > .maximum)
        #expect(Quantity(300).units == 300 * Quantity.unitsPerShare)
        let manager = FillManager(broker: TestBroker(), logger: .quiet)
        await #expect { try await manager.open(BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: Quantity(100_000_000_000))) } throws: {
            ($0 as? InputError)?.code == .invalidQuantity
        }
        let hugePrice: Price = 9_223_372_036_854_775_807
        #expect(hugePrice > .maximum)
        await #expect { try await manager.open(BracketSpec(positionID: "P2", symbol: "KO", side: .buy, quantity: 100, stopLoss: hugePrice)) } throws: {
            ($0 as? InputError)?.code == .invalidPrice
        }
    }
}
