import FillGuard
import FillGuardCore
import FillGuardFIX
import Logging
import Synchronization

/// What a FIX throughput run does.
public struct FIXBenchOptions: Sendable {
    /// The endpoint: an auto-market exchange (tools/fix-peer with --auto-market, ideally with
    /// --market-fills K so each entry comes back in K fills).
    public var settings: FIXSettings
    /// Brackets opened at once, one per symbol.
    public var positions = 2_000
    /// Shares per entry.
    public var quantity = Quantity(1_000)
    /// Prefix of this run's position ids (and so ClOrdIDs).
    public var runID: String = FIXSimulationOptions.makeRunID()
    /// Positions opened per second; nil: all at once (a burst, for throughput). Paced, the
    /// latencies show the way through an unsaturated system.
    public var positionsPerSecond: Int?
    /// The most a run may take before it is called failed.
    public var timeout: Duration = .seconds(300)

    /// Options for `settings`, with the defaults: 2,000 positions of 1,000 shares.
    public init(settings: FIXSettings) {
        self.settings = settings
    }
}

/// The outcome of one FIX throughput run.
public struct FIXBenchResult: Sendable {
    /// Positions opened.
    public var positions: Int
    /// Fills received over FIX and applied.
    public var fills: Int
    /// From the first open to the last fill applied with every protective order acknowledged.
    public var elapsed: Duration
    /// Fills per second over `elapsed` (whole fills).
    public var fillsPerSecond: Int
    /// FillGuard's own reaction: fill received to protective operation handed to the broker.
    public var reaction: LatencySummary
    /// Over the wire: fill received to the next protective order (submit or modify sent after
    /// the fill) acknowledged by the exchange.
    public var protection: LatencySummary
    /// Broker operations by kind.
    public var operations: [OrderOperation.Kind: Int]
    /// Retries after transient failures.
    public var retries: Int
    /// Differences from the exchange's account at the end (OrderMassStatus), and FillGuard's invariant violations.
    public var violations: [String]
}

/// FillGuard's throughput over FIX: opens many brackets with market entries at once against an
/// auto-market exchange, which fills each entry (in as many executions as it is set to), and
/// measures how fast FillGuard takes the fills and resizes the stops and targets over the wire.
/// The exchange's prices hold still (no market-data subscription), so protective orders never
/// trigger and every fill is an entry fill.
public enum FIXBench {
    /// Runs once and checks the result against the exchange.
    public static func run(_ options: FIXBenchOptions) async throws -> FIXBenchResult {
        var logger = Logger(label: "fillguard.bench.fix")
        logger.logLevel = .critical
        let configuration: FIXBrokerConfiguration
        let store: FIXSessionStore
        do {
            configuration = try options.settings.brokerConfiguration()
            store = try options.settings.makeStore()
        } catch {
            throw FIXSimulationError(error.description)
        }
        let endpoint = "\(configuration.host):\(configuration.port)"
        let fix = FIXBroker(configuration: configuration, store: store, logger: logger)
        do {
            try await fix.start()
        } catch {
            throw FIXSimulationError("cannot log on to the FIX endpoint \(endpoint): \(error)")
        }
        let symbols = (0..<options.positions).map { Symbol("B" + String(repeating: "0", count: max(0, 4 - String($0).count)) + String($0)) }
        let prices: [Symbol: Price]
        do {
            prices = try await fix.marketData(symbols)
        } catch {
            await fix.stop()
            throw FIXSimulationError("the FIX endpoint \(endpoint) gives no market data (\(error.message)); the test exchange needs --auto-market SEED")
        }
        let timing = TimingBroker(fix)
        let reactions = Mutex(LatencySamples())
        let manager = FillManager(
            broker: timing,
            configuration: FillGuardConfiguration(
                retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), maxDelay: .milliseconds(500)),
                reactionObserver: { latency in reactions.withLock { $0.record(latency) } }),
            logger: logger)
        let feed = Task { await manager.run(timing.events()) }
        let total = Quantity(units: options.quantity.units * Int64(options.positions))

        let clock = ContinuousClock()
        let start = clock.now
        var violations: [String] = []
        for (index, symbol) in symbols.enumerated() {
            if let rate = options.positionsPerSecond, rate > 0 {
                // Paced: the n-th bracket opens n/rate seconds after the start.
                try? await Task.sleep(until: start + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate)), clock: clock)
            }
            let price = prices[symbol] ?? Price(units: 100 * Price.unitsPerWhole)
            let cents = price.units / 1_000_000
            let spec = BracketSpec(positionID: PositionID("\(options.runID)-\(symbol)"), symbol: symbol, side: .buy, quantity: options.quantity,
                                   entryType: .market, stopLoss: Price(units: max(1, cents * 95 / 100) * 1_000_000),
                                   takeProfit: Price(units: (cents * 105 / 100 + 1) * 1_000_000), scaleIns: [])
            do {
                try await manager.open(spec)
            } catch {
                violations.append("could not open \(spec.positionID): \(error)")
            }
        }
        // Every entry share filled, every fill taken in, every operation answered.
        let arrived = await timing.waitForFilled(total, timeout: options.timeout)
        if !arrived { violations.append("only \(timing.filled) of \(total) shares filled within \(options.timeout)") }
        let forwarded = timing.eventsForwarded
        while manager.eventsReceived < forwarded, clock.now - start < options.timeout { await Task.yield() }
        await manager.waitUntilIdle()
        let elapsed = clock.now - start

        // The exchange's account of every order of the run.
        do {
            let prefix = options.runID + "-"
            let statuses = try await fix.massStatus().filter { $0.orderID.rawValue.hasPrefix(prefix) }
            violations += FIXGroundTruth.problems(await manager.positions(), statuses, orderPrefix: prefix)
        } catch {
            violations.append("the exchange did not answer the order mass status: \(error.message)")
        }
        violations += (await manager.invariantViolations()).map(\.description)
        feed.cancel()
        manager.finishSubscriptions()
        await fix.stop()

        let statistics = manager.statistics
        let nanos = max(1, elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        return FIXBenchResult(
            positions: options.positions, fills: statistics.fills, elapsed: elapsed,
            fillsPerSecond: Int(Int64(statistics.fills) * 1_000_000_000 / nanos),
            reaction: reactions.withLock { $0.summary() }, protection: timing.protection(),
            operations: statistics.operations, retries: statistics.retries, violations: violations)
    }
}

