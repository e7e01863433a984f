import CoreMetrics
import FillGuardCore
import Logging
import Synchronization

/// Counters kept for `FillManager.statistics`.
public struct FillManagerStatistics: Sendable, Hashable {
    /// Fills applied (unique, valid execution reports).
    public var fills = 0
    /// Broker operations sent, by kind (every attempt counts).
    public var operations: [OrderOperation.Kind: Int] = [:]
    /// Retries scheduled after transient failures.
    public var retries = 0
    /// Operations answered `notSent` (never sent: the broker unreachable); `operations` counts
    /// them too, as every attempt handed to the broker.
    public var operationsNotSent = 0
    /// Alerts raised.
    public var alerts = 0
    /// Alerts raised, by kind (kinds never raised are absent).
    public var alertsByKind: [Alert.Kind: Int] = [:]
    /// Inputs refused, by error code.
    public var rejected: [InputError.Code: Int] = [:]
    /// Times the circuit breaker opened.
    public var breakerTrips = 0
    /// Corrections reconciliation made, by kind (kinds never made are absent): at recovery, and
    /// while running (fills found missing when an order's work was answered "too late").
    public var correctionsByKind: [ReconciliationCorrection.Kind: Int] = [:]
}

/// The counters behind `FillManagerStatistics`: atomics, so that lanes on different threads do
/// not serialise on a lock for every event (refused inputs and alerts, rare, keep dictionaries under
/// a lock).
final class RuntimeCounters: Sendable {
    let fills = Atomic<Int>(0)
    let retries = Atomic<Int>(0)
    let notSent = Atomic<Int>(0)
    private let alertKinds = Mutex<[Alert.Kind: Int]>([:])
    private let submits = Atomic<Int>(0)
    private let modifies = Atomic<Int>(0)
    private let cancels = Atomic<Int>(0)
    private let rejected = Mutex<[InputError.Code: Int]>([:])
    private let correctionKinds = Mutex<[ReconciliationCorrection.Kind: Int]>([:])

    func corrected(_ kind: ReconciliationCorrection.Kind) {
        correctionKinds.withLock { $0[kind, default: 0] += 1 }
    }

    @inline(__always)
    func operationSent(_ kind: OrderOperation.Kind) {
        switch kind {
        case .submit: submits.wrappingAdd(1, ordering: .relaxed)
        case .modify: modifies.wrappingAdd(1, ordering: .relaxed)
        case .cancel: cancels.wrappingAdd(1, ordering: .relaxed)
        }
    }

    func alerted(_ kind: Alert.Kind) {
        alertKinds.withLock { $0[kind, default: 0] += 1 }
    }

    func rejected(_ code: InputError.Code) {
        rejected.withLock { $0[code, default: 0] += 1 }
    }

    var statistics: FillManagerStatistics {
        var stats = FillManagerStatistics()
        stats.fills = fills.load(ordering: .relaxed)
        stats.retries = retries.load(ordering: .relaxed)
        stats.operationsNotSent = notSent.load(ordering: .relaxed)
        stats.alertsByKind = alertKinds.withLock { $0 }
        stats.alerts = stats.alertsByKind.values.reduce(0, +)
        let sent: [(OrderOperation.Kind, Int)] = [(.submit, submits.load(ordering: .relaxed)),
                                                  (.modify, modifies.load(ordering: .relaxed)),
                                                  (.cancel, cancels.load(ordering: .relaxed))]
        for (kind, value) in sent where value > 0 { stats.operations[kind] = value }
        stats.rejected = rejected.withLock { $0 }
        stats.correctionsByKind = correctionKinds.withLock { $0 }
        return stats
    }
}

