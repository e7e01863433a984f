import FillGuard
import FillGuardCore

/// Checks FillGuard's state against the simulated exchange's ground truth, the way a crash test
/// or the end of a session does.
public enum GroundTruth {
    /// Every problem found: nets, live orders, unique fills and, with `protection`, that every
    /// open position has exactly one stop and one target of |net| at the exchange (leave it out
    /// where injected permanent rejections may leave a role blocked until its re-arm); `cover`
    /// says which roles a position flipped against its bracket keeps.
    public static func problems(_ positions: [PositionSnapshot], _ exchange: SimulatedExchange, protection: Bool = true,
                                cover: FlippedPositionCover = .bracket) -> [String] {
        liveOrderMismatches(positions, exchange) + executionProblems(positions, exchange)
            + (protection ? protectionProblems(positions, exchange, cover: cover) : [])
    }

    /// Each execution at the exchange counted exactly once, on its own order: per order,
    /// FillGuard's filled quantity equals the sum of the exchange's unique executions of it (a
    /// fill booked to another order of the same side would leave the symbol's totals equal).
    static func executionProblems(_ positions: [PositionSnapshot], _ exchange: SimulatedExchange) -> [String] {
        var problems: [String] = []
        for symbol in exchange.symbols {
            let executions = exchange.allExecutions(of: symbol)
            let ids = Set(executions.map(\.executionID))
            if ids.count != executions.count { problems.append("\(symbol): the exchange reported an execution id twice") }
            var atExchange: [OrderID: Quantity] = [:]
            for execution in executions { atExchange[execution.orderID, default: .zero] += execution.lastQuantity }
            var booked: [OrderID: Quantity] = [:]
            for position in positions where position.symbol == symbol {
                for order in position.orders { booked[order.id, default: .zero] += order.filledQuantity }
            }
            // An order FillGuard no longer remembers (of a closed position it let go) counts as
            // booking nothing.
            let differing = Set(atExchange.keys).union(booked.keys).filter { (atExchange[$0] ?? .zero) != (booked[$0] ?? .zero) }
                .sorted { $0.rawValue < $1.rawValue }
            if !differing.isEmpty {
                let truth = executions.reduce(Quantity.zero) { $0 + $1.lastQuantity }
                let mine = booked.values.reduce(Quantity.zero, +)
                let orders = differing.map { "\($0) \(atExchange[$0] ?? .zero) vs \(booked[$0].map { "\($0)" } ?? "unknown")" }
                problems.append("\(symbol): the exchange executed \(truth), FillGuard booked \(mine) (a fill lost, counted twice or booked to another order): \(orders.joined(separator: ", "))")
            }
        }
        return problems
    }

