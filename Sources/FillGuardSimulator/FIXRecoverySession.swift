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

    /// A recovery of `journal`, reconciled against the FIX endpoint `fix` describes.
    public init(journal: Journal, fix: FIXSimulationOptions, strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate) {
        self.journal = journal
        self.fix = fix
        self.strategy = strategy
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
            throw .broker("cannot log on to the FIX endpoint \(configuration.host):\(configuration.port) as \(configuration.session.senderCompID) -> \(configuration.session.targetCompID): \(error)")
        }
        let managerConfiguration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(20), maxDelay: .milliseconds(500)),
            replaceStrategy: strategy, rearmDelay: nil)
        let manager = FillManager(broker: broker, journal: journal, configuration: managerConfiguration, logger: logger)
        let events = broker.events()
        let recovery: RecoveryReport
        do {
            recovery = try await manager.recover()
        } catch {
            await broker.stop()
            throw .journal(error)
        }
        let feed = Task { await manager.run(events) }
        // The journal's positions' orders, including those placed after the restart ("POSITION-tagN").
        let positionIDs = Set(await manager.positions().map(\.id.rawValue))
        let check = await FIXSimulationSession.finalCheck(manager, broker, settleTimeout: fix.settleTimeout, clock: ContinuousClock()) { id in
            guard let dash = id.rawValue.lastIndex(of: "-") else { return false }
            return positionIDs.contains(String(id.rawValue[..<dash]))
        }
        let positions = await manager.positions()
        let violations = await manager.invariantViolations()
        feed.cancel()
        await journal.close()
        await broker.stop()
        let statistics = manager.statistics
        let state = ReplayReport(positions: positions, rejected: [], operations: statistics.operations, alerts: [], violations: violations)
        return RecoverySession.Outcome(state: state, recovery: recovery, problems: violations.map(\.description) + check.problems)
    }
}