/// What every lane shares: the broker, the gates in front of it, metrics, the bus, logging.
final class RuntimeContext: Sendable {
    let broker: any Broker
    /// The same broker when it takes callbacks (operations are then sent without a task each).
    let callbackBroker: (any CallbackBroker)?
    let configuration: FillGuardConfiguration
    let nativeModify: Bool
    let breaker: CircuitBreaker
    let bucket: TokenBucket?
    let metrics: FillGuardMetrics
    let bus: EventBus
    let work = WorkTracker()
    /// Symbols whose operations recovery left held after a `positionMismatch`, until released.
    let heldSymbols = Mutex<Set<Symbol>>([])
    /// Live broker orders no journal record knows that recovery left working, per symbol: no
    /// bracket opens beside them while the broker still works one (asked at each open), until released.
    let unknownLiveOrders = Mutex<[Symbol: [OrderID]]>([:])
    /// Symbols whose fills are being reconciled after a `fillsOverdue` alert (one at a time each).
    /// (The value: whether another was asked for meanwhile, which then runs after it.)
    let overdueReconciliations = Mutex<[Symbol: Bool]>([:])
    /// Orders the broker answered "too late" and then listed as live, taken as live once: a
    /// broker that does so again for the same order is not asked again (no loop of both answers).
    let liveAfterTooLate = Mutex<Set<OrderID>>([])
    /// Called by a lane that raised `fillsOverdue` (set by the manager: it asks the broker).
    let fillsOverdueHandler = Mutex<(@Sendable (Symbol) -> Void)?>(nil)
    /// Called for a `brokerCorrection` alert about an order (set by the manager: it asks the
    /// broker how the order stands and takes its size).
    let brokerCorrectionHandler = Mutex<(@Sendable (Symbol, OrderID) -> Void)?>(nil)
    let logger: Logger
    let counters = RuntimeCounters()
    let rejections = Mutex<[RejectedInput]>([])
    let journal: Journal?
    let journalFailure = Mutex<JournalError?>(nil)
    /// Runs the lanes that have events.
    let scheduler: LaneScheduler
    /// Mailbox buffers for lanes waking up.
    let envelopeBuffers = EnvelopeBufferPool()
    /// Has lanes check their unanswered broker calls (nil without `brokerAnswerTimeout`).
    let answerWatchdog: AnswerWatchdog?
    /// The symbol of every position opened (or recovered), by id.
    let positionSymbols = Mutex<[PositionID: Symbol]>([:])
    /// Where `FillManager.shutdown()` has got to.
    let lifecycle: Atomic<Lifecycle>
    /// Events are timestamped when queued (for the queue-wait and reaction metrics, or the
    /// reaction observer); without a metrics backend or observer no clock is read per event.
    let timed: Bool

    /// The core's configuration, from the broker's capabilities and ours.
    var machineConfiguration: SymbolStateMachine.Configuration {
        SymbolStateMachine.Configuration(nativeModify: nativeModify, replaceStrategy: configuration.replaceStrategy,
                                         maxAttempts: configuration.retry.maxAttempts, executionWindow: configuration.executionWindow,
                                         retainedClosedPositions: configuration.retainedClosedPositions,
                                         retiredOrderMemory: configuration.retiredOrderMemory,
                                         flippedPositionCover: configuration.flippedPositionCover)
    }

    init(broker: any Broker, journal: Journal?, configuration: FillGuardConfiguration, logger: Logger, metricsFactory: MetricsFactory) {
        self.broker = broker
        self.callbackBroker = broker as? any CallbackBroker
        self.journal = journal
        self.lifecycle = Atomic(journal == nil ? .running : .awaitingRecovery)
        self.configuration = configuration
        let capabilities = broker.capabilities
        self.nativeModify = capabilities.nativeModify && configuration.preferNativeModify
        self.breaker = CircuitBreaker(policy: configuration.circuitBreaker)
        self.bucket = capabilities.requestsPerSecond.map { TokenBucket(rate: $0, capacity: capabilities.burst) }
        self.metrics = FillGuardMetrics(factory: metricsFactory)
        self.timed = metrics.enabled || configuration.reactionObserver != nil
        self.scheduler = LaneScheduler(passLimit: configuration.lanePassLimit, idleSpin: configuration.idleSpin,
                                       threads: configuration.runnerThreads)
        self.bus = EventBus(buffer: configuration.subscriberBuffer)
        self.answerWatchdog = configuration.brokerAnswerTimeout.flatMap { $0 > .zero ? AnswerWatchdog(interval: $0 / 2) : nil }
        self.logger = logger
    }

