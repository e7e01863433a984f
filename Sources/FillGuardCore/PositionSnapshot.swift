/// A position's life-cycle state.
public enum PositionStatus: String, Sendable, Hashable, Codable {
    /// Opened, nothing filled yet.
    case pending
    /// Net quantity is not zero.
    case open
    /// Went flat (or never opened); remaining orders are cancelled.
    case closed
}

/// A point-in-time copy of one position and its bracket's orders.
public struct PositionSnapshot: Sendable, Hashable {
    /// The caller's position id.
    public var id: PositionID
    /// The instrument.
    public var symbol: Symbol
    /// The entry side (buy: a long bracket).
    public var side: Side
    /// Pending, open or closed.
    public var status: PositionStatus
    /// Signed net quantity.
    public var netQuantity: Quantity
    /// Average entry price of the open quantity; nil when flat.
    public var averagePrice: Price?
    /// Realized profit and loss, before commissions.
    public var realizedPnL: Money
    /// Commissions charged.
    public var commissions: Money
    /// Every order of the bracket, oldest first (use `liveOrders` for the working ones).
    public var orders: [OrderSnapshot]
    /// The bracket's stop-loss price.
    public var stopLoss: Price?
    /// The bracket's take-profit price.
    public var takeProfit: Price?

    /// Orders that are still live (pending, working, partially filled, being changed).
    public var liveOrders: [OrderSnapshot] { orders.filter { $0.status.isLive } }

    /// The live order of a role, if any (the newest, when a replacement overlaps).
    public func liveOrder(_ role: OrderRole) -> OrderSnapshot? {
        orders.last { $0.role == role && $0.status.isLive }
    }
}