    /// Every open position protected per the rules, at the exchange: one stop and one target on
    /// the opposite side, each for exactly |net|; nothing protective left when flat.
    static func protectionProblems(_ positions: [PositionSnapshot], _ exchange: SimulatedExchange, cover: FlippedPositionCover) -> [String] {
        var problems: [String] = []
        var plans: [Symbol: PositionSnapshot] = [:]
        // Entries and scale-ins by FillGuard's ids (it named them): a pending short bracket's
        // scale-ins are sell limits, which a check by type alone would take for targets.
        var opening: Set<OrderID> = []
        // Every order of a closed position: none may be live (rule 5: when a position goes flat,
        // whatever is left is cancelled, scale-ins included).
        var ofClosed: [OrderID: PositionID] = [:]
        for position in positions {
            plans[position.symbol] = position
            for order in position.orders where !order.role.isProtective { opening.insert(order.id) }
            if position.status == .closed {
                for order in position.orders { ofClosed[order.id] = position.id }
            }
        }
        for symbol in exchange.symbols {
            let net = exchange.netPosition(of: symbol)
            let protective: Side = net.units >= 0 ? .sell : .buy
            for order in exchange.liveOrders(of: symbol) {
                if let position = ofClosed[order.id] {
                    problems.append("\(symbol): order \(order.id) of closed position \(position) is live at the exchange (\(order.side.rawValue) \(order.openQuantity))")
                }
            }
            let live = exchange.liveOrders(of: symbol).filter { !opening.contains($0.id) }
            let stops = live.filter { order in
                switch order.type {
                case .stop, .stopLimit: return true
                default: return false
                }
            }
            let targets = live.filter { order in
                if case .limit = order.type { return order.side == protective }
                return false
            }
            let open = positions.filter { $0.symbol == symbol && !$0.netQuantity.isZero }
            if open.count > 1 {
                // A late fill reopened a closed position beside a newer one (README, "One position
                // per symbol"): each covers its own net, so each is checked on its own.
                problems += OpenPositionsCheck.problems(of: open, live: live.map { LiveProtectiveOrder(id: $0.id, side: $0.side, open: $0.openQuantity, price: $0.type.displayPrice) },
                                                       cover: cover, at: "the exchange")
                continue
            }
            if net.isZero {
                // Flat: no protective order of either side (a closed short's target is a buy).
                if !live.isEmpty { problems.append("\(symbol): flat but protective orders are live at the exchange: \(live.map(\.id))") }
                continue
            }
            // The open position (a flipped one is covered by its stop alone: README, "Flips").
            let plan = open.first ?? plans[symbol]
            if plan?.protectivePrice(.stopLoss, cover: cover) != nil {
                if stops.count != 1 { problems.append("\(symbol): \(stops.count) live stops at the exchange for net \(net) (want exactly 1): \(stops.map(\.id))") }
                if let stop = stops.first, stop.side != protective || stop.openQuantity != net.magnitude {
                    problems.append("\(symbol): stop \(stop.id) is \(stop.side.rawValue) \(stop.openQuantity), net is \(net)")
                }
                if let stop = stops.first, let price = plan?.protectivePrice(.stopLoss, cover: cover), stop.type.displayPrice != price {
                    problems.append("\(symbol): stop \(stop.id) is at \(stop.type.displayPrice.map { "\($0)" } ?? "market"), the position's stop-loss is \(price)")
                }
            }
            if plan?.takeProfit != nil, plan?.protectivePrice(.takeProfit, cover: cover) == nil, !targets.isEmpty {
                problems.append("\(symbol): targets are live at the exchange for a position flipped against its bracket (net \(net)): \(targets.map(\.id))")
            }
            if plan?.protectivePrice(.takeProfit, cover: cover) != nil {
                if targets.count != 1 { problems.append("\(symbol): \(targets.count) live targets at the exchange for net \(net) (want exactly 1): \(targets.map(\.id))") }
                if let target = targets.first, target.openQuantity != net.magnitude {
                    problems.append("\(symbol): target \(target.id) is \(target.openQuantity), net is \(net)")
                }
                if let target = targets.first, let price = plan?.protectivePrice(.takeProfit, cover: cover), target.type.displayPrice != price {
                    problems.append("\(symbol): target \(target.id) is at \(target.type.displayPrice.map { "\($0)" } ?? "market"), the position's take-profit is \(price)")
                }
            }
        }
        return problems
    }

    /// Compares FillGuard's view with the exchange's: net per symbol, and every live order's
    /// open quantity, side and type (prices included).
    static func liveOrderMismatches(_ positions: [PositionSnapshot], _ exchange: SimulatedExchange) -> [String] {
        var problems: [String] = []
        var netBySymbol: [Symbol: Quantity] = [:]
        var ours: [OrderID: OrderSnapshot] = [:]
        for position in positions {
            netBySymbol[position.symbol, default: .zero] += position.netQuantity
            for order in position.orders where order.status.isLive { ours[order.id] = order }
        }
        for symbol in exchange.symbols {
            let truth = exchange.netPosition(of: symbol)
            let mine = netBySymbol[symbol] ?? .zero
            if truth != mine { problems.append("\(symbol): exchange net \(truth), FillGuard net \(mine)") }
            for order in exchange.liveOrders(of: symbol) {
                let mine = ours.removeValue(forKey: order.id)
                if mine?.openQuantity != order.openQuantity {
                    problems.append("\(symbol): order \(order.id) open \(order.openQuantity) at the exchange, \(mine.map { "\($0.openQuantity)" } ?? "not live") in FillGuard")
                } else if let mine, mine.side != order.side || mine.type != order.type {
                    problems.append("\(symbol): order \(order.id) is \(order.side.rawValue) \(order.type) at the exchange, \(mine.side.rawValue) \(mine.type) in FillGuard")
                }
            }
        }
        for (id, order) in ours.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            problems.append("order \(id) live with \(order.openQuantity) in FillGuard but not at the exchange")
        }
        return problems
    }
}
