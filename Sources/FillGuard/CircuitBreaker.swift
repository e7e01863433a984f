import Synchronization

/// One that a breaker held back and tells when it closes.
protocol CircuitBreakerWaiter: AnyObject, Sendable {
    /// The breaker closed, or its probe was answered or given back: ask again.
    func breakerClosed()
}

/// When the breaker opens and how it probes.
public struct CircuitBreakerPolicy: Sendable, Hashable {
    /// Consecutive transient failures that open the breaker (default 5; at least 1).
    public var failureThreshold: Int { didSet { if failureThreshold < 1 { failureThreshold = 1 } } }
    /// How long it stays open before letting one probe through (default 1 s; a negative one is
    /// zero; at most `Duration.longestWait`).
    public var openDuration: Duration { didSet { if !(.zero ... .longestWait).contains(openDuration) { openDuration = openDuration.clampedToWait } } }
    /// How long a held lane waits before it asks again while a probe is out, as a safety net:
    /// it is told at once when the probe is answered or given back (default 1 s; at least 1 ms,
    /// at most `Duration.longestWait`).
    public var probeWait: Duration {
        didSet { if !(Self.shortestProbeWait ... .longestWait).contains(probeWait) { probeWait = max(Self.shortestProbeWait, probeWait.clampedToWait) } }
    }

    /// The shortest `probeWait`: a held lane never asks in a busy loop.
    public static let shortestProbeWait: Duration = .milliseconds(1)

    /// A breaker policy.
    public init(failureThreshold: Int = 5, openDuration: Duration = .seconds(1), probeWait: Duration = .seconds(1)) {
        self.failureThreshold = max(1, failureThreshold)
        self.openDuration = openDuration.clampedToWait
        self.probeWait = max(Self.shortestProbeWait, probeWait.clampedToWait)
    }
}

/// One breaker per broker connection: opens after repeated transient failures, holds work (the
/// work stays as desired state; nothing is dropped), lets a single probe through after a while,
/// and closes when the probe succeeds.
public final class CircuitBreaker: Sendable {
    /// The breaker's state, for metrics and reports.
    public enum State: Int, Sendable, Hashable {
        /// Requests flow.
        case closed = 0
        /// Requests are held.
        case open = 1
        /// One probe is allowed.
        case halfOpen = 2
    }

    /// The answer to "may I send?".
    public enum Permission: Sendable, Hashable {
        /// Send.
        case granted
        /// Send, as the probe; its outcome decides the breaker.
        case probe
        /// Hold until then.
        case denied(until: ContinuousClock.Instant)
    }

    private struct Inner {
        var state = State.closed
        /// How many times it has opened: requests let through before an opening belong to an
        /// earlier period, and their late failures say nothing of the broker since.
        var period: UInt32 = 0
        /// How many times it has closed (after opening): a hold that began before the last close
        /// is over.
        var closings: UInt32 = 0
        var failures = 0
        var openUntil = ContinuousClock.now
        var probeOut = false
        var trips = 0
        /// Those denied since the breaker last closed, told when it closes.
        var held: [ObjectIdentifier: any CircuitBreakerWaiter] = [:]
    }

    private let policy: CircuitBreakerPolicy
    private let inner = Mutex(Inner())
    /// `inner.state == .closed`, published after every change under the lock.
    private let isClosed = Atomic<Bool>(true)
    /// Closed with no failure counted: a success changes nothing.
    private let isHealthy = Atomic<Bool>(true)
    /// `inner.period`, published after every change under the lock.
    private let currentPeriod = Atomic<UInt32>(0)
    /// `inner.closings`, published after every change under the lock.
    private let currentClosings = Atomic<UInt32>(0)

    /// Publishes what the lock-free paths read; called under the lock after every change.
    private func publish(_ inner: Inner) {
        isClosed.store(inner.state == .closed, ordering: .releasing)
        isHealthy.store(inner.state == .closed && inner.failures == 0, ordering: .releasing)
        currentPeriod.store(inner.period, ordering: .releasing)
        currentClosings.store(inner.closings, ordering: .releasing)
    }

    /// How many times the breaker has closed after opening: work held back since a reading of it
    /// is still held (by the same opening) while it reads the same.
    var closings: UInt32 { currentClosings.load(ordering: .acquiring) }

    /// The breaker's period: how many times it has opened. A request records it when it is let
    /// through; its outcome is recorded with it (`recordOutcome(period:)`).
    var period: UInt32 { currentPeriod.load(ordering: .acquiring) }

    /// A closed breaker.
    public init(policy: CircuitBreakerPolicy = CircuitBreakerPolicy()) {
        self.policy = policy
    }

    /// True while the breaker is closed: `acquire` would grant at once.
    var grantsAtOnce: Bool { isClosed.load(ordering: .acquiring) }

    /// The current state.
    public var state: State { isClosed.load(ordering: .acquiring) ? .closed : inner.withLock { $0.state } }

    /// True when an outcome that is neither a transient failure nor a probe's would change
    /// nothing (closed, no failure counted), read without the lock: the caller need not record it.
    func ignores(transientFailure: Bool, wasProbe: Bool) -> Bool {
        !transientFailure && !wasProbe && isHealthy.load(ordering: .acquiring)
    }
    /// How many times it has opened.
    public var trips: Int { inner.withLock { $0.trips } }

