import CoreMetrics
import FillGuardCore
import Logging
import Synchronization

/// The fill manager: open brackets, feed it the broker's reports, read positions.
///
/// Each symbol has its own lane: its events are handled one at a time, in arrival order; lanes
/// run in parallel. The fill path never waits on the broker: operations run in their own tasks
/// and report back to the lane.
public final class FillManager: Sendable {
    let context: RuntimeContext
    let lanes = Mutex(LaneTable())
    private let received = Atomic<Int>(0)

    /// Broker events handed to `receive(_:)` so far (valid or not). An event is counted once it
    /// is queued (or refused), so after `eventsReceived` reaches n, `waitUntilIdle()` covers the
    /// first n events.
    public var eventsReceived: Int { received.load(ordering: .sequentiallyConsistent) }

    /// A manager for one broker connection. With a journal, every input is journaled before it
    /// applies; call `recover()` before anything else to rebuild the state the journal holds
    /// (until it has, every bracket and report is refused as `journalUnavailable`).
    public init(broker: some Broker, journal: Journal? = nil, configuration: FillGuardConfiguration = FillGuardConfiguration(),
                logger: Logger = Logger(label: "fillguard"), metricsFactory: MetricsFactory = MetricsSystem.factory) {
        self.context = RuntimeContext(broker: broker, journal: journal, configuration: configuration, logger: logger, metricsFactory: metricsFactory)
        if broker is any BrokerQueries {
            context.fillsOverdueHandler.withLock { $0 = { [weak self] symbol in self?.reconcileOverdueFills(of: symbol) } }
            context.brokerCorrectionHandler.withLock { $0 = { [weak self] symbol, order in self?.reconcileCorrectedOrder(order, of: symbol) } }
        }
    }

    /// The journal failure that stopped the manager applying events, if any.
    public var journalFailure: JournalError? { context.journalFailure.withLock { $0 } }