    /// The journal failed: from now on nothing is applied; a person must look. After a shutdown
    /// the journal is closed on purpose: an event that comes later (a broker's late answer) is
    /// not applied, and that is no failure (the next start asks the broker).
    func journalFailed(_ error: JournalError, symbol: Symbol) {
        if error.code == .closed, lifecycle.load(ordering: .sequentiallyConsistent) == .stopped {
            logger.notice("an event after shutdown was not applied; the next start learns it from the broker",
                          metadata: ["symbol": "\(symbol)"])
            return
        }
        let first = journalFailure.withLock { failure -> Bool in
            guard failure == nil else { return false }
            failure = error
            return true
        }
        if first {
            logger.critical("journal failed, FillGuard stops applying events: \(error)", metadata: ["symbol": "\(symbol)"])
        }
    }

    /// A fill of an order recovery left working unknown to the journal (`unknownLiveOrders`):
    /// refused (FillGuard books no order it does not hold), but the broker traded it, so it is
    /// alerted `fillRefused`; the symbol stays closed to new brackets.
    func alertIfOrphanFilled(_ report: ExecutionReport) {
        guard unknownLiveOrders.withLock({ $0[report.symbol]?.contains(report.orderID) ?? false }),
              let positionID = SymbolStateMachine.positionID(ofOrder: report.orderID) else { return }
        raise(Alert(kind: .fillRefused, positionID: positionID, symbol: report.symbol, orderID: report.orderID, role: nil,
                    message: "the broker filled \(report.lastQuantity) of \(report.orderID), an order recovery found live and unknown to the journal "
                        + "(left working): FillGuard books none of it, so the broker's position on \(report.symbol) differs from FillGuard's: a person must look"))
    }

    /// Raises an alert: counted, logged, published.
    func raise(_ alert: Alert) {
        metrics.alerts.increment()
        counters.alerted(alert.kind)
        logger.error("\(alert)", metadata: ["symbol": "\(alert.symbol)"])
        bus.alerts.publish(alert)
        // Fills a "too late" answer announced have not come: the broker is asked for them.
        if alert.kind == .fillsOverdue, let handler = fillsOverdueHandler.withLock({ $0 }) { handler(alert.symbol) }
        // The broker changed an order on its own (or a request answered late took effect): it is
        // asked how the order stands now.
        if alert.kind == .brokerCorrection, let orderID = alert.orderID, let handler = brokerCorrectionHandler.withLock({ $0 }) {
            handler(alert.symbol, orderID)
        }
    }

    /// A report refused as naming an order its symbol does not hold: when the order's id names
    /// a position on another symbol, the report has the wrong symbol (`symbolMismatch`).
    func refined(_ error: InputError, orderID: OrderID, reportedSymbol: Symbol) -> InputError {
        guard error.code == .unknownOrder, let positionID = SymbolStateMachine.positionID(ofOrder: orderID),
              let actual = positionSymbols.withLock({ $0[positionID] }), actual != reportedSymbol else { return error }
        return InputError(.symbolMismatch, "the report says \(reportedSymbol) but order \(orderID) is of position \(positionID) on \(actual)")
    }

    /// Records a refused input: counted, logged, kept in the recent history, published.
    func reject(_ error: InputError, context: String) {
        metrics.rejected[error.code]?.increment()
        counters.rejected(error.code)
        let record = RejectedInput(error: error, context: context)
        if configuration.rejectionHistory > 0 {
            rejections.withLock { list in
                list.append(record)
                if list.count > configuration.rejectionHistory { list.removeFirst(list.count - configuration.rejectionHistory) }
            }
        }
        if error.code == .duplicateExecution {
            logger.debug("\(error)", metadata: ["input": "\(context)"])
        } else if error.code == .brokerCorrection {
            // Not bad input: the broker's record and FillGuard's now differ.
            logger.error("not applied \(context): \(error)")
        } else {
            logger.warning("refused \(context): \(error)")
        }
        bus.rejections.publish(record)
    }
}

/// The stages of a manager's life: `FillManager.shutdown()` drains, then stops.
enum Lifecycle: UInt8, AtomicRepresentable {
    /// With a journal, until `recover()`: no input is taken (it would be journaled over what
    /// the journal holds without knowing it).
    case awaitingRecovery
    /// `recover()` is rebuilding and reconciling: no input is taken yet.
    case recovering
    /// Taking every input.
    case running
    /// Shutting down: no new bracket; reports and broker answers still apply while work in
    /// flight finishes.
    case draining
    /// Shut down: nothing more is applied or sent; only reads are answered.
    case stopped

    /// Draining or stopped.
    var isShuttingDown: Bool { self == .draining || self == .stopped }
}