/// A broker in front of another that times the way from a fill's arrival to the next protective
/// order (anything but a market order) acknowledged for the symbol, and counts filled shares.
final class TimingBroker: CallbackBroker {
    private let inner: FIXBroker
    private let clock = ContinuousClock()
    private let state = Mutex(State())

    private struct State {
        var arrivals: [Symbol: [ContinuousClock.Instant]] = [:]
        var protection = LatencySamples()
        var filled = Quantity.zero
        var forwarded = 0
        var target: Quantity?
        var waiter: CheckedContinuation<Bool, Never>?
    }

    init(_ inner: FIXBroker) { self.inner = inner }

    var capabilities: BrokerCapabilities { inner.capabilities }

    /// Shares filled so far.
    var filled: Quantity { state.withLock { $0.filled } }
    /// Events passed on to the manager so far.
    var eventsForwarded: Int { state.withLock { $0.forwarded } }
    /// The fill-to-protection latencies so far.
    func protection() -> LatencySummary { state.withLock { $0.protection.summary() } }

    func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        let sent = clock.now
        try await inner.submit(request)
        if request.type != .market { acknowledged(request.symbol, sentAt: sent) }
    }

    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        let sent = clock.now
        try await inner.modify(request)
        acknowledged(request.symbol, sentAt: sent)
    }

    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        try await inner.cancel(request)
    }

    /// The callback path, timed like the async one.
    func send(_ request: OrderOperation.Request, completion: @escaping @Sendable (Result<Void, BrokerError>) -> Void) {
        let sent = clock.now
        inner.send(request) { result in
            if case .success = result {
                switch request {
                case .submit(let submit) where submit.type != .market: self.acknowledged(submit.symbol, sentAt: sent)
                case .modify(let modify): self.acknowledged(modify.symbol, sentAt: sent)
                default: break
                }
            }
            completion(result)
        }
    }

    func events() -> AsyncStream<BrokerEvent> {
        let source = inner.events()
        let (stream, continuation) = AsyncStream.makeStream(of: BrokerEvent.self)
        let pump = Task { [self] in
            for await event in source {
                let now = clock.now
                let ready: CheckedContinuation<Bool, Never>? = state.withLock { state in
                    state.forwarded += 1
                    guard case .execution(let report) = event else { return nil }
                    state.arrivals[report.symbol, default: []].append(now)
                    state.filled += report.lastQuantity
                    guard let target = state.target, state.filled >= target, let waiter = state.waiter else { return nil }
                    state.waiter = nil
                    return waiter
                }
                continuation.yield(event)
                ready?.resume(returning: true)
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in pump.cancel() }
        return stream
    }

    /// Waits until `total` shares have filled; false after `timeout`.
    func waitForFilled(_ total: Quantity, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let done = self.state.withLock { state -> Bool in
                        if state.filled >= total { return true }
                        state.target = total
                        state.waiter = continuation
                        return false
                    }
                    if done { continuation.resume(returning: true) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout) // a failure guard
                let waiter = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume(returning: false)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func acknowledged(_ symbol: Symbol, sentAt sent: ContinuousClock.Instant) {
        let now = clock.now
        state.withLock { state in
            guard var arrivals = state.arrivals[symbol], !arrivals.isEmpty else { return }
            // Fills that arrived before this request went out are covered by it.
            let covered = arrivals.prefix { $0 <= sent }
            for arrival in covered { state.protection.record(now - arrival) }
            arrivals.removeFirst(covered.count)
            state.arrivals[symbol] = arrivals.isEmpty ? nil : arrivals
        }
    }
}
