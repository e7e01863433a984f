import FillGuardCore
import Testing

@Suite("Exact fixed-point money")
struct FixedPointTests {
    @Test("parsing and printing are exact and shortest")
    func roundTrip() {
        #expect(Quantity("300")?.description == "300")
        #expect(Quantity("0.00000001")?.units == 1)
        #expect(Quantity("12.50")?.description == "12.5")
        #expect(Price("248.10")?.description == "248.1")
        #expect(Money("-250.0000000000000001")?.description == "-250.0000000000000001")
        #expect(Quantity("-3")?.units == -300_000_000)
    }

    @Test("bad decimals are refused", arguments: ["", "abc", "1.2.3", "NaN", "inf", "-Infinity", "1e5", "0.000000001", "1,5", "1000000000.00000001", "92233720368.54775807"])
    func refused(text: String) {
        #expect(Quantity(text) == nil)
        #expect(Price(text) == nil)
    }

    @Test("a million tiny fills add up exactly")
    func tinySums() {
        var total = Quantity.zero
        for _ in 0..<1_000_000 { total += Quantity(units: 1) }
        #expect(total == Quantity("0.01"))
    }

    @Test("average price and realized P&L are exact; a round trip realizes exactly its cash")
    func ledger() {
        var ledger = PositionLedger()
        ledger.record(side: .buy, quantity: 100, price: Price("10")!)
        ledger.record(side: .buy, quantity: 200, price: Price("11")!)
        #expect(ledger.averagePrice == Price("10.66666667"))
        ledger.record(side: .sell, quantity: 100, price: Price("12")!)
        ledger.record(side: .sell, quantity: 200, price: Price("10.5")!)
        #expect(ledger.net == 0)
        // Cash: -1000 - 2200 + 1200 + 2100 = 100.
        #expect(ledger.realizedPnL == Money("100"))
        #expect(ledger.averagePrice == nil)
    }

    @Test("short positions and flips account correctly")
    func shortAndFlip() {
        var ledger = PositionLedger()
        ledger.record(side: .sell, quantity: 100, price: Price("50")!)
        ledger.record(side: .buy, quantity: 150, price: Price("40")!) // closes 100 (+1000), opens long 50 at 40
        #expect(ledger.realizedPnL == Money("1000"))
        #expect(ledger.net == 50)
        #expect(ledger.averagePrice == Price("40"))
    }
}
