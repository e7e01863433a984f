/// How a position a late fill took through flat to the side opposite its bracket's is covered.
///
/// The bracket's two prices sit on either side of its entry, so for the flipped position at
/// least one of them is already marketable, and when both are, both execute: a double exit that
/// flips the position back (then covered as usual). Rules 2 and 7 as written want both orders
/// again at the bracket's prices (`bracket`, the default); `stopLossOnly` covers the flipped
/// position with its stop-loss alone, which either closes it at once or guards it against a move
/// further away, and never executes twice.
public enum FlippedPositionCover: String, Sendable, Hashable, CaseIterable, Codable {
    /// The bracket's stop-loss and take-profit on the new side (rules 2 and 7 as written).
    case bracket
    /// The stop-loss alone (the take-profit is cancelled); a bracket without a stop-loss keeps
    /// its take-profit, a single order.
    case stopLossOnly
}

/// Which protective orders cover a position (rule 2), and at what price.
enum ProtectiveCover {
    /// The price `role`'s order is kept at; nil when the role has no order now.
    static func price(of role: OrderRole, bracketSide: Side, net: Quantity, stopLoss: Price?, takeProfit: Price?,
                      cover: FlippedPositionCover) -> Price? {
        switch role {
        case .stopLoss:
            return stopLoss
        case .takeProfit:
            if cover == .stopLossOnly, stopLoss != nil, isAgainst(bracketSide: bracketSide, net: net) { return nil }
            return takeProfit
        case .entry, .scaleIn:
            return nil
        }
    }

    /// Whether `net` is on the side opposite a bracket entered on `bracketSide`.
    static func isAgainst(bracketSide: Side, net: Quantity) -> Bool {
        bracketSide == .buy ? net.units < 0 : net.units > 0
    }
}

extension PositionSnapshot {
    /// Whether a late fill took the position through flat to the side opposite its bracket's.
    public var isFlippedAgainstBracket: Bool { ProtectiveCover.isAgainst(bracketSide: side, net: netQuantity) }

    /// The price the position's `role` order is kept at under `cover`; nil when the role has no
    /// order: not in the bracket, or the take-profit of a flipped position under `stopLossOnly`.
    public func protectivePrice(_ role: OrderRole, cover: FlippedPositionCover) -> Price? {
        ProtectiveCover.price(of: role, bracketSide: side, net: netQuantity, stopLoss: stopLoss, takeProfit: takeProfit, cover: cover)
    }
}
