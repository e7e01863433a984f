/// One unit of broker work the core asks the runtime to perform: submit, modify or cancel.
/// Operations are materialised from desired state at the moment they can be sent, so they never
/// carry a stale size.
public struct OrderOperation: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The request to send.
    public enum Request: Sendable, Hashable, Codable {
        /// Place a new order.
        case submit(NewOrderRequest)
        /// Change an order's total quantity (native modify).
        case modify(ModifyOrderRequest)
        /// Cancel an order's remainder.
        case cancel(CancelOrderRequest)
    }

    /// The three kinds of broker operation, for counting and metrics.
    public enum Kind: String, Sendable, Hashable, CaseIterable, Codable {
        /// A new order.
        case submit
        /// A native modify.
        case modify
        /// A cancel.
        case cancel
    }

    /// Scheduling class: risk-reducing work goes first.
    public enum Priority: Int, Sendable, Hashable, Comparable, Codable {
        /// Cancels: always first.
        case cancel = 0
        /// Size reductions.
        case reduce = 1
        /// Size increases.
        case increase = 2
        /// New orders.
        case new = 3

        /// Lower raw value goes first.
        public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// Unique per state machine; a completion names it.
    public var id: UInt64
    /// The order it acts on.
    public var orderID: OrderID
    /// The order's position.
    public var positionID: PositionID
    /// The order's role in the bracket.
    public var role: OrderRole
    /// What to send.
    public var request: Request
    /// Its scheduling class.
    public var priority: Priority
    /// 1 for the first try, 2 for the first retry, ...
    public var attempt: Int

    /// An operation, as the core makes it or as a journal reads it back.
    public init(id: UInt64, orderID: OrderID, positionID: PositionID, role: OrderRole, request: Request, priority: Priority, attempt: Int) {
        self.id = id
        self.orderID = orderID
        self.positionID = positionID
        self.role = role
        self.request = request
        self.priority = priority
        self.attempt = attempt
    }

    /// Submit, modify or cancel.
    public var kind: Kind {
        switch request {
        case .submit: return .submit
        case .modify: return .modify
        case .cancel: return .cancel
        }
    }

    /// The instrument.
    public var symbol: Symbol {
        switch request {
        case .submit(let request): return request.symbol
        case .modify(let request): return request.symbol
        case .cancel(let request): return request.symbol
        }
    }

    /// "modify P1-sl1 to 420 (attempt 1)".
    public var description: String {
        switch request {
        case .submit(let request): return "submit \(orderID) \(request.side.rawValue) \(request.quantity) (attempt \(attempt))"
        case .modify(let request): return "modify \(orderID) to \(request.newQuantity) (attempt \(attempt))"
        case .cancel: return "cancel \(orderID) (attempt \(attempt))"
        }
    }
}

/// Why a broker operation did not succeed, classified for the retry policy.
public enum OperationFailure: Error, Sendable, Hashable, Codable {
    /// Worth retrying: timeouts, throttling, a dropped connection.
    case transient(String)
    /// Not worth retrying: the broker refused the request.
    case permanent(String)
    /// The order filled (or ended) before the modify or cancel arrived.
    case tooLate(String)
    /// No answer in time: the request may or may not have taken effect. Retried like a transient
    /// failure; an order whose submit timed out may be live, so it is cancelled, never forgotten.
    case timedOut(String)
    /// The broker does not have the order (it never took it): a cancel of it has nothing to do.
    case unknownOrder(String)
    /// Never sent: the connection to the broker was down, so nothing reached it. Retried after a
    /// backoff without using one of the work's tries, for as long as it takes (alerted once as
    /// `operationHeld` after `maxAttempts` of them in a row).
    case notSent(String)

    /// The broker's text.
    public var message: String {
        switch self {
        case .transient(let text), .permanent(let text), .tooLate(let text), .timedOut(let text), .unknownOrder(let text), .notSent(let text): return text
        }
    }
}
