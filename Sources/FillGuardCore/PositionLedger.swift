/// Net quantity, average-cost basis and realized P&L of one position, updated fill by fill with
/// exact arithmetic. Going flat releases the whole remaining cost basis, so the realized P&L of a
/// round trip is exactly the cash it made.
public struct PositionLedger: Sendable, Hashable, Codable {
    /// Signed net quantity: long > 0, short < 0.
    public private(set) var net: Quantity = .zero
    /// Signed cost of the open quantity (sum of signed quantity times price of the open lots).
    public private(set) var costBasis: Money = .zero
    /// Profit and loss realized by reducing fills, before commissions.
    public private(set) var realizedPnL: Money = .zero
    /// Commissions charged on the position's fills.
    public private(set) var commissions: Money = .zero

    /// An empty ledger.
    public init() {}

    /// The average entry price of the open quantity; nil when flat.
    public var averagePrice: Price? { costBasis.perShare(net) }

    /// Books one fill.
    public mutating func record(side: Side, quantity: Quantity, price: Price, commission: Money = .zero) {
        let signed = side == .buy ? quantity : -quantity
        commissions += commission
        if net.isZero || (net.units > 0) == (signed.units > 0) {
            net += signed
            costBasis += Money.value(of: signed, at: price)
            return
        }
        // Reducing (and maybe flipping): close min(|signed|, |net|) against the average cost.
        let closing = quantity < net.magnitude ? quantity : net.magnitude
        let released = costBasis.proportion(closing, of: net.magnitude)
        let closingSigned = side == .buy ? closing : -closing
        realizedPnL += -Money.value(of: closingSigned, at: price) - released
        costBasis -= released
        net += closingSigned
        if net.isZero { costBasis = .zero }
        let remainder = quantity - closing
        if remainder.isPositive {
            let remainderSigned = side == .buy ? remainder : -remainder
            net += remainderSigned
            costBasis += Money.value(of: remainderSigned, at: price)
        }
    }
}
