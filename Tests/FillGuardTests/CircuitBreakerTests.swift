@testable import FillGuard
import Testing

/// The breaker's rules, driven with explicit instants (no clock, no broker).
@Suite("Circuit breaker", .timeLimit(.minutes(5)))
struct CircuitBreakerTests {
    let start = ContinuousClock.now
    let policy = CircuitBreakerPolicy(failureThreshold: 3, openDuration: .seconds(1), probeWait: .milliseconds(20))

    @Test("a success resets the count: only consecutive failures open it")
    func onlyConsecutiveFailuresOpen() {
        let breaker = CircuitBreaker(policy: policy)
        for round in 0..<3 {
            #expect(!breaker.record(transientFailure: true, wasProbe: false, now: start))
            #expect(!breaker.record(transientFailure: true, wasProbe: false, now: start))
            #expect(breaker.acquire(now: start) == .granted, "round \(round)")
            #expect(!breaker.record(transientFailure: false, wasProbe: false, now: start))
        }
        #expect(breaker.state == .closed)
        #expect(breaker.trips == 0)
        // Three in a row do.
        for _ in 0..<2 { breaker.record(transientFailure: true, wasProbe: false, now: start) }
        #expect(breaker.record(transientFailure: true, wasProbe: false, now: start))
        #expect(breaker.state == .open)
        #expect(breaker.trips == 1)
    }

    @Test("closings counts the closes after an opening, not the reopenings of a failed probe: one outage reads one value")
    func closingsCountsCloses() {
        let breaker = CircuitBreaker(policy: policy)
        #expect(breaker.closings == 0)
        for _ in 0..<3 { breaker.record(transientFailure: true, wasProbe: false, now: start) }
        let reopen = start + .seconds(1)
        #expect(breaker.acquire(now: reopen) == .probe)
        breaker.record(transientFailure: true, wasProbe: true, now: reopen)
        #expect(breaker.closings == 0, "a failed probe reopens it: the same outage")
        #expect(breaker.acquire(now: reopen + .seconds(1)) == .probe)
        breaker.record(transientFailure: false, wasProbe: true, now: reopen + .seconds(1))
        #expect(breaker.state == .closed && breaker.closings == 1)
        breaker.record(transientFailure: false, wasProbe: false, now: reopen + .seconds(1))
        #expect(breaker.closings == 1, "a success while closed closes nothing")
    }

    @Test("open: denies until its time, then lets one probe through; the probe's outcome decides")
    func openProbesOnce() {
        let breaker = CircuitBreaker(policy: policy)
        for _ in 0..<3 { breaker.record(transientFailure: true, wasProbe: false, now: start) }
        let reopen = start + .seconds(1)
        #expect(breaker.acquire(now: start + .milliseconds(500)) == .denied(until: reopen))
        #expect(breaker.acquire(now: reopen) == .probe)
        #expect(breaker.state == .halfOpen)
        // While the probe is out, others wait.
        #expect(breaker.acquire(now: reopen) == .denied(until: reopen + .milliseconds(20)))
        // The probe fails: open again, for another period.
        #expect(breaker.record(transientFailure: true, wasProbe: true, now: reopen))
        #expect(breaker.state == .open)
        #expect(breaker.trips == 2)
        let second = reopen + .seconds(1)
        #expect(breaker.acquire(now: reopen + .milliseconds(999)) == .denied(until: second))
        #expect(breaker.acquire(now: second) == .probe)
        #expect(!breaker.record(transientFailure: false, wasProbe: true, now: second))
        #expect(breaker.state == .closed)
        #expect(breaker.acquire(now: second) == .granted)
    }

