import FillGuard
import FillGuardCore
import FillGuardFIX

/// Checks FillGuard's state against what a FIX broker reports for every order of a run
/// (OrderMassStatusRequest): the same checks `GroundTruth` makes against the simulated exchange,
/// with the broker's order statuses as the truth.
public enum FIXGroundTruth {
    /// Every problem found: per symbol the net (signed sum of the broker's cumulative quantities)
    /// and the filled total, each live order's open quantity on both sides, and protection (one
    /// stop and one target of |net| on the opposite side; nothing protective left when flat).
    /// Only orders whose id starts with `orderPrefix` count (the broker may hold other runs' orders);
    /// `cover` says which roles a position flipped against its bracket keeps.
    public static func problems(_ positions: [PositionSnapshot], _ statuses: [FIXOrderStatus], orderPrefix: String,
                                cover: FlippedPositionCover = .bracket) -> [String] {
        // One status per order, the last one given (a broker may list an order twice).
        var broker: [FIXOrderStatus] = []
        var index: [OrderID: Int] = [:]
        for status in statuses where status.orderID.rawValue.hasPrefix(orderPrefix) {
            if let at = index[status.orderID] { broker[at] = status } else { index[status.orderID] = broker.count; broker.append(status) }
        }
        var problems: [String] = []
        var plans: [Symbol: PositionSnapshot] = [:]
        var mineNet: [Symbol: Quantity] = [:]
        var mineFilled: [Symbol: Quantity] = [:]
        var mineBooked: [OrderID: Quantity] = [:]
        var mineLive: [OrderID: Quantity] = [:]
        // Every order of a closed position: none may be live (rule 5).
        var ofClosed: [OrderID: PositionID] = [:]
        // Entries and scale-ins by FillGuard's ids (it named them): a pending short bracket's
        // scale-ins are sell limits, which a check by type alone would take for targets.
        var opening: Set<OrderID> = []
        for position in positions {
            plans[position.symbol] = position
            for order in position.orders where !order.role.isProtective { opening.insert(order.id) }
            mineNet[position.symbol, default: .zero] += position.netQuantity
            for order in position.orders {
                mineFilled[position.symbol, default: .zero] += order.filledQuantity
                mineBooked[order.id, default: .zero] += order.filledQuantity
                if order.status.isLive { mineLive[order.id] = order.openQuantity }
                if position.status == .closed { ofClosed[order.id] = position.id }
            }
        }
        var truthNet: [Symbol: Quantity] = [:]
        var truthFilled: [Symbol: Quantity] = [:]
        var live: [Symbol: [FIXOrderStatus]] = [:]
        var truthBooked: [Symbol: [OrderID: Quantity]] = [:]
        for status in broker {
            truthBooked[status.symbol, default: [:]][status.orderID, default: .zero] += status.cumulativeQuantity
            truthNet[status.symbol, default: .zero] += status.side == .buy ? status.cumulativeQuantity : -status.cumulativeQuantity
            truthFilled[status.symbol, default: .zero] += status.cumulativeQuantity
            if !status.isTerminal, status.leavesQuantity.isPositive { live[status.symbol, default: []].append(status) }
        }
        let symbols = Set(truthNet.keys).union(mineNet.keys).sorted { $0.name < $1.name }
        for symbol in symbols {
            let net = truthNet[symbol] ?? .zero
            let mine = mineNet[symbol] ?? .zero
            if net != mine { problems.append("\(symbol): broker net \(net), FillGuard net \(mine)") }
            let filled = truthFilled[symbol] ?? .zero
            // Per order: a fill booked to another order of the same side leaves the totals equal.
            let atBroker = truthBooked[symbol] ?? [:]
            let booked = positions.filter { $0.symbol == symbol }.flatMap(\.orders).map(\.id)
            let differing = Set(atBroker.keys).union(booked).filter { (atBroker[$0] ?? .zero) != (mineBooked[$0] ?? .zero) }
                .sorted { $0.rawValue < $1.rawValue }
            if filled != (mineFilled[symbol] ?? .zero) || !differing.isEmpty {
                let orders = differing.map { "\($0) \(atBroker[$0] ?? .zero) vs \(mineBooked[$0].map { "\($0)" } ?? "unknown")" }
                problems.append("\(symbol): the broker executed \(filled), FillGuard booked \(mineFilled[symbol] ?? .zero) (a fill lost, counted twice or booked to another order): \(orders.joined(separator: ", "))")
            }
            let allLive = live[symbol] ?? []
            for order in allLive {
                if let position = ofClosed[order.orderID] {
                    problems.append("\(symbol): order \(order.orderID) of closed position \(position) is live at the broker (\(order.side.rawValue) \(order.leavesQuantity))")
                }
                let mineOpen = mineLive.removeValue(forKey: order.orderID)
                if mineOpen != order.leavesQuantity {
                    problems.append("\(symbol): order \(order.orderID) open \(order.leavesQuantity) at the broker, \(mineOpen.map(String.init(describing:)) ?? "not live") in FillGuard")
                }
            }
            let orders = allLive.filter { !opening.contains($0.orderID) }
            let protective: Side = net.units >= 0 ? .sell : .buy
            let stops = orders.filter { $0.ordType == "3" || $0.ordType == "4" }
            let targets = orders.filter { $0.ordType == "2" && $0.side == protective }
            let open = positions.filter { $0.symbol == symbol && !$0.netQuantity.isZero }
            if open.count > 1 {
                // A late fill reopened a closed position beside a newer one (README, "One position
                // per symbol"): each covers its own net, so each is checked on its own.
                problems += OpenPositionsCheck.problems(of: open, live: orders.map {
                    LiveProtectiveOrder(id: $0.orderID, side: $0.side, open: $0.leavesQuantity,
                                        price: $0.ordType == "3" || $0.ordType == "4" ? $0.stopPrice : $0.price)
                },
                                                       cover: cover, at: "the broker")
                continue
            }
            if net.isZero {
                // Flat: no protective order of either side (a closed short's target is a buy).
                if !orders.isEmpty {
                    problems.append("\(symbol): flat but protective orders are live at the broker: \(orders.map(\.orderID))")
                }
                continue
            }
            let plan = positions.last { $0.symbol == symbol && !$0.netQuantity.isZero } ?? plans[symbol]
            if plan?.protectivePrice(.stopLoss, cover: cover) != nil {
                if stops.count != 1 { problems.append("\(symbol): \(stops.count) live stops at the broker for net \(net) (want exactly 1): \(stops.map(\.orderID))") }
                if let stop = stops.first, stop.side != protective || stop.leavesQuantity != net.magnitude {
                    problems.append("\(symbol): stop \(stop.orderID) is \(stop.side.rawValue) \(stop.leavesQuantity), net is \(net)")
                }
                // (A counterparty that leaves StopPx or Price out of its status reports cannot be
                // checked for prices.)
                if let stop = stops.first, let price = plan?.protectivePrice(.stopLoss, cover: cover), let at = stop.stopPrice, at != price {
                    problems.append("\(symbol): stop \(stop.orderID) is at \(at), the position's stop-loss is \(price)")
                }
            }
            if plan?.takeProfit != nil, plan?.protectivePrice(.takeProfit, cover: cover) == nil, !targets.isEmpty {
                problems.append("\(symbol): targets are live at the broker for a position flipped against its bracket (net \(net)): \(targets.map(\.orderID))")
            }
            if plan?.protectivePrice(.takeProfit, cover: cover) != nil {
                if targets.count != 1 { problems.append("\(symbol): \(targets.count) live targets at the broker for net \(net) (want exactly 1): \(targets.map(\.orderID))") }
                if let target = targets.first, target.leavesQuantity != net.magnitude {
                    problems.append("\(symbol): target \(target.orderID) is \(target.leavesQuantity), net is \(net)")
                }
                if let target = targets.first, let price = plan?.protectivePrice(.takeProfit, cover: cover), let at = target.price, at != price {
                    problems.append("\(symbol): target \(target.orderID) is at \(at), the position's take-profit is \(price)")
                }
            }
        }
        for (id, open) in mineLive.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            problems.append("order \(id) live with \(open) in FillGuard but not at the broker")
        }
        return problems
    }
}
