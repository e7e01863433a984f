/// Something a person must look at: FillGuard could not keep a position's orders right.
public struct Alert: Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A broker operation failed for good (permanent error or retries exhausted).
        case operationFailed
        /// The broker ended a protective order on its own; FillGuard re-protects.
        case protectiveEndedByBroker
        /// The entry was refused, so the position never opened: by the broker, or by FillGuard
        /// without sending it (held back by the circuit breaker too long, or not sent before a
        /// restart with `unsentEntries: .refuse`), as it never adds exposure late.
        case entryRejected
        /// Fills the broker announced have not come: it kept answering "too late" for an order
        /// whose fills never came, or a report's cumulative quantity is above what the order's
        /// reports booked (one was lost, or comes late).
        case fillsOverdue
        /// A fill took the position to the side opposite its bracket's (a protective order larger
        /// than the position filled whole, or a late one after it closed): it is protected again
        /// at the bracket's prices (rule 7), which are then on the wrong side of the market.
        case positionFlipped
        /// The broker took back or changed a fill or an order on its own (a trade bust or
        /// correction, a restated size). FillGuard does not apply it, so its record of the
        /// position or the order may now differ from the broker's.
        case brokerCorrection
        /// The broker reported a fill FillGuard refused as impossible (more than the order's size,
        /// a cumulative quantity going back, a net or realized P&L beyond what it books, an
        /// execution id applied before to another fill). The
        /// broker may have traded it all the same, so the position may differ from the broker's.
        case fillRefused
        /// The broker filled an order it had refused (or ended as rejected): it has the order
        /// after all. FillGuard books the fill and holds the rest of the order as live again.
        case refusedOrderFilled
        /// The broker filled an order FillGuard never placed with it (it ended before it was sent,
        /// or every submit of it was answered as not taken): an order id mixed up at the broker,
        /// or an answer that was wrong. FillGuard books the fill, since the broker says it traded.
        case unplacedOrderFilled
        /// An order's work could not be sent `maxAttempts` times in a row (the connection to the
        /// broker is down), or the circuit breaker has held it back for `maxAttempts` times its
        /// open time. It is held, not given up, and goes once the broker is reachable; until then
        /// the position's orders may not match it. Raised once per order and outage. (Not for an
        /// entry's or scale-in's submit: that is refused instead.)
        case operationHeld
    }
    /// What went wrong.
    public var kind: Kind
    /// The position concerned.
    public var positionID: PositionID
    /// The instrument.
    public var symbol: Symbol
    /// The order concerned, if any.
    public var orderID: OrderID?
    /// The order's role, if any.
    public var role: OrderRole?
    /// A sentence for a person.
    public var message: String

    /// An alert.
    public init(kind: Kind, positionID: PositionID, symbol: Symbol, orderID: OrderID?, role: OrderRole?, message: String) {
        self.kind = kind
        self.positionID = positionID
        self.symbol = symbol
        self.orderID = orderID
        self.role = role
        self.message = message
    }

    /// "operationFailed P1 stopLoss: ...".
    public var description: String {
        "\(kind.rawValue) \(positionID)\(role.map { " \($0)" } ?? ""): \(message)"
    }
}
