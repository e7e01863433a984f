import FillGuardCore

/// A protective order live at a broker, as the checks of several open positions read it.
struct LiveProtectiveOrder: Sendable {
    /// The client order id.
    var id: OrderID
    /// Buy or sell.
    var side: Side
    /// Its open (leaves) quantity at the broker.
    var open: Quantity
    /// Its price at the broker: a stop's trigger, a limit order's limit; nil when the broker does
    /// not say (its price is then not checked).
    var price: Price?
}

/// The protection check for several open positions of one symbol (a late fill reopened a closed
/// position beside a newer one), shared by the simulated exchange's and the FIX broker's checks.
enum OpenPositionsCheck {
    /// Each position has exactly the roles `cover` gives it, one live order each on the side
    /// opposite its net, for its |net| and at its price, and no protective order belongs to no open position
    /// (`live`: the symbol's live orders, entries and scale-ins left out; `place`: "the
    /// exchange" or "the broker", for the messages).
    static func problems(of open: [PositionSnapshot], live: [LiveProtectiveOrder], cover: FlippedPositionCover, at place: String) -> [String] {
        var problems: [String] = []
        var claimed: Set<OrderID> = []
        for position in open {
            let side: Side = position.netQuantity.units > 0 ? .sell : .buy
            for role in [OrderRole.stopLoss, .takeProfit] {
                let ids = Set(position.orders.filter { $0.role == role }.map(\.id))
                let orders = live.filter { ids.contains($0.id) }
                claimed.formUnion(orders.map(\.id))
                guard let price = position.protectivePrice(role, cover: cover) else {
                    if !orders.isEmpty {
                        problems.append("\(position.symbol) \(position.id) (net \(position.netQuantity)): no \(role) is wanted, but \(orders.map(\.id)) are live at \(place)")
                    }
                    continue
                }
                if orders.count != 1 || orders[0].side != side || orders[0].open != position.netQuantity.magnitude {
                    problems.append("\(position.symbol) \(position.id) (net \(position.netQuantity)): \(role) at \(place) is "
                                    + "\(orders.map { "\($0.id) \($0.side.rawValue) \($0.open)" }), want one \(side.rawValue) of \(position.netQuantity.magnitude)")
                } else if let at = orders[0].price, at != price {
                    problems.append("\(position.symbol) \(position.id) (net \(position.netQuantity)): \(role) \(orders[0].id) is at \(at) at \(place), "
                                    + "the position's is \(price)")
                }
            }
        }
        let strays = live.filter { !claimed.contains($0.id) }
        if !strays.isEmpty, let symbol = open.first?.symbol {
            problems.append("\(symbol): protective orders of no open position are live at \(place): \(strays.map(\.id))")
        }
        return problems
    }
}