    /// Asks to send one request now (`now` is read only when the breaker is not closed).
    public func acquire(now: @autoclosure () -> ContinuousClock.Instant) -> Permission {
        acquire(now: now(), wakingOnClose: nil)
    }

    /// Asks to send one request now; if denied, `waiter` is also told as soon as the breaker
    /// closes (a late success or the probe's), whatever the `until` it was told: once, however
    /// often it was denied.
    func acquire(now: @autoclosure () -> ContinuousClock.Instant,
                 wakingOnClose waiter: @autoclosure () -> (any CircuitBreakerWaiter)?) -> Permission {
        // The common case, without the lock: a closed breaker grants (as it would under the lock
        // at the moment of this load).
        if isClosed.load(ordering: .acquiring) { return .granted }
        let now = now()
        return inner.withLock { inner in
            defer { publish(inner) }
            let permission: Permission
            switch inner.state {
            case .closed:
                return .granted
            case .open:
                guard now >= inner.openUntil else {
                    permission = .denied(until: inner.openUntil)
                    break
                }
                inner.state = .halfOpen
                inner.probeOut = true
                return .probe
            case .halfOpen:
                guard inner.probeOut else {
                    inner.probeOut = true
                    return .probe
                }
                permission = .denied(until: now + policy.probeWait)
            }
            // Asked for only here: a closed breaker's grant takes no reference to the waiter.
            if let waiter = waiter() { inner.held[ObjectIdentifier(waiter)] = waiter }
            return permission
        }
    }

    /// Gives back a probe that was not used; those it held ask again now (one of them probes),
    /// unless `tellingHeld` is false (the caller asks again itself soon: told now, they would
    /// only find the probe taken back and give it back again, round and round).
    public func releaseProbe(tellingHeld: Bool = true) {
        let held = inner.withLock { inner -> [any CircuitBreakerWaiter] in
            inner.probeOut = false
            guard tellingHeld, inner.state == .halfOpen else { return [] }
            defer { inner.held = [:] }
            return Array(inner.held.values)
        }
        for waiter in held { waiter.breakerClosed() }
    }

    /// Tells those it holds to ask again if the probe is free (given back with `tellingHeld:
    /// false` by one that then had nothing to send): a free probe never waits for their safety net.
    func offerFreeProbe() {
        if isClosed.load(ordering: .acquiring) { return }
        let held = inner.withLock { inner -> [any CircuitBreakerWaiter] in
            guard inner.state == .halfOpen, !inner.probeOut else { return [] }
            defer { inner.held = [:] }
            return Array(inner.held.values)
        }
        for waiter in held { waiter.breakerClosed() }
    }

    /// Records a request's outcome: `transientFailure` counts toward opening; anything the
    /// broker answered (success, refusal, too late) shows the connection works.
    /// Returns true if this outcome opened the breaker. `now` is read only for a failure.
    @discardableResult
    public func record(transientFailure: Bool, wasProbe: Bool, now: @autoclosure () -> ContinuousClock.Instant) -> Bool {
        let outcome = recordOutcome(transientFailure: transientFailure, wasProbe: wasProbe, now: now())
        for waiter in outcome.held { waiter.breakerClosed() }
        return outcome.opened
    }

    /// `record`, returning instead of telling those it held (non-empty when this outcome closed
    /// the breaker, or opened it again on the probe's failure: they ask again, and wait for the
    /// open time), for the caller to tell outside its own critical section.
    /// A failure of a request let through in an earlier `period` than the current one (sent
    /// before the breaker last opened: an old call's timeout coming in late) is not counted: it
    /// would reopen a breaker whose probe is out, or open one a probe has just closed.
    func recordOutcome(transientFailure: Bool, wasProbe: Bool, period: UInt32? = nil, now: @autoclosure () -> ContinuousClock.Instant)
        -> (opened: Bool, held: [any CircuitBreakerWaiter]) {
        // The common case, without the lock: a success while closed with no failures counted
        // changes nothing.
        if !transientFailure && !wasProbe && isHealthy.load(ordering: .acquiring) { return (false, []) }
        return inner.withLock { inner in
            defer { publish(inner) }
            // From before the breaker last opened: a probe of an earlier period is not the one
            // out now, and a failure says nothing of the broker since.
            let stale = period.map { $0 < inner.period } ?? false
            if wasProbe, !stale { inner.probeOut = false }
            if transientFailure, stale { return (false, []) }
            if !transientFailure {
                inner.failures = 0
                guard inner.state != .closed else { return (false, []) }
                inner.state = .closed
                inner.closings &+= 1
                let held = Array(inner.held.values)
                inner.held = [:]
                return (false, held)
            }
            inner.failures += 1
            if inner.state == .halfOpen || (inner.state == .closed && inner.failures >= policy.failureThreshold) {
                // Those held while the probe was out are told: they were waiting for its answer.
                let held = inner.state == .halfOpen ? Array(inner.held.values) : []
                if inner.state == .halfOpen { inner.held = [:] }
                inner.state = .open
                inner.period &+= 1
                inner.openUntil = now() + policy.openDuration
                inner.trips += 1
                return (true, held)
            }
            return (false, [])
        }
    }
}