    /// Opens a bracket; returns once its lane has placed the entry (and scale-ins) as desired
    /// state. Throws `InputError` for an invalid or duplicate bracket, or one on a symbol that is
    /// held (`symbolHeld`) or has orders live at the broker that the journal lost (`unknownOrdersLive`).
    public func open(_ spec: BracketSpec) async throws(InputError) {
        /// Refuses the bracket unless the manager is running (recovered, not shutting down).
        func requireRunning() throws(InputError) {
            let stage = context.lifecycle.load(ordering: .sequentiallyConsistent)
            guard stage != .running else { return }
            let error = stage == .awaitingRecovery || stage == .recovering
                ? Self.notRecovered("position \(spec.positionID) not opened")
                : InputError(.shutDown, "position \(spec.positionID) not opened: the manager is shutting down")
            context.reject(error, context: "open \(spec.positionID)")
            throw error
        }
        try requireRunning()
        // Checked here too, so that a refused bracket leaves nothing behind (no lane for its symbol).
        do {
            try spec.validate()
            try spec.validateNames()
            try spec.validateSides()
        } catch {
            context.reject(error, context: "open \(spec.positionID)")
            throw error
        }
        // A held symbol would take the bracket and send none of it: refused, so the caller knows.
        if context.heldSymbols.withLock({ $0.contains(spec.symbol) }) {
            let error = InputError(.symbolHeld, "position \(spec.positionID) not opened: \(spec.symbol) is held, since recovery found its net at the broker "
                                   + "different from the journal's (positionMismatch); releaseHeldOperations(of:) once a person has looked")
            context.reject(error, context: "open \(spec.positionID)")
            throw error
        }
        // Orders FillGuard placed that the journal lost, still live at the broker: a bracket
        // beside them could be over-covered, or sold twice. The broker is asked whether they still are.
        if context.unknownLiveOrders.withLock({ $0[spec.symbol] != nil }) {
            let live = await unknownOrdersStillLive(on: spec.symbol)
            if !live.isEmpty {
                let error = InputError(.unknownOrdersLive, "position \(spec.positionID) not opened: the broker works orders on \(spec.symbol) that no journal record knows "
                                       + "(\(live.joined(separator: ", "))), left working by recovery; a bracket beside them could be over-covered or sold twice. "
                                       + "Cancel them at the broker, or releaseUnknownOrders(of:) once a person has looked")
                context.reject(error, context: "open \(spec.positionID)")
                throw error
            }
            // The broker's answers took a while: a shutdown may have begun meanwhile.
            try requireRunning()
        }
        let reserved = context.positionSymbols.withLock { map -> Bool in
            guard map[spec.positionID] == nil else { return false }
            map[spec.positionID] = spec.symbol
            return true
        }
        guard reserved else {
            let error = InputError(.positionExists, "position \(spec.positionID) already exists")
            context.reject(error, context: "open \(spec.positionID)")
            throw error
        }
        let lane = lane(for: spec.symbol, create: true)!
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, InputError>, Never>) in
            lane.enqueue(.open(spec, reply: { continuation.resume(returning: $0) }))
        }
        if case .failure(let error) = result {
            context.positionSymbols.withLock { _ = $0.removeValue(forKey: spec.positionID) }
            throw error
        }
    }

    /// Hands one broker report to its symbol's lane. Never blocks; a report for a symbol with no
    /// position is refused (unknown order) without creating state, and one the adapter refused
    /// is recorded as refused without reaching a lane. After `shutdown()` every report is
    /// refused (`shutDown`).
    public func receive(_ event: consuming BrokerEvent) {
        defer { received.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        if case .refused(let error, let refusedContext, _) = event {
            context.reject(error, context: refusedContext)
            return
        }
        let stage = context.lifecycle.load(ordering: .relaxed)
        if stage != .running && stage != .draining {
            let error = stage == .stopped ? InputError(.shutDown, "not applied: the manager was shut down") : Self.notRecovered("not applied")
            context.reject(error, context: "report for \(event.symbol)")
            return
        }
        guard let lane = lane(for: event.symbol, create: false) else {
            let orderID: OrderID
            switch event {
            case .execution(let report): orderID = report.orderID
            case .orderStatus(let report): orderID = report.orderID
            case .correction(let id, let symbol, let message):
                context.reject(InputError(.brokerCorrection, message), context: "correction for order \(id) on \(symbol) (no position there)")
                if let positionID = SymbolStateMachine.positionID(ofOrder: id) {
                    context.raise(Alert(kind: .brokerCorrection, positionID: positionID, symbol: symbol, orderID: id, role: nil, message: message))
                }
                return
            case .refused: return
            }
            context.reject(context.refined(InputError(.unknownOrder, "order \(orderID) is not known (no position on \(event.symbol))"),
                                           orderID: orderID, reportedSymbol: event.symbol),
                           context: "report for \(event.symbol)")
            if case .execution(let report) = event { context.alertIfOrphanFilled(report) }
            return
        }
        lane.enqueue(.broker(event))
    }

    /// The refusal of an input that comes before `recover()` has rebuilt the journal's state.
    private static func notRecovered(_ what: String) -> InputError {
        InputError(.journalUnavailable, "\(what): with a journal, call recover() first (it rebuilds what the journal holds)")
    }

    /// Consumes the broker's event stream until it ends or the task is cancelled.
    public func run() async {
        await run(context.broker.events())
    }

    /// Consumes an event stream taken earlier: with a journal, take `broker.events()` before
    /// `recover()` (reports wait in the stream while recovery runs), then run it.
    public func run(_ events: AsyncStream<BrokerEvent>) async {
        for await event in events {
            receive(event)
        }
    }

    /// Waits until no event is queued, no operation is in flight and no retry or wake-up is
    /// pending: the state is quiescent until the next input. A re-arm after a permanent failure
    /// (`rearmDelay`) is not waited for: the role shows its failure meanwhile (`rearmNow()`
    /// brings the re-arm forward). Returns early if its task is cancelled; a broker that never
    /// answers keeps it waiting (use `waitUntilIdle(atMost:)` to bound the wait).
    public func waitUntilIdle() async {
        await context.work.waitUntilIdle()
    }

    /// Waits as `waitUntilIdle()` does, for at most `limit`: true when the manager became idle,
    /// false when `limit` passed (or the task was cancelled) with work still outstanding.
    @discardableResult
    public func waitUntilIdle(atMost limit: Duration) async -> Bool {
        await context.work.waitUntilIdle(atMost: limit)
    }

    /// Shuts the manager down for a clean exit (a cancelled caller does not cut it short). From
    /// the call on it opens no new bracket; reports
    /// and broker answers still apply while the work in flight (queued events, operations, retries)
    /// finishes, for up to `limit`. Then it stops: nothing more is applied or sent (a later report
    /// is refused as `shutDown`, a late broker answer is dropped), reads still answer, and the
    /// journal writes what it holds and closes. Returns false when `limit` passed with work still
    /// in flight: broker calls still unanswered are given up (their answers are ignored), and with
    /// a journal the next start's `recover()` learns from the broker how they ended.
    /// With a journal, once quiet and stopped, every symbol with records since its last snapshot
    /// writes one (waited for up to `limit` again), so the next start replays none.
    /// A cool-down before a re-arm is not waited for (the next start re-arms). Keep feeding the
    /// broker's reports until it returns (they apply while it drains), then stop; the broker
    /// stays yours to disconnect.
    @discardableResult
    public func shutdown(waitingAtMost limit: Duration = .seconds(10)) async -> Bool {
        _ = context.lifecycle.compareExchange(expected: .running, desired: .draining, ordering: .sequentiallyConsistent)
        var idle = await context.work.waitUntilIdle(atMost: limit, cancellable: false)
        let before = context.lifecycle.exchange(.stopped, ordering: .sequentiallyConsistent)
        if idle, before != .stopped, context.journal != nil, context.journalFailure.withLock({ $0 == nil }) {
            // Quiet, and stopped: nothing more is applied, so a snapshot now holds the final
            // state. Every symbol with records since its last snapshot writes one, so the next
            // start replays none (a newer FillGuard, whose rules may differ, then re-derives
            // nothing; see README, "Upgrading with a journal"). Taken while still draining, a
            // report applied after a symbol's snapshot would be left to replay.
            for lane in allLanes() { lane.enqueue(.snapshotNow) }
            idle = await context.work.waitUntilIdle(atMost: limit, cancellable: false)
        }
        // Calls still unanswered are given up: each lane drops what it watched (their answers,
        // should they come, are not applied), so nothing is kept alive or counted as work.
        for lane in context.answerWatchdog?.stop() ?? [] { lane.enqueue(.checkAnswers) }
        if before != .stopped { await context.journal?.close() }
        return idle
    }

    /// A copy of one position, read in order with the symbol's other events.
    public func position(_ id: PositionID) async -> PositionSnapshot? {
        guard let symbol = context.positionSymbols.withLock({ $0[id] }), let lane = lane(for: symbol, create: false) else { return nil }
        return await read(lane) { $0.snapshot(of: id) }
    }

    /// Copies of every position, by symbol, each in the order opened.
    public func positions() async -> [PositionSnapshot] {
        var result: [PositionSnapshot] = []
        for lane in allLanes() {
            result += await read(lane) { machine in machine.positionIDs.compactMap { machine.snapshot(of: $0) } }
        }
        return result
    }

    /// Re-arms now, without waiting for the cool-down, every position a permanent failure holds
    /// back (an operator's "try again", or a session winding down before its final check).
    /// Returns how many positions were re-armed: none after `shutdown()` (nothing more is sent).
    @discardableResult
    public func rearmNow() async -> Int {
        if context.lifecycle.load(ordering: .sequentiallyConsistent) == .stopped { return 0 }
        var count = 0
        for lane in allLanes() {
            let waiting = await read(lane) { $0.positionsAwaitingRearm }
            for id in waiting { lane.enqueue(.rearm(id)) }
            count += waiting.count
        }
        return count
    }

    /// Rule violations across all symbols; rule 2 is checked for symbols at quiescence. A role
    /// whose operation failed for good (alerted, waiting for its re-arm) is not counted here:
    /// its order's `failure` and the `operationFailed` alert show it.
    public func invariantViolations() async -> [InvariantViolation] {
        var result: [InvariantViolation] = []
        for lane in allLanes() {
            result += await read(lane) { $0.invariantViolations(atQuiescence: $0.isQuiescent) }
        }
        return result
    }

    /// Counters: operations by kind, retries, alerts, rejected inputs, breaker trips.
    public var statistics: FillManagerStatistics {
        var stats = context.counters.statistics
        stats.breakerTrips = context.breaker.trips
        return stats
    }

    /// The most recent refused inputs, oldest first.
    public func recentRejections() -> [RejectedInput] { context.rejections.withLock { $0 } }

    /// The circuit breaker's current state.
    public var breakerState: CircuitBreaker.State { context.breaker.state }

    /// Every position change, newest kept when the subscriber is slow.
    public func positionChanges() -> AsyncStream<PositionSnapshot> { context.bus.positions.subscribe() }
    /// Every order change, newest kept when the subscriber is slow.
    public func orderChanges() -> AsyncStream<OrderSnapshot> { context.bus.orders.subscribe() }
    /// Every alert raised from now on; a subscriber more than `subscriberBuffer` behind loses the
    /// oldest (`statistics.alertsByKind` counts every one).
    public func alerts() -> AsyncStream<Alert> { context.bus.alerts.subscribe() }
    /// Every correction reconciliation makes after a restart; a subscriber more than
    /// `subscriberBuffer` behind loses the oldest.
    public func corrections() -> AsyncStream<ReconciliationCorrection> { context.bus.corrections.subscribe() }
    /// Every input refused from now on; a subscriber more than `subscriberBuffer` behind loses
    /// the oldest (`statistics.rejected` counts every one).
    public func rejections() -> AsyncStream<RejectedInput> { context.bus.rejections.subscribe() }

    /// Ends every subscription stream (call when shutting down).
    public func finishSubscriptions() { context.bus.finishAll() }

    /// The number of symbols with a lane (idle lanes hold state only, no task).
    public var symbolCount: Int { lanes.withLock { $0.count } }

    func lane(for symbol: Symbol, create: Bool) -> SymbolLane? {
        lanes.withLock { lanes in
            if let lane = lanes[symbol] { return lane }
            guard create else { return nil }
            let lane = SymbolLane(symbol: symbol, context: context)
            lanes.set(lane, for: symbol)
            return lane
        }
    }

    func allLanes() -> [SymbolLane] {
        lanes.withLock { table in zip(table.symbols, table.lanes).sorted { $0.0 < $1.0 }.map(\.1) }
    }

    func read<T: Sendable>(_ lane: SymbolLane, _ body: @escaping @Sendable (SymbolStateMachine) -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            lane.enqueue(.read { continuation.resume(returning: body($0)) })
        }
    }
}
