import FillGuard
import FillGuardCore
import Logging

/// A restart against the simulated exchange's saved state: recover from the journal, reconcile
/// with the exchange (which kept trading while the manager was down), let every correction
/// settle, and check the result against the exchange's ground truth.
public struct RecoverySession: Sendable {
    /// The outcome.
    public struct Outcome: Sendable {
        /// The recovered (and reconciled) state, in the replay shape.
        public var state: ReplayReport
        /// What recovery did.
        public var recovery: RecoveryReport
        /// Problems against the exchange's ground truth (empty when all is right).
        public var problems: [String]
        /// Symbols of `release` that this recovery did not hold (so nothing was released for them).
        public var notHeld: [Symbol] = []
        /// The first alerts the manager raised (an operation that failed for good, overdue fills, ...).
        public var alerts: [String] = []
    }

    /// The journal to recover from.
    public var journal: Journal
    /// The exchange's state file; nil to rebuild without reconciling.
    public var exchangeStatePath: String?
    /// The journal's identity, checked against the one the exchange state names.
    public var journalID: String?
    /// Seed of the simulated exchange (as the session was run with).
    public var seed: UInt64
    /// Native modify at the exchange (as the session was run with).
    public var nativeModify: Bool
    /// Replacement strategy without native modify.
    public var strategy: SymbolStateMachine.ReplaceStrategy
    /// How a position flipped against its bracket is covered (as the session was run with).
    public var flippedPositionCover: FlippedPositionCover = .bracket
    /// What becomes of entries and scale-ins the broker never got (`FillGuardConfiguration.unsentEntries`).
    public var unsentEntries: UnsentEntryPolicy = .send
    /// Symbols whose work a person lets go if recovery holds it (`FillManager.releaseHeldOperations(of:)`).
    public var release: Set<Symbol> = []

    /// A recovery of `journal`, reconciled against the exchange saved at `exchangeStatePath`.
    /// With `journalID`, the state must be that journal's session's, traded with these settings.
    public init(journal: Journal, exchangeStatePath: String?, seed: UInt64 = 1, nativeModify: Bool = true,
                strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate, journalID: String? = nil) {
        self.journal = journal
        self.journalID = journalID
        self.exchangeStatePath = exchangeStatePath
        self.seed = seed
        self.nativeModify = nativeModify
        self.strategy = strategy
    }

    /// Recovers, reconciles, settles, checks. Throws when the journal cannot be read, or cannot
    /// be written (the corrections were then not applied), or the exchange state is not the journal's.
    public func run(logger: Logger) async throws -> Outcome {
        var configuration = SimulatorConfiguration(seed: seed)
        configuration.nativeModify = nativeModify
        configuration.volatilityBasisPoints = 0
        let exchange: SimulatedExchange
        if let exchangeStatePath {
            let session = journalID.map { ExchangeSession(journalID: $0, nativeModify: nativeModify, strategy: strategy.rawValue) }
            exchange = try SimulatedExchange(configuration: configuration, symbols: [:], statePath: exchangeStatePath, session: session)
        } else {
            exchange = SimulatedExchange(configuration: configuration, symbols: [:])
        }
        var managerConfiguration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), maxDelay: .milliseconds(500)),
            replaceStrategy: strategy, rearmDelay: nil)
        managerConfiguration.flippedPositionCover = flippedPositionCover
        managerConfiguration.unsentEntries = unsentEntries
        let manager = exchangeStatePath == nil
            ? FillManager(broker: NoQueriesBroker(exchange), journal: journal, configuration: managerConfiguration, logger: logger)
            : FillManager(broker: exchange, journal: journal, configuration: managerConfiguration, logger: logger)
        let events = exchange.events()
        let alerts = AlertSamples(manager)
        let recovery = try await manager.recover()
        let feed = Task { await manager.run(events) }
        let notHeld = manager.releaseHeldOperations(of: release)
        await exchange.settle(manager)
        if let failure = manager.journalFailure {
            // Corrections that could not be journaled were not applied: a storage failure, not
            // a disagreement with the broker.
            feed.cancel()
            await manager.shutdown()
            throw failure
        }
        let positions = await manager.positions()
        let violations = await manager.invariantViolations()
        var problems = violations.map { $0.description }
        if exchangeStatePath != nil { problems += GroundTruth.problems(positions, exchange, cover: flippedPositionCover) }
        if let failure = exchange.stateFailure { problems.append(failure) }
        feed.cancel()
        await manager.shutdown()
        manager.finishSubscriptions()
        let collectedAlerts = await alerts.collected()
        // The stop writes a snapshot of every symbol: a journal that fails then is said, not hidden.
        if let failure = manager.journalFailure {
            problems.append(SimulationReport.journalFailedWhileStopping(failure))
        }
        let statistics = manager.statistics
        let state = ReplayReport(positions: positions, rejected: [], operations: statistics.operations, alerts: [], violations: violations)
        return Outcome(state: state, recovery: recovery, problems: problems, notHeld: notHeld, alerts: collectedAlerts)
    }
}

extension FillManager {
    /// Releases every symbol of `symbols` that recovery holds; returns the others, sorted.
    func releaseHeldOperations(of symbols: Set<Symbol>) -> [Symbol] {
        symbols.sorted().filter { !releaseHeldOperations(of: $0) }
    }
}

/// A broker that only forwards orders (no queries): recovery rebuilds without reconciling.
private struct NoQueriesBroker: Broker {
    let exchange: SimulatedExchange
    init(_ exchange: SimulatedExchange) { self.exchange = exchange }
    var capabilities: BrokerCapabilities { exchange.capabilities }
    func submit(_ request: NewOrderRequest) async throws(BrokerError) { try await exchange.submit(request) }
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) { try await exchange.modify(request) }
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) { try await exchange.cancel(request) }
    func events() -> AsyncStream<BrokerEvent> { exchange.events() }
}
