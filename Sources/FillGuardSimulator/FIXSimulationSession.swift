import FillGuard
import FillGuardCore
import FillGuardFIX
import Logging
import Metrics
import Synchronization

/// Where and how a simulated session reaches a FIX endpoint.
public struct FIXSimulationOptions: Sendable {
    /// The session settings: host, port, CompIDs, heartbeat, ResetSeqNumFlag, store, account.
    public var settings: FIXSettings
    /// The broker offers native modify (OrderCancelReplaceRequest); off: resize by replacement.
    public var nativeModify = true
    /// Prefix of every position id (and so of every ClOrdID): unique per run, so runs against the
    /// same broker never collide and the final check counts this run's orders only.
    public var runID: String
    /// How long the final check waits for FillGuard and the broker to agree.
    public var settleTimeout: Duration = .seconds(30)

    /// Options for `settings`; the run id defaults to a fresh one.
    public init(settings: FIXSettings, runID: String = FIXSimulationOptions.makeRunID()) {
        self.settings = settings
        self.runID = runID
    }

    /// A run id that differs from run to run: "R" and base-36 digits of the clock and a random number.
    public static func makeRunID() -> String {
        let seconds = UInt64(ExchangeLog.wallClockNanos() / 1_000_000_000)
        return "R" + String(seconds % 46_656, radix: 36) + String(UInt64.random(in: 0..<46_656), radix: 36)
    }
}

/// Why a session over FIX could not run.
public struct FIXSimulationError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, for a person.
    public var description: String
    /// True when the session was stopped on request before it traded (Ctrl-C while logging on).
    public var interrupted = false
    /// True when the session never logged on (the endpoint unreachable, the Logon refused or
    /// interrupted): nothing was traded or recorded, and a store created for it holds nothing of use.
    public var beforeLogon = false

    /// An error with a readable reason.
    public init(_ description: String, interrupted: Bool = false, beforeLogon: Bool = false) {
        self.description = description
        self.interrupted = interrupted
        self.beforeLogon = beforeLogon
    }
}

/// Runs the `simulate` job against a FIX endpoint instead of the in-process exchange: the market
/// is the counterparty. Prices come from its market data (MarketDataRequest: a subscription for
/// every symbol while trading, snapshots when a bracket opens), fills come as execution reports,
/// and the final check compares FillGuard with the broker's own account of every order of the
/// run (OrderMassStatusRequest): net per symbol, filled totals, live orders and protection.
/// With a journal (`SimulationOptions.journal`) it first recovers what an earlier session left,
/// reconciled with the broker, and carries those positions on.
public final class FIXSimulationSession: Sendable {
    private let options: SimulationOptions
    private let fix: FIXSimulationOptions

    /// A session with the general options (symbols, duration, seed, strategy, retry, check
    /// interval; the simulated exchange's faults and latency do not apply) and the FIX ones.
    public init(options: SimulationOptions, fix: FIXSimulationOptions) {
        self.options = options
        self.fix = fix
    }

