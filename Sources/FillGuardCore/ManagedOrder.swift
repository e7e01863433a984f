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
        /// For a modify: the total quantity requested.
        var requestedQuantity: Quantity?
        var kind: OrderOperation.Kind

        init(operationID: UInt64, kind: OrderOperation.Kind, requestedQuantity: Quantity?) {
            self.operationID = operationID
            self.kind = kind
            self.requestedQuantity = requestedQuantity
        }
    }

    // Laid out so the record packs into 192 bytes (it is most of an idle symbol): the 16-byte
    // aligned amount first, the one-byte fields in the gap after the order type, the role as a
    // kind byte and an index.
    var fillValue: Money = .zero
    let id: OrderID
    /// A permanent failure, alerted; no more tries until re-armed by the next fill.
    var failure: String?
    let type: OrderType
    var phase: Phase = .unsent
    let side: Side
    let timeInForce: TimeInForce
    /// A transient failure is waiting out its backoff.
    var retryPending = false
    /// The broker said "too late": the order filled or ended; wait for its reports.
    var awaitingFill = false
    /// Being replaced (no native modify): cancelled once `successor` is live.
    var retiring = false
    /// A submit timed out: the broker may hold the order. It is resent unchanged while wanted and
    /// cancelled (never just forgotten) when not, until an answer settles where it stands.
    var mayBeLive = false
    /// A cancel timed out and no answer has settled it: the order may be gone, so it shows as
    /// pending cancel and is never made current again (a failed replacement does not bring it
    /// back). Only an answer that says where it stands settles it (success, unknown order, too
    /// late, a fill); a refusal does not (a broker refuses for reasons of its own).
    var cancelMayHaveTakenEffect = false
    /// Ended without the broker ever holding it, as far as its answers said: cancelled before it
    /// was sent, or after every submit was answered as not taken. A fill of it is alerted.
    var unplaced = false
    /// Tries of the current work in a row that were never sent (the broker unreachable), up to
    /// 255; back to 0 once one of its requests reaches the broker.
    var unsentTries: UInt8 = 0
    /// 0 entry, 1 scale-in, 2 stop-loss, 3 take-profit.
    let roleKind: UInt8
    /// Total quantity the broker accepted (before the first ack: the quantity to request).
    var quantity: Quantity
    /// A modify timed out: until an answer settles it, the broker may hold the order at any
    /// total from `uncertainLow` to `uncertainHigh` (both zero: the size is known).
    var uncertainLow: Quantity = .zero
    var uncertainHigh: Quantity = .zero
    var filled: Quantity = .zero
    var maxCumulative: Quantity = .zero
    /// FIFO order among orders with work of the same priority.
    var workSequence: UInt64 = 0
    /// The machine's serial number of this order's first applied fill (0: none yet). All of the
    /// order's execution ids are still remembered while this is inside the execution memory.
    var firstFillSerial: UInt64 = 0
    var inFlight: InFlight?
    /// The slot of the order's position in the machine's `positions`.
    var position: Int32
    /// Being replaced (no native modify): the slot of the order that replaces it, or -1.
    var successor: Int32 = -1
    /// Failed tries of the current work (reset by a success, and when the work turns from keeping
    /// the order to cancelling it or back).
    var attempts: Int32 = 0
    var target: Target
    /// The scale-in index (0 for other roles).
    let roleIndex: Int32

    init(id: OrderID, position: Int32, role: OrderRole, side: Side, type: OrderType, timeInForce: TimeInForce,
         quantity: Quantity, target: Target, workSequence: UInt64) {
        self.id = id
        self.position = position
        (self.roleKind, self.roleIndex) = Self.code(role)
        self.side = side
        self.type = type
        self.timeInForce = timeInForce
        self.quantity = quantity
        self.target = target
        self.workSequence = workSequence
    }

    static let stopLossKind: UInt8 = 2
    static let takeProfitKind: UInt8 = 3

    static func code(_ role: OrderRole) -> (UInt8, Int32) {
        switch role {
        case .entry: return (0, 0)
        case .scaleIn(let index): return (1, Int32(clamping: index))
        case .stopLoss: return (stopLossKind, 0)
        case .takeProfit: return (takeProfitKind, 0)
        }
    }

    /// The order's part in its bracket.
    var role: OrderRole {
        switch roleKind {
        case 0: return .entry
        case 1: return .scaleIn(Int(roleIndex))
        case Self.stopLossKind: return .stopLoss
        default: return .takeProfit
        }
    }

    private enum CodingKeys: String, CodingKey {
        case id, role, side, type, timeInForce, quantity, filled, maxCumulative, fillValue, phase, target, inFlight,
             retryPending, attempts, awaitingFill, failure, retiring, successor, workSequence, firstFillSerial, position, mayBeLive, uncertainLow, uncertainHigh, cancelMayHaveTakenEffect,
             unplaced, unsentTries
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try container.decode(OrderID.self, forKey: .id), position: try container.decode(Int32.self, forKey: .position),
                  role: try container.decode(OrderRole.self, forKey: .role), side: try container.decode(Side.self, forKey: .side),
                  type: try container.decode(OrderType.self, forKey: .type),
                  timeInForce: try container.decode(TimeInForce.self, forKey: .timeInForce),
                  quantity: try container.decode(Quantity.self, forKey: .quantity), target: try container.decode(Target.self, forKey: .target),
                  workSequence: try container.decode(UInt64.self, forKey: .workSequence))
        filled = try container.decode(Quantity.self, forKey: .filled)
        maxCumulative = try container.decode(Quantity.self, forKey: .maxCumulative)
        fillValue = try container.decode(Money.self, forKey: .fillValue)
        phase = try container.decode(Phase.self, forKey: .phase)
        inFlight = try container.decodeIfPresent(InFlight.self, forKey: .inFlight)
        retryPending = try container.decode(Bool.self, forKey: .retryPending)
        attempts = try container.decode(Int32.self, forKey: .attempts)
        awaitingFill = try container.decode(Bool.self, forKey: .awaitingFill)
        failure = try container.decodeIfPresent(String.self, forKey: .failure)
        retiring = try container.decode(Bool.self, forKey: .retiring)
        successor = try container.decode(Int32.self, forKey: .successor)
        firstFillSerial = try container.decode(UInt64.self, forKey: .firstFillSerial)
        mayBeLive = try container.decodeIfPresent(Bool.self, forKey: .mayBeLive) ?? false
        cancelMayHaveTakenEffect = try container.decodeIfPresent(Bool.self, forKey: .cancelMayHaveTakenEffect) ?? false
        unplaced = try container.decodeIfPresent(Bool.self, forKey: .unplaced) ?? false
        unsentTries = try container.decodeIfPresent(UInt8.self, forKey: .unsentTries) ?? 0
        uncertainLow = try container.decodeIfPresent(Quantity.self, forKey: .uncertainLow) ?? .zero
        uncertainHigh = try container.decodeIfPresent(Quantity.self, forKey: .uncertainHigh) ?? .zero
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(position, forKey: .position)
        try container.encode(role, forKey: .role)
        try container.encode(side, forKey: .side)
        try container.encode(type, forKey: .type)
        try container.encode(timeInForce, forKey: .timeInForce)
        try container.encode(quantity, forKey: .quantity)
        try container.encode(filled, forKey: .filled)
        try container.encode(maxCumulative, forKey: .maxCumulative)
        try container.encode(fillValue, forKey: .fillValue)
        try container.encode(phase, forKey: .phase)
        try container.encode(target, forKey: .target)
        try container.encodeIfPresent(inFlight, forKey: .inFlight)
        try container.encode(retryPending, forKey: .retryPending)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(awaitingFill, forKey: .awaitingFill)
        try container.encodeIfPresent(failure, forKey: .failure)
        try container.encode(retiring, forKey: .retiring)
        try container.encode(successor, forKey: .successor)
        try container.encode(workSequence, forKey: .workSequence)
        try container.encode(firstFillSerial, forKey: .firstFillSerial)
        if mayBeLive { try container.encode(mayBeLive, forKey: .mayBeLive) }
        if cancelMayHaveTakenEffect { try container.encode(cancelMayHaveTakenEffect, forKey: .cancelMayHaveTakenEffect) }
        if unplaced { try container.encode(unplaced, forKey: .unplaced) }
        if unsentTries != 0 { try container.encode(unsentTries, forKey: .unsentTries) }
        if hasUncertainSize {
            try container.encode(uncertainLow, forKey: .uncertainLow)
            try container.encode(uncertainHigh, forKey: .uncertainHigh)
        }
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

    /// A modify timed out and no answer has settled the order's size since.
    var hasUncertainSize: Bool { !uncertainHigh.isZero }

    /// Widens the sizes the broker may hold the order at by a modify to `requested` that timed out.
    mutating func sizeMayBe(_ requested: Quantity) {
        if hasUncertainSize {
            uncertainLow = min(uncertainLow, requested)
            uncertainHigh = max(uncertainHigh, requested)
        } else {
            uncertainLow = min(quantity, requested)
            uncertainHigh = max(quantity, requested)
        }
    }

    /// An answer settled the order's size.
    mutating func sizeIsKnown() {
        uncertainLow = .zero
        uncertainHigh = .zero
    }

    var openQuantity: Quantity {
        isDone ? .zero : quantity - filled
    }

    /// The most the broker may hold open: a modify that timed out may have set a larger size.
    var largestOpenQuantity: Quantity {
        isDone ? .zero : (quantity > uncertainHigh ? quantity : uncertainHigh) - filled
    }

    /// The most a fill may take the filled quantity to: the larger of the accepted quantity and
    /// any modify in flight (the broker may have applied either).
    var fillLimit: Quantity {
        var limit = quantity > uncertainHigh ? quantity : uncertainHigh
        if let requested = inFlight?.requestedQuantity, requested > limit { limit = requested }
        return limit
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
            // The broker said it filled or ended first ("too late"); its fills are awaited.
            case nil where awaitingFill: return .awaitingFills
            // A cancel that timed out and is not settled yet: asked to cancel, not confirmed.
            case nil where cancelMayHaveTakenEffect: return .pendingCancel
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
