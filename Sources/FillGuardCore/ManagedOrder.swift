/// The core's record of one order: what the broker has accepted, what has filled, what FillGuard
/// wants it to be, and the operation (if any) in flight for it.
struct ManagedOrder: Sendable, Codable {
    /// Where the order stands with the broker.
    enum Phase: Sendable, Hashable, Codable {
        /// Not yet accepted by the broker (a submit may be in flight).
        case unsent
        /// Accepted and live at the broker.
        case accepted
        /// Ended: filled, cancelled, rejected or expired.
        case done(OrderStatus)
    }

    /// The state FillGuard wants the order in.
    enum Target: Sendable, Hashable, Codable {
        /// As placed: entries and scale-ins are never resized.
        case asPlaced
        /// Live with exactly this open quantity (protective orders).
        case open(Quantity)
        /// Cancelled.
        case cancelled
    }

    /// The operation in flight.
    struct InFlight: Sendable, Hashable, Codable {
        var operationID: UInt64
        var kind: OrderOperation.Kind
        /// For a modify: the total quantity requested.
        var requestedQuantity: Quantity?
    }

    let id: OrderID
    let positionID: PositionID
    let role: OrderRole
    let side: Side
    let type: OrderType
    let timeInForce: TimeInForce
    /// Total quantity the broker accepted (before the first ack: the quantity to request).
    var quantity: Quantity
    var filled: Quantity = .zero
    var maxCumulative: Quantity = .zero
    var fillValue: Money = .zero
    var phase: Phase = .unsent
    var target: Target
    var inFlight: InFlight?
    /// A transient failure is waiting out its backoff.
    var retryPending = false
    /// Failed tries of the current work (reset by a success).
    var attempts = 0
    /// The broker said "too late": the order filled or ended; wait for its reports.
    var awaitingFill = false
    /// A permanent failure, alerted; no more tries until re-armed by the next fill.
    var failure: String?
    /// Being replaced (no native modify): cancelled once `successor` is live.
    var retiring = false
    var successor: OrderID?
    /// FIFO order among orders with work of the same priority.
    var workSequence: UInt64 = 0

    var isDone: Bool {
        if case .done = phase { return true }
        return false
    }

    var isLive: Bool { !isDone }

    var isAccepted: Bool {
        if case .accepted = phase { return true }
        return false
    }

    var openQuantity: Quantity {
        isDone ? .zero : quantity - filled
    }

    /// The most a fill may take the filled quantity to: the larger of the accepted quantity and
    /// any modify in flight (the broker may have applied either).
    var fillLimit: Quantity {
        if let requested = inFlight?.requestedQuantity, requested > quantity { return requested }
        return quantity
    }

    var status: OrderStatus {
        switch phase {
        case .done(let status): return status
        case .unsent: return .pendingNew
        case .accepted:
            switch inFlight?.kind {
            case .modify: return .pendingModify
            case .cancel: return .pendingCancel
            case .submit: return .pendingNew
            case nil: return filled.isZero ? .working : .partiallyFilled
            }
        }
    }

    func snapshot(symbol: Symbol) -> OrderSnapshot {
        OrderSnapshot(
            id: id, positionID: positionID, symbol: symbol, role: role, side: side, type: type,
            quantity: quantity, filledQuantity: filled, openQuantity: openQuantity,
            averageFillPrice: fillValue.perShare(filled), status: status, failure: failure)
    }
}
