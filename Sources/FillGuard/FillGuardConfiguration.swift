import FillGuardCore

/// How a `FillManager` behaves.
public struct FillGuardConfiguration: Sendable {
    /// Retries of transient broker failures.
    public var retry: RetryPolicy
    /// The breaker for the broker connection.
    public var circuitBreaker: CircuitBreakerPolicy
    /// Resizing without native modify: cancel-then-create (default) or create-then-cancel.
    public var replaceStrategy: SymbolStateMachine.ReplaceStrategy
    /// Use native modify when the broker offers it (default true). False forces the replace strategy.
    public var preferNativeModify: Bool
    /// After an operation failed for good, how long until the position's orders are tried
    /// again (the alert stays raised). Default 1 s, at least 10 ms; nil never re-arms (only the
    /// next fill does); at most `Duration.longestWait`.
    public var rearmDelay: Duration? {
        didSet {
            if let delay = rearmDelay, !(Self.shortestRearmDelay ... .longestWait).contains(delay) {
                rearmDelay = max(Self.shortestRearmDelay, delay.clampedToWait)
            }
        }
    }
    /// The shortest `rearmDelay`: work the broker refuses for good is not sent again in a loop.
    public static let shortestRearmDelay: Duration = .milliseconds(10)
    /// How long a broker call may go unanswered before FillGuard counts it as timed out
    /// (`BrokerError.Kind.timedOut`: it may have taken effect) and goes on: retried, resent,
    /// or settled like any timeout; an answer that comes later is ignored. A backstop for a
    /// broker whose own deadline failed (a call that never returns would otherwise hold its order's
    /// work for good). Checked every half timeout, so a call expires between one and one and a
    /// half timeouts after it was sent. Default 120 s; nil (or a duration that is not positive)
    /// waits for every answer however long; a positive one is at least `shortestBrokerAnswerTimeout`
    /// and at most `Duration.longestWait`.
    public var brokerAnswerTimeout: Duration? = .seconds(120) {
        didSet {
            if let timeout = brokerAnswerTimeout, timeout > .zero, !(Self.shortestBrokerAnswerTimeout ... .longestWait).contains(timeout) {
                brokerAnswerTimeout = max(Self.shortestBrokerAnswerTimeout, timeout.clampedToWait)
            }
        }
    }
    /// The shortest positive `brokerAnswerTimeout`: its check (every half timeout) never becomes
    /// a busy loop.
    public static let shortestBrokerAnswerTimeout: Duration = .milliseconds(10)
    /// How long after an execution report whose cumulative quantity is above what its order's
    /// reports booked those fills may take to come (reports can arrive out of order) before they
    /// are alerted `fillsOverdue`, and, with a broker that answers queries, read from it.
    /// Default 500 ms; at most `Duration.longestWait`, not negative.
    public var unreportedFillGrace: Duration = .milliseconds(500) {
        didSet { if !(.zero ... .longestWait).contains(unreportedFillGrace) { unreportedFillGrace = max(.zero, unreportedFillGrace.clampedToWait) } }
    }
    /// Events a lane handles before yielding its thread to other symbols (fairness; at least 1).
    public var lanePassLimit: Int { didSet { if lanePassLimit < 1 { lanePassLimit = 1 } } }
    /// How long a runner with nothing to do keeps polling for the next event before it gives its
    /// thread back (default zero: never). Set it (e.g. 100 µs) where a processor is to spare:
    /// sparse events then skip a thread wake-up (tens of microseconds) at the cost of a busy core
    /// meanwhile. Where the cores are all needed (a network adapter's threads on 2 cores), polling
    /// takes time from them and costs more than it saves. Ignored on a single processor. At most
    /// 1 s (a longer spin polls 1 s).
    public var idleSpin: Duration = .zero { didSet { if idleSpin < .zero { idleSpin = .zero } } }
    /// Dedicated threads (optionally bound to processors of their own) that run the lanes instead
    /// of Swift's shared thread pool; nil (default): the pool. `idleSpin` then does not apply (the
    /// threads' own `spin` does). You own them: shut them down when done.
    public var runnerThreads: RunnerThreads?
    /// Newest events kept per subscriber of the event bus (at least 1); a slow subscriber loses the
    /// oldest, never blocks.
    public var subscriberBuffer: Int { didSet { if subscriberBuffer < 1 { subscriberBuffer = 1 } } }
    /// Rejected inputs kept for `recentRejections()` (0: none).
    public var rejectionHistory: Int { didSet { if rejectionHistory < 0 { rejectionHistory = 0 } } }
    /// After a restart: what to do with live broker orders no journal record knows (default leave).
    public var unknownOrders: UnknownOrderPolicy = .leave
    /// After a restart: what to do with entries and scale-ins the broker never got (default send).
    public var unsentEntries: UnsentEntryPolicy = .send
    /// After a restart: what to do with a symbol whose net at the broker still differs from the
    /// journal's after reconciliation, in a way FillGuard's orders could make worse (default hold).
    public var positionMismatch: PositionMismatchPolicy = .hold
    /// Called with each reaction latency: fill received to protective operation handed to the broker.
    public var reactionObserver: (@Sendable (Duration) -> Void)?
    /// Applied execution ids remembered per symbol for duplicate detection (the newest this many
    /// always, up to twice as many); older repeats are caught by quantity checks (docs/dedupe.md).
    public var executionWindow: Int = 1_024 { didSet { if executionWindow < 1 { executionWindow = 1 } } }
    /// Closed positions kept in full per symbol; older ones whose orders are all done are retired
    /// (they leave `positions()`; a late report for their orders is refused). nil: never retire.
    public var retainedClosedPositions: Int? {
        didSet { if let keep = retainedClosedPositions, keep < 0 { retainedClosedPositions = 0 } }
    }
    /// Retired orders remembered per symbol, so that recovery and late reports recognise them.
    public var retiredOrderMemory: Int = 4_096 { didSet { if retiredOrderMemory < 0 { retiredOrderMemory = 0 } } }
    /// How a position a late fill flipped against its bracket is covered: the bracket's two orders
    /// (default, rules 2 and 7 as written) or its stop-loss alone (see `FlippedPositionCover`).
    public var flippedPositionCover: FlippedPositionCover = .bracket

    /// A configuration with the brief's defaults.
    public init(retry: RetryPolicy = RetryPolicy(), circuitBreaker: CircuitBreakerPolicy = CircuitBreakerPolicy(),
                replaceStrategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate, preferNativeModify: Bool = true,
                rearmDelay: Duration? = .seconds(1),
                lanePassLimit: Int = 64, subscriberBuffer: Int = 10_000, rejectionHistory: Int = 1_000,
                reactionObserver: (@Sendable (Duration) -> Void)? = nil) {
        self.retry = retry
        self.circuitBreaker = circuitBreaker
        self.replaceStrategy = replaceStrategy
        self.preferNativeModify = preferNativeModify
        self.rearmDelay = rearmDelay.map { max(Self.shortestRearmDelay, $0.clampedToWait) }
        self.lanePassLimit = max(1, lanePassLimit)
        self.subscriberBuffer = max(1, subscriberBuffer)
        self.rejectionHistory = max(0, rejectionHistory)
        self.reactionObserver = reactionObserver
    }
}