    /// Runs the session to the end and returns its report. Throws when the endpoint cannot be
    /// reached, refuses the logon, or gives no market data.
    public func run(progress: (@Sendable (SimulationProgress) -> Void)? = nil) async throws -> SimulationReport {
        var logger = Logger(label: "fillguard.simulate.fix")
        logger.logLevel = .critical
        let configuration: FIXBrokerConfiguration
        let store: FIXSessionStore
        do {
            configuration = try fix.settings.brokerConfiguration(nativeModify: fix.nativeModify)
            store = try fix.settings.makeStore()
        } catch {
            throw FIXSimulationError(error.description)
        }
        let endpoint = "\(configuration.host):\(configuration.port)"
        let broker = FIXBroker(configuration: configuration, store: store, logger: logger)
        // A stop requested while the Logon is awaited ends the wait: nothing was traded yet.
        let stop = options.stop
        let watcher = Task {
            while !Task.isCancelled {
                if stop?.isRequested == true {
                    await broker.stop()
                    return
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let logonFailure: (any Error)?
        do {
            try await broker.start()
            logonFailure = nil
        } catch {
            logonFailure = error
        }
        watcher.cancel()
        await watcher.value
        if stop?.isRequested == true {
            await broker.stop()
            throw FIXSimulationError("interrupted while logging on to the FIX endpoint \(endpoint): nothing was traded", interrupted: true,
                                     beforeLogon: true)
        }
        if let logonFailure {
            throw FIXSimulationError("cannot log on to the FIX endpoint \(endpoint) as \(configuration.session.senderCompID) -> \(configuration.session.targetCompID): \(logonFailure)"
                                     + Self.logonHint(logonFailure, settings: fix.settings), beforeLogon: true)
        }
        let symbols = (0..<options.symbols).map { Symbol("S" + String(repeating: "0", count: max(0, 3 - String($0).count)) + String($0)) }
        var prices: [Symbol: Price]
        // Subscriptions belong to a FIX session: after a reconnect they are asked for again, or
        // the exchange's prices would stand still for the rest of the run.
        var subscribedInLogon = await broker.statistics.logons
        do {
            prices = try await broker.marketData(symbols, subscribe: true)
        } catch {
            await broker.stop()
            throw FIXSimulationError("the FIX endpoint \(endpoint) gives no market data (\(error.message)); the test exchange needs --auto-market SEED")
        }

        var random = SplitMix64(seed: options.seed &+ 0x5EED)
        let reactions = Mutex(LatencySamples())
        let managerConfiguration = options.managerConfiguration { latency in reactions.withLock { $0.record(latency) } }
        let manager = FillManager(broker: broker, journal: options.journal, configuration: managerConfiguration, logger: logger,
                                  metricsFactory: options.metricsFactory ?? MetricsSystem.factory)
        let alertSamples = AlertSamples(manager)
        let events = broker.events()
        // With a journal: rebuild what an earlier (killed or stopped) session left and reconcile
        // it with the broker (the session store had the counterparty resend what it sent while
        // FillGuard was down), then carry on with those positions.
        let recovery: RecoveryReport
        do {
            recovery = try await manager.recover()
        } catch {
            await manager.shutdown()
            await broker.stop()
            throw FIXSimulationError("cannot recover the journal: \(error)")
        }
        let feed = Task { await manager.run(events) }
        let held = Set(recovery.heldSymbols)
        // A symbol beside live orders of FillGuard's making that the journal lost: tried again each second.
        var besideUnknownOrders = UnknownOrderWaits()
        let clock = ContinuousClock()
        let start = clock.now
        var opened = 0
        var sequence = 0
        var continuousViolations: Set<String> = []
        var latest: [Symbol: PositionID] = [:]
        let recovered = await manager.positions()
        for position in recovered { latest[position.symbol] = position.id }
        // The final check counts this run's orders and those of the positions it took over.
        let recoveredPositions = Set(recovered.map(\.id))
        let recoveredOrders = Set(recovered.flatMap { $0.orders.map(\.id) })

        // Trading: keep one bracket per symbol, opening a new one (at a fresh price) when the last one closed.
        // A failed journal ends trading: FillGuard applies nothing more, so new brackets would only trade unprotected.
        while clock.now - start < options.duration, options.stop?.isRequested != true, manager.journalFailure == nil {
            let positions = await manager.positions()
            var status: [PositionID: PositionStatus] = [:]
            for position in positions { status[position.id] = position.status }
            let busy = SimulationSession.symbolsInProgress(positions)
            // A symbol recovery held (a position mismatch) is left to a person: no new bracket.
            let due = symbols.filter { symbol in
                !busy.contains(symbol) && !held.contains(symbol) && !besideUnknownOrders.waits(symbol, now: clock.now)
                    && (latest[symbol].map { status[$0] == .closed } ?? true)
            }
            let logons = await broker.statistics.logons
            if logons != subscribedInLogon, let quotes = try? await broker.marketData(symbols, subscribe: true) {
                prices.merge(quotes) { $1 }
                subscribedInLogon = logons
            }
            var fresh = opened == 0
            if !due.isEmpty, !fresh {
                // No quote (the session is reconnecting, say): those symbols wait for the next round.
                if let quotes = try? await broker.marketData(due) {
                    prices.merge(quotes) { $1 }
                    fresh = true
                }
            }
            for symbol in fresh ? due : [] {
                guard let price = prices[symbol] else { continue }
                sequence += 1
                let id = PositionID("\(fix.runID)-\(symbol)-\(sequence)")
                do {
                    try await manager.open(SimulationSession.bracket(id, symbol, price, &random))
                    latest[symbol] = id
                    opened += 1
                } catch {
                    if !besideUnknownOrders.noteRefusal(error, of: symbol, now: clock.now) {
                        continuousViolations.insert("could not open \(id): \(error)")
                    }
                }
            }
            for violation in await manager.invariantViolations() { continuousViolations.insert(violation.description) }
            if let progress {
                let down = await broker.statistics.lastCloseReason
                progress(SimulationProgress(
                    elapsed: clock.now - start, fills: manager.statistics.fills,
                    openPositions: positions.filter { $0.status == .open }.count,
                    closedPositions: positions.filter { $0.status == .closed }.count,
                    operations: manager.statistics.operations.values.reduce(0, +), brokerDown: down.map { "\($0)" }))
            }
            try? await Task.sleep(for: options.checkInterval)
        }

        // Wind down: end the subscriptions (the test exchange's prices then hold still), then
        // compare with the broker until both sides agree or stop changing; all of it within one
        // settle timeout (an exchange that is down costs that long once, not twice).
        let windDownDeadline = clock.now + fix.settleTimeout
        // The session's state as the trading reports gave it: a session still down is not said
        // to be up again, and one that comes back while settling is said to be up.
        var saidDown = await broker.statistics.lastCloseReason.map { "\($0)" }
        var windDownReported = false
        func reportWindDown() async {
            guard let progress else { return }
            let down = await broker.statistics.lastCloseReason.map { "\($0)" }
            guard !windDownReported || down != saidDown else { return }
            // The first report gives the whole settle timeout; a later one what is left of it.
            let within = windDownReported ? max(.zero, windDownDeadline - clock.now) : fix.settleTimeout
            windDownReported = true
            saidDown = down
            let positions = await manager.positions()
            progress(SimulationProgress(
                elapsed: clock.now - start, fills: manager.statistics.fills,
                openPositions: positions.filter { $0.status == .open }.count,
                closedPositions: positions.filter { $0.status == .closed }.count,
                operations: manager.statistics.operations.values.reduce(0, +), settlingWithin: within,
                brokerDown: down))
        }
        await reportWindDown()
        while (try? await broker.unsubscribeMarketData(symbols)) == nil, clock.now < windDownDeadline {
            await reportWindDown()
            try? await Task.sleep(for: .milliseconds(100)) // a retry delay while the session reconnects
        }
        await reportWindDown()
        let prefix = fix.runID + "-"
        let check = await Self.finalCheck(manager, broker, settleTimeout: fix.settleTimeout, deadline: windDownDeadline,
                                          clock: clock, cover: options.flippedPositionCover) { id in
            id.rawValue.hasPrefix(prefix) || FIXRecoverySession.counts(id, positions: recoveredPositions, orders: recoveredOrders)
        }
        await reportWindDown()
        let tradingTime = clock.now - start
        let positions = await manager.positions()
        var finalViolations = (await manager.invariantViolations()).map(\.description)
        finalViolations += check.problems
        let journalFailure = manager.journalFailure
        if let failure = journalFailure {
            finalViolations.append("the journal failed (\(failure)): FillGuard stopped applying events, so its state stopped following the broker")
        }
        feed.cancel()
        manager.finishSubscriptions()
        var failedAtStop: JournalError?
        if options.journal != nil {
            // The clean stop writes a snapshot of every symbol, while the session is still up.
            await manager.shutdown()
            failedAtStop = journalFailure == nil ? manager.journalFailure : nil
            if let failure = failedAtStop { finalViolations.append(SimulationReport.journalFailedWhileStopping(failure)) }
        }
        let connection = await broker.statistics
        await broker.stop()

        let statistics = manager.statistics
        let samples = reactions.withLock { $0 }
        var report = SimulationReport(
            symbols: options.symbols, seconds: tradingTime, seed: options.seed, faultRate: 0,
            nativeModify: fix.nativeModify, strategy: options.strategy,
            fills: connection.fillsDelivered, fillsApplied: statistics.fills,
            positionsOpened: opened,
            positionsClosed: positions.filter { $0.status == .closed }.count,
            operations: statistics.operations, retries: statistics.retries, breakerTrips: statistics.breakerTrips,
            alerts: statistics.alerts, rejected: statistics.rejected,
            faultsInjected: [:], duplicatesInjected: 0, reordersInjected: 0,
            unprotectedShareSeconds: "", overCoveredShareSeconds: "",
            reaction: samples.summary(),
            continuousViolations: continuousViolations.sorted(), finalViolations: finalViolations)
        report.interrupted = options.stop?.isRequested == true
        report.alertsByKind = statistics.alertsByKind
        report.operationsNotSent = statistics.operationsNotSent
        report.corrections = statistics.correctionsByKind
        report.flippedPositionCover = options.flippedPositionCover
        report.alertSamples = await alertSamples.collected()
        if let journal = options.journal {
            report.journal = SimulationReport.JournalSummary(recovery: recovery, written: journal.statistics, downtime: .zero,
                                                             failure: (journalFailure ?? failedAtStop).map { "\($0)" })
        }
        report.fix = SimulationReport.FIXSummary(
            endpoint: endpoint, senderCompID: configuration.session.senderCompID, targetCompID: configuration.session.targetCompID,
            runID: fix.runID, logons: connection.logons, disconnections: connection.disconnections,
            duplicateReports: connection.duplicateReports, rejectsSent: connection.rejectsSent,
            rejectsReceived: connection.rejectsReceived, requestTimeouts: connection.requestTimeouts,
            ordersChecked: check.orders, checkRounds: check.rounds)
        report.fix?.account = configuration.application.account
        return report
    }

    /// What to do about a Logon that failed over sequence numbers; empty for other failures.
    /// The counterparty refusing ours as too low (its Logout says so): our store is behind it, a
    /// new (or reset) store against a session it kept. Ours refusing its Logon as too low
    /// (`sequenceTooLow`): it went back, a counterparty that started over without its store.
    static func logonHint(_ failure: any Error, settings: FIXSettings) -> String {
        if case FIXBrokerError.sessionClosed(.sequenceTooLow) = failure {
            return " (the counterparty's sequence numbers are behind what \(settings.storePath.map { "the store \($0)" } ?? "this session") expects: "
                + "it started over without its own store. Logging on with ResetOnLogon=Y (--fix-reset-on-logon Y) starts both sides afresh, "
                + "and gives up the resend of what it sent while FillGuard was down)"
        }
        guard "\(failure)".contains("MsgSeqNum too low") else { return "" }
        if settings.storePath == nil {
            return " (the counterparty kept this session's sequence numbers: log on with ResetOnLogon=Y, --fix-reset-on-logon Y)"
        }
        return " (the store \(settings.storePath ?? "") is behind the counterparty's sequence numbers: a new store against a session the counterparty kept "
            + "needs ResetOnLogon=Y (--fix-reset-on-logon Y) for its first run; for a store that was in use, that reset gives up the resend of what FillGuard missed; "
            + "a run of the same CompIDs without a store (which resets them by default) also leaves a store behind)"
    }

    /// Why the final check ends without FillGuard at rest: its operations still fail, and while
    /// the FIX session is down, that is why.
    private static func notAtRest(_ broker: FIXBroker, within settleTimeout: Duration) async -> String {
        if let down = await broker.statistics.lastCloseReason {
            return "FillGuard did not come to rest within \(settleTimeout): the FIX session is down (\(down)), so its operations cannot be sent"
        }
        return "FillGuard did not come to rest within \(settleTimeout) (operations still failing?)"
    }

    /// Rounds of: quiet FillGuard, ask the broker for every order (its answer comes after every
    /// report it sent before, in sequence order), wait until FillGuard took those reports, compare.
    /// Ends when they agree, when nothing changed since the last round (a real difference), or at
    /// the settle timeout (or `deadline`, when the caller's wind-down started the clock). Only the
    /// orders `counts` accepts are compared.
    static func finalCheck(_ manager: FillManager, _ broker: FIXBroker, settleTimeout: Duration, deadline: ContinuousClock.Instant? = nil,
                           clock: ContinuousClock, cover: FlippedPositionCover = .bracket,
                           counts: @escaping @Sendable (OrderID) -> Bool) async -> (problems: [String], orders: Int, rounds: Int) {
        let deadline = deadline ?? clock.now + settleTimeout
        var previous: [String]?
        var rearmRounds = 0
        var rounds = 0
        var problems: [String] = []
        var orders = 0
        while true {
            rounds += 1
            guard await Self.idle(manager, before: deadline, clock: clock) else {
                return (problems + [await notAtRest(broker, within: settleTimeout)], orders, rounds)
            }
            let statuses: [FIXOrderStatus]
            do {
                statuses = try await broker.massStatus().filter { counts($0.orderID) }
            } catch {
                // A status report that cannot be read is a finding, reported as such, not waited out.
                if error.kind == .permanent { return ([error.message], orders, rounds) }
                if clock.now >= deadline { return (["the broker did not answer the order mass status: \(error.message)"], orders, rounds) }
                try? await Task.sleep(for: .milliseconds(100)) // a retry delay while the session reconnects
                continue
            }
            let delivered = await broker.statistics.eventsDelivered
            while manager.eventsReceived < delivered, clock.now < deadline { await Task.yield() }
            guard await Self.idle(manager, before: deadline, clock: clock) else {
                return (problems + [await notAtRest(broker, within: settleTimeout)], orders, rounds)
            }
            let positions = await manager.positions()
            problems = FIXGroundTruth.problems(positions, statuses, orderPrefix: "", cover: cover)
            orders = statuses.count
            let statistics = manager.statistics
            let marker = statuses.map { "\($0.clOrdID) \($0.ordStatus) \($0.cumulativeQuantity) \($0.leavesQuantity)" }.sorted()
                + ["fills \(statistics.fills)", "operations \(statistics.operations.values.reduce(0, +))", "events \(delivered)"]
            if problems.isEmpty { return (problems, orders, rounds) }
            if marker == previous {
                // At rest but not right: roles that wait for their re-arm after an operation
                // failed for good (a venue that refused or never answered) are tried again now,
                // a few times, as the end of a simulated session does; what still fails is reported.
                guard rearmRounds < 3, await manager.rearmNow() > 0 else { return (problems, orders, rounds) }
                rearmRounds += 1
            }
            if clock.now >= deadline {
                return (problems + ["FillGuard and the broker did not settle within \(settleTimeout)"], orders, rounds)
            }
            previous = marker
        }
    }

    /// Waits until the manager is quiescent; false if `deadline` comes first (the wait is then
    /// left behind: a broker that never answers must not hang the session).
    private static func idle(_ manager: FillManager, before deadline: ContinuousClock.Instant, clock: ContinuousClock) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once = ResumeOnce(continuation)
            Task {
                await manager.waitUntilIdle()
                once.resume(returning: true)
            }
            Task {
                try? await Task.sleep(until: deadline, clock: clock)
                once.resume(returning: false)
            }
        }
    }
}

/// A continuation resumed by whichever of several racers comes first.
final class ResumeOnce<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, Never>?>

    init(_ continuation: CheckedContinuation<Value, Never>) {
        self.continuation = Mutex(continuation)
    }

    /// Resumes the continuation unless it was resumed already.
    func resume(returning value: Value) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
