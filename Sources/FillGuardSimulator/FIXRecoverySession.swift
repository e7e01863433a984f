import FillGuard
import FillGuardCore
import FillGuardFIX
import Logging

/// Why a recovery over FIX could not run.
public enum FIXRecoveryError: Error, Sendable, CustomStringConvertible {
    /// The settings are unusable, or the endpoint cannot be reached or refused the logon.
    case broker(String)
    /// The journal could not be read (damaged, newer, unreachable store).
    case journal(JournalError)

    /// A readable reason.
    public var description: String {
        switch self {
        case .broker(let text): return text
        case .journal(let error): return error.description
        }
    }
}

/// A restart against a FIX endpoint: log on (with the session store, so the counterparty resends
/// what it sent while FillGuard was down), recover from the journal, reconcile through the
/// broker's queries (mass status, order status, the session's execution reports, positions), let
/// every correction settle, and check FillGuard against the broker's account of the journal's
/// orders (`FIXGroundTruth`).
public struct FIXRecoverySession: Sendable {
    /// The journal to recover from.
    public var journal: Journal
    /// The endpoint, session settings, native modify and settle timeout (the run id is unused).
    public var fix: FIXSimulationOptions
    /// Replacement strategy without native modify.
    public var strategy: SymbolStateMachine.ReplaceStrategy
    /// How a position flipped against its bracket is covered (as the journal's session was run with).
    public var flippedPositionCover: FlippedPositionCover = .bracket
    /// What becomes of entries and scale-ins the broker never got (`FillGuardConfiguration.unsentEntries`).
    public var unsentEntries: UnsentEntryPolicy = .send
    /// Symbols whose work a person lets go if recovery holds it (`FillManager.releaseHeldOperations(of:)`).
    public var release: Set<Symbol> = []

    /// A recovery of `journal`, reconciled against the FIX endpoint `fix` describes.
    public init(journal: Journal, fix: FIXSimulationOptions, strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate) {
        self.journal = journal
        self.fix = fix
        self.strategy = strategy
    }

    /// True when the broker's order `id` is one of the recovered positions' orders: one they hold,
    /// or one whose id the core made for one of them (an order placed after the restart, or one
    /// FillGuard lost track of, which the check must then report).
    public static func counts(_ id: OrderID, positions: Set<PositionID>, orders: Set<OrderID>) -> Bool {
        if orders.contains(id) { return true }
        return SymbolStateMachine.positionID(ofOrder: id).map(positions.contains) ?? false
    }

    /// Logs on, recovers, reconciles, settles, checks, logs out. Throws when the endpoint cannot
    /// be reached or refuses the logon, and when the journal cannot be read.
    public func run(logger: Logger) async throws(FIXRecoveryError) -> RecoverySession.Outcome {
        let configuration: FIXBrokerConfiguration
        let store: FIXSessionStore
        do {
            configuration = try fix.settings.brokerConfiguration(nativeModify: fix.nativeModify)
            store = try fix.settings.makeStore()
        } catch {
            throw .broker(error.description)
        }
        let broker = FIXBroker(configuration: configuration, store: store, logger: logger)
        do {
            try await broker.start()
        } catch {
            throw .broker("cannot log on to the FIX endpoint \(configuration.host):\(configuration.port) as \(configuration.session.senderCompID) -> \(configuration.session.targetCompID): \(error)"
                          + FIXSimulationSession.logonHint(error, settings: fix.settings))
        }
        var managerConfiguration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), maxDelay: .milliseconds(500)),
            replaceStrategy: strategy, rearmDelay: nil)
        managerConfiguration.flippedPositionCover = flippedPositionCover
        managerConfiguration.unsentEntries = unsentEntries
        let manager = FillManager(broker: broker, journal: journal, configuration: managerConfiguration, logger: logger)
        let events = broker.events()
        let alerts = AlertSamples(manager)
        let recovery: RecoveryReport
        do {
            recovery = try await manager.recover()
        } catch {
            await broker.stop()
            throw .journal(error)
        }
        let feed = Task { await manager.run(events) }
        let notHeld = manager.releaseHeldOperations(of: release)
        // The journal's positions' orders, including those placed after the restart.
        let recovered = await manager.positions()
        let positionIDs = Set(recovered.map(\.id))
        let orderIDs = Set(recovered.flatMap { $0.orders.map(\.id) })
        let check = await FIXSimulationSession.finalCheck(manager, broker, settleTimeout: fix.settleTimeout, clock: ContinuousClock(),
                                                             cover: flippedPositionCover) { id in
            Self.counts(id, positions: positionIDs, orders: orderIDs)
        }
        let positions = await manager.positions()
        let violations = await manager.invariantViolations()
        feed.cancel()
        await manager.shutdown()
        manager.finishSubscriptions()
        let collectedAlerts = await alerts.collected()
        await broker.stop()
        // Corrections that could not be journaled were not applied: a storage failure, not a
        // disagreement with the broker.
        if let failure = manager.journalFailure { throw .journal(failure) }
        let statistics = manager.statistics
        let state = ReplayReport(positions: positions, rejected: [], operations: statistics.operations, alerts: [], violations: violations)
        return RecoverySession.Outcome(state: state, recovery: recovery, problems: violations.map(\.description) + check.problems,
                                     notHeld: notHeld, alerts: collectedAlerts)
    }
}
