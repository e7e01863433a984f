import FillGuard
import FillGuardCore
import Logging
import Metrics
import Synchronization

/// What a simulated trading session does.
public struct SimulationOptions: Sendable {
    /// Symbols traded in parallel.
    public var symbols: Int = 20
    /// Wall-clock length of the trading part of the session.
    public var duration: Duration = .seconds(10)
    /// Ends the trading part early when requested (Ctrl-C in `fillguard simulate`).
    public var stop: SimulationStop?
    /// Seed for prices, sizes and faults.
    public var seed: UInt64 = 1
    /// Probability that a broker request fails; duplicates and reorders are injected at a quarter of it.
    public var faultRate: Double = 0.02
    /// The exchange offers native modify.
    public var nativeModify = true
    /// Replacement strategy when there is no native modify.
    public var strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate
    /// Acknowledgement latency range of the exchange.
    public var latency: ClosedRange<Duration> = .microseconds(200) ... .milliseconds(1)
    /// Time between price ticks.
    public var tick: Duration = .milliseconds(1)
    /// Price step per tick, in basis points.
    public var volatilityBasisPoints = 3
    /// Retry policy of the manager.
    public var retry = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), maxDelay: .milliseconds(500))
    /// How often the session checks invariants and reports progress.
    public var checkInterval: Duration = .milliseconds(100)
    /// The write-ahead journal; with it the session first recovers what an earlier (killed)
    /// session left, then carries on.
    public var journal: Journal?
    /// Where the exchange keeps its state, so that it outlives the process like a real broker.
    public var exchangeStatePath: String?
    /// With `exchangeStatePath`: whose state it is (a file of another session is refused).
    public var exchangeSession: ExchangeSession?
    /// With `exchangeStatePath`: the journal holds a session, so the state must too (an empty
    /// file is refused, as a missing one is: a new, empty exchange would contradict the journal).
    public var exchangeStateRequired = false
    /// The most market time simulated for the time the manager was down.
    public var maximumDowntime: Duration = .seconds(2)
    /// Dedicated threads for the manager's lanes (nil: Swift's thread pool). The caller owns them.
    public var runnerThreads: RunnerThreads?
    /// How a position a late fill flipped against its bracket is covered (and checked).
    public var flippedPositionCover: FlippedPositionCover = .bracket
    /// With a journal: what its recovery does with entries and scale-ins the broker never got.
    public var unsentEntries: UnsentEntryPolicy = .send
    /// Where the manager's metrics go (nil: the process's bootstrapped `MetricsSystem.factory`).
    public var metricsFactory: (any MetricsFactory)?

    /// The defaults: 20 symbols for 10 s with 2% faults.
    public init() {}

    /// The manager's configuration for a session (against the simulated exchange or over FIX):
    /// these retries, strategy and runner threads, a breaker and re-arm quick enough for seconds of
    /// trading, and each reaction latency handed to `reactionObserver`.
    func managerConfiguration(reactionObserver: @escaping @Sendable (Duration) -> Void) -> FillGuardConfiguration {
        var configuration = FillGuardConfiguration(
            retry: retry,
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 8, openDuration: .milliseconds(50), probeWait: .milliseconds(50)),
            replaceStrategy: strategy,
            rearmDelay: .milliseconds(200),
            reactionObserver: reactionObserver)
        configuration.runnerThreads = runnerThreads
        configuration.flippedPositionCover = flippedPositionCover
        configuration.unsentEntries = unsentEntries
        return configuration
    }
}

/// Live figures while a session runs, for a progress line.
public struct SimulationProgress: Sendable {
    /// Time since trading started.
    public var elapsed: Duration
    /// Fills applied by the manager.
    public var fills: Int
    /// Positions currently open.
    public var openPositions: Int
    /// Positions closed so far.
    public var closedPositions: Int
    /// Broker operations sent so far.
    public var operations: Int
    /// Set once trading has ended and the session waits for FillGuard and the broker to settle:
    /// the most it will wait (nil while trading).
    public var settlingWithin: Duration? = nil
    /// Set while the broker's session is down (over FIX: logged out, refused, or lost, and being
    /// reconnected): why it last closed. Nil while it is up, and always with the simulated exchange.
    public var brokerDown: String? = nil
}

