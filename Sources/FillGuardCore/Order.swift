/// The direction of an order or a fill.
public enum Side: String, Sendable, Hashable, CaseIterable, Codable {
    /// Buying adds to a long position (or reduces a short one).
    case buy
    /// Selling reduces a long position (or adds to a short one).
    case sell

    /// The other side: the side a protective order takes.
    public var opposite: Side { self == .buy ? .sell : .buy }
    /// +1 for buy, -1 for sell: the sign a fill of this side adds to the net position.
    public var sign: Int64 { self == .buy ? 1 : -1 }
}

/// How an order executes, with its prices.
public enum OrderType: Sendable, Hashable, Codable {
    /// Fills at the market.
    case market
    /// Fills at the limit price or better.
    case limit(Price)
    /// Becomes a market order when the stop price trades.
    case stop(Price)
    /// Becomes a limit order at `limit` when `stop` trades.
    case stopLimit(stop: Price, limit: Price)

    /// The price shown for the order: the limit for limits, the stop for stops; nil for market.
    public var displayPrice: Price? {
        switch self {
        case .market: return nil
        case .limit(let price): return price
        case .stop(let price): return price
        case .stopLimit(let stop, _): return stop
        }
    }

    /// Every price the order names: none for market, the stop and the limit for a stop-limit.
    public var prices: [Price] {
        switch self {
        case .market: return []
        case .limit(let price), .stop(let price): return [price]
        case .stopLimit(let stop, let limit): return [stop, limit]
        }
    }
}

/// How long an order stays working.
public enum TimeInForce: String, Sendable, Hashable, Codable {
    /// For the trading day.
    case day
    /// Until cancelled.
    case goodTillCancel
    /// Fill what is possible now, cancel the rest.
    case immediateOrCancel
}

/// An order's part in a bracket.
public enum OrderRole: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The order that opens the position.
    case entry
    /// The n-th scale-in ("double down") order, from 0.
    case scaleIn(Int)
    /// The protective stop on the side opposite the position.
    case stopLoss
    /// The protective limit on the side opposite the position.
    case takeProfit

    /// True for stop-loss and take-profit: orders that must cover the open position exactly.
    public var isProtective: Bool {
        switch self {
        case .stopLoss, .takeProfit: return true
        case .entry, .scaleIn: return false
        }
    }

    /// The role's name in traces and reports: entry, scaleIn, stopLoss, takeProfit.
    public var name: String {
        switch self {
        case .entry: return "entry"
        case .scaleIn: return "scaleIn"
        case .stopLoss: return "stopLoss"
        case .takeProfit: return "takeProfit"
        }
    }

    /// The scale-in index, nil for other roles.
    public var index: Int? {
        if case .scaleIn(let index) = self { return index }
        return nil
    }

    /// "scaleIn[0]", "stopLoss": for messages.
    public var description: String {
        if case .scaleIn(let index) = self { return "scaleIn[\(index)]" }
        return name
    }
}

/// An order's life-cycle state as FillGuard knows it.
public enum OrderStatus: String, Sendable, Hashable, CaseIterable, Codable {
    /// Sent, not yet acknowledged (or not yet sent).
    case pendingNew
    /// Acknowledged, nothing filled.
    case working
    /// Some filled, the rest working.
    case partiallyFilled
    /// Completely filled.
    case filled
    /// A modify is in flight.
    case pendingModify
    /// A cancel is in flight.
    case pendingCancel
    /// The broker answered "too late" (the order filled or ended first) and its fills have not
    /// all come: it is kept, and its role waits for them.
    case awaitingFills
    /// Cancelled; late fills still count.
    case cancelled
    /// Refused by the broker.
    case rejected
    /// Ended by its time in force.
    case expired

    /// True while the order may still fill or be changed.
    public var isLive: Bool {
        switch self {
        case .pendingNew, .working, .partiallyFilled, .pendingModify, .pendingCancel, .awaitingFills: return true
        case .filled, .cancelled, .rejected, .expired: return false
        }
    }
}

/// A point-in-time copy of one order, as reported to callers.
public struct OrderSnapshot: Sendable, Hashable {
    /// The client order id.
    public var id: OrderID
    /// The position (bracket) the order belongs to.
    public var positionID: PositionID
    /// The instrument.
    public var symbol: Symbol
    /// The order's part in the bracket.
    public var role: OrderRole
    /// Buy or sell.
    public var side: Side
    /// Market, limit, stop or stop-limit, with prices.
    public var type: OrderType
    /// The total quantity the broker has accepted (or that was requested, before an ack).
    public var quantity: Quantity
    /// The sum of this order's unique fills.
    public var filledQuantity: Quantity
    /// Quantity still open: `quantity - filledQuantity` (zero once the order is done).
    public var openQuantity: Quantity
    /// The quantity-weighted average fill price; nil before any fill.
    public var averageFillPrice: Price?
    /// The state, including pending operations.
    public var status: OrderStatus
    /// Set when an operation on this order failed for good; an alert was raised.
    public var failure: String?
}
