import CoreMetrics
import FillGuardCore

/// The runtime's metrics, created once (never per event) from a swift-metrics factory so that
/// any backend (Prometheus, StatsD, a test factory) can export them.
struct FillGuardMetrics: Sendable {
    /// False when the factory is swift-metrics' no-op one (nothing bootstrapped): the runtime then
    /// skips the clock reads and calls that would only feed it.
    let enabled: Bool
    /// Time an event waited in its symbol's queue ("lock wait").
    let queueWait: Timer
    /// Time the core took to handle an event.
    let processing: Timer
    /// Events waiting in a symbol's queue, sampled at enqueue.
    let queueDepth: Recorder
    /// Fill received to protective operation handed to the broker.
    let reaction: Timer
    /// Broker round trip per operation kind.
    let brokerLatency: [OrderOperation.Kind: Timer]
    /// Operations sent per kind.
    let operations: [OrderOperation.Kind: Counter]
    /// Retries scheduled.
    let retries: Counter
    /// Times the breaker opened.
    let breakerTrips: Counter
    /// Breaker state: 0 closed, 1 open, 2 half-open.
    let breakerState: Gauge
    /// Inputs refused, by error code.
    let rejected: [InputError.Code: Counter]
    /// Alerts raised.
    let alerts: Counter
    /// Fills applied.
    let fills: Counter
    let corrections: [ReconciliationCorrection.Kind: Counter]
    let journalRecords: Counter

    init(factory: MetricsFactory) {
        enabled = !(factory is NOOPMetricsHandler)
        queueWait = Timer(label: "fillguard_queue_wait", dimensions: [], factory: factory)
        processing = Timer(label: "fillguard_processing", dimensions: [], factory: factory)
        queueDepth = Recorder(label: "fillguard_queue_depth", dimensions: [], aggregate: true, factory: factory)
        reaction = Timer(label: "fillguard_reaction", dimensions: [], factory: factory)
        var latency: [OrderOperation.Kind: Timer] = [:]
        var operations: [OrderOperation.Kind: Counter] = [:]
        for kind in OrderOperation.Kind.allCases {
            latency[kind] = Timer(label: "fillguard_broker_latency", dimensions: [("operation", kind.rawValue)], factory: factory)
            operations[kind] = Counter(label: "fillguard_broker_operations", dimensions: [("operation", kind.rawValue)], factory: factory)
        }
        brokerLatency = latency
        self.operations = operations
        retries = Counter(label: "fillguard_retries", dimensions: [], factory: factory)
        breakerTrips = Counter(label: "fillguard_breaker_trips", dimensions: [], factory: factory)
        breakerState = Gauge(label: "fillguard_breaker_state", dimensions: [], factory: factory)
        var rejected: [InputError.Code: Counter] = [:]
        for code in InputError.Code.allCases {
            rejected[code] = Counter(label: "fillguard_rejected_inputs", dimensions: [("error", code.rawValue)], factory: factory)
        }
        self.rejected = rejected
        alerts = Counter(label: "fillguard_alerts", dimensions: [], factory: factory)
        fills = Counter(label: "fillguard_fills", dimensions: [], factory: factory)
        var corrections: [ReconciliationCorrection.Kind: Counter] = [:]
        for kind in ReconciliationCorrection.Kind.allCases {
            corrections[kind] = Counter(label: "fillguard_reconcile_corrections", dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        self.corrections = corrections
        journalRecords = Counter(label: "fillguard_journal_records_replayed", dimensions: [], factory: factory)
    }
}