/// Runs a multi-symbol session: FillManager against the simulated exchange, brackets with
/// scale-ins opened and re-opened per symbol, prices running, faults injected, and invariants
/// checked continuously and at the end against the exchange's ground truth.
public final class SimulationSession: Sendable {
    private let options: SimulationOptions

    /// A session with these options.
    public init(options: SimulationOptions) {
        self.options = options
    }

    /// Runs the session to the end and returns its report. Throws when the journal or the
    /// exchange's state file cannot be used.
    public func run(progress: (@Sendable (SimulationProgress) -> Void)? = nil) async throws -> SimulationReport {
        var random = SplitMix64(seed: options.seed &+ 0x5EED)
        var startPrices: [Symbol: Price] = [:]
        let symbols = (0..<options.symbols).map { Symbol("S" + String(repeating: "0", count: max(0, 3 - String($0).count)) + String($0)) }
        for symbol in symbols {
            startPrices[symbol] = Price(units: Int64(random.next(in: 20...500)) * Price.unitsPerWhole)
        }
        var configuration = SimulatorConfiguration(seed: options.seed)
        configuration.nativeModify = options.nativeModify
        configuration.latency = options.latency
        configuration.faultRate = options.faultRate
        configuration.duplicateRate = options.faultRate / 4
        configuration.reorderRate = options.faultRate / 4
        // About ten a run of 8 symbols for 2 s at 0.3: each order is ended a few times a day at most.
        configuration.unsolicitedCancelRate = options.faultRate / 500
        configuration.volatilityBasisPoints = options.volatilityBasisPoints
        // Exposure over wall-clock time, trading and settling alike: a position left without its
        // stop while slow requests settle counts too (ticks stop with trading).
        configuration.exposureInRealTime = true
        let exchange = try SimulatedExchange(configuration: configuration, symbols: startPrices, statePath: options.exchangeStatePath,
                                             session: options.exchangeSession, requiresSavedState: options.exchangeStateRequired)
        var downtime = Duration.zero
        /// The market went on while the manager was down: orders filled, nobody was told. Run
        /// only once the journal was read: a refused journal leaves the exchange as it was.
        func catchUp() {
            if let last = exchange.lastSeenAlive {
                let away = Duration.nanoseconds(max(0, ExchangeLog.wallClockNanos() - last))
                downtime = min(away, options.maximumDowntime)
                exchange.runDisconnected(for: downtime, tick: options.tick) { options.stop?.isRequested != true }
            }
            exchange.recordClock()
        }

        let reactions = Mutex(LatencySamples())
        var logger = Logger(label: "fillguard.simulate")
        logger.logLevel = .critical
        let managerConfiguration = options.managerConfiguration { latency in reactions.withLock { $0.record(latency) } }
        let manager = FillManager(broker: exchange, journal: options.journal, configuration: managerConfiguration, logger: logger,
                                  metricsFactory: options.metricsFactory ?? MetricsSystem.factory)
        let alertSamples = AlertSamples(manager)

        let events = exchange.events()
        let recovery = try await manager.recover(beforeReconciling: catchUp)
        let feed = Task { await manager.run(events) }
        // A symbol recovery held (a position mismatch) is left to a person: no new bracket
        // (it would be refused as symbolHeld), and the report names it.
        let held = Set(recovery.heldSymbols)
        // A symbol beside live orders of FillGuard's making that the journal lost: the manager
        // opens nothing there while the exchange works one (`unknownOrdersLive`); tried again each second.
        var besideUnknownOrders = UnknownOrderWaits()
        let ticker = Task { await exchange.run(tick: options.tick) }
        let clock = ContinuousClock()
        let start = clock.now
        var opened = 0
        var sequence = 0
        var continuousViolations: Set<String> = []
        var latest: [Symbol: PositionID] = [:]
        // After a restart: carry on with the recovered positions, numbering new ones after them.
        for position in await manager.positions() {
            latest[position.symbol] = position.id
            if let number = position.id.rawValue.split(separator: "-").last.flatMap({ Int($0) }) { sequence = max(sequence, number) }
        }

        // Trading: keep one bracket per symbol, opening a new one when the last one closed.
        // A failed journal ends trading: FillGuard applies nothing more, so new brackets would
        // only trade unprotected.
        while clock.now - start < options.duration, options.stop?.isRequested != true, manager.journalFailure == nil {
            let positions = await manager.positions()
            var status: [PositionID: PositionStatus] = [:]
            for position in positions { status[position.id] = position.status }
            let busy = Self.symbolsInProgress(positions)
            for (index, symbol) in symbols.enumerated() {
                // With many symbols a pass of opens takes a while: trading time is kept, checked
                // every 1,024 symbols (a run of a few symbols opens them all even on a loaded
                // machine; one of 100,000 keeps roughly to its duration).
                if index % 1_024 == 1_023, clock.now - start >= options.duration || options.stop?.isRequested == true { break }
                if let current = latest[symbol], status[current] != .closed { continue }
                if busy.contains(symbol) || held.contains(symbol) || besideUnknownOrders.waits(symbol, now: clock.now) { continue }
                sequence += 1
                let id = PositionID("\(symbol)-\(sequence)")
                let spec = Self.bracket(id, symbol, exchange.price(of: symbol), &random)
                do {
                    try await manager.open(spec)
                    latest[symbol] = id
                    opened += 1
                } catch {
                    if !besideUnknownOrders.noteRefusal(error, of: symbol, now: clock.now) {
                        continuousViolations.insert("could not open \(id): \(error)")
                    }
                }
            }
            for violation in await manager.invariantViolations() { continuousViolations.insert(violation.description) }
            progress?(SimulationProgress(
                elapsed: clock.now - start, fills: exchange.statistics.fills,
                openPositions: positions.filter { $0.status == .open }.count,
                closedPositions: positions.filter { $0.status == .closed }.count,
                operations: manager.statistics.operations.values.reduce(0, +)))
            exchange.recordClock()
            try? await Task.sleep(for: options.checkInterval)
        }

        // Wind down: stop the prices and the faults (the broker recovers: without one good answer
        // no client can learn where a timed-out request stands), deliver what is held back, and
        // let every operation settle. The final check then asks that FillGuard has converged
        // to the exchange's truth.
        ticker.cancel()
        _ = await ticker.value
        exchange.stopFaults()
        exchange.flushHeldReports()
        // Settle: requests answered, every report taken off the stream, every lane quiet. An
        // answered request can produce more work, so repeat until nothing moves.
        await exchange.settle(manager)
        // What a permanent failure held back waits for its cool-down; the session ends sooner,
        // so re-arm it now before the final check.
        for _ in 0..<5 where await manager.rearmNow() > 0 {
            await exchange.settle(manager)
        }
        let tradingTime = clock.now - start

        let positions = await manager.positions()
        var finalViolations = (await manager.invariantViolations()).map(\.description)
        // Protection at the exchange too: after the re-arm, every open position has exactly one
        // stop and one target of |net| there.
        finalViolations += GroundTruth.problems(positions, exchange, cover: options.flippedPositionCover)
        // Its saved state is what a later recovery checks against: a hole in it must be known.
        if let failure = exchange.stateFailure { finalViolations.append(failure) }
        // The runtime's record of a failed write (a journal closed on purpose is no failure).
        let journalFailure = manager.journalFailure
        if let failure = journalFailure {
            finalViolations.append("the journal failed (\(failure)): FillGuard stopped applying events, so its state stopped following the exchange")
        }
        feed.cancel()
        manager.finishSubscriptions()

        let statistics = manager.statistics
        let exchangeStatistics = exchange.statistics
        let exposure = exchange.exposure
        let samples = reactions.withLock { $0 }
        var report = SimulationReport(
            symbols: options.symbols, seconds: tradingTime, seed: options.seed, faultRate: options.faultRate,
            nativeModify: options.nativeModify, strategy: options.strategy,
            fills: exchangeStatistics.fills, fillsApplied: statistics.fills,
            positionsOpened: opened,
            positionsClosed: positions.filter { $0.status == .closed }.count,
            operations: statistics.operations, retries: statistics.retries, breakerTrips: statistics.breakerTrips,
            alerts: statistics.alerts, rejected: statistics.rejected,
            faultsInjected: exchangeStatistics.faults, duplicatesInjected: exchangeStatistics.duplicates,
            reordersInjected: exchangeStatistics.reorders,
            unprotectedShareSeconds: exposure.unprotected, overCoveredShareSeconds: exposure.overCovered,
            reaction: samples.summary(),
            continuousViolations: continuousViolations.sorted(), finalViolations: finalViolations)
        report.interrupted = options.stop?.isRequested == true
        report.alertsByKind = statistics.alertsByKind
        report.operationsNotSent = statistics.operationsNotSent
        report.corrections = statistics.correctionsByKind
        report.flippedPositionCover = options.flippedPositionCover
        report.alertSamples = await alertSamples.collected()
        if let journal = options.journal {
            await manager.shutdown()
            // The clean stop writes too (a snapshot of every symbol): a failure then is said as well.
            let failedAtStop = journalFailure == nil ? manager.journalFailure : nil
            if let failure = failedAtStop {
                report.finalViolations.append(SimulationReport.journalFailedWhileStopping(failure))
            }
            report.journal = SimulationReport.JournalSummary(recovery: recovery, written: journal.statistics, downtime: downtime,
                                                             failure: (journalFailure ?? failedAtStop).map { "\($0)" })
        }
        return report
    }

