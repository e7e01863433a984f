/// The core's record of one order: what the broker has accepted, what has filled, what FillGuard
/// wants it to be, and the operation (if any) in flight for it.
///
/// Orders live in their machine's `orders` array and are named inside the machine by their slot
/// (index) there; the `OrderID` string is kept for the broker boundary and for lookups by id.
/// Fields are mutated in place (`orders[slot].filled += ...`): the struct is never copied out and
/// written back on the hot path.
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

    // Laid out largest-alignment first to keep the record small (it is most of an idle symbol).
    var fillValue: Money = .zero
    let id: OrderID
    /// A permanent failure, alerted; no more tries until re-armed by the next fill.
    var failure: String?
    let type: OrderType
    /// Total quantity the broker accepted (before the first ack: the quantity to request).
    var quantity: Quantity
    var filled: Quantity = .zero
    var maxCumulative: Quantity = .zero
    /// FIFO order among orders with work of the same priority.
    var workSequence: UInt64 = 0
    /// The machine's serial number of this order's first applied fill (0: none yet). All of the
    /// order's execution ids are still remembered while this is inside the execution memory.
    var firstFillSerial: UInt64 = 0
    var inFlight: InFlight?
    var target: Target
    let role: OrderRole
    /// The slot of the order's position in the machine's `positions`.
    var position: Int32
    /// Being replaced (no native modify): the slot of the order that replaces it, or -1.
    var successor: Int32 = -1
    /// Failed tries of the current work (reset by a success).
    var attempts: Int32 = 0
    var phase: Phase = .unsent
    let side: Side
    let timeInForce: TimeInForce
    /// A transient failure is waiting out its backoff.
    var retryPending = false
    /// The broker said "too late": the order filled or ended; wait for its reports.
    var awaitingFill = false
    /// Being replaced (no native modify): cancelled once `successor` is live.
    var retiring = false

    init(id: OrderID, position: Int32, role: OrderRole, side: Side, type: OrderType, timeInForce: TimeInForce,
         quantity: Quantity, target: Target, workSequence: UInt64) {
        self.id = id
        self.position = position
        self.role = role
        self.side = side
        self.type = type
        self.timeInForce = timeInForce
        self.quantity = quantity
        self.target = target
        self.workSequence = workSequence
    }

    var isDone: Bool {
        if case .done = phase { return true }
        return false
    }

    var isLive: Bool { !isDone }

    var isAccepted: Bool {
        if case .accepted = phase { return true }
        return false
    }

    var hasSuccessor: Bool { successor >= 0 }

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

    func snapshot(symbol: Symbol, positionID: PositionID) -> OrderSnapshot {
        OrderSnapshot(
            id: id, positionID: positionID, symbol: symbol, role: role, side: side, type: type,
            quantity: quantity, filledQuantity: filled, openQuantity: openQuantity,
            averageFillPrice: fillValue.perShare(filled), status: status, failure: failure)
    }
}
