import FillGuardCore

/// What a broker connection can do, so the runtime picks the right replace strategy and pace.
public struct BrokerCapabilities: Sendable, Hashable {
    /// The broker can change an order's quantity in place (FIX OrderCancelReplaceRequest).
    public var nativeModify: Bool
    /// Requests per second the broker allows (token bucket refill rate); nil for no limit.
    public var requestsPerSecond: Int?
    /// Requests that may go out at once before throttling (token bucket size).
    public var burst: Int

    /// Capabilities; defaults: native modify, no rate limit.
    public init(nativeModify: Bool = true, requestsPerSecond: Int? = nil, burst: Int = 100) {
        self.nativeModify = nativeModify
        self.requestsPerSecond = requestsPerSecond
        self.burst = max(1, burst)
    }
}

/// A broker's answer when it did not accept a request.
public struct BrokerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// How the runtime should treat the failure.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Not applied, worth retrying (throttled, refused while busy). A request that may have
        /// reached the broker is `timedOut`, never this; one that never left is `notSent`.
        case transient
        /// Refused; retrying will not help.
        case permanent
        /// The order filled or ended before a modify or cancel arrived.
        case tooLate
        /// No answer in time: the request may or may not have taken effect (worth retrying; a
        /// submit's order is then treated as possibly live and cancelled if no longer wanted).
        case timedOut
        /// The broker does not have the order (a cancel or modify of an id it never took).
        case unknownOrder
        /// Never sent: the connection to the broker is down, so nothing reached it. Retried
        /// without using a try, for as long as the outage lasts (the circuit breaker paces it);
        /// alerted once as `operationHeld`.
        case notSent

        /// True for failures worth retrying, which count toward the circuit breaker.
        public var isRetryable: Bool { self == .transient || self == .timedOut || self == .notSent }
    }
    /// How to treat it.
    public var kind: Kind
    /// The broker's text.
    public var message: String

    /// A broker error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The core's classification of this error.
    public var operationFailure: OperationFailure {
        switch kind {
        case .transient: return .transient(message)
        case .permanent: return .permanent(message)
        case .tooLate: return .tooLate(message)
        case .timedOut: return .timedOut(message)
        case .unknownOrder: return .unknownOrder(message)
        case .notSent: return .notSent(message)
        }
    }

    /// "transient: throttled".
    public var description: String { "\(kind.rawValue): \(message)" }
}

/// Something the broker reports on its own: a fill or an order's unsolicited end.
public enum BrokerEvent: Sendable, Hashable {
    /// A fill.
    case execution(ExecutionReport)
    /// An order ended without being asked to (exchange cancel, expiry).
    case orderStatus(OrderStatusReport)
    /// A report the adapter refused before it became a fill or an order end (a malformed or
    /// out-of-range field, an order id FillGuard never issued): nothing was applied, and the
    /// runtime records the refusal with its other refused inputs. `symbol` is the report's, as sent.
    case refused(InputError, context: String, symbol: Symbol)
    /// The broker took back or changed, on its own, something it had reported about an order: a
    /// fill it cancelled or corrected (a trade bust), a size it restated or a replace it applied
    /// that FillGuard did not expect. FillGuard does not apply it (it never undoes a fill): the
    /// runtime records it as refused (`brokerCorrection`) and raises an `Alert`
    /// (`brokerCorrection`) for a person, whenever the order id names a position (an id
    /// FillGuard issued). A broker that answers `BrokerQueries` is then asked how the order
    /// stands: a live order of another size is taken at the broker's size and planned again.
    case correction(OrderID, symbol: Symbol, message: String)

    /// The instrument the event is about: it picks the symbol lane.
    public var symbol: Symbol {
        switch self {
        case .execution(let report): return report.symbol
        case .orderStatus(let report): return report.symbol
        case .refused(_, _, let symbol): return symbol
        case .correction(_, let symbol, _): return symbol
        }
    }
}

/// A connection to a broker: order operations, and a stream of what the broker reports.
///
/// Each method returns when the broker has accepted the request (an ack) and throws a
/// `BrokerError` when it has not. Fills and unsolicited order ends arrive on `events()`.
public protocol Broker: Sendable {
    /// What the connection supports.
    var capabilities: BrokerCapabilities { get }
    /// Places a new order. After a `timedOut` answer the same request may come again: a broker
    /// that already holds the id must take it as the same order (an idempotent resend).
    func submit(_ request: NewOrderRequest) async throws(BrokerError)
    /// Changes a working order's total quantity in place.
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError)
    /// Cancels an order's remainder.
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError)
    /// The broker's reports, in the order it sends them. Consumed by one `FillManager`.
    func events() -> AsyncStream<BrokerEvent>
}

/// A broker that can also report an operation's outcome through a callback: the runtime then
/// sends operations without a task for each (one less allocation and switch per operation on the
/// fill path). Adapters built on futures or callbacks (SwiftNIO) get it almost for free.
public protocol CallbackBroker: Broker {
    /// Sends `request` and calls `completion` exactly once with the broker's answer (what the
    /// matching async method would return or throw), on any thread, possibly before returning.
    /// Must not block waiting for the broker.
    func send(_ request: OrderOperation.Request, completion: @escaping @Sendable (Result<Void, BrokerError>) -> Void)
}

/// The broker's view of one order, as its queries return it (for reconciliation).
public struct BrokerOrderState: Sendable, Hashable {
    /// The client order id FillGuard gave it.
    public var orderID: OrderID
    /// The instrument.
    public var symbol: Symbol
    /// Buy or sell.
    public var side: Side
    /// Market, limit, stop, stop-limit with prices.
    public var type: OrderType
    /// Total quantity as the broker has it now (after any modify).
    public var quantity: Quantity
    /// Filled so far.
    public var filled: Quantity
    /// Where it stands: a live status, or filled, cancelled, rejected, expired.
    public var status: OrderStatus

    /// A broker order state.
    public init(orderID: OrderID, symbol: Symbol, side: Side, type: OrderType, quantity: Quantity, filled: Quantity, status: OrderStatus) {
        self.orderID = orderID
        self.symbol = symbol
        self.side = side
        self.type = type
        self.quantity = quantity
        self.filled = filled
        self.status = status
    }
}

/// What a broker can be asked after a restart, to reconcile the journal's state with its own.
/// Adapters that cannot answer keep the defaults, which throw; recovery then reports that it
/// could not reconcile.
public protocol BrokerQueries: Sendable {
    /// One order as the broker has it; nil when the broker does not know the id.
    func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState?
    /// Every live order on the account.
    func openOrders() async throws(BrokerError) -> [BrokerOrderState]
    /// The symbol's recent executions (at least since the session began), oldest first.
    func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport]
    /// Net position per symbol (symbols with no position may be left out).
    func positions() async throws(BrokerError) -> [Symbol: Quantity]
}
