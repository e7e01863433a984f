import FillGuard
import FillGuardCore

/// How the simulated exchange behaves: prices, latency and the faults it injects.
public struct SimulatorConfiguration: Sendable {
    /// Seed of every random choice (prices, fill sizes, faults).
    public var seed: UInt64
    /// The exchange offers native modify (OrderCancelReplaceRequest). Without it, modify is refused.
    public var nativeModify = true
    /// Acknowledgement latency range of every request.
    public var latency: ClosedRange<Duration> = .zero ... .zero
    /// Probability that a request fails: about 70% transient, 15% permanent, 15% a too-late race.
    public var faultRate = 0.0
    /// Probability that a fill report is sent twice.
    public var duplicateRate = 0.0
    /// Probability that a report is held back and sent after the next one.
    public var reorderRate = 0.0
    /// Probability, per tick and symbol, that the exchange ends one of the symbol's live orders
    /// on its own (an expiry, a venue's cancel), said with an order status, not asked for.
    public var unsolicitedCancelRate = 0.0
    /// Largest price move per tick, in basis points.
    public var volatilityBasisPoints = 2
    /// Fills above this size are split into partial fills across ticks (nil: fill at once).
    public var partialFillAbove: Quantity? = Quantity(100)
    /// Chance that a fill above `partialFillAbove` is split (0...1).
    public var partialFillChance = 0.5
    /// The request budget the exchange advertises (nil: none).
    public var requestsPerSecond: Int?
    /// Integrate exposure over wall-clock time, exactly, at every change of a book (an order
    /// placed, resized, cancelled or filled) instead of over `step` ticks. For measuring how long
    /// a real client leaves positions under-covered.
    public var exposureInRealTime = false

    /// A configuration with a seed; everything else defaults to a fault-free, zero-latency exchange.
    public init(seed: UInt64) {
        self.seed = seed
    }
}

/// One order as the exchange holds it: the ground truth to check FillGuard against.
public struct SimulatedOrder: Sendable, Hashable, Codable {
    /// Where the order stands at the exchange.
    public enum State: String, Sendable, Hashable, Codable {
        /// Working (or triggered and filling).
        case live
        /// Completely filled.
        case filled
        /// Cancelled.
        case cancelled
    }
    /// The client order id.
    public var id: OrderID
    /// The instrument.
    public var symbol: Symbol
    /// Buy or sell.
    public var side: Side
    /// Market, limit, stop or stop-limit.
    public var type: OrderType
    /// Total quantity.
    public var quantity: Quantity
    /// Filled so far.
    public var filled: Quantity
    /// Live, filled or cancelled.
    public var state: State
    /// A stop that has triggered.
    public var triggered = false

    /// What is still open.
    public var openQuantity: Quantity { state == .live ? quantity - filled : .zero }
}

/// What the exchange did: requests, faults and reports.
public struct SimulatorStatistics: Sendable, Hashable {
    /// Requests received, by kind.
    public var requests: [String: Int] = [:]
    /// Faults injected, by kind (transient, permanent, tooLate).
    public var faults: [String: Int] = [:]
    /// Fill reports sent twice.
    public var duplicates = 0
    /// Reports sent out of order.
    public var reorders = 0
    /// Fills executed (each counted once).
    public var fills = 0
    /// Requests that reached their effect, by kind, and the time they took from arrival to
    /// taking effect (the configured latency as the clock honoured it, plus any wait for the book).
    public var applied: [String: AppliedDelay] = [:]
}

/// How long requests of one kind took from arrival at the exchange to taking effect.
public struct AppliedDelay: Sendable, Hashable {
    /// Requests counted.
    public var count = 0
    /// Their delays added up, in nanoseconds.
    public var totalNanoseconds: Int64 = 0

    /// A total of `count` requests that took `totalNanoseconds` together.
    public init(count: Int = 0, totalNanoseconds: Int64 = 0) {
        self.count = count
        self.totalNanoseconds = totalNanoseconds
    }

    /// The mean delay in nanoseconds (0 without requests).
    public var meanNanoseconds: Double { count == 0 ? 0 : Double(totalNanoseconds) / Double(count) }
}

/// Exposure measured by the exchange from its own truth, in share-seconds (3 decimals).
public struct ExposureTotals: Sendable, Hashable {
    /// Open position not covered by a stop on the opposite side.
    public var unprotected: String
    /// Protective orders (stops, or opposite limits) above the open position.
    public var overCovered: String
    /// Open position with no stop on the opposite side at all (part of `unprotected`).
    public var naked: String
}
