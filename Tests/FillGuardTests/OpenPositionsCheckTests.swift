@testable import FillGuardCore
@testable import FillGuardSimulator
import Testing

/// The simulator's check of several open positions on one symbol (a late fill reopened a closed
/// position beside a newer one): each position's stop and target, by size, side and price.
struct OpenPositionsCheckTests {
    /// A whole price.
    static func price(_ whole: Int) -> Price { Price(units: Int64(whole) * Price.unitsPerWhole) }

    /// A long position of `net` with one live stop and one live target (ids `<id>-sl`, `<id>-tp`).
    static func position(_ id: PositionID, net: Int, stop: Int, target: Int) -> PositionSnapshot {
        func order(_ suffix: String, _ role: OrderRole, _ type: OrderType) -> OrderSnapshot {
            OrderSnapshot(id: OrderID("\(id.rawValue)-\(suffix)"), positionID: id, symbol: "AAA", role: role, side: .sell, type: type,
                          quantity: Quantity(net), filledQuantity: .zero, openQuantity: Quantity(net), averageFillPrice: nil,
                          status: .working, failure: nil)
        }
        return PositionSnapshot(id: id, symbol: "AAA", side: .buy, status: .open, netQuantity: Quantity(net),
                                averagePrice: Price(100), realizedPnL: .zero, commissions: .zero,
                                orders: [order("sl", .stopLoss, .stop(price(stop))), order("tp", .takeProfit, .limit(price(target)))],
                                stopLoss: price(stop), takeProfit: price(target))
    }

    @Test("each of several open positions on one symbol is checked for its protective orders' prices, not only their sizes")
    func pricesAreChecked() {
        let open = [Self.position("P1", net: 100, stop: 90, target: 110), Self.position("P2", net: 50, stop: 95, target: 120)]
        func live(p2Stop: Int, p2StopKnown: Bool = true) -> [LiveProtectiveOrder] {
            [LiveProtectiveOrder(id: "P1-sl", side: .sell, open: 100, price: Self.price(90)),
             LiveProtectiveOrder(id: "P1-tp", side: .sell, open: 100, price: Self.price(110)),
             LiveProtectiveOrder(id: "P2-sl", side: .sell, open: 50, price: p2StopKnown ? Self.price(p2Stop) : nil),
             LiveProtectiveOrder(id: "P2-tp", side: .sell, open: 50, price: Self.price(120))]
        }
        #expect(OpenPositionsCheck.problems(of: open, live: live(p2Stop: 95), cover: .bracket, at: "the exchange").isEmpty)
        let wrong = OpenPositionsCheck.problems(of: open, live: live(p2Stop: 90), cover: .bracket, at: "the exchange")
        #expect(wrong.count == 1 && wrong[0].contains("P2-sl is at 90") && wrong[0].contains("is 95"), "\(wrong)")
        // A broker that does not say the price: the size alone is checked.
        #expect(OpenPositionsCheck.problems(of: open, live: live(p2Stop: 0, p2StopKnown: false), cover: .bracket, at: "the broker").isEmpty)
    }
}
