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
        // Zeros beyond the eighth place change nothing, so they are allowed.
        #expect(Quantity("1.000000000") == Quantity(1))
        #expect(Price("248.1000000000") == Price("248.1"))
        #expect(Quantity("-0.5")?.units == -50_000_000)
        // Whole prices as literals, as whole quantities are.
        let stop: Price = 245
        #expect(stop == Price("245.00"))
        #expect(BracketSpec(positionID: "P1", symbol: "GLD", side: .buy, quantity: 300, stopLoss: 245, takeProfit: 250).takeProfit == Price("250"))
    }

    @Test("the extremes of each type print exactly, the most negative too")
    func extremesPrint() {
        #expect(Money(units: .min).description == "-17014118346046923173168.7303715884105728")
        #expect(Money(units: .max).description == "17014118346046923173168.7303715884105727")
        #expect(Quantity(units: .min).description == "-92233720368.54775808")
        #expect(Price(units: .min).description == "-92233720368.54775808")
    }

    @Test("bad decimals are refused", arguments: ["", "abc", "1.2.3", "NaN", "inf", "-Infinity", "1e5", "0.000000001", "1,5", "1000000000.00000001", "92233720368.54775807",
                                                     // An odd form is not guessed at (a space, a plus, a bare point).
                                                     " 1", "1 ", "\t1", "+1", ".5", "5.", "-.5", "-", "1. 5", "--1"])
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

    @Test("a partial close releases the cost basis rounded to the nearest 10^-16, not truncated: the realized P&L is the nearest value either way")
    func partialCloseRounds() {
        var long = PositionLedger()
        long.record(side: .buy, quantity: 1, price: Price("1")!)
        long.record(side: .buy, quantity: 2, price: Price("2")!)
        long.record(side: .sell, quantity: 1, price: Price("2")!) // 2 - 5/3 = 1/3
        #expect(long.realizedPnL == Money("0.3333333333333333"))
        var short = PositionLedger()
        short.record(side: .sell, quantity: 1, price: Price("1")!)
        short.record(side: .sell, quantity: 2, price: Price("2")!)
        short.record(side: .buy, quantity: 1, price: Price("2")!) // 5/3 - 2 = -1/3
        #expect(short.realizedPnL == Money("-0.3333333333333333"))
        short.record(side: .buy, quantity: 2, price: Price("1")!)
        #expect(short.realizedPnL == Money("1"), "flat: exactly the cash, 5 - 4")
        #expect(Money("5")!.proportion(2, of: 3) == Money("3.3333333333333333"))
        #expect(Money("-5")!.proportion(2, of: 3) == Money("-3.3333333333333333"))
        #expect(Money("0.0000000000000005")!.proportion(1, of: 2) == Money("0.0000000000000003"), "half away from zero")
        #expect(Money("-0.0000000000000005")!.proportion(1, of: 2) == Money("-0.0000000000000003"))
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