    @Test("failures of requests let through before the breaker last opened (old calls timing out late) neither reopen it while its probe is out nor open it again once the probe closed it")
    func lateFailuresOfAnEarlierPeriodDoNotCount() {
        let breaker = CircuitBreaker(policy: policy)
        let before = breaker.period
        // Many calls out when the broker stalls: three time out and open it.
        for _ in 0..<3 { _ = breaker.recordOutcome(transientFailure: true, wasProbe: false, period: before, now: start) }
        #expect(breaker.state == .open && breaker.period == before + 1)
        let reopen = start + .seconds(1)
        #expect(breaker.acquire(now: reopen) == .probe)
        // The other old calls time out while the probe is out: still half open, the probe still the one out.
        #expect(!breaker.recordOutcome(transientFailure: true, wasProbe: false, period: before, now: reopen).opened)
        #expect(breaker.state == .halfOpen)
        #expect(breaker.acquire(now: reopen) == .denied(until: reopen + .milliseconds(20)))
        // The probe succeeds; more old timeouts come in: it stays closed.
        _ = breaker.recordOutcome(transientFailure: false, wasProbe: true, period: breaker.period, now: reopen)
        for _ in 0..<5 { _ = breaker.recordOutcome(transientFailure: true, wasProbe: false, period: before, now: reopen) }
        #expect(breaker.state == .closed && breaker.trips == 1)
        // Failures of calls let through since count as before.
        for _ in 0..<3 { _ = breaker.recordOutcome(transientFailure: true, wasProbe: false, period: breaker.period, now: reopen) }
        #expect(breaker.state == .open && breaker.trips == 2)
    }

    /// Counts how often the breaker tells it to ask again.
    private final class Waiter: CircuitBreakerWaiter, @unchecked Sendable {
        var told = 0
        func breakerClosed() { told += 1 }
    }

    @Test("those held while the probe is out are told when it is given back or fails, not left to poll: the default safety-net wait is a second")
    func heldAreToldWhenTheProbeEnds() {
        #expect(CircuitBreakerPolicy().probeWait == .seconds(1))
        let breaker = CircuitBreaker(policy: policy)
        for _ in 0..<3 { breaker.record(transientFailure: true, wasProbe: false, now: start) }
        let reopen = start + .seconds(1)
        let held = Waiter()
        #expect(breaker.acquire(now: reopen) == .probe)
        #expect(breaker.acquire(now: reopen, wakingOnClose: held) == .denied(until: reopen + .milliseconds(20)))
        // Given back: told at once, and the next ask probes.
        breaker.releaseProbe()
        #expect(held.told == 1)
        #expect(breaker.acquire(now: reopen, wakingOnClose: held) == .probe)
        // Held again behind that probe, which fails: told, and then held for the open time.
        let other = Waiter()
        #expect(breaker.acquire(now: reopen, wakingOnClose: other) == .denied(until: reopen + .milliseconds(20)))
        #expect(breaker.record(transientFailure: true, wasProbe: true, now: reopen))
        #expect(other.told == 1)
        #expect(breaker.acquire(now: reopen, wakingOnClose: other) == .denied(until: reopen + .seconds(1)))
        // A probe given back by one that asks again itself (its rate limit) tells no one.
        #expect(breaker.acquire(now: reopen + .seconds(1)) == .probe)
        #expect(breaker.acquire(now: reopen + .seconds(1), wakingOnClose: other) == .denied(until: reopen + .seconds(1) + .milliseconds(20)))
        breaker.releaseProbe(tellingHeld: false)
        #expect(other.told == 1)
        // ...until that one finds it has nothing to send after all: those held are told the probe is free.
        breaker.offerFreeProbe()
        #expect(other.told == 2)
        // Not while the probe is out.
        #expect(breaker.acquire(now: reopen + .seconds(1)) == .probe)
        #expect(breaker.acquire(now: reopen + .seconds(1), wakingOnClose: other) == .denied(until: reopen + .seconds(1) + .milliseconds(20)))
        breaker.offerFreeProbe()
        #expect(other.told == 2)
    }

    @Test("a probe given back lets the next request probe")
    func releasedProbe() {
        let breaker = CircuitBreaker(policy: policy)
        for _ in 0..<3 { breaker.record(transientFailure: true, wasProbe: false, now: start) }
        let reopen = start + .seconds(1)
        #expect(breaker.acquire(now: reopen) == .probe)
        breaker.releaseProbe()
        #expect(breaker.acquire(now: reopen) == .probe)
    }

    @Test("while half open, any answer (not a transient failure) closes it")
    func answerWhileHalfOpenCloses() {
        let breaker = CircuitBreaker(policy: policy)
        for _ in 0..<3 { breaker.record(transientFailure: true, wasProbe: false, now: start) }
        #expect(breaker.acquire(now: start + .seconds(1)) == .probe)
        #expect(!breaker.record(transientFailure: false, wasProbe: false, now: start + .seconds(1)))
        #expect(breaker.state == .closed)
        #expect(breaker.acquire(now: start + .seconds(1)) == .granted)
    }
}
