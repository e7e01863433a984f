/// A broken rule found by `SymbolStateMachine.invariantViolations(atQuiescence:)`.
public struct InvariantViolation: Sendable, Hashable, CustomStringConvertible {
    /// Which rule of the brief (1: net is the sum of unique fills; 2: protection matches the net;
    /// 5: a position against its bracket's side opens no more).
    public var rule: Int
    /// The position concerned.
    public var positionID: PositionID
    /// What is wrong.
    public var message: String

    /// "rule 2, P1: ...".
    public var description: String { "rule \(rule), \(positionID): \(message)" }
}

extension SymbolStateMachine {
    /// Checks rule 1 always, and rule 2 when `atQuiescence` (no operation in flight or pending).
    ///
    /// Rule 2 skips a role whose order is waiting for the fills a "too late" answer announced
    /// (sent again at the retry's time; alerted when the broker keeps answering so without them),
    /// and one whose last operation failed for good (alerted): reported, not hidden.
    public func invariantViolations(atQuiescence: Bool) -> [InvariantViolation] {
        var found: [InvariantViolation] = []
        for position in positions {
            let positionID = position.id
            let bracket = position.orderSlots.map { orders[Int($0)] }
            // Rule 1: the net position is the sum of the bracket's unique fills.
            var sum = Quantity.zero
            for order in bracket { sum += order.side == .buy ? order.filled : -order.filled }
            if sum != position.ledger.net {
                found.append(InvariantViolation(rule: 1, positionID: positionID, message: "net \(position.ledger.net) differs from the sum of fills \(sum)"))
            }
            guard atQuiescence else { continue }
            let net = position.ledger.net
            let flat = net.isZero
            if position.status == .closed || flat {
                for order in bracket where order.isLive && !order.awaitingFill && order.failure == nil {
                    if position.status == .closed || order.role.isProtective {
                        found.append(InvariantViolation(rule: 2, positionID: positionID, message: "flat, but \(order.role) \(order.id) is still \(order.status.rawValue)"))
                    }
                }
                continue
            }
            let side = net.units > 0 ? Side.sell : Side.buy
            // Rule 5: a position against its bracket's side opens no more (its entry and scale-ins go).
            if (position.side == .buy) != (net.units > 0) {
                for order in bracket where !order.role.isProtective && order.isLive && !order.awaitingFill && order.failure == nil {
                    found.append(InvariantViolation(rule: 5, positionID: positionID, message: "net \(net) is against the bracket, but \(order.role) \(order.id) is still \(order.status.rawValue)"))
                }
            }
            for (role, price) in [(OrderRole.stopLoss, position.protectivePrice(.stopLoss, cover: configuration.flippedPositionCover)), (OrderRole.takeProfit, position.protectivePrice(.takeProfit, cover: configuration.flippedPositionCover))] {
                let live = bracket.filter { $0.role == role && $0.isLive }
                if live.contains(where: { $0.awaitingFill || $0.failure != nil }) || position.isBlocked(role) { continue }
                guard let price else {
                    if !live.isEmpty { found.append(InvariantViolation(rule: 2, positionID: positionID, message: "no \(role) is wanted for net \(net) but \(live.count) are live")) }
                    continue
                }
                guard live.count == 1, let order = live.first else {
                    found.append(InvariantViolation(rule: 2, positionID: positionID, message: "\(live.count) live \(role) orders for net \(net)"))
                    continue
                }
                if order.side != side {
                    found.append(InvariantViolation(rule: 2, positionID: positionID, message: "\(role) \(order.id) is a \(order.side.rawValue) for net \(net)"))
                }
                if order.openQuantity != net.magnitude {
                    found.append(InvariantViolation(rule: 2, positionID: positionID, message: "\(role) \(order.id) covers \(order.openQuantity) of \(net.magnitude)"))
                }
                if order.type.displayPrice != price {
                    found.append(InvariantViolation(rule: 2, positionID: positionID, message: "\(role) \(order.id) price \(order.type.displayPrice.map(String.init(describing:)) ?? "none") is not \(price)"))
                }
            }
        }
        return found
    }
}
