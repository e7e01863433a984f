/// A request to place a new order at the broker.
public struct NewOrderRequest: Sendable, Hashable, Codable {
    /// The client order id FillGuard assigned.
    public var orderID: OrderID
    /// The instrument.
    public var symbol: Symbol
    /// Buy or sell.
    public var side: Side
    /// Market, limit, stop or stop-limit.
    public var type: OrderType
    /// The total quantity.
    public var quantity: Quantity
    /// How long it stays working.
    public var timeInForce: TimeInForce

    /// A new-order request.
    public init(orderID: OrderID, symbol: Symbol, side: Side, type: OrderType, quantity: Quantity, timeInForce: TimeInForce) {
        self.orderID = orderID
        self.symbol = symbol
        self.side = side
        self.type = type
        self.quantity = quantity
        self.timeInForce = timeInForce
    }
}

/// A request to change a working order's total quantity (FIX OrderCancelReplaceRequest).
/// The new total includes what has already filled, so the broker's open quantity becomes
/// `newQuantity - filled` even if the order fills while the request travels.
public struct ModifyOrderRequest: Sendable, Hashable, Codable {
    /// The order to change.
    public var orderID: OrderID
    /// The instrument.
    public var symbol: Symbol
    /// The new total quantity (filled plus open).
    public var newQuantity: Quantity

    /// A modify request.
    public init(orderID: OrderID, symbol: Symbol, newQuantity: Quantity) {
        self.orderID = orderID
        self.symbol = symbol
        self.newQuantity = newQuantity
    }
}

/// A request to cancel what is left of an order.
public struct CancelOrderRequest: Sendable, Hashable, Codable {
    /// The order to cancel.
    public var orderID: OrderID
    /// The instrument.
    public var symbol: Symbol

    /// A cancel request.
    public init(orderID: OrderID, symbol: Symbol) {
        self.orderID = orderID
        self.symbol = symbol
    }
}

/// An execution report for a fill: what the broker says traded.
public struct ExecutionReport: Sendable, Hashable, Codable {
    /// The largest commission (or rebate) a fill may carry: 10^12, far beyond any real one, and
    /// far enough below `Money`'s range that no sum of fills' commissions overflows.
    public static let maximumCommission = Money(units: 1_000_000_000_000 * 10_000_000_000_000_000)

    /// Unique per fill; a repeat is a duplicate.
    public var executionID: ExecutionID
    /// The client order id that filled.
    public var orderID: OrderID
    /// The instrument.
    public var symbol: Symbol
    /// The order's side.
    public var side: Side
    /// Quantity of this fill (positive).
    public var lastQuantity: Quantity
    /// Price of this fill (positive).
    public var lastPrice: Price
    /// The order's cumulative filled quantity after this fill, if the broker says.
    public var cumulativeQuantity: Quantity?
    /// The order's open quantity after this fill, if the broker says.
    public var leavesQuantity: Quantity?
    /// Broker time of the fill, nanoseconds since the epoch, if known.
    public var transactTime: Int64?
    /// Commission charged for this fill.
    public var commission: Money

    /// An execution report.
    public init(executionID: ExecutionID, orderID: OrderID, symbol: Symbol, side: Side, lastQuantity: Quantity, lastPrice: Price,
                cumulativeQuantity: Quantity? = nil, leavesQuantity: Quantity? = nil, transactTime: Int64? = nil, commission: Money = .zero) {
        self.executionID = executionID
        self.orderID = orderID
        self.symbol = symbol
        self.side = side
        self.lastQuantity = lastQuantity
        self.lastPrice = lastPrice
        self.cumulativeQuantity = cumulativeQuantity
        self.leavesQuantity = leavesQuantity
        self.transactTime = transactTime
        self.commission = commission
    }
}

/// An unsolicited end of an order at the broker (cancelled by the exchange, expired, rejected).
public struct OrderStatusReport: Sendable, Hashable, Codable {
    /// How the order ended.
    public enum Outcome: String, Sendable, Hashable, Codable {
        /// The broker or exchange cancelled it.
        case cancelled
        /// Its time in force ran out.
        case expired
        /// The broker refused it after accepting it.
        case rejected
    }
    /// The client order id.
    public var orderID: OrderID
    /// The instrument.
    public var symbol: Symbol
    /// How the order ended.
    public var outcome: Outcome
    /// The broker's text, if any.
    public var reason: String

    /// A status report.
    public init(orderID: OrderID, symbol: Symbol, outcome: Outcome, reason: String = "") {
        self.orderID = orderID
        self.symbol = symbol
        self.outcome = outcome
        self.reason = reason
    }
}