    /// Symbols that cannot take a new bracket yet (one position per symbol): a position in
    /// progress, or a closed one whose orders are still winding down (a late fill of one could
    /// reopen it). `open` refuses these; the sessions wait for them instead. Shared with FIX.
    static func symbolsInProgress(_ positions: [PositionSnapshot]) -> Set<Symbol> {
        Set(positions.filter { $0.status != .closed || !$0.liveOrders.isEmpty }.map(\.symbol))
    }

    /// A bracket around the current price: stop 1.5% away, target 1.5% the other way, one or two
    /// scale-ins 0.4% and 0.8% against the entry. Shared with the session over FIX.
    static func bracket(_ id: PositionID, _ symbol: Symbol, _ price: Price, _ random: inout SplitMix64) -> BracketSpec {
        let side: Side = random.next(in: 0...1) == 0 ? .buy : .sell
        let quantity = Quantity(Int(random.next(in: 10...100)) * 10)
        let sign: Int64 = side == .buy ? 1 : -1
        let base = price.units / 1_000_000 // price in cents
        /// Cents `basisPoints` away from the price (against the position when negative), at least
        /// a cent away: on a cheap symbol the stop, the scale-ins and the entry stay apart.
        func cents(_ basisPoints: Int64) -> Int64 {
            let step = max(1, base * abs(basisPoints) / 10_000)
            return base + sign * (basisPoints < 0 ? -step : step)
        }
        func at(_ cents: Int64) -> Price { Price(units: max(1, cents) * 1_000_000) }
        var scaleInCents = [cents(-40)]
        if random.next(in: 0...1) == 1 { scaleInCents.append(cents(-80)) }
        // Beyond the farthest scale-in by a cent at least (a stop at a scale-in's price is
        // refused); a symbol too cheap for that (a stop below a cent) gets no scale-ins.
        var stop = cents(-150)
        if let farthest = side == .buy ? scaleInCents.min() : scaleInCents.max() {
            stop = side == .buy ? min(stop, farthest - 1) : max(stop, farthest + 1)
        }
        if stop < 1 || scaleInCents.contains(where: { $0 < 1 }) {
            scaleInCents = []
            stop = cents(-150)
        }
        // At the price floor a stop (a long's) or a target (a short's) below a cent would sit at
        // the market and trigger or fill at once: the bracket goes without it there.
        let target = cents(150)
        let half = Quantity(Int(quantity.units / Quantity.unitsPerShare / 2))
        return BracketSpec(positionID: id, symbol: symbol, side: side, quantity: quantity, entryType: .market,
                           stopLoss: stop < 1 ? nil : at(stop), takeProfit: target < 1 ? nil : at(target),
                           scaleIns: scaleInCents.map { BracketSpec.ScaleIn(quantity: half, type: .limit(at($0))) })
    }
}
